"""Dataset page: open a stack (upload or the built-in sample), see its dimensions, browse frames."""

import streamlit as st

from sam2web.ui import dataset_ui, sidebar, state

ws = sidebar.page("Dataset")
dataset_ui.open_controls(ws)
ws = state.current_workspace()

with state.guard():
    stack = state.open_dataset(ws)
    if stack is None:
        st.info("Upload a stack or open the built-in sample to begin.")
        st.stop()
    # Facts and controls on the left, the frame on the right: a tall frame fits a 1280 x 800 window.
    left, right = st.columns([1, 1.25])
    with left:
        dataset_ui.describe(stack)
        dataset_ui.calibration_controls(ws, stack)
        settings = dataset_ui.display_controls(ws, stack)
        loc = state.location_sliders(ws, stack, prefix="loc_ds")
    with right:
        dataset_ui.show_frame(ws, stack, loc, settings)
