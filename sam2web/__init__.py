"""sam2web: track cells through microscopy stacks with SAM2's video predictor.

Subpackages: `stack` (open stacks, display), `tracking` (the only one importing torch/sam2),
`service` (runs without Streamlit), `cli`, `ui` (the only one importing streamlit). The boundaries
are import-linter contracts in pyproject.toml.
"""

from sam2web.errors import UserError

__all__ = ["UserError"]
__version__ = "0.2.0"
