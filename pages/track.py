"""Track page: every parameter of the worker, the run in the background with progress and Cancel."""

import streamlit as st

from sam2web.ui import model_warmup, sidebar, state, track_ui

ws = sidebar.page("Track")
model_warmup.show(ws)  # load SAM2 in the worker while the user looks
if state.is_random_weights():
    st.warning("RANDOM weights (SAM2WEB_RANDOM_WEIGHTS=1): the masks are meaningless.", icon=":material/warning:")
stack = None
with state.guard():
    stack = state.open_dataset(ws)
    if stack is None:
        st.info("Open a dataset on the Dataset page first.")
        st.stop()
    prompts = state.load_prompts(ws)
    st.caption(
        f"{len(prompts)} prompt(s) on {len({p.obj_id for p in prompts})} object(s) · "
        + track_ui.hardware_caption(track_ui.saved_form(ws)),
        help=track_ui.hardware_help(),
    )
    values = track_ui.form(ws, stack, prompts)
    if values is not None:
        run_id = track_ui.submit(ws, stack, values, prompts)
        st.success(f"Run {run_id} started; follow it below, or keep working on other pages.")

if st.session_state.get("trk_missing_ckpt"):
    track_ui.download_checkpoint_ui(st.session_state["trk_missing_ckpt"], ws)


@st.fragment(run_every=1.0 if track_ui.has_active_runs(ws) else None)
def _runs() -> None:
    st.subheader("Runs")
    track_ui.runs_panel(ws, stack, key_prefix="trk")
    if not track_ui.has_active_runs(ws) and st.session_state.get("trk_polling"):
        st.session_state["trk_polling"] = False
        st.rerun()  # the last run ended: stop polling (full rerun re-creates the fragment without a timer)
    elif track_ui.has_active_runs(ws):
        st.session_state["trk_polling"] = True


_runs()
