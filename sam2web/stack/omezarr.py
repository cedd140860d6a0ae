"""OME-Zarr (NGFF 0.4 and 0.5, local folders) through zarr: chunks are read only for the frame asked.

``is_ome_zarr(folder)`` and ``open_ome_zarr(folder) -> Opened``. The full
resolution level (``multiscales[0].datasets[0]``) is the stack; the NGFF axes (t, c, z, y, x,
in any order the file declares) map to ours; channel names come from ``omero.channels[].label``
and the pixel size from the level's ``scale`` transformation with the axes' units. A plate or a
bare array without ``multiscales`` is refused with a sentence. Only local folders are read: the
app never fetches data from the network.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sam2web.errors import UserError
from sam2web.stack.common import Opened, _brief, _check_frame_size, _default_channel_names, _fit_names, _map_axes

_LETTERS = {"t": "T", "c": "C", "z": "Z", "y": "Y", "x": "X"}
_UNITS = {"micrometer": "µm", "nanometer": "nm", "millimeter": "mm", "meter": "m"}


def _attributes(folder: Path) -> dict | None:
    """The group's attributes (v0.4: .zattrs; v0.5: zarr.json's attributes.ome), or None."""
    try:
        if (folder / "zarr.json").is_file():
            meta = json.loads((folder / "zarr.json").read_text())
            attrs = meta.get("attributes") or {}
            return attrs.get("ome", attrs)
        if (folder / ".zattrs").is_file():
            return json.loads((folder / ".zattrs").read_text())
    except (OSError, ValueError):
        return None
    return None


def is_ome_zarr(folder: Path) -> bool:
    attrs = _attributes(folder) if folder.is_dir() else None
    return bool(attrs) and ("multiscales" in attrs or "plate" in attrs or "bioformats2raw.layout" in attrs)


def _pixel_size(axes: list[dict], transforms: list[dict]) -> tuple[float, float, str] | None:
    for tr in transforms or []:
        if tr.get("type") == "scale" and len(tr.get("scale", [])) == len(axes):
            names = [a.get("name") for a in axes]
            if "x" in names and "y" in names:
                sx, sy = tr["scale"][names.index("x")], tr["scale"][names.index("y")]
                unit = axes[names.index("x")].get("unit") or "pixel"
                return (float(sx), float(sy), _UNITS.get(unit, unit))
    return None


def _steps(axes: list[dict], transforms: list[dict]) -> tuple[float | None, float | None]:
    """(Z step, seconds per time point) from the level's scale and the axes' units."""
    from sam2web.stack.common import positive, seconds

    names = [a.get("name") for a in axes]
    for tr in transforms or []:
        if tr.get("type") == "scale" and len(tr.get("scale", [])) == len(axes):
            scale = tr["scale"]
            z = positive(scale[names.index("z")]) if "z" in names else None
            t = None
            if "t" in names:
                t = seconds(scale[names.index("t")], axes[names.index("t")].get("unit") or "s")
            return z, t
    return None, None


def open_ome_zarr(folder: Path) -> Opened:
    import zarr

    attrs = _attributes(folder) or {}
    if "bioformats2raw.layout" in attrs and "multiscales" not in attrs and (folder / "0").is_dir():
        folder, attrs = folder / "0", _attributes(folder / "0") or {}  # bioformats2raw: the first image
    if "plate" in attrs:
        raise UserError(
            f"{folder.name} is an OME-Zarr plate: open one of its wells' images (a row/column/field folder)."
        )
    multiscales = attrs.get("multiscales")
    if not multiscales:
        raise UserError(f"{folder.name} is a Zarr folder without OME multiscales metadata: open an OME-Zarr image.")
    ms = multiscales[0]
    axes = [a if isinstance(a, dict) else {"name": a} for a in ms.get("axes", ["t", "c", "z", "y", "x"])]
    letters = []
    for a in axes:
        name = str(a.get("name", "")).lower()
        if name not in _LETTERS:
            raise UserError(f"{folder.name} has an OME-Zarr axis {name!r} that sam2web cannot map: use t, c, z, y, x.")
        letters.append(_LETTERS[name])
    level = ms["datasets"][0]
    try:
        arr = zarr.open_array(str(folder / level["path"]), mode="r")
    except Exception as err:  # zarr raises many kinds for a broken folder
        raise UserError(
            f"{folder.name} has no readable full-resolution array ({_brief(err)}): write it again."
        ) from None
    if arr.ndim != len(letters):
        raise UserError(f"{folder.name} declares {len(letters)} axes but its array has {arr.ndim}: write it again.")
    mapping = _map_axes(letters, arr.shape, "time", what=folder.name)
    sizes = {k: int(np.prod([arr.shape[d] for d in dims])) if dims else 1 for k, dims in mapping.items()}
    dtype = np.dtype(arr.dtype)
    _check_frame_size(sizes["Y"], sizes["X"], dtype.itemsize, folder.name)
    ydim, xdim = mapping["Y"][0], mapping["X"][0]

    def read(xy: int, t: int, z: int, c: int) -> np.ndarray:
        index: list = [0] * arr.ndim
        for key, value in (("T", t), ("Z", z), ("C", c)):
            if mapping[key]:
                index[mapping[key][0]] = value
        index[ydim], index[xdim] = slice(None), slice(None)
        plane = np.asarray(arr[tuple(index)])
        return plane.T if ydim > xdim else plane

    names = [str(ch.get("label") or "") for ch in (attrs.get("omero") or {}).get("channels", [])]
    names = [n or f"Channel {i + 1}" for i, n in enumerate(names)]
    return Opened(
        sizes=sizes,
        dtype=dtype,
        reader=read,
        channel_names=_fit_names(names or _default_channel_names(sizes["C"], rgb=False), sizes["C"]),
        pixel_size=_pixel_size(axes, level.get("coordinateTransformations", [])),
        z_step=_steps(axes, level.get("coordinateTransformations", []))[0],
        time_interval=_steps(axes, level.get("coordinateTransformations", []))[1],
        extra={"format": "OME-Zarr"},
    )


def open_path(path: Path, pages_as: str, axes: str | None) -> Opened:
    """The reader registry's entry point (the NGFF axes name every dimension)."""
    return open_ome_zarr(path)
