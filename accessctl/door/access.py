"""From what the pipeline sees to what the door does: grant and deny decisions.

Fail closed: access needs a live verdict *and* the same enrolled person matched in
several identity checks in a row; anything else is a denial or no decision yet. Each
track gets at most one denial of each kind, and one person is not granted again
within the cooldown, so a person standing at the door does not flood the log or
re-trigger the lock.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from accessctl.config import AccessSettings
from accessctl.door.pipeline import FaceState, FrameResult
from accessctl.liveness.challenge import ChallengeState
from accessctl.liveness.verdict import LivenessState
from accessctl.textenum import Label


class EventKind(Label):
    GRANTED = "granted"
    DENIED = "denied"
    ALERT = "alert"


class Reason(Label):
    """Why: the person matched, an attack, not enrolled, or too many refusals at once."""

    MATCH = "match"
    SPOOF = "spoof"
    UNSURE = "unsure"  # no evidence of life in the time the door looks (a still face, or a picture moved)
    CHALLENGE = "challenge"  # asked to turn the head, and did not, or not as a head does
    UNKNOWN = "unknown"
    LOCKOUT = "lockout"


@dataclass(frozen=True)
class Decision:
    event: EventKind
    reason: Reason
    track_id: int
    person_id: str | None
    name: str | None
    distance: float | None
    liveness: float | None  # mean P(live) behind the verdict
    t: float  # seconds since the start of the stream
    frame: int
    why: str | None = None  # a failed challenge: how it failed (ChallengeFailure)
    until: float | None = None  # a lockout: granting is paused until this stream time
    snapshot: str | None = None  # a denial's saved face (its file name), set by the runner
    snapshot_error: str | None = None  # why it could not be saved

    def to_json(self) -> dict:
        d = asdict(self)
        if d["distance"] is not None:
            d["distance"] = round(d["distance"], 4)
        if d["liveness"] is not None:
            d["liveness"] = round(d["liveness"], 4)
        d["t"] = round(d["t"], 3)
        for optional in ("why", "until", "snapshot", "snapshot_error"):
            if d[optional] is None:
                del d[optional]
        return d

    def detail(self) -> dict:
        """What the audit row keeps beside its columns."""
        return {
            k: v
            for k, v in (("snapshot", self.snapshot), ("snapshot_error", self.snapshot_error), ("why", self.why))
            if v is not None
        }


# A refusal is said once per track: not again after itself, and a stranger not
# after "unsure" either (the same face, already refused).
_SAID_BY = {
    Reason.SPOOF: {Reason.SPOOF},
    Reason.CHALLENGE: {Reason.CHALLENGE},
    Reason.UNKNOWN: {Reason.UNKNOWN, Reason.UNSURE},
    Reason.UNSURE: {Reason.UNSURE},
}


def _decision(
    face: FaceState, result: FrameResult, event: EventKind, reason: Reason, why: str | None = None
) -> Decision:
    m = face.match
    person = m.person if m is not None else None
    return Decision(
        event,
        reason,
        face.track_id,
        person.employee_id if person else None,
        person.name if person else None,
        None if m is None or m.distance == float("inf") else m.distance,
        face.liveness.p_live,
        result.t,
        result.index,
        why,
    )


def _about_no_face(
    event: EventKind,
    reason: Reason,
    track_id: int,
    result: FrameResult,
    *,
    why: str | None = None,
    until: float | None = None,
) -> Decision:
    """A decision with no face in the frame to name (a challenge walked away from, a lockout)."""
    return Decision(event, reason, track_id, None, None, None, None, result.t, result.index, why, until)


@dataclass
class _TrackMemory:
    denied: set[Reason] = field(default_factory=set)
    granted: bool = False


class AccessController:
    def __init__(self, settings: AccessSettings | None = None) -> None:
        self.settings = settings or AccessSettings()
        self._tracks: dict[int, _TrackMemory] = {}
        self._last_grant: dict[str, float] = {}
        self._denials: list[float] = []
        self.paused_until = float("-inf")

    def decide(self, result: FrameResult) -> list[Decision]:
        for tid in result.ended_tracks:
            self._tracks.pop(tid, None)
        out = [d for face in result.faces if (d := self._decide_face(face, result)) is not None]
        for tid, ch in result.abandoned:  # walked away from a challenge: refused, and it counts
            why = str(ch.failure) if ch.failure else None
            out.append(_about_no_face(EventKind.DENIED, Reason.CHALLENGE, tid, result, why=why))
        return out + self._lockout(out, result)

    def _decide_face(self, face: FaceState, result: FrameResult) -> Decision | None:
        """At most one decision for one face in one frame: a refusal the first time it
        applies to the track, or the grant."""
        mem = self._tracks.setdefault(face.track_id, _TrackMemory())
        refusal = self._refusal(face)
        if refusal is not None:
            if mem.denied & _SAID_BY[refusal]:
                return None
            mem.denied.add(refusal)
            ch = face.challenge
            why = str(ch.failure) if refusal == Reason.CHALLENGE and ch is not None and ch.failure else None
            return _decision(face, result, EventKind.DENIED, refusal, why)
        if mem.denied & {Reason.SPOOF, Reason.UNSURE, Reason.CHALLENGE}:
            return None  # refused on liveness once: the face has to step away and come back
        if not face.live or face.match is None or mem.granted or result.t < self.paused_until:
            return None
        person = face.match.person
        if person is None:
            if face.unknown_in_a_row >= self.settings.unknown_after and Reason.UNKNOWN not in mem.denied:
                mem.denied.add(Reason.UNKNOWN)
                return _decision(face, result, EventKind.DENIED, Reason.UNKNOWN)
            return None
        if face.matches_in_a_row < self.settings.matches_needed:
            return None
        last = self._last_grant.get(person.employee_id)
        if last is not None and result.t - last < self.settings.cooldown_s:
            return None
        mem.granted = True
        self._last_grant[person.employee_id] = result.t
        return _decision(face, result, EventKind.GRANTED, Reason.MATCH)

    def _refusal(self, face: FaceState) -> Reason | None:
        """Why this face is refused whoever it is, if it is: an attack, a failed
        challenge, a stranger past the first look, or no evidence of life."""
        verdict, ch = face.liveness, face.challenge
        if verdict.state == LivenessState.SPOOF:
            return Reason.SPOOF
        if ch is not None and ch.state == ChallengeState.FAILED:
            return Reason.CHALLENGE
        if (
            face.unknown_in_a_row >= self.settings.unknown_after
            and not face.live
            and verdict.state in (LivenessState.LIVE, LivenessState.UNSURE)
            and (ch is None or ch.state != ChallengeState.ACTIVE)
        ):
            # nobody enrolled, and past the first look: a stranger, whether or not
            # the face showed life (a challenge would prove nothing worth knowing)
            return Reason.UNKNOWN
        if verdict.state == LivenessState.UNSURE and ch is None and not face.live:
            return Reason.UNSURE
        return None

    def _lockout(self, decisions: list[Decision], result: FrameResult) -> list[Decision]:
        """Too many refusals in a short time: pause granting, and say so once."""
        s = self.settings
        self._denials += [d.t for d in decisions if d.event == EventKind.DENIED]
        self._denials = [t for t in self._denials if result.t - t <= s.lockout_window_s]
        if len(self._denials) < s.lockout_after or result.t < self.paused_until:
            return []
        self.paused_until = result.t + s.lockout_pause_s
        self._denials.clear()
        return [_about_no_face(EventKind.ALERT, Reason.LOCKOUT, -1, result, until=self.paused_until)]
