"""Runs without Streamlit: parameters, submit/resume/correct/cancel/delete, executors."""
