"""One step per frame: faces -> tracks -> liveness -> identity, as plain records.

The kiosk, the headless runner, ``liveness eval`` and the benchmark all go through
:class:`Pipeline`; it knows nothing of Qt or of what a decision triggers. Identity
is only looked up for a face whose liveness verdict is live: a photo never reaches
the gallery, and a face still being checked costs no encoder time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


from .config import Settings
from .encoder import load_encoder
from .faces import analyzer
from .gallery import Gallery, Match
from .liveness import LIVE, LivenessModel, LivenessMonitor, LivenessVerdict
from .liveness.features import observe
from .sources import Frame
from .tracking import Box, Tracker

REIDENTIFY_EVERY = 5  # frames between identity checks of a live track


@dataclass(frozen=True)
class FaceState:
    track_id: int
    box: Box
    liveness: LivenessVerdict
    match: Match | None  # None until the face is live
    matches_in_a_row: int  # consecutive identity checks that gave the same person
    unknown_in_a_row: int  # consecutive identity checks that matched nobody


@dataclass(frozen=True)
class FrameResult:
    index: int
    t: float
    faces: list[FaceState]
    ended_tracks: list[int]
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class _Identity:
    match: Match | None = None
    streak: int = 0
    unknown: int = 0
    last_frame: int = -(10**9)


class Pipeline:
    def __init__(self, gallery: Gallery, settings: Settings, liveness: LivenessModel) -> None:
        self.gallery = gallery
        self.settings = settings
        self.encoder = load_encoder(gallery.encoder_id)
        self.monitor = LivenessMonitor(liveness)
        self.tracker = Tracker()
        self._identity: dict[int, _Identity] = {}

    def process(self, frame: Frame) -> FrameResult:
        t0 = time.perf_counter()
        faces = analyzer().analyze(frame.image, frame=True)
        t1 = time.perf_counter()
        ids, ended = self.tracker.update([f.box for f in faces], frame.t)
        for tid in ended:
            self.monitor.forget(tid)
            self._identity.pop(tid, None)
        states = []
        t_live = t_id = 0.0
        for face, tid in zip(faces, ids):
            a = time.perf_counter()
            verdict = self.monitor.update(tid, frame.t, observe(frame.image, face.box, face.landmarks))
            b = time.perf_counter()
            ident = self._identity.setdefault(tid, _Identity())
            if verdict.state == LIVE:
                if frame.index - ident.last_frame >= REIDENTIFY_EVERY:
                    emb = self.encoder.encode(face.chip[None])[0]
                    match = self.gallery.identify(emb, self.settings.match.threshold)
                    same = (ident.match is not None and match.person is not None and ident.match.person is not None
                            and match.person.id == ident.match.person.id)
                    ident.streak = ident.streak + 1 if same else (1 if match.person is not None else 0)
                    ident.unknown = ident.unknown + 1 if match.person is None else 0
                    ident.match, ident.last_frame = match, frame.index
            else:
                ident.match, ident.streak, ident.unknown = None, 0, 0
            t_id += time.perf_counter() - b
            t_live += b - a
            states.append(FaceState(tid, face.box, verdict, ident.match, ident.streak, ident.unknown))
        timings = {"faces": (t1 - t0) * 1e3, "liveness": t_live * 1e3, "identity": t_id * 1e3,
                   "total": (time.perf_counter() - t0) * 1e3}
        return FrameResult(frame.index, frame.t, states, ended, timings)


__all__ = ["Pipeline", "FrameResult", "FaceState"]
