"""A face's liveness verdict, and the clock it is given by: how many texture windows
and motion steps a verdict needs, how long the door looks before a face with no
evidence of life is unsure, and how often the CNNs run."""

from __future__ import annotations

from dataclasses import dataclass

from accessctl.textenum import Label


# States of a face, in the order the kiosk meets them.
class LivenessState(Label):
    """A track's liveness verdict: no verdict yet, live, a presentation attack, or no
    evidence of life within the time the door looks (see :data:`EVIDENCE_S`)."""

    CHECKING = "checking"
    LIVE = "live"
    SPOOF = "spoof"
    UNSURE = "unsure"


MIN_WINDOWS = 3  # texture window scores needed before a verdict: about 0.47 s at 30 fps
MAX_WINDOWS = 8  # the texture score is the mean of at most this many of the latest windows
DECIDE_S = 0.25  # how long the door looks at verdicts before it acts (3 identity checks, 0.1 s apart)
# The CNNs run on a face at most this often: a window takes its frames 1/15 s apart, so
# at 30 fps every other frame is all it ever uses, and the other half costs nothing.
CNN_EVERY_S = 0.75 / 15
PRESENTATION_S = 2.0  # evaluation cuts long clips into presentations of this length, each a new track
HISTORY = 15  # steps (1/15 s apart) the motion head reads at most: the face's last second
MIN_HISTORY = 3  # steps before the motion head is asked at all
EVIDENCE_S = 1.5  # a face that has shown no evidence of life this long after it appeared is UNSURE


@dataclass(frozen=True)
class LivenessVerdict:
    state: LivenessState
    p_live: float | None  # texture: mean P(live) of the CNNs over the latest windows; None while checking
    windows: int  # texture window scores so far for this face
    p_motion: float | None = None  # the motion head's latest P(live); None before it has spoken
    t: float = 0.0  # the frame's time
