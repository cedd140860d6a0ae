"""TrackMate XML export: the tracks as a model that Fiji's TrackMate opens (File > Load a TrackMate file).

    trackmate_xml(ctx, xy) -> bytes                     one position's model
    context_trackmate(ctx) -> {"trackmate.xml": bytes}  the registry's "trackmate" entry

Why: TrackMate is where Fiji users inspect, edit and measure tracks, and its XML is the format
that Fiji's own loader reads; there is no maintained Python writer, so this writes the same
elements TrackMate's ``TmXmlWriter`` does: the ``Model`` (feature declarations, every spot with
its polygon ROI, tracks of edges, the visible tracks), the ``Settings`` (image file reference
and calibration, a manual detector and tracker so nothing is re-run), and a ``GUIState`` that
opens the views.

TrackMate's conventions, which the writer follows: positions are in physical units
(``POSITION_X`` = array-index x × pixel width; a pixel's centre is a whole index, as in
TrackMate's own detectors), ``POSITION_T`` = frame × time interval, and a spot's ROI vertices are
relative to the spot's centre, in physical units. A track is one connected component: a
division is a spot with two outgoing edges (``NUMBER_SPLITS``). Spots linked to nothing stay
spots without a track, as in TrackMate. Without a known pixel size the units are ``pixel`` and
``frame``. When the image file is not beside the XML, TrackMate offers to open the model on a
blank image of the saved size.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict

import numpy as np
import shapely

from sam2web.errors import UserError

VERSION = "7.14.0"  # the TrackMate version whose XML layout this follows

_SPOT_FEATURES = [
    # (feature, name, shortname, dimension, isint)
    ("QUALITY", "Quality", "Quality", "QUALITY", False),
    ("POSITION_X", "X", "X", "POSITION", False),
    ("POSITION_Y", "Y", "Y", "POSITION", False),
    ("POSITION_Z", "Z", "Z", "POSITION", False),
    ("POSITION_T", "T", "T", "TIME", False),
    ("FRAME", "Frame", "Frame", "NONE", True),
    ("RADIUS", "Radius", "R", "LENGTH", False),
    ("VISIBILITY", "Visibility", "Visibility", "NONE", True),
    ("AREA", "Area", "Area", "AREA", False),
    ("PERIMETER", "Perimeter", "Perim.", "LENGTH", False),
    ("OBJECT_ID", "sam2web object id", "Object", "NONE", True),
]
_INTENSITY = ("MEAN_INTENSITY_CH1", "Mean intensity ch1", "Mean ch1", "INTENSITY", False)
_EDGE_FEATURES = [
    ("SPOT_SOURCE_ID", "Source spot ID", "Source ID", "NONE", True),
    ("SPOT_TARGET_ID", "Target spot ID", "Target ID", "NONE", True),
    ("LINK_COST", "Edge cost", "Cost", "COST", False),
    ("EDGE_TIME", "Edge time", "Edge T", "TIME", False),
]
_TRACK_FEATURES = [
    ("TRACK_INDEX", "Track index", "Index", "NONE", True),
    ("TRACK_ID", "Track ID", "ID", "NONE", True),
    ("NUMBER_SPOTS", "Number of spots in track", "N spots", "NONE", True),
    ("NUMBER_GAPS", "Number of gaps", "N gaps", "NONE", True),
    ("NUMBER_SPLITS", "Number of split events", "N splits", "NONE", True),
    ("NUMBER_MERGES", "Number of merge events", "N merges", "NONE", True),
    ("TRACK_DURATION", "Track duration", "Duration", "TIME", False),
    ("TRACK_START", "Track start", "Track start", "TIME", False),
    ("TRACK_STOP", "Track stop", "Track stop", "TIME", False),
]


def _declare(parent: ET.Element, tag: str, features) -> None:
    group = ET.SubElement(parent, tag)
    for feature, name, short, dimension, isint in features:
        ET.SubElement(
            group,
            "Feature",
            feature=feature,
            name=name,
            shortname=short,
            dimension=dimension,
            isint="true" if isint else "false",
        )


def _num(value: float) -> str:
    return repr(float(value))


def _components(n: int, edges: list[tuple[int, int]]) -> list[list[int]]:
    """Connected components (each a sorted list of spot ids) that have at least one edge."""
    root = list(range(n))

    def find(i: int) -> int:
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    for u, v in edges:
        root[find(u)] = find(v)
    linked = {find(u) for u, _ in edges}
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        if find(i) in linked:
            groups[find(i)].append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def trackmate_xml(ctx, xy: int) -> bytes:
    """One position's polygons and links as a TrackMate XML model (UTF-8 bytes)."""
    from sam2web.export import display_name

    if ctx.across != "time":
        raise UserError("TrackMate follows cells through time; export a run tracked across Time.")
    if ctx.frame_shape is None:
        raise UserError("The TrackMate export needs the frame size: open the dataset first.")
    anns = sorted((a for a in ctx.annotations if a.loc.xy == xy), key=lambda a: (a.loc.time, a.obj_id))
    units = ctx.units
    px, py = (float(units.pixel_size[0]), float(units.pixel_size[1])) if units.pixel_size else (1.0, 1.0)
    dz = float(units.z_step) if units.z_step else 1.0
    dt = float(units.time_interval) if units.time_interval else 1.0
    space = (units.unit if units.unit != "um" else "µm") if units.pixel_size else "pixel"
    time_unit = "sec" if units.time_interval else "frame"
    intensities = ctx.intensities or {}

    root = ET.Element("TrackMate", version=VERSION)
    ET.SubElement(root, "Log").text = "Written by sam2web (polygons and links of a SAM2 tracking run).\n"
    model = ET.SubElement(root, "Model", spatialunits=space, timeunits=time_unit)
    declarations = ET.SubElement(model, "FeatureDeclarations")
    spot_features = _SPOT_FEATURES + ([_INTENSITY] if intensities else [])
    _declare(declarations, "SpotFeatures", spot_features)
    _declare(declarations, "EdgeFeatures", _EDGE_FEATURES)
    _declare(declarations, "TrackFeatures", _TRACK_FEATURES)

    ids = {a.id: i for i, a in enumerate(anns)}
    frame_of = [int(a.loc.time) for a in anns]
    all_spots = ET.SubElement(model, "AllSpots", nspots=str(len(anns)))
    by_frame: dict[int, list[int]] = defaultdict(list)
    for i, f in enumerate(frame_of):
        by_frame[f].append(i)
    geoms = np.array([a.geometry for a in anns] + [None], dtype=object)[:-1]
    centroids = shapely.get_coordinates(shapely.centroid(geoms)) if len(anns) else np.empty((0, 2))
    for frame in sorted(by_frame):
        in_frame = ET.SubElement(all_spots, "SpotsInFrame", frame=str(frame))
        for i in by_frame[frame]:
            a = anns[i]
            cx, cy = float(centroids[i, 0]) - 0.5, float(centroids[i, 1]) - 0.5  # array-index centre
            shape = a.geometry if a.geometry.geom_type == "Polygon" else max(a.geometry.geoms, key=lambda p: p.area)
            ring = np.asarray(shape.exterior.coords, dtype=np.float64)[:-1] - 0.5
            area = float(a.geometry.area) * px * py
            attrs = {
                "ID": str(i),
                "name": display_name(a.obj_id, ctx.names),
                "QUALITY": "1.0",
                "POSITION_X": _num(cx * px),
                "POSITION_Y": _num(cy * py),
                "POSITION_Z": _num(a.loc.z * dz),
                "POSITION_T": _num(frame * dt),
                "FRAME": str(frame),
                "RADIUS": _num(np.sqrt(area / np.pi)),
                "VISIBILITY": "1",
                "AREA": _num(area),
                "PERIMETER": _num(float(np.hypot(*(np.diff(np.vstack([ring, ring[:1]]), axis=0) * (px, py)).T).sum())),
                "OBJECT_ID": str(int(a.obj_id)),
                "ROI_N_POINTS": str(len(ring)),
            }
            if a.id in intensities:
                attrs["MEAN_INTENSITY_CH1"] = _num(intensities[a.id])
            spot = ET.SubElement(in_frame, "Spot", attrs)
            rel = np.stack([(ring[:, 0] - cx) * px, (ring[:, 1] - cy) * py], axis=1)
            spot.text = " ".join(_num(v) for v in rel.ravel())

    edges = []
    for c in ctx.connections:
        u, v = ids.get(c.parent_id), ids.get(c.child_id)
        if u is not None and v is not None:
            edges.append((u, v) if frame_of[u] <= frame_of[v] else (v, u))
    out_edges: dict[int, list[int]] = defaultdict(list)
    in_edges: dict[int, list[int]] = defaultdict(list)
    for u, v in edges:
        out_edges[u].append(v)
        in_edges[v].append(u)
    all_tracks = ET.SubElement(model, "AllTracks")
    tracks = _components(len(anns), edges)
    for track_id, spots in enumerate(tracks):
        members = set(spots)
        mine = sorted((u, v) for u, v in edges if u in members)
        start, stop = min(frame_of[s] for s in spots), max(frame_of[s] for s in spots)
        track = ET.SubElement(
            all_tracks,
            "Track",
            name=f"Track_{track_id}",
            TRACK_INDEX=str(track_id),
            TRACK_ID=str(track_id),
            NUMBER_SPOTS=str(len(spots)),
            NUMBER_GAPS=str(sum(1 for u, v in mine if frame_of[v] - frame_of[u] > 1)),
            NUMBER_SPLITS=str(sum(1 for s in spots if len(out_edges[s]) > 1)),
            NUMBER_MERGES=str(sum(1 for s in spots if len(in_edges[s]) > 1)),
            TRACK_DURATION=_num((stop - start) * dt),
            TRACK_START=_num(start * dt),
            TRACK_STOP=_num(stop * dt),
        )
        for u, v in mine:
            ET.SubElement(
                track,
                "Edge",
                SPOT_SOURCE_ID=str(u),
                SPOT_TARGET_ID=str(v),
                LINK_COST="0.0",
                EDGE_TIME=_num((frame_of[u] + frame_of[v]) / 2 * dt),
            )
    filtered = ET.SubElement(model, "FilteredTracks")
    for track_id in range(len(tracks)):
        ET.SubElement(filtered, "TrackID", TRACK_ID=str(track_id))

    _settings(root, ctx, px, py, dz, dt, max(frame_of, default=0) + 1)
    ET.SubElement(root, "GUIState", state="ConfigureViews")
    ET.indent(root, space="  ")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8") + b"\n"


def _settings(root: ET.Element, ctx, px: float, py: float, dz: float, dt: float, frames_seen: int) -> None:
    """The image reference, calibration and a manual detector/tracker (TrackMate re-runs nothing)."""
    height, width = ctx.frame_shape if ctx.frame_shape is not None else (0, 0)
    sizes = ctx.sizes or {}
    n_frames = int(ctx.n_frames or sizes.get("T") or frames_seen)
    n_slices = int(sizes.get("Z", 1))
    settings = ET.SubElement(root, "Settings")
    ET.SubElement(
        settings,
        "ImageData",
        filename=ctx.source or "",
        folder="",
        width=str(int(width)),
        height=str(int(height)),
        nslices=str(n_slices),
        nframes=str(n_frames),
        pixelwidth=_num(px),
        pixelheight=_num(py),
        voxeldepth=_num(dz),
        timeinterval=_num(dt),
    )
    ET.SubElement(
        settings,
        "BasicSettings",
        xstart="0",
        xend=str(max(int(width) - 1, 0)),
        ystart="0",
        yend=str(max(int(height) - 1, 0)),
        zstart="0",
        zend=str(n_slices - 1),
        tstart="0",
        tend=str(max(n_frames - 1, 0)),
    )
    ET.SubElement(settings, "DetectorSettings", DETECTOR_NAME="MANUAL_DETECTOR", RADIUS="5.0")
    ET.SubElement(settings, "InitialSpotFilter", feature="QUALITY", value="0.0", isabove="true")
    ET.SubElement(settings, "SpotFilterCollection")
    ET.SubElement(settings, "TrackerSettings", TRACKER_NAME="MANUAL_TRACKER")
    ET.SubElement(settings, "TrackFilterCollection")
    analyzers = ET.SubElement(settings, "AnalyzerCollection")
    for tag in ("SpotAnalyzers", "EdgeAnalyzers", "TrackAnalyzers"):
        ET.SubElement(analyzers, tag)


def context_trackmate(ctx) -> dict[str, bytes]:
    """The registry's "trackmate" entry: ``trackmate.xml`` (``trackmate_xyN.xml`` per position)."""
    positions = sorted(ctx.positions) if ctx.positions is not None else sorted({a.loc.xy for a in ctx.annotations})
    positions = positions or [0]
    if len(positions) == 1:
        return {"trackmate.xml": trackmate_xml(ctx, positions[0])}
    return {f"trackmate_xy{xy + 1}.xml": trackmate_xml(ctx, xy) for xy in positions}
