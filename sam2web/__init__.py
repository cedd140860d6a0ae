"""sam2web: track cells through microscopy stacks with SAM2's video predictor.

The engine (everything here except `sam2web.ui`) never imports streamlit; only `model.py` and
`track.py` import torch / sam2, lazily, so the data path works without them.
"""
from sam2web.errors import UserError

__all__ = ["UserError"]
__version__ = "0.1.0"
