"""Import the heavy libraries of the later pages in the background, once per server process.

Why: after a server restart the first visit to Results spent ~1.5 s of its ~2 s importing pandas
and pyarrow (for its table) before drawing anything. Whatever page the user opens first, this
starts those imports on a daemon thread so the pages opened next find them loaded.
"""

from __future__ import annotations

import importlib
import logging
import threading

MODULES = (
    "pandas",
    "pyarrow",
    "shapely",
    "cv2",
    "sam2web.geometry",
    "sam2web.export",
    "sam2web.links",
    "sam2web.ui.results_ui",
    "sam2web.ui.annotate_ui",
)
_started = threading.Event()
log = logging.getLogger(__name__)


def _load() -> None:
    for name in MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional library missing: the page that needs it will say so
            log.info("warm-up: %s is not installed", name)


def start() -> None:
    """Start the background imports (no-op after the first call in this process)."""
    if _started.is_set():
        return
    _started.set()
    threading.Thread(target=_load, name="sam2web-warmup", daemon=True).start()
