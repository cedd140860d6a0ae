"""Prompt sources: drawn boxes/points (the app), GeoJSON, the platform's annotation JSON, label images.

OWNER: geometry helper. Contract:

    make_box(x0, y0, x1, y1, width, height) -> tuple   clip to image; UserError if empty/inverted
    from_geojson(data: bytes | str | dict, width, height, tags=None, default_loc=None) -> list[Prompt]
    from_platform_json(data, width, height, tags=None) -> list[Prompt]      polygons -> bounds
    from_label_image(labels: np.ndarray, loc: Location, tags=None) -> list[Prompt]   each label -> mask prompt
    load_prompts(path, width, height, tags=None, loc=None) -> list[Prompt]    dispatch by content
    renumber(prompts) -> list[Prompt]   stable sequential obj ids 0,1,2,... (same source id -> same obj id)
    Prompt.to_dict()/from_dict helpers: prompt_to_dict(p) / prompt_from_dict(d) (JSON-safe, masks as CompactMask-ish)
"""
