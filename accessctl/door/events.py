"""What leaves a door: one frozen record per kind of news, and JSON only at the edges.

The runner, the audit sink, the MQTT link and the store link each tell their news as
one of these; a listener (the kiosk session, the metrics, the health file) matches on
the type, never on a dict's keys. :meth:`to_json` is called where a line leaves the
process (headless mode's stdout, the MQTT payload), and gives the fields integrators
read: ``"event"`` names the kind, as it always has.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

from accessctl.door.access import Decision, EventKind
from accessctl.liveness.verdict import LivenessState
from accessctl.storage.replica import StoreNews, StoreState
from accessctl.textenum import Label

__all__ = [
    "CameraNews",
    "ChallengeNews",
    "ChallengeStage",
    "Decision",
    "DoorEvent",
    "HookDone",
    "Listener",
    "LivenessChange",
    "Problem",
    "ProblemKind",
    "StoreNews",
    "StoreState",
    "print_event",
]


def _round(x: float | None, places: int) -> float | None:
    return None if x is None else round(x, places)


@dataclass(frozen=True)
class LivenessChange:
    """A face's liveness state changed (checking, live, unsure, spoof)."""

    track: int
    state: LivenessState
    liveness: float | None  # P(live) of the texture CNNs behind the state
    motion: float | None  # P(live) of the motion model
    t: float
    frame: int

    def to_json(self) -> dict:
        return {
            "event": "state",
            "track": self.track,
            "state": str(self.state),
            "liveness": _round(self.liveness, 4),
            "motion": _round(self.motion, 4),
            "t": round(self.t, 3),
            "frame": self.frame,
        }


class ChallengeStage(Label):
    ISSUED = "issued"  # a head turn was asked
    STEP = "step"  # the next turn of a several-step challenge was asked
    PASSED = "passed"
    FAILED = "failed"


@dataclass(frozen=True)
class ChallengeNews:
    """A challenge asked, each further step, and how it ended."""

    stage: ChallengeStage
    track: int
    turn: str
    step: int
    steps: int
    seconds: float  # the time given for this step
    failure: str | None
    t: float
    frame: int

    def detail(self) -> dict:
        """What the audit row keeps beside the stage."""
        out: dict = {"turn": self.turn, "step": self.step, "steps": self.steps, "seconds": round(self.seconds, 2)}
        if self.failure is not None:
            out["failure"] = self.failure
        return out

    def to_json(self) -> dict:
        return {
            "event": "challenge",
            "state": str(self.stage),
            "track": self.track,
            **self.detail(),
            "t": round(self.t, 3),
            "frame": self.frame,
        }


@dataclass(frozen=True)
class HookDone:
    """The door-unlock hook ran (or could not) for a decision."""

    for_event: EventKind
    person_id: str | None
    t: float
    frame: int
    returncode: int | None
    timed_out: bool
    error: str | None  # it could not run, or was killed
    output: str
    seconds: float

    @property
    def failed(self) -> bool:
        return self.returncode != 0 or bool(self.error)

    def detail(self) -> dict:
        """What the audit row keeps."""
        return {
            "returncode": self.returncode,
            "timed_out": self.timed_out,
            "error": self.error,
            "output": self.output,
            "seconds": round(self.seconds, 3),
        }

    def to_json(self) -> dict:
        return {
            "event": "hook",
            "for": str(self.for_event),
            "person_id": self.person_id,
            "t": self.t,
            "frame": self.frame,
            **self.detail(),
        }


@dataclass(frozen=True)
class CameraNews:
    """The camera stopped delivering (``retry_in_s``: when it is tried again), or is back (None)."""

    reason: str
    retry_in_s: float | None

    @property
    def lost(self) -> bool:
        return self.retry_in_s is not None

    def to_json(self) -> dict:
        return {"event": "camera", "reason": self.reason, "retry_in_s": self.retry_in_s}


class ProblemKind(Label):
    """A problem that does not stop the door by itself, by where it is."""

    AUDIT = "audit"  # the audit log cannot be written (or is again)
    MQTT = "mqtt"  # the broker is away (or back)
    IDENTITY = "identity"  # an identity check failed
    TOO_SLOW = "too_slow"  # frames too far apart for liveness (or fast enough again)
    OUT_OF_SERVICE = "out_of_service"  # the kiosk's pipeline could not start: nobody is let in


@dataclass(frozen=True)
class Problem:
    reason: ProblemKind
    detail: str
    t: float | None = None  # stream seconds, for a problem seen on a frame

    def to_json(self) -> dict:
        out: dict = {"event": "error", "reason": str(self.reason), "detail": self.detail}
        if self.t is not None:
            out["t"] = round(self.t, 3)
        return out


DoorEvent: TypeAlias = Decision | LivenessChange | ChallengeNews | HookDone | CameraNews | Problem | StoreNews
Listener: TypeAlias = Callable[[DoorEvent], None]

_PRINT = threading.Lock()


def print_event(event: DoorEvent) -> None:
    """One JSON object per line, whole, whichever thread prints it (the runner, the hook
    worker, the store link): headless mode's output."""
    line = json.dumps(event.to_json())
    with _PRINT:
        print(line, flush=True)
