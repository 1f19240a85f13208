"""One step per frame: faces -> tracks -> liveness -> identity, as plain records.

The kiosk, the headless runner, the enrollment capture and the benchmark all go
through :class:`Pipeline`; it knows nothing of Qt or of what a decision triggers.

Identity is looked up every :data:`REIDENTIFY_S` while a face's liveness is still
being checked, so that a decision can follow the live verdict at once (about half a
second after the face appears) instead of starting its run of matches only then.
But a match is reported only for a face judged live, and only once the latest check
was made on a frame judged live: a photo or a screen never gets a match out of the
pipeline, and a spoof verdict forgets whatever was matched.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass, field

import numpy as np

from accessctl import config
from accessctl.config import Settings
from accessctl.errors import AccessctlError
from accessctl.frames.images import load_image
from accessctl.frames.sources import Frame
from accessctl.identity.encoders import load_encoder
from accessctl.identity.match import Match, identify
from accessctl.liveness.challenge import (
    Challenge,
    ChallengeFailure,
    ChallengeMode,
    ChallengeState,
    ChallengeStatus,
)
from accessctl.liveness.features import observe
from accessctl.liveness.monitor import LivenessMonitor
from accessctl.liveness.saved import LivenessModel
from accessctl.liveness.verdict import MIN_HISTORY, MIN_WINDOWS, LivenessState, LivenessVerdict
from accessctl.storage.gallery import Gallery
from accessctl.thresholds import liveness_threshold, match_threshold
from accessctl.vision.faces import Face, analyzer
from accessctl.vision.tracking import Box, Tracker

WARMUP_FACE = "warmup_face.jpg"  # in assets/
REIDENTIFY_S = 0.1  # seconds between identity checks of a face (every third frame at 30 fps)
LOOP_S = 2.0  # a picture given again within this long, after another one, is a loop (not a camera)


@dataclass(frozen=True)
class FaceState:
    track_id: int
    box: Box
    liveness: LivenessVerdict
    match: Match | None  # None unless the face is live
    matches_in_a_row: int  # consecutive identity checks that gave the same person (0 unless live)
    unknown_in_a_row: int  # consecutive identity checks that matched nobody (told live or not: it names no one)
    face: Face | None = field(default=None, repr=False)  # landmarks, chip, quality (enrollment capture)
    live: bool = False  # judged live: by the passive verdict, or by a challenge it passed
    challenge: ChallengeStatus | None = None  # the head-turn challenge this face was asked, if any


@dataclass(frozen=True)
class FrameResult:
    index: int
    t: float
    faces: list[FaceState]
    ended_tracks: list[int]
    timings_ms: dict[str, float] = field(default_factory=dict)
    # Identity lookups that failed (a locked or switched gallery): those faces got no
    # match this frame, so nobody is let in on them.
    errors: tuple[str, ...] = ()
    # Challenges of faces that left the view before answering: (track, how it ended).
    abandoned: tuple[tuple[int, ChallengeStatus], ...] = ()


@dataclass
class _Identity:
    match: Match | None = None
    streak: int = 0
    unknown: int = 0
    last_t: float = float("-inf")
    on_live: bool = False  # the latest check was made on a frame judged live
    deferred: bool = False  # a due check waited one frame for the liveness CNNs
    first_t: float | None = None  # the face's first frame
    challenge: Challenge | None = None
    challenged_person: int | None = None  # whom the face was recognised as during its challenge
    # Judged live and recognised as the same person as often as the door grants on: a
    # later look of the track (stiller, unsure) neither asks nor takes that back; only a
    # spoof verdict does, and it starts the record afresh.
    settled: bool = False


class Pipeline:
    """``rng``: where challenge directions come from (default: the operating system's
    cryptographic source; tests give a seeded one)."""

    def __init__(
        self, gallery: Gallery, settings: Settings, liveness: LivenessModel, rng: random.Random | None = None
    ) -> None:
        self.gallery = gallery
        self.settings = settings
        self.challenge_mode = ChallengeMode(settings.liveness.challenge)
        self.rng = rng
        self.encoder = load_encoder(gallery.encoder_id)
        # Both thresholds resolved once: the site's, where it set one, over the encoder's
        # or the model's own (a gallery switched to another encoder later is refused
        # by the gallery itself at the next identity check).
        self.match_threshold = match_threshold(settings, gallery.encoder_id)
        self.monitor = LivenessMonitor(liveness, threshold=liveness_threshold(settings, liveness.threshold))
        self.tracker = Tracker()
        self._identity: dict[int, _Identity] = {}
        self._segment = 0
        self._pictures: dict[bytes, float] = {}  # digests of the last LOOP_S of frames, and when each was seen
        self._last_picture = b""

    def warm_up(self) -> None:
        """Run every model on a face that ships with the program (twice: TorchScript
        optimises on its second call), so that the first person at the door does not
        wait ~0.7 s for the models' first-call set-up. Leaves no track behind."""
        image = load_image(config.assets_dir() / WARMUP_FACE)
        monitor = LivenessMonitor(self.monitor.model, threshold=self.monitor.threshold)
        for i in range(MIN_HISTORY + 2):
            shifted = np.roll(image, i, axis=1)  # a new picture each time: the monitor skips repeats
            face = analyzer().analyze(shifted, frame=True)[0]
            if i < 2:
                self.encoder.encode(face.chip[None])
            monitor.update(0, i * self.monitor.model.step_s, observe(shifted, face.box, face.landmarks))

    def _end_all_tracks(self) -> list[int]:
        """A cut in the stream (camera reopened, next file): nobody carries over."""
        ended = list(self.tracker.tracks)
        self.tracker.tracks.clear()
        return ended

    def _check_identity(self, ident: _Identity, face: Face, t: float, live: bool, errors: list[str]) -> None:
        emb = self.encoder.encode(face.chip[None])[0]
        ident.last_t, ident.on_live = t, live
        try:
            match = identify(self.gallery, emb, self.match_threshold)
        except AccessctlError as exc:  # fail closed: no match this time, and say why
            errors.append(str(exc))
            ident.match, ident.streak, ident.unknown = None, 0, 0
            return
        same = (
            ident.match is not None
            and match.person is not None
            and ident.match.person is not None
            and match.person.id == ident.match.person.id
        )
        ident.streak = ident.streak + 1 if same else (1 if match.person is not None else 0)
        ident.unknown = ident.unknown + 1 if match.person is None else 0
        ident.match = match

    def process(self, frame: Frame) -> FrameResult:
        t0 = time.perf_counter()
        faces = analyzer().analyze(frame.image, frame=True)
        t1 = time.perf_counter()
        cut = self._end_all_tracks() if frame.segment != self._segment else []
        if frame.segment != self._segment:
            self._pictures.clear()
        self._segment = frame.segment
        looped = self._seen_before(frame)
        ids, ended = self.tracker.update([f.box for f in faces], frame.t)
        ended = cut + ended
        abandoned = []
        for tid in ended:
            self.monitor.forget(tid)
            gone = self._identity.pop(tid, None)
            if gone is not None and gone.challenge is not None and gone.challenge.status.state == ChallengeState.ACTIVE:
                abandoned.append((tid, gone.challenge.fail(frame.t, ChallengeFailure.FACE_LOST)))
        states = []
        errors: list[str] = []
        t_live = t_id = 0.0
        for face, tid in zip(faces, ids, strict=True):
            a = time.perf_counter()
            cnn_frame = self.monitor.due(tid, frame.t)
            if looped:
                self.monitor.mark_looped(tid)
            verdict = self.monitor.update(tid, frame.t, observe(frame.image, face.box, face.landmarks))
            b = time.perf_counter()
            ident = self._identity.setdefault(tid, _Identity(first_t=frame.t))
            status = self._challenge(ident, face, verdict, frame.t)
            live = self._judged_live(ident, verdict)
            if verdict.state == LivenessState.SPOOF:  # whatever was matched is forgotten
                ident = self._identity[tid] = _Identity(first_t=ident.first_t, challenge=ident.challenge)
            else:
                # A face that just turned live is checked at once; a periodic check due on a
                # frame where the CNNs run waits one frame (at 30 fps they run on every other
                # one), so that the two rarely add up; at low frame rates it never waits twice.
                due = frame.t - ident.last_t >= REIDENTIFY_S
                if due and cnn_frame and not ident.deferred and not (live and not ident.on_live):
                    ident.deferred = True
                elif (live and not ident.on_live) or due:
                    ident.deferred = False
                    self._check_identity(ident, face, frame.t, live, errors)
                    status = self._same_person(ident, frame.t) or status
                    ident.settled = ident.settled or (
                        live
                        and ident.match is not None
                        and ident.match.person is not None
                        and ident.streak >= self.settings.access.matches_needed
                    )
            t_id += time.perf_counter() - b
            t_live += b - a
            shown = live and ident.on_live
            # "nobody enrolled" is told even before the face is judged live: it names no
            # one, and a stranger is refused as a stranger, not asked to prove life
            states.append(
                FaceState(
                    tid,
                    face.box,
                    verdict,
                    ident.match if shown else None,
                    ident.streak if shown else 0,
                    ident.unknown,
                    face,
                    live,
                    status,
                )
            )
        timings = {
            "faces": (t1 - t0) * 1e3,
            "liveness": t_live * 1e3,
            "identity": t_id * 1e3,
            "total": (time.perf_counter() - t0) * 1e3,
        }
        return FrameResult(frame.index, frame.t, states, ended, timings, tuple(errors), tuple(abandoned))

    def _seen_before(self, frame: Frame) -> bool:
        """Whether this picture was given within LOOP_S, with another one in between. A
        camera repeating its last frame is no loop (the monitor skips such repeats); a
        sensor never gives an earlier picture back exactly. On every third pixel: a loop
        repeats every pixel, and this costs well under a millisecond."""
        digest = hashlib.blake2b(np.ascontiguousarray(frame.image[::3, ::3]).tobytes(), digest_size=16).digest()
        seen = self._pictures.get(digest)
        looped = seen is not None and digest != self._last_picture and frame.t - seen <= LOOP_S
        self._pictures = {d: t for d, t in self._pictures.items() if frame.t - t <= LOOP_S}
        self._pictures[digest], self._last_picture = frame.t, digest
        return looped

    # -- the head-turn challenge ------------------------------------------------------
    def _clearly_live(self, verdict: LivenessVerdict) -> bool:
        """A passive live verdict that needs no challenge: under ``unsure``, its motion
        score must clear the threshold by ``[liveness] challenge_band``."""
        if verdict.state != LivenessState.LIVE:
            return False
        if self.challenge_mode != ChallengeMode.UNSURE:
            return True
        return (verdict.p_motion or 0.0) >= self.monitor.model.motion_threshold + self.settings.liveness.challenge_band

    def _judged_live(self, ident: _Identity, verdict: LivenessVerdict) -> bool:
        if verdict.state == LivenessState.SPOOF:
            return False
        if ident.settled:
            return True
        if ident.challenge is not None:
            return ident.challenge.status.state == ChallengeState.PASSED
        return self.challenge_mode != ChallengeMode.ALWAYS and self._clearly_live(verdict)

    def _challenge(self, ident: _Identity, face: Face, verdict: LivenessVerdict, t: float) -> ChallengeStatus | None:
        """Step this face's challenge, or ask one when the mode says the passive verdict
        is not enough: never under ``off``; under ``unsure`` for a face with no evidence
        of life in time (or only a little, within the band), or recognised as a person
        the site always asks; under ``always`` for every face that looks live."""
        model = self.monitor.model
        ch = ident.challenge
        if ch is None and ident.settled:
            return None
        if ch is not None:
            moved = verdict.p_motion is not None and verdict.p_motion >= model.motion_threshold
            return ch.update(t, face.quality.yaw, spoof=verdict.state == LivenessState.SPOOF, head_moved=moved)
        mode = self.challenge_mode
        if mode == ChallengeMode.OFF or verdict.state == LivenessState.SPOOF:
            return None
        if ident.unknown >= self.settings.access.unknown_after:
            return None  # nobody enrolled: refused as unknown, whatever a challenge would show
        person = ident.match.person if ident.match is not None else None
        if mode == ChallengeMode.ALWAYS:
            ask = verdict.windows >= MIN_WINDOWS or verdict.state == LivenessState.UNSURE
        else:
            waited = ident.first_t is not None and t - ident.first_t >= model.evidence_s
            ask = verdict.state == LivenessState.UNSURE or (
                verdict.state == LivenessState.LIVE
                and ((not self._clearly_live(verdict) and waited) or (person is not None and person.challenge))
            )
        if not ask:
            return None
        ls = self.settings.liveness
        ident.challenge = Challenge(t, face.quality.yaw, ls.challenge_steps, ls.challenge_s, self.rng)
        ident.challenged_person = person.id if person is not None else None
        return ident.challenge.status

    def _same_person(self, ident: _Identity, t: float) -> ChallengeStatus | None:
        """A challenge is answered by the person it was asked of: another person
        recognised meanwhile fails it."""
        ch = ident.challenge
        if ch is None or ch.status.state != ChallengeState.ACTIVE or ident.match is None:
            return None
        person = ident.match.person
        if person is None:
            return None
        if ident.challenged_person is None:
            ident.challenged_person = person.id
        elif person.id != ident.challenged_person:
            return ch.fail(t, ChallengeFailure.IDENTITY)
        return None


__all__ = ["Pipeline", "FrameResult", "FaceState"]
