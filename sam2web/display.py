"""Turn raw frames into uint8 RGB for the model and the screen (channels, contrast, colours).

OWNER: stack helper. Contract:

    @dataclass ChannelDisplay(index: int, color: str = "#ffffff", visible: bool = True,
                              mode: str = "percentile", low: float = 1.0, high: float = 99.8)
        (mode "percentile": low/high are percentiles; mode "absolute": raw intensity limits)
    @dataclass DisplaySettings(channels: list[ChannelDisplay]); DisplaySettings.default(stack)
    render(stack, loc: Location, settings: DisplaySettings) -> np.ndarray (Y, X, 3) uint8
        composite by per-pixel maximum over visible channels, like the platform.
    Both dataclasses round-trip through to_dict()/from_dict() (JSON-safe, for the workspace store).
"""
