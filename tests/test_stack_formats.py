"""CZI, OME-Zarr and video inputs: real files written with each format's own writer, opened lazily
with the right metadata, and tracked with the stand-in tracker.

Writers: CZI through ZEISS's pylibCZIrw, MP4 (H.264) and AVI (MPEG-4) through PyAV (FFmpeg),
OME-Zarr through zarr with the NGFF 0.4 and 0.5 metadata the specification defines.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sam2web.errors import UserError
from sam2web.stack import open_stack, reopen
from sam2web.stack.display import DisplaySettings
from sam2web.tracking.track import StandInTracker, track
from sam2web.types import Location, Prompt, Sequence

T, H, W = 6, 64, 80


def moving_square(t: int, c: int = 0, z: int = 0) -> np.ndarray:
    """A bright 16x16 square that moves 2 px right per time point, on a dim background."""
    img = np.full((H, W), 10 + 5 * c + z, dtype=np.uint16)
    img[20:36, 10 + 2 * t : 26 + 2 * t] = 1000 + 100 * c
    return img


def track_square(stack, channel: int = 0) -> dict:
    """Stand-in tracking of the square from a box at t = 0 over every time point."""
    seq = Sequence(tuple(Location(0, t, 0) for t in range(stack.sizes["T"])), "time")
    prompt = Prompt(obj_id=0, loc=Location(0, 0, 0), box=(10.0, 20.0, 26.0, 36.0))
    display = DisplaySettings.default(stack).only(channel)
    result = track(stack, [seq], [prompt], StandInTracker(drift=(2, 0)), display)
    return {loc.time: m for (_, loc), m in result.masks.items()}


def counting(stack):
    """Wrap the stack's reader to count the frames actually decoded (laziness)."""
    calls = []
    inner = stack.reader

    def read(*key):
        calls.append(key)
        return inner(*key)

    stack.reader = read
    return calls


# ----------------------------------------------------------------------------------------- CZI
@pytest.fixture()
def czi_file(tmp_path):
    from pylibCZIrw import czi as pyczi

    path = tmp_path / "cells.czi"
    with pyczi.create_czi(str(path), exist_ok=True) as w:
        for t in range(T):
            for c in range(2):
                w.write(moving_square(t, c), plane={"T": t, "C": c, "Z": 0})
        w.write_metadata(document_name="cells", channel_names={0: "DAPI", 1: "GFP"}, scale_x=0.65e-6, scale_y=0.65e-6)
    return path


def test_czi_opens_with_metadata_and_tracks(czi_file):
    stack = open_stack(czi_file)
    assert stack.sizes == {"XY": 1, "T": T, "Z": 1, "C": 2, "Y": H, "X": W}
    assert stack.dtype == np.uint16 and stack.channel_names == ["DAPI", "GFP"]
    px, py, unit = stack.pixel_size
    assert (round(px, 4), round(py, 4), unit) == (0.65, 0.65, "µm")
    calls = counting(stack)
    assert np.array_equal(stack.frame(Location(0, 3, 0), 1), moving_square(3, 1))
    assert len(calls) == 1  # one plane decoded, not the file
    masks = track_square(stack)
    assert sorted(masks) == list(range(T)) and masks[4].bbox == (20, 18, 36, 34)
    again = reopen(stack.source)
    assert np.array_equal(again.frame(Location(0, 5, 0), 0), moving_square(5, 0))
    stack.close()


def test_czi_scenes_become_positions(tmp_path):
    from pylibCZIrw import czi as pyczi

    path = tmp_path / "scenes.czi"
    with pyczi.create_czi(str(path), exist_ok=True) as w:
        for s in range(2):
            for t in range(3):
                w.write(moving_square(t) + s, plane={"T": t, "C": 0, "Z": 0}, scene=s, location=(s * 200, 0))
    stack = open_stack(path)
    assert stack.sizes["XY"] == 2 and stack.sizes["T"] == 3
    assert np.array_equal(stack.frame(Location(1, 2, 0)), moving_square(2) + 1)


def test_a_damaged_czi_is_a_sentence(czi_file, tmp_path):
    bad = tmp_path / "bad.czi"
    bad.write_bytes(czi_file.read_bytes()[:200])
    with pytest.raises(UserError, match="CZI"):
        open_stack(bad)


# ------------------------------------------------------------------------------------ OME-Zarr
def write_ome_zarr(folder, data: np.ndarray, axes: str, version: str = "0.4", names=("DAPI", "GFP")):
    """An OME-Zarr image as the NGFF specification lays it out: multiscales + omero channels."""
    import zarr

    fmt = 2 if version == "0.4" else 3
    root = zarr.open_group(str(folder), mode="w", zarr_format=fmt)
    chunks = tuple(1 if a not in "yx" else n for a, n in zip(axes, data.shape))
    arr = root.create_array("0", shape=data.shape, dtype=data.dtype, chunks=chunks)
    arr[...] = data
    kinds = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
    axes_meta = [{"name": a, "type": kinds[a], **({"unit": "micrometer"} if a in "yx" else {})} for a in axes]
    scale = [0.5 if a in "yx" else 1.0 for a in axes]
    ms = {
        "axes": axes_meta,
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
    }
    omero = {"channels": [{"label": n} for n in names]}
    if version == "0.4":
        root.attrs.update({"multiscales": [{"version": "0.4", **ms}], "omero": omero})
    else:
        root.attrs.update({"ome": {"version": "0.5", "multiscales": [ms], "omero": omero}})
    return folder


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_opens_lazily_and_tracks(tmp_path, version):
    data = np.stack([np.stack([moving_square(t, c) for c in range(2)]) for t in range(T)])  # t c y x
    folder = write_ome_zarr(tmp_path / "cells.zarr", data, "tcyx", version)
    stack = open_stack(folder)
    assert stack.sizes == {"XY": 1, "T": T, "Z": 1, "C": 2, "Y": H, "X": W}
    assert stack.channel_names == ["DAPI", "GFP"] and stack.pixel_size == (0.5, 0.5, "µm")
    calls = counting(stack)
    assert np.array_equal(stack.frame(Location(0, 2, 0), 1), moving_square(2, 1))
    assert len(calls) == 1
    masks = track_square(stack)
    assert sorted(masks) == list(range(T)) and masks[5].bbox == (20, 20, 36, 36)
    assert reopen(stack.source).sizes == stack.sizes


def test_ome_zarr_z_stack(tmp_path):
    data = np.stack([moving_square(0, 0, z) for z in range(4)])[None]  # c z y x with c = 1
    stack = open_stack(write_ome_zarr(tmp_path / "z.zarr", data, "czyx", names=("DAPI",)))
    assert stack.sizes["Z"] == 4 and stack.sizes["T"] == 1 and stack.sizes["C"] == 1
    assert np.array_equal(stack.frame(Location(0, 0, 3)), moving_square(0, 0, 3))


def test_zarr_without_ome_metadata_is_not_an_image(tmp_path):
    import zarr

    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w", zarr_format=2).attrs.update({"plate": {"wells": []}})
    with pytest.raises(UserError, match="plate"):
        open_stack(tmp_path / "plain.zarr")


# --------------------------------------------------------------------------------------- video
def write_video(path, codec: str, n: int = T) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "1", "g": "3"}  # near-lossless, key frame every 3 frames
        else:
            stream.bit_rate = 8_000_000
        for t in range(n):
            gray = (moving_square(t) // 4).clip(0, 255).astype(np.uint8)
            rgb = np.repeat(gray[:, :, None], 3, axis=2)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@pytest.mark.parametrize(("name", "codec"), [("cells.mp4", "libx264"), ("cells.avi", "mpeg4")])
def test_video_frames_become_time_and_track(tmp_path, name, codec):
    path = tmp_path / name
    write_video(path, codec)
    stack = open_stack(path)
    assert stack.sizes == {"XY": 1, "T": T, "Z": 1, "C": 3, "Y": H, "X": W}
    assert stack.dtype == np.uint8 and stack.channel_names == ["Red", "Green", "Blue"]
    # random access: frame 4 then 1 (a seek backwards), each the right picture (lossy: compare the square)
    for t in (4, 1, 2, 5):
        frame = stack.frame(Location(0, t, 0), 0).astype(int)
        inside = frame[24:32, 14 + 2 * t : 22 + 2 * t].mean()
        assert inside > 200 and frame[:, :6].mean() < 20, t
    masks = track_square(stack)
    assert sorted(masks) == list(range(T))


def test_video_reads_only_the_frames_asked(tmp_path):
    path = tmp_path / "long.mp4"
    write_video(path, "libx264", n=30)
    stack = open_stack(path)
    assert stack.sizes["T"] == 30
    from sam2web.stack.video import _Video

    before = _Video.decoded_total
    stack.frame(Location(0, 25, 0), 0)
    stack.frame(Location(0, 25, 0), 1)  # another channel of the same frame: no second decode
    first = _Video.decoded_total - before
    assert 1 <= first <= 3  # from the key frame before 25 (one every 3 frames), not from frame 0
    stack.frame(Location(0, 26, 0), 0)
    assert _Video.decoded_total - before == first + 1  # the next frame continues the decoder


def test_source_records_the_format(czi_file):
    assert open_stack(czi_file).source["format"] == "czi"
    assert json.dumps(open_stack(czi_file).source)  # JSON-safe for the workspace


def test_track_cli_on_a_czi_with_dataset_id(czi_file, tmp_path, monkeypatch):
    """`track` end to end on a CZI (stand-in tracker): QuPath planes and intensities, datasetId filled."""
    from sam2web.cli import main

    monkeypatch.setenv("SAM2WEB_STANDIN", "1")
    prompts = tmp_path / "prompts.geojson"
    box = [[10, 20], [26, 20], [26, 36], [10, 36], [10, 20]]
    feature = {"type": "Feature", "properties": {"Time": 0, "tags": ["cell"], "name": "square"}}
    feature["geometry"] = {"type": "Polygon", "coordinates": [box]}
    prompts.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    out = tmp_path / "out"
    dataset = "65a1b2c3d4e5f60718293a4b"
    argv = ["track", str(czi_file), "--prompts", str(prompts), "--out", str(out), "--quiet", "--channel", "2"]
    assert main([*argv, "--dataset-id", dataset, "--smoothing", "0"]) == 0
    feats = json.loads((out / "annotations.geojson").read_text())["features"]
    assert [f["geometry"]["plane"]["t"] for f in feats] == list(range(T))
    props = feats[0]["properties"]
    assert props["name"] == "square" and props["classification"]["name"] == "cell"
    assert props["measurements"]["Mean intensity"] > 1000  # the GFP square itself (channel 2 is 1100)
    doc = json.loads((out / "nimbus.json").read_text())
    assert {r["datasetId"] for r in doc["annotations"]} == {dataset} and len(doc["annotationConnections"]) == T - 1
    assert main([*argv[:-2], "--out", str(tmp_path / "o2"), "--dataset-id", "123"]) == 2
