"""Mask -> polygon, then padding (buffer) and smoothing (simplify), in full-resolution pixels.

OWNER: geometry helper. Contract:

    mask_to_geometry(mask: np.ndarray | CompactMask, padding=0.0, smoothing=0.3, keep="largest"|"all")
        -> shapely Polygon | MultiPolygon | None     (x = column, y = row)
    annotations_from_result(result: TrackResult, padding=0.0, smoothing=0.3, keep="largest") -> list[Annotation]
        stable ids: f"{obj_id}-{xy}-{time}-{z}"
"""
