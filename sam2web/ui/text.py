"""User-given text (workspace, object, tag, file and run names) inside Markdown, shown as typed.

Why: Streamlit renders labels, captions, alerts and help texts as Markdown, so a name such as
``![p](http://host/x.png)`` would make every visitor's browser fetch that address. Widgets that can
show plain text (``st.text``, dataframes) need nothing; everywhere else a name goes through
``plain``, which backslash-escapes the characters that make Markdown or directive markup (CommonMark
lets any ASCII punctuation be escaped) and folds line breaks.
"""

from __future__ import annotations

import re

# What makes markup in Streamlit's Markdown: links and images and directives need brackets, emphasis
# needs * or a word-edge _, plus code spans, math, strikethrough, tables and HTML. Intraword _ (file
# names like sam2.1_hiera_tiny.pt), parentheses and colons alone make nothing and stay as typed.
_SPECIAL = re.compile(r"([\\`*{}\[\]<>~$|&]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
_LEADING = re.compile(r"^([-+=>#]|\d+(?=[.)]))")  # markup only at the start: lists, headings, quotes


def plain(text: object) -> str:
    """``text`` escaped for Streamlit Markdown: it renders as exactly these characters, on one line."""
    one_line = " ".join(str(text).split())
    escaped = _SPECIAL.sub(r"\\\1", one_line)
    match = _LEADING.match(escaped)
    if match:  # "1. x" -> "1\\. x"; "- x" -> "\\- x"
        end = match.end()
        escaped = escaped[:end] + "\\" + escaped[end:] if match.group(1)[0].isdigit() else "\\" + escaped
    return escaped
