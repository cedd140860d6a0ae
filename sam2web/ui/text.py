"""User-given text (workspace, object, tag, file and run names) inside Markdown, shown as typed.

Why: Streamlit renders labels, captions, alerts and help texts as Markdown, so a name such as
``![p](http://host/x.png)`` would make every visitor's browser fetch that address. Widgets that can
show plain text (``st.text``, dataframes) need nothing; everywhere else a name goes through
``plain``, which backslash-escapes every Markdown and directive character (CommonMark lets any
ASCII punctuation be escaped) and folds line breaks.
"""

from __future__ import annotations

import re

_SPECIAL = re.compile(r"([\\`*_{}\[\]()!|<>~$:&#])")  # markup anywhere in a line
_LEADING = re.compile(r"^([-+=>]|\d+(?=[.)]))")  # markup only at the start: lists, headings, quotes


def plain(text: object) -> str:
    """``text`` escaped for Streamlit Markdown: it renders as exactly these characters, on one line."""
    one_line = " ".join(str(text).split())
    escaped = _SPECIAL.sub(r"\\\1", one_line)
    match = _LEADING.match(escaped)
    if match:  # "1. x" -> "1\. x"; "- x" -> "\- x"
        end = match.end()
        escaped = escaped[:end] + "\\" + escaped[end:] if match.group(1)[0].isdigit() else "\\" + escaped
    return escaped
