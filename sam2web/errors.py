"""One exception type for every problem a user can cause and fix."""


class UserError(Exception):
    """A problem the user can fix. ``str(err)`` is one plain sentence saying what to do.

    The CLI prints it on stderr and exits 2; the app shows it with ``st.error``. Anything else
    that escapes is a bug in sam2web, not the user's fault.
    """
