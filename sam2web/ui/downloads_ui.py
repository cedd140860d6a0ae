"""The Results page's downloads, one button per file of every exporter in ``sam2web.exporters``.

Why callables: building every export (and a zip of them) on each rerun cost about a second at
2,000 polygons, and the page reruns every 0.7 s while it plays or a run is live; a file is built
only when its button is clicked. Exporters that rasterise every frame (``needs_frames``) are
prepared for the shown position on request. A folder export is offered as one zip.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from sam2web import exporters
from sam2web.errors import UserError
from sam2web.store import Run
from sam2web.ui.text import plain

MIMES = {
    ".geojson": "application/geo+json",
    ".csv": "text/csv",
    ".json": "application/json",
    ".zip": "application/zip",
    ".tif": "image/tiff",
    ".xml": "application/xml",
}


def _mime(name: str) -> str:
    return next((m for ext, m in MIMES.items() if name.endswith(ext)), "application/octet-stream")


def _context(run: Run, anns: list, links_: list, **kw: Any) -> exporters.ExportContext:
    return exporters.context_of(
        anns,
        links_,
        objects=run.objects,
        random_weights=run.random_weights,
        across=run.settings.get("across", "time"),
        **kw,
    )


def download_builders(
    run: Run,
    anns: list,
    links_: list,
    dataset_id: str | None = None,
    stack: Any = None,
    calibration: dict | None = None,
) -> dict[str, Callable]:
    """File name -> a function that builds its bytes (the exporters that need no frames).

    ``stack`` and ``calibration`` (the Dataset page's physical size) give the exports their units.
    """
    out: dict[str, Callable[[], bytes]] = {}
    for exporter in exporters.EXPORTERS:
        if exporter.needs_frames:
            continue
        made: dict[str, bytes] = {}

        def build_all(exporter=exporter, made=made) -> dict[str, bytes]:
            if not made:  # one exporter's files share their geometry work: one click builds them together
                ctx = _context(run, anns, links_, dataset_id=dataset_id, stack=stack, calibration=calibration)
                files = exporter.files_for(ctx)
                made.update(exporters.zip_folders(files))
            return made

        for name in exporter.files:
            shown = name.rstrip("/") + ".zip" if name.endswith("/") else name
            out[shown] = lambda shown=shown, build_all=build_all: build_all()[shown]
    return out


def nimbus_dataset_id(run: Run) -> str | None:
    """The optional NimbusImage dataset id that fills nimbus.json's datasetId."""
    from sam2web import export

    text = st.text_input(
        "NimbusImage dataset id (optional)",
        value=str(run.settings.get("dataset_id") or ""),
        key=f"res_dataset_id_{run.id}",
        placeholder="24 hexadecimal characters from the dataset's address",
        help="Fills datasetId in nimbus.json, needed to create the records through the platform's API. "
        "The Import from JSON dialog does not need it.",
    )
    try:
        return export.check_dataset_id(text)
    except UserError as err:
        st.error(plain(str(err)))
        return None


def downloads(run: Run, anns: list, links_: list, stack: Any = None, calibration: dict | None = None) -> None:
    """One button per export file plus a zip of them all; each is made only when its button is clicked."""
    from sam2web import export

    st.markdown("**Downloads**")
    dataset_id = nimbus_dataset_id(run)
    builders = download_builders(run, anns, links_, dataset_id, stack, calibration)
    st.caption("Exports number objects, XY, Time and Z from 0 (the page shows them from 1).")
    cols = st.columns(len(builders) + 1)
    for col, (name, build) in zip(cols, builders.items()):
        col.download_button(
            name,
            build,
            file_name=name,
            mime=_mime(name),
            key=f"res_dl_{name}",
            icon=":material/download:",
            on_click="ignore",
        )
    cols[-1].download_button(
        "All (zip)",
        lambda: export.zip_bytes({name: build() for name, build in builders.items()}),
        file_name=f"sam2web_run{run.id}.zip",
        mime="application/zip",
        key="res_dl_zip",
        icon=":material/folder_zip:",
        on_click="ignore",
    )


def _per_position(name: str, xy: int) -> str:
    """``trackmate.xml`` -> ``trackmate_xy2.xml``; a name that already says its position is kept."""
    if f"_xy{xy + 1}." in name:
        return name
    stem, dot, ext = name.partition(".")
    return f"{stem}_xy{xy + 1}{dot}{ext}"


def label_downloads(run: Run, stack: Any, anns: list, links_: list, xy: int, calibration: dict | None = None) -> None:
    """The exporters that need the frames (label stacks, CTC, GEFF, TrackMate), for the shown position, on request."""
    key = f"res_labels_{run.id}_{xy}"
    stamp = (id(anns), len(anns), len(links_))
    ready = st.session_state.get(key)
    if ready is not None and ready[0] != stamp:
        ready = None  # padding, smoothing or the run changed: build again
    heavy = [e for e in exporters.EXPORTERS if e.needs_frames]
    if ready is None and heavy:
        if st.button("Prepare label images and track files (napari, Fiji, CTC, GEFF, TrackMate)", key=f"{key}_build"):
            with st.spinner("Rasterising the polygons…"):
                ctx = _context(run, anns, links_, stack=stack, positions=(xy,), calibration=calibration)
                files: dict[str, bytes] = {}
                for exporter in heavy:
                    # a plain file is named for its position too (trackmate_xy2.xml), as folders are
                    made = {(n if "/" in n else _per_position(n, xy)): d for n, d in exporter.files_for(ctx).items()}
                    files.update(exporters.zip_folders(made, suffix=f"_xy{xy + 1}"))
            st.session_state[key] = ready = (stamp, files)
    if ready is not None:
        cols = st.columns(len(ready[1]))
        for col, (name, data) in zip(cols, ready[1].items()):
            col.download_button(
                name, data, file_name=name, mime=_mime(name), key=f"{key}_{name}", icon=":material/download:"
            )
