"""Annotate page: draw boxes and points on any frame; each box is an object to track."""

import streamlit as st

from sam2web.ui import annotate_ui, model_warmup, sidebar, state

ws = sidebar.page("Annotate")
model_warmup.show(ws)  # load SAM2 in the worker while the user looks
with state.guard():
    stack = state.open_dataset(ws)
    if stack is None:
        st.info("Open a dataset on the Dataset page first.")
        st.stop()
    settings = state.display_settings(ws, stack)
    annotate_ui.viewer_events(ws, stack)  # what was drawn since the last rerun, before any widget
    loc = state.location_sliders(ws, stack, prefix="loc_an")
    annotate_ui.canvas_area(ws, stack, loc, settings)
    annotate_ui.import_prompts(ws, stack, loc)
    annotate_ui.object_list(ws)
