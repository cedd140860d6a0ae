"""GEFF export: the tracks as a graph in the Graph Exchange File Format (``geff``).

    tracking_graph(ctx, xy) -> networkx.DiGraph     one node per polygon, one edge per link
    context_geff(ctx) -> {"tracks.geff/...": bytes}  the registry's "geff" entry (one folder per position)

Why GEFF: it is the exchange format of the cell-tracking tools (traccuracy, motile-tracker,
ultrack, trackastra, napari-geff, TrackMate), so a sam2web run can be scored, corrected or
viewed there without a converter. The graph is written by the ``geff`` package itself, so the
file is whatever the reference implementation reads.

What a node holds: ``t`` (and ``z`` when the stack has Z slices), ``y``, ``x`` of the polygon's
centroid in array-index coordinates (a pixel's centre is a whole number, as in napari and
scikit-image; the GeoJSON's pixel-corner coordinates are 0.5 less), ``area`` (px²) and, where
the pixel size is known, ``area_physical`` (unit²), the ``object_id`` (its name and tags are in
the metadata's ``extra.sam2web.objects``: napari-geff cannot read text node properties), the outline as GEFF's ``polygon`` (vertices relative to the centroid, (y, x)),
``tracklet_id``/``lineage_id`` (``track_node_props``) and ``seg_id``: the pixel value of the
object in the label export (``labels_xyN.ome.tif``: object id + 1). The same label image is
stored beside the graph (``labels``, a zarr array of shape (frames, height, width)) and named in
``related_objects``, so traccuracy's ``load_geff_data(..., load_geff_seg=True)`` finds it.

Edges are the links exactly as in ``connections.csv`` (a division is two edges from the
mother's last node, ``division`` = 1). Axis ``scale``/``scaled_unit`` carry the pixel size, Z
step and time interval where known; positions stay in pixels and frames.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import shapely

from sam2web.errors import UserError

SEG_PROP = "seg_id"
LABELS = "labels"
# OME-NGFF's unit names, which GEFF asks for (anything else is kept but readers may ignore it).
_SPACE_UNITS = {"µm": "micrometer", "um": "micrometer", "nm": "nanometer", "mm": "millimeter", "m": "meter"}


def _folder(xy: int, positions: list[int]) -> str:
    return "tracks.geff" if len(positions) == 1 else f"tracks_xy{xy + 1}.geff"


def positions_of(ctx) -> list[int]:
    if ctx.positions is not None:
        return sorted(ctx.positions)
    return sorted({a.loc.xy for a in ctx.annotations}) or [0]


def axes_of(ctx, annotations) -> list[str]:
    """The stack's axes the nodes are placed in: t, z (only when the stack has Z slices), y, x."""
    sizes = ctx.sizes or {}
    has_z = sizes.get("Z", 1) > 1 if sizes else any(a.loc.z for a in annotations) or ctx.across == "z"
    has_t = sizes.get("T", 1) > 1 if sizes else any(a.loc.time for a in annotations) or ctx.across == "time"
    return [*(["t"] if has_t or ctx.across == "time" else []), *(["z"] if has_z else []), "y", "x"]


def _components(nodes: list[int], edges: list[tuple[int, int]], keep) -> dict[int, int]:
    """Union-find over the edges that ``keep(u, v)`` accepts: node -> component number (0, 1, ...)."""
    root = {n: n for n in nodes}

    def find(n: int) -> int:
        while root[n] != n:
            root[n] = root[root[n]]
            n = root[n]
        return n

    for u, v in edges:
        if keep(u, v):
            root[find(u)] = find(v)
    numbers: dict[int, int] = {}
    return {n: numbers.setdefault(find(n), len(numbers)) for n in nodes}


def tracking_graph(ctx, xy: int):
    """The position's polygons and links as a directed graph (node ids 0.. in annotation order)."""
    import networkx as nx

    anns = [a for a in ctx.annotations if a.loc.xy == xy]
    axes = axes_of(ctx, anns)
    area_unit = ctx.units.pixel_area
    graph = nx.DiGraph()
    index = {a.id: i for i, a in enumerate(anns)}
    geoms = np.array([a.geometry for a in anns] + [None], dtype=object)[:-1]
    centroids = shapely.get_coordinates(shapely.centroid(geoms)) if len(anns) else np.empty((0, 2))
    areas = shapely.area(geoms) if len(anns) else np.empty(0)
    for i, a in enumerate(anns):
        cx, cy = float(centroids[i, 0]) - 0.5, float(centroids[i, 1]) - 0.5
        place = {"t": int(a.loc.time), "z": int(a.loc.z), "y": cy, "x": cx}
        shape = a.geometry if a.geometry.geom_type == "Polygon" else max(a.geometry.geoms, key=lambda p: p.area)
        ring = np.asarray(shape.exterior.coords, dtype=np.float64)[:-1]
        attrs = {axis: place[axis] for axis in axes}
        attrs.update(
            area=float(areas[i]),
            object_id=int(a.obj_id),
            seg_id=int(a.obj_id) + 1,
            polygon=np.stack([ring[:, 1] - cy - 0.5, ring[:, 0] - cx - 0.5], axis=1),
        )
        if area_unit is not None:
            attrs["area_physical"] = float(areas[i]) * area_unit
        graph.add_node(i, **attrs)
    for c in ctx.connections:
        u, v = index.get(c.parent_id), index.get(c.child_id)
        if u is not None and v is not None:
            graph.add_edge(u, v, division=int("DIVISION" in c.tags))
    nodes, edges = list(graph.nodes), list(graph.edges)
    tracklets = _components(nodes, edges, lambda u, v: graph.out_degree(u) == 1 and graph.in_degree(v) == 1)
    lineages = _components(nodes, edges, lambda u, v: True)
    for n in nodes:
        graph.nodes[n]["tracklet_id"] = tracklets[n] + 1
        graph.nodes[n]["lineage_id"] = lineages[n] + 1
    return graph


def _objects(ctx, xy: int) -> dict[str, dict]:
    """{object id: {name, tags}}: kept in the metadata, not as node properties, because napari-geff
    (0.0.4) cannot read a graph with text node properties."""
    from sam2web.export import display_name

    out: dict[str, dict] = {}
    for a in ctx.annotations:
        if a.loc.xy == xy and str(a.obj_id) not in out:
            out[str(a.obj_id)] = {"name": display_name(a.obj_id, ctx.names), "tags": [str(t) for t in a.tags]}
    return out


def _axis_calibration(ctx, axes: list[str]) -> tuple[list, list]:
    units = ctx.units
    space = _SPACE_UNITS.get(units.unit, units.unit)
    scale: dict[str, float | None] = {"t": units.time_interval}
    if units.pixel_size is not None:
        scale.update(x=float(units.pixel_size[0]), y=float(units.pixel_size[1]))
    if units.z_step is not None:
        scale["z"] = float(units.z_step)
    scales = [scale.get(a) for a in axes]
    scaled = [None if s is None else ("second" if a == "t" else space) for a, s in zip(axes, scales)]
    return scales, scaled


def _label_image(ctx, xy: int, n_axes: int) -> np.ndarray | None:
    """The label export of the position, when the graph's axes are (frames, y, x) and the size is known."""
    from sam2web.label_export import label_stack

    if ctx.frame_shape is None or n_axes != 3:
        return None
    return label_stack(ctx.annotations, tuple(ctx.frame_shape), ctx.across, ctx.n_frames, xy)


def _write_geff(ctx, xy: int, path: Path) -> None:
    import geff
    import zarr
    from geff_spec import GeffMetadata, PropMetadata, RelatedObject

    graph = tracking_graph(ctx, xy)
    axes = axes_of(ctx, [a for a in ctx.annotations if a.loc.xy == xy])
    types = ["time" if a == "t" else "space" for a in axes]
    scales, scaled = _axis_calibration(ctx, axes)
    labels = _label_image(ctx, xy, len(axes))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # zarr/numcodecs internals, not ours
        geff.write(graph, str(path), axis_names=axes, axis_types=types, axis_scales=scales, scaled_units=scaled)
        meta = GeffMetadata.read(str(path))
        meta.track_node_props = {"tracklet": "tracklet_id", "lineage": "lineage_id"}
        meta.polygon = "polygon"
        area_unit = _SPACE_UNITS.get(ctx.units.unit, ctx.units.unit)
        described = {
            "area": ("area in pixels", None),
            "area_physical": ("area in calibrated units", f"{area_unit}^2"),
            SEG_PROP: ("pixel value of the object in the label export (object id + 1)", None),
            "object_id": ("sam2web object id (its name and tags: extra.sam2web.objects)", None),
            "tracklet_id": ("maximal unbranched path", None),
            "lineage_id": ("connected component (a founder and its descendants)", None),
        }
        props = dict(meta.node_props_metadata)
        for key, (text, unit) in described.items():
            if key in props:
                props[key] = PropMetadata(**{**props[key].model_dump(), "description": text, "unit": unit})
        meta.node_props_metadata = props
        if labels is not None:
            arr = zarr.create_array(
                store=str(path / LABELS),
                shape=labels.shape,
                chunks=(1, *labels.shape[1:]),
                dtype=labels.dtype,
                zarr_format=2,
            )
            arr[:] = labels
            meta.related_objects = [RelatedObject(type="labels", path=LABELS, label_prop=SEG_PROP, node_prop=SEG_PROP)]
        meta.extra = {
            "sam2web": {
                "xy": xy,
                "across": ctx.across,
                "source": ctx.source,
                "coordinates": "array index (pixel centre = whole number)",
                "objects": _objects(ctx, xy),
                **({"warning": "random weights: these masks are meaningless"} if ctx.random_weights else {}),
            }
        }
        meta.write(str(path))


def context_geff(ctx) -> dict[str, bytes]:
    """The registry's "geff" entry: ``tracks.geff/`` (``tracks_xyN.geff/`` per position), as files."""
    positions = positions_of(ctx)
    if ctx.across not in ("time", "z"):
        raise UserError(f"Track across must be time or z, not {ctx.across!r}.")
    files: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="sam2web_geff_") as tmp:
        for xy in positions:
            name = _folder(xy, positions)
            _write_geff(ctx, xy, Path(tmp) / name)
        for p in sorted(Path(tmp).rglob("*")):
            if p.is_file():
                files[p.relative_to(tmp).as_posix()] = p.read_bytes()
    return files
