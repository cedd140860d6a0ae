"""One exception type for every problem a user can cause and fix."""

import struct
import zlib


class UserError(Exception):
    """A problem the user can fix. ``str(err)`` is one plain sentence saying what to do.

    The CLI prints it on stderr and exits 2; the app shows it with ``st.error``. Anything else
    that escapes is a bug in sam2web, not the user's fault.
    """


# What file decoders (tifffile, PIL, OpenCV, zlib, json) raise for a damaged or unexpected file: such a
# failure is the user's to fix ("export it again"). Anything else, e.g. AttributeError, is sam2web's own
# bug and must reach the log with its traceback instead of being disguised as a bad file.
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    KeyError,
    IndexError,
    EOFError,
    RuntimeError,
    ArithmeticError,  # e.g. a corrupted header's zero tile size (found by the fuzz test)
    struct.error,
    zlib.error,
    SyntaxError,  # PIL's PngImagePlugin reports a broken chunk as SyntaxError (found by the fuzz test)
)
