"""The built-in sample: a small synthetic time-lapse of moving, dividing cells, with true labels.

The surface other modules use:

    sample_array(n_frames=24, height=240, width=320, seed=0) -> np.ndarray (T, C=2, Y, X) uint16
    sample_labels(n_frames=24, height=240, width=320, seed=0) -> np.ndarray (T, Y, X) uint16
    sample_lineage(n_frames=24, height=240, width=320, seed=0) -> list[(label, begin, end, parent)]
    write_sample(path, ...) -> Path        ImageJ hyperstack TIFF (axes TCYX, 0.65 µm pixels)
    sample_path(data_dir) -> Path          writes it once (atomically) and returns it
    write_sample_ground_truth(folder, ...) -> Path   CTC "TRA" layout: man_track000.tif ... +
                                           man_track.txt (label begin end parent), for QA demos
    sample_ground_truth_path(data_dir) -> Path        that folder, written once

Why synthetic: a first-time user (or a browser demo, or a test) needs something to track without
finding a file. The images are non-square on purpose (the original worker swapped width and
height), cells move smoothly so a tracker can follow them, and one cell divides so links and
lineage can be shown. Channel 1 is a cytoplasm-like body with texture; channel 2 a nuclear marker.
Everything is deterministic for a given seed, and the true labels come from the same geometry, so
QA demos can score tracks against them (labels keep their id across frames; daughters get new
ids, Cell Tracking Challenge style).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

SAMPLE_NAME = "sam2web_sample.tif"
PIXEL_SIZE_UM = 0.65
CHANNEL_NAMES = ["Cytoplasm", "Nuclei"]


@dataclass(frozen=True)
class _Cell:
    label: int
    cx: float
    cy: float
    a: float  # semi-axes in pixels
    b: float
    angle: float  # degrees


def _layout(n_frames: int, height: int, width: int, seed: int) -> list[list[_Cell]]:
    """Per frame, the cells present: smooth drift plus one division at mid-movie."""
    rng = np.random.default_rng(seed)
    scale = min(height, width) / 240.0
    # four cells on a loose 2x2 grid, kept clear of each other and of the border
    anchors = [(0.28, 0.30), (0.72, 0.28), (0.30, 0.72), (0.70, 0.72)]
    cells = []
    for i, (fx, fy) in enumerate(anchors):
        cells.append(
            dict(
                label=i + 1,
                x=fx * width + rng.uniform(-8, 8) * scale,
                y=fy * height + rng.uniform(-8, 8) * scale,
                vx=rng.uniform(-0.9, 0.9) * scale,
                vy=rng.uniform(-0.6, 0.6) * scale,
                phase=rng.uniform(0, 2 * np.pi),
                a=rng.uniform(15, 19) * scale,
                b=rng.uniform(10, 13) * scale,
                angle=rng.uniform(0, 180),
                spin=rng.uniform(-2, 2),
            )
        )
    divide_at = max(1, n_frames // 2)  # the first frame with daughters
    mother = cells[0]
    frames: list[list[_Cell]] = []
    for t in range(n_frames):
        present = []
        for c in cells:
            wobble = 4.0 * scale * np.sin(0.25 * t + c["phase"])
            cx = c["x"] + c["vx"] * t + wobble
            cy = c["y"] + c["vy"] * t + 0.5 * wobble
            angle = c["angle"] + c["spin"] * t
            if c is mother and t >= divide_at:
                # two daughters drifting apart along the mother's long axis
                k = t - divide_at
                gap = c["a"] * 0.55 + 1.2 * k * scale
                rad = np.deg2rad(angle)
                dx, dy = gap * np.cos(rad), gap * np.sin(rad)
                for sign, label in ((-1, len(cells) + 1), (1, len(cells) + 2)):
                    present.append(_Cell(label, cx + sign * dx, cy + sign * dy, c["a"] * 0.62, c["b"] * 0.85, angle))
                continue
            a = c["a"]
            if c is mother:  # the mother stretches before it splits
                a *= 1.0 + 0.35 * min(1.0, t / max(divide_at, 1))
            present.append(_Cell(c["label"], cx, cy, a, c["b"], angle))
        frames.append([_clamp(cell, height, width) for cell in present])
    return frames


def _clamp(cell: _Cell, height: int, width: int) -> _Cell:
    """Keep the whole ellipse inside the image, so every label is fully visible."""
    r = max(cell.a, cell.b) + 2
    cx = float(np.clip(cell.cx, r, width - 1 - r))
    cy = float(np.clip(cell.cy, r, height - 1 - r))
    return _Cell(cell.label, cx, cy, cell.a, cell.b, cell.angle)


def _draw(img: np.ndarray, cell: _Cell, value: int, shrink: float = 1.0) -> None:
    center = (int(round(cell.cx * 16)), int(round(cell.cy * 16)))
    axes = (max(1, int(round(cell.a * shrink * 16))), max(1, int(round(cell.b * shrink * 16))))
    cv2.ellipse(img, center, axes, cell.angle, 0, 360, int(value), thickness=-1, lineType=cv2.LINE_8, shift=4)


def _check(n_frames: int, height: int, width: int) -> None:
    if n_frames < 2 or height < 64 or width < 64:
        raise ValueError("the sample needs at least 2 frames of 64 x 64 pixels")


def sample_labels(n_frames: int = 24, height: int = 240, width: int = 320, seed: int = 0) -> np.ndarray:
    """True instance labels (T, Y, X) uint16 of the sample; 0 is background."""
    _check(n_frames, height, width)
    out = np.zeros((n_frames, height, width), np.uint16)
    for t, cells in enumerate(_layout(n_frames, height, width, seed)):
        for cell in cells:
            _draw(out[t], cell, cell.label)
    return out


def sample_lineage(
    n_frames: int = 24, height: int = 240, width: int = 320, seed: int = 0
) -> list[tuple[int, int, int, int]]:
    """Cell Tracking Challenge lineage rows (label, begin, end, parent; parent 0 = none)."""
    _check(n_frames, height, width)
    spans: dict[int, list[int]] = {}
    for t, cells in enumerate(_layout(n_frames, height, width, seed)):
        for cell in cells:
            spans.setdefault(cell.label, [t, t])[1] = t
    n_initial = 4
    rows = []
    for label, (begin, end) in sorted(spans.items()):
        parent = 1 if label > n_initial else 0
        rows.append((label, begin, end, parent))
    return rows


def sample_array(n_frames: int = 24, height: int = 240, width: int = 320, seed: int = 0) -> np.ndarray:
    """The sample's pixels (T, C=2, Y, X) uint16: textured cell bodies and bright nuclei."""
    _check(n_frames, height, width)
    rng = np.random.default_rng(seed + 1)
    layout = _layout(n_frames, height, width, seed)
    # a fixed smooth texture, moved with each cell, gives the model something to latch onto
    texture = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 2.0)
    texture /= max(float(np.abs(texture).max()), 1e-6)
    out = np.empty((n_frames, 2, height, width), np.uint16)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    background = 300 + 80 * np.sin(xx / width * np.pi) * np.cos(yy / height * np.pi)
    for t, cells in enumerate(layout):
        body = np.zeros((height, width), np.uint8)
        nucleus = np.zeros((height, width), np.uint8)
        labels = np.zeros((height, width), np.uint16)
        for cell in cells:
            _draw(body, cell, 255)
            _draw(nucleus, cell, 255, shrink=0.45)
            _draw(labels, cell, cell.label)
        soft_body = cv2.GaussianBlur(body.astype(np.float32) / 255, (0, 0), 1.2)
        soft_nuc = cv2.GaussianBlur(nucleus.astype(np.float32) / 255, (0, 0), 1.0)
        shift = np.roll(texture, (t, 2 * t), axis=(0, 1))
        cyto = background + soft_body * (1400 + 500 * shift) + rng.normal(0, 40, body.shape)
        nuc = 200 + soft_nuc * 2600 + soft_body * 150 + rng.normal(0, 50, body.shape)
        out[t, 0] = np.clip(cyto, 0, 65535).astype(np.uint16)
        out[t, 1] = np.clip(nuc, 0, 65535).astype(np.uint16)
    return out


def write_sample(
    path: str | os.PathLike, n_frames: int = 24, height: int = 240, width: int = 320, seed: int = 0
) -> Path:
    """Write the sample as an ImageJ hyperstack (TCYX, pixel size in µm), atomically."""
    import tifffile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = sample_array(n_frames, height, width, seed)
    fd, tmp = tempfile.mkstemp(prefix=".sample-", suffix=".tif", dir=path.parent)
    os.close(fd)
    try:
        tifffile.imwrite(
            tmp,
            data,
            imagej=True,
            resolution=(1.0 / PIXEL_SIZE_UM, 1.0 / PIXEL_SIZE_UM),
            metadata={
                "axes": "TCYX",
                "unit": "um",
                "finterval": 300,
                "Labels": [CHANNEL_NAMES[c] for _ in range(n_frames) for c in range(2)],
            },
        )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def sample_path(data_dir: str | os.PathLike) -> Path:
    """The sample TIFF under ``data_dir/sample/``, written the first time it is asked for."""
    path = Path(data_dir) / "sample" / SAMPLE_NAME
    if not path.exists():
        write_sample(path)
    return path


def write_sample_ground_truth(
    folder: str | os.PathLike, n_frames: int = 24, height: int = 240, width: int = 320, seed: int = 0
) -> Path:
    """The sample's true tracks in the Cell Tracking Challenge TRA layout (for `evaluate`)."""
    import tifffile

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    labels = sample_labels(n_frames, height, width, seed)
    digits = max(3, len(str(n_frames - 1)))
    for t, frame in enumerate(labels):
        target = folder / f"man_track{t:0{digits}d}.tif"
        tmp = target.with_name("." + target.name + ".tmp")
        tifffile.imwrite(tmp, frame, photometric="minisblack")
        os.replace(tmp, target)
    rows = sample_lineage(n_frames, height, width, seed)
    text = "".join(f"{label} {begin} {end} {parent}\n" for label, begin, end, parent in rows)
    tmp = folder / ".man_track.txt.tmp"
    tmp.write_text(text)
    os.replace(tmp, folder / "man_track.txt")
    return folder


def sample_ground_truth_path(data_dir: str | os.PathLike) -> Path:
    """The folder of the sample's true labels under ``data_dir/sample/TRA``, written once."""
    folder = Path(data_dir) / "sample" / "TRA"
    if not (folder / "man_track.txt").exists():
        write_sample_ground_truth(folder)
    return folder
