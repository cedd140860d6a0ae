"""Results page: review tracks over the images, redraw polygons, correct, download, score."""

import streamlit as st

from sam2web.ui import sidebar, state, track_ui

ws = sidebar.page("Results")
# The sidebar and title are on screen first; the first visit after a server restart then spends
# about a second importing the table/plot libraries (see sam2web.ui.warmup), under a spinner.
with st.spinner("Loading the Results page…"):
    from sam2web.ui import results_ui
live = bool(st.session_state.get("res_playing")) or track_ui.has_active_runs(ws)


@st.fragment(run_every=0.7 if live else None)
def body() -> None:
    """The whole page in one fragment: playback and live runs refresh it on a timer, nothing else."""
    with state.guard():
        stack = state.open_dataset(ws)
        if stack is None:
            st.info("Open a dataset on the Dataset page first.")
            return
        run = results_ui.pick_run(ws)
        if run is None:
            return
        track_ui.run_card(ws, run, stack, key_prefix="res")
        results_ui.correction_note(run)
        if run.random_weights:
            st.warning("This run used RANDOM weights (SAM2WEB_RANDOM_WEIGHTS=1): the masks are meaningless.")
        # The frame on the left; the outline settings, the objects shown and the plot on the right.
        left, right = st.columns([3, 2])
        with right:
            opts = results_ui.geometry_controls(run, ws)
            with st.spinner("Loading the run's masks and outlines…", show_time=True):
                result = results_ui.load_result(run)
                anns, links = results_ui.annotations(run, result, opts)
            objects = sorted({int(k) for k in run.objects} | {a.obj_id for a in anns})
            visible = results_ui.visible_objects(ws, run, objects)
            results_ui.area_chart(run, anns, visible, opts)
        frames = results_ui.frames_of(run, result)
        with left:
            loc = results_ui.playback(ws, stack, run, anns, frames, visible)
        st.dataframe(results_ui.object_table(run, anns, result, opts), hide_index=True)
        calibration = (ws.dataset or {}).get("calibration")  # the Dataset page's physical size
        results_ui.downloads(run, anns, links, stack, calibration)
        results_ui.label_downloads(run, stack, anns, links, loc.xy, calibration)
        results_ui.correction(ws, stack, run, loc)
        results_ui.qa_section(ws, stack, run, anns, loc.xy)
    still_live = bool(st.session_state.get("res_playing")) or track_ui.has_active_runs(ws)
    if still_live != live:
        st.rerun()  # start or stop the timer


body()
