"""MP4/AVI/MOV/MKV videos through PyAV (FFmpeg): frames become Time, colour becomes 3 channels.

``is_video(path, head)`` and ``open_video(path) -> Opened``. Opening reads
only packet headers (no decoding) to learn each frame's timestamp, so the frame count is exact
even where the container's count is missing or wrong. Reading frame t seeks to the key frame
before it and decodes forward to t; a request for the frame right after the last one decoded
(what tracking does) just decodes the next frame. The last decoded RGB frame is kept, so the
three channels of one frame cost one decode.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from sam2web.errors import UserError
from sam2web.stack.common import Opened, _brief, _check_frame_size, peek


def is_video(path: Path, head: bytes) -> bool:
    """MP4/MOV (``ftyp`` box), AVI (RIFF ... AVI), Matroska/WebM (EBML) by content."""
    return head[4:8] == b"ftyp" or (head[:4] == b"RIFF" and head[8:12] == b"AVI ") or head[:4] == b"\x1a\x45\xdf\xa3"


class _Video:
    """One open container; all access under a lock (a PyAV container is not thread-safe)."""

    decoded_total = 0  # frames decoded by every video in this process (tests check laziness with it)

    def __init__(self, path: Path) -> None:
        import av

        self.path = path
        try:
            self.container = av.open(str(path))
            self.stream = self.container.streams.video[0]
        except (av.FFmpegError, IndexError, OSError) as err:
            raise UserError(
                f"{path.name} is not a readable video ({_brief(err)}): convert it to MP4 (H.264)."
            ) from None
        self.stream.thread_type = "AUTO"
        self.lock = threading.Lock()
        self.pts = self._timestamps()
        if not self.pts:
            self.container.close()
            raise UserError(f"{path.name} holds no video frames: choose another video.")
        self.height, self.width = self.stream.codec_context.height, self.stream.codec_context.width
        self._decoder = None  # frame iterator positioned after self._next - 1
        self._next = -1
        self._last: tuple[int, np.ndarray] | None = None

    def _timestamps(self) -> list[int]:
        """Presentation timestamps of every frame, from packet headers only (no decoding)."""
        pts = [p.pts for p in self.container.demux(self.stream) if p.pts is not None and p.size]
        self.container.seek(0, stream=self.stream)
        return sorted(pts)

    def frame(self, t: int) -> np.ndarray:
        with self.lock:
            if self._last is not None and self._last[0] == t:
                return self._last[1]
            if self._decoder is None or t != self._next:
                self.container.seek(self.pts[t], stream=self.stream, backward=True, any_frame=False)
                self._decoder = self.container.decode(self.stream)
            target = self.pts[t]
            for frame in self._decoder:
                _Video.decoded_total += 1
                if frame.pts is None or frame.pts < target:
                    continue
                rgb = frame.to_ndarray(format="rgb24")
                self._next, self._last = t + 1, (t, rgb)
                return rgb
            self._decoder = None
            raise UserError(f"Frame {t + 1} of {self.path.name} cannot be decoded: convert the video to MP4 (H.264).")

    def close(self) -> None:
        with self.lock:
            self.container.close()


def open_video(path: Path) -> Opened:
    video = _Video(path)
    _check_frame_size(video.height, video.width, 3, path.name)

    def read(xy: int, t: int, z: int, c: int) -> np.ndarray:
        return video.frame(t)[:, :, c]

    return Opened(
        sizes={"XY": 1, "T": len(video.pts), "Z": 1, "C": 3, "Y": video.height, "X": video.width},
        dtype=np.dtype(np.uint8),
        reader=read,
        channel_names=["Red", "Green", "Blue"],
        pixel_size=None,
        close=video.close,
        extra={"format": "video", "fps": float(video.stream.average_rate or 0)},
    )


def sniff(path: Path) -> bool:
    return is_video(path, peek(path))


def open_path(path: Path, pages_as: str, axes: str | None) -> Opened:
    """The reader registry's entry point (a video's frames are always Time)."""
    return open_video(path)
