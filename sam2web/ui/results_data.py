"""One run's masks and polygons as the Results page sees them, kept current by small deltas.

Why: the Results page reruns every 0.7 s while it plays or while a run is live. Reloading every
mask from SQLite and re-polygonising every outline on each tick cost about a second at 2,000
polygons; here a tick reads only the masks written since the last one (``Store.load_masks_since``)
and re-polygonises only those, so a rerun with nothing new costs a few small queries. No Streamlit
here: the page caches one ``RunView`` per run, and ``bench/run.py`` times it directly.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from sam2web.store import Store
from sam2web.types import Annotation, CompactMask, Location, ObjectInfo, TrackResult

# Polygon sets kept per run, one per (padding, smoothing, keep, connect, ...) seen lately: going back
# to a previous setting is then instant too.
_OPTS_KEPT = 4


class RunView:
    """The masks of one run plus their polygons for the last few geometry settings.

    ``refresh()`` brings the masks up to date and returns ``version``, which changes exactly when
    the masks did; everything derived (polygons, links, tables) is keyed by it.
    """

    def __init__(self, store: Store, run_id: int) -> None:
        self.store = store
        self.run_id = int(run_id)
        self.lock = threading.RLock()
        self.masks: dict[tuple[int, Location], CompactMask] = {}
        self.version = 0
        self._last_rowid = 0
        self._epoch = -1
        # opts key -> (version, {mask key: (mask, Annotation | None)}, anns, links)
        self._polygons: OrderedDict[tuple, tuple[int, dict, list, list]] = OrderedDict()
        self._memo: OrderedDict[tuple, tuple[int, Any]] = OrderedDict()

    def memo(self, key: tuple, make: Any) -> Any:
        """``make()`` once per (key, mask version): tables and plot data derived from the polygons."""
        with self.lock:
            held = self._memo.get(key)
            if held is not None and held[0] == self.version:
                self._memo.move_to_end(key)
                return held[1]
            value = make()
            self._memo[key] = (self.version, value)
            while len(self._memo) > 4 * _OPTS_KEPT:
                self._memo.popitem(last=False)
            return value

    def refresh(self) -> int:
        """Read the masks written since the last call (all of them after a rewrite); return ``version``."""
        with self.lock:
            s = self.store
            epoch = s.mask_epoch(self.run_id)
            if epoch != self._epoch:
                self._reload(epoch)
                return self.version
            new, last = s.load_masks_since(self.run_id, self._last_rowid)
            if new:
                self.masks.update(new)
                self._last_rowid = last
                self.version += 1
            if len(self.masks) != s.count_masks(self.run_id):  # a row went away: start over
                self._reload(s.mask_epoch(self.run_id))
            return self.version

    def _reload(self, epoch: int) -> None:
        self.masks, self._last_rowid = self.store.load_masks_since(self.run_id, 0)
        self._epoch = epoch
        self.version += 1

    def result(self, objects: dict[int, ObjectInfo], channel: int = 0, **extra: Any) -> TrackResult:
        """The masks as a TrackResult (a snapshot: later refreshes do not change it)."""
        with self.lock:
            return TrackResult(masks=dict(self.masks), objects=objects, channel=channel, **extra)

    def annotations(
        self,
        objects: dict[int, ObjectInfo],
        channel: int,
        padding: float,
        smoothing: float,
        keep: str,
        connect: bool,
    ) -> tuple[list[Annotation], list]:
        """Polygons and links of the current masks; only masks new since the last call are traced."""
        from sam2web import geometry, links

        tags = tuple(sorted((k, v.name, tuple(v.tags), v.parent) for k, v in objects.items()))
        key = (float(padding), float(smoothing), keep, int(channel), tags)
        with self.lock:
            held = self._polygons.get(key)
            if held is not None and held[0] == self.version:
                self._polygons.move_to_end(key)
                anns, links_ = held[2], held[3]
                return anns, (links_ if connect else [])
            per: dict = dict(held[1]) if held is not None else {}
            for k in [k for k in per if k not in self.masks]:
                del per[k]
            todo = {k: m for k, m in self.masks.items() if k not in per or per[k][0] is not m}
            if todo:
                sub = TrackResult(masks=todo, objects=objects, channel=channel)
                made = {(a.obj_id, a.loc): a for a in geometry.annotations_from_result(sub, padding, smoothing, keep)}
                for k, m in todo.items():
                    per[k] = (m, made.get((int(k[0]), Location(*k[1]))))
            order = sorted(per, key=lambda k: (k[0], k[1][0], k[1][1], k[1][2]))
            anns = [per[k][1] for k in order if per[k][1] is not None]
            links_ = links.connect(anns)
            self._polygons[key] = (self.version, per, anns, links_)
            self._polygons.move_to_end(key)
            while len(self._polygons) > _OPTS_KEPT:
                self._polygons.popitem(last=False)
            return anns, (links_ if connect else [])
