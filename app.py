"""sam2web's entry point: page config and navigation over pages/.

Run with ``streamlit run app.py`` (scripts/run.sh). Pages are thin; the work is in sam2web/.
Each page draws the shared sidebar itself (``sam2web.ui.sidebar.page``): AppTest re-runs only the
page script after its first run, so a sidebar drawn here could not be tested.
"""

import streamlit as st

from sam2web.ui import warmup

st.set_page_config(page_title="sam2web", page_icon="🔬", layout="wide")
warmup.start()

PAGES = [
    st.Page("pages/dataset.py", title="Dataset", icon=":material/folder_open:", default=True),
    st.Page("pages/annotate.py", title="Annotate", icon=":material/draw:"),
    st.Page("pages/track.py", title="Track", icon=":material/play_circle:"),
    st.Page("pages/results.py", title="Results", icon=":material/insights:"),
]

st.navigation(PAGES).run()
