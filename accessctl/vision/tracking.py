"""Which face in this frame is which face in the last ones.

Greedy matching by box overlap (IoU), newest frames first: at a door there are one
to a few faces, moving little between frames, so nothing cleverer is needed. A face
unmatched for ``max_missed`` frames ends its track; a face that appears gets a new
id, never a recycled one, so liveness clips and decisions cannot pass from one
person to the next.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Box = tuple[float, float, float, float]


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    id: int
    box: Box
    first_t: float
    last_t: float
    frames: int = 1
    missed: int = 0


@dataclass
class Tracker:
    min_iou: float = 0.3
    max_missed: int = 5
    tracks: dict[int, Track] = field(default_factory=dict)
    _next_id: int = 1

    def update(self, boxes: list[Box], t: float) -> tuple[list[int], list[int]]:
        """Track ids for ``boxes`` (in order), and the ids of tracks that just ended."""
        pairs = sorted(
            ((iou(tr.box, b), tid, i) for tid, tr in self.tracks.items() for i, b in enumerate(boxes)), reverse=True
        )
        assigned: dict[int, int] = {}
        used: set[int] = set()
        for overlap, tid, i in pairs:
            if overlap < self.min_iou:
                break
            if tid in used or i in assigned:
                continue
            assigned[i] = tid
            used.add(tid)
        ids = []
        for i, b in enumerate(boxes):
            known = assigned.get(i)
            if known is None:
                tid = self._next_id
                self._next_id += 1
                self.tracks[tid] = Track(tid, b, t, t)
            else:
                tid = known
                tr = self.tracks[tid]
                tr.box, tr.last_t, tr.frames, tr.missed = b, t, tr.frames + 1, 0
            ids.append(tid)
        ended = []
        for tid in list(self.tracks):
            if tid not in ids:
                self.tracks[tid].missed += 1
                if self.tracks[tid].missed > self.max_missed:
                    del self.tracks[tid]
                    ended.append(tid)
        return ids, ended
