"""Open microscopy files as a lazy Stack (axes XY, Time, Z, C, Y, X) and read single frames.

OWNER: stack helper. Contract used by other modules:

    open_stack(paths: str | Path | list, pages_as: str = "time") -> Stack
    Stack.sizes -> dict with keys "XY","T","Z","C","Y","X"; Stack.dtype; Stack.pixel_size (x, y, unit) | None
    Stack.channel_names -> list[str]; Stack.name -> str (for display)
    Stack.frame(loc: Location, channel: int) -> 2D np.ndarray (Y, X) raw data, decoded lazily
"""
