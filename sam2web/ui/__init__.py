"""Streamlit helpers the pages share (the only part of sam2web that imports streamlit)."""
