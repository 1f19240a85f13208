"""A door that asks: turn the head, in a direction drawn at random when it asks.

A passive verdict from a second of video has an uncertain band: a live person who
stands very still shows no evidence of life, and a good enough picture may show some.
Where the passive verdict is unsure (see :class:`ChallengeMode`), the door asks the
face to turn its head left or right, the direction drawn by a cryptographic random
source at that moment, and optionally then the other way. A recording cannot know
the direction or the moment in advance, and a photo turned on its axis is not a head.

A step passes when, before its deadline:

- the head's yaw, from the 3D landmarks as the enrollment wizard reads it
  (:func:`accessctl.vision.faces.head_pose`), has gone at least :data:`TURN_DEG` the
  asked way from where it was when the step was asked; and
- the motion head saw a head move during the step (parallax: a plane turned in front
  of the camera changes the mesh's yaw too, but gives the motion head no evidence).

It fails at once on a turn of :data:`WRONG_DEG` the other way, or on a spoof verdict,
and when its time is up. Identity and the track are the caller's to hold fixed (see
:class:`accessctl.door.pipeline.Pipeline`): a challenge belongs to one track and is
never handed to another face.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass

from accessctl.textenum import Label

TURN_DEG = 20.0  # the yaw change, the asked way, that answers a step
WRONG_DEG = 15.0  # a turn this far the other way fails the step at once


class ChallengeMode(Label):
    """When the door asks (``[liveness] challenge``)."""

    OFF = "off"  # never: an unsure face is refused
    UNSURE = "unsure"  # when the passive verdict found no evidence of life in time, or only a little
    ALWAYS = "always"  # every face, before any grant (a high-security door)


class Turn(Label):
    """Which way to turn, as the person sees it: their own left or right."""

    LEFT = "left"
    RIGHT = "right"

    @property
    def sign(self) -> float:
        """The sign of the yaw change that answers it (yaw is positive to the person's left)."""
        return 1.0 if self == Turn.LEFT else -1.0

    @property
    def other(self) -> Turn:
        return Turn.RIGHT if self == Turn.LEFT else Turn.LEFT


class ChallengeState(Label):
    ACTIVE = "active"
    PASSED = "passed"
    FAILED = "failed"


class ChallengeFailure(Label):
    """Why a challenge failed."""

    TIMEOUT = "timeout"  # no turn the asked way in time
    WRONG_WAY = "wrong_way"  # turned the other way
    NOT_A_HEAD = "not_a_head"  # turned, but moved as a picture does
    SPOOF = "spoof"  # the passive verdict said spoof meanwhile
    IDENTITY = "identity"  # another person was recognised during it
    FACE_LOST = "face_lost"  # the face left the view


@dataclass(frozen=True)
class ChallengeStatus:
    """Where one track's challenge stands: what the kiosk shows and the log records."""

    state: ChallengeState
    turn: Turn  # the current step's direction
    step: int  # 1-based
    steps: int
    issued_t: float  # when the current step was asked (stream seconds)
    deadline_t: float
    t: float  # the frame this status is for
    turned_deg: float = 0.0  # how far the head has turned the asked way in this step
    failure: ChallengeFailure | None = None

    @property
    def time_left(self) -> float:
        return max(0.0, self.deadline_t - self.t)


def draw_turn(rng: random.Random | None = None) -> Turn:
    """The first direction: from the operating system's cryptographic source unless a
    seeded generator is given (tests)."""
    pick = (rng or secrets.SystemRandom()).random()
    return Turn.LEFT if pick < 0.5 else Turn.RIGHT


class Challenge:
    """One track's challenge, stepped with each of its frames."""

    def __init__(self, t: float, yaw: float, steps: int, step_s: float, rng: random.Random | None = None) -> None:
        if steps not in (1, 2):
            raise ValueError("a challenge has 1 or 2 steps")
        self.steps, self.step_s = steps, step_s
        self._turn = draw_turn(rng)
        self._step = 1
        self._start(t, yaw)
        self._say(ChallengeState.ACTIVE, t, 0.0)

    def _start(self, t: float, yaw: float) -> None:
        self._issued, self._yaw0, self._evidence = t, yaw, False

    def fail(self, t: float, why: ChallengeFailure) -> ChallengeStatus:
        if self.status.state == ChallengeState.ACTIVE:
            self._say(ChallengeState.FAILED, t, self.status.turned_deg, why)
        return self.status

    def _say(
        self, state: ChallengeState, t: float, turned: float, failure: ChallengeFailure | None = None
    ) -> ChallengeStatus:
        """The current step's status at ``t``, kept as :attr:`status`."""
        self.status = ChallengeStatus(
            state, self._turn, self._step, self.steps, self._issued, self._issued + self.step_s, t, turned, failure
        )
        return self.status

    def update(self, t: float, yaw: float, *, spoof: bool, head_moved: bool) -> ChallengeStatus:
        """This frame: the head's yaw (degrees, positive to the person's left), whether
        the passive verdict says spoof, and whether the motion head saw a head move."""
        if self.status.state != ChallengeState.ACTIVE:
            return self.status
        if spoof:
            return self.fail(t, ChallengeFailure.SPOOF)
        if t < self._issued:  # a frame from before the prompt counts for nothing
            return self.status
        turned = (yaw - self._yaw0) * self._turn.sign
        # evidence counts from halfway through the turn: what the motion head saw of the
        # turn itself, not of the second before the prompt
        self._evidence = self._evidence or (head_moved and turned >= TURN_DEG / 2)
        if turned <= -WRONG_DEG:
            return self.fail(t, ChallengeFailure.WRONG_WAY)
        if turned >= TURN_DEG and self._evidence:
            if self._step == self.steps:
                return self._say(ChallengeState.PASSED, t, turned)
            self._step, self._turn = self._step + 1, self._turn.other
            self._start(t, yaw)
            turned = 0.0
        elif t >= self._issued + self.step_s:
            return self.fail(t, ChallengeFailure.NOT_A_HEAD if turned >= TURN_DEG else ChallengeFailure.TIMEOUT)
        return self._say(ChallengeState.ACTIVE, t, turned)
