"""sam2web's model input = SAM2's own frame loader's, on a real microscopy frame.

The differential test against the stock predictor (test_track_sam2.py) feeds both sides the same
tensors, so it cannot see a preprocessing error. Here ``to_model_input`` (and the ``LazyFrames`` a
run hands to SAM2) is compared with ``sam2.utils.misc.load_video_frames`` reading a JPEG folder,
the way SAM2's README runs it. JPEG is lossy, so sam2web is given the pixels the JPEG decodes to:
then both sides start from the same uint8 image and must agree to float rounding. The frame is
1009 x 1305 (non-square), so a swapped width/height, another resize filter or a wrong
normalisation fails (checked below: each such mistake is far outside the tolerance).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.stack_helpers import BACTERIA_IMG, needs_bacteria

torch = pytest.importorskip("torch")
pytest.importorskip("sam2")

IMAGE_SIZE = 512


@pytest.fixture(scope="module")
def real_frame(tmp_path_factory):
    """A bacteria_ctc frame rendered by sam2web's display, written as SAM2's 00000.jpg."""
    from PIL import Image

    from sam2web.stack import open_stack
    from sam2web.stack.display import DisplaySettings, render
    from sam2web.types import Location

    with open_stack(BACTERIA_IMG) as stack:
        rgb = np.asarray(render(stack, Location(0, 6, 0), DisplaySettings.default(stack)))
    assert rgb.shape == (1305, 1009, 3) and rgb.dtype == np.uint8
    folder = tmp_path_factory.mktemp("jpeg")
    path = folder / "00000.jpg"
    Image.fromarray(rgb).save(path, quality=95)
    with Image.open(path) as img:
        decoded = np.asarray(img.convert("RGB"))  # what SAM2's loader starts from
    return folder, decoded


def sam2_loader(folder):
    from sam2.utils.misc import load_video_frames

    images, height, width = load_video_frames(
        video_path=str(folder), image_size=IMAGE_SIZE, offload_video_to_cpu=True, compute_device=torch.device("cpu")
    )
    return images[0], height, width


@needs_bacteria
def test_to_model_input_matches_sam2s_jpeg_loader(real_frame):
    from sam2web.tracking.track import LazyFrames, to_model_input

    folder, decoded = real_frame
    theirs, height, width = sam2_loader(folder)
    assert (height, width) == decoded.shape[:2] == (1305, 1009)
    ours = to_model_input(decoded, IMAGE_SIZE)
    assert ours.shape == theirs.shape == (3, IMAGE_SIZE, IMAGE_SIZE) and ours.dtype == theirs.dtype
    assert (ours - theirs).abs().max().item() < 1e-5

    frames = LazyFrames(lambda loc: decoded, ["only"], IMAGE_SIZE, height, width)  # what a run hands SAM2
    assert (frames[0] - theirs).abs().max().item() < 1e-5


@needs_bacteria
def test_the_comparison_would_catch_preprocessing_mistakes(real_frame):
    """Each plausible mistake differs from SAM2's loader by far more than the tolerance above."""
    from PIL import Image

    from sam2web.tracking.track import IMG_MEAN, IMG_STD, to_model_input

    folder, decoded = real_frame
    theirs, _, _ = sam2_loader(folder)
    mean = torch.tensor(IMG_MEAN)[:, None, None]
    std = torch.tensor(IMG_STD)[:, None, None]

    def normalise(arr):
        return (torch.from_numpy(np.asarray(arr, np.float32) / 255.0).permute(2, 0, 1) - mean) / std

    img = Image.fromarray(decoded)
    mistakes = {
        "bilinear resize": normalise(img.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)),
        "width and height swapped": normalise(
            Image.fromarray(np.ascontiguousarray(decoded.transpose(1, 0, 2))).resize(
                (IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC
            )
        ).transpose(1, 2),
        "no mean/std": to_model_input(decoded, IMAGE_SIZE) * std + mean,
        # a grey frame has equal R, G, B, so a channel mix-up shows in the per-channel statistics
        "mean/std in BGR order": (to_model_input(decoded, IMAGE_SIZE) * std + mean - mean.flip(0)) / std.flip(0),
    }
    for name, wrong in mistakes.items():
        assert (wrong - theirs).abs().max().item() > 1e-2, name
