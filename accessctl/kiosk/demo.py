"""The demonstration: the kiosk on real videos from ``../shared/data``, in a throwaway home.

One person is enrolled from a single frame of a live video; the kiosk then plays that
video (granted), the same recording replayed on a phone held up to a camera (refused:
a screen), and a stranger (refused: not recognised). Used by ``accessctl demo`` (the
README's run command on a machine without a camera), ``bench --kiosk`` and the
screenshots, so all three show the same thing.
"""

from __future__ import annotations

import os
from pathlib import Path

from accessctl import config
from accessctl.config import Settings
from accessctl.errors import AccessctlError
from accessctl.frames.sources import open_source
from accessctl.identity.matching import enroll
from accessctl.storage.adminpin import AdminPin
from accessctl.storage.gallery import Gallery


def new_demo_pin() -> str:
    """A fresh random PIN for the throwaway home (printed by `accessctl demo`): a fixed
    one would be a published PIN, and a published PIN is no PIN."""
    import secrets

    from accessctl.storage.adminpin import pin_problem

    while True:
        pin = "".join(secrets.choice("0123456789") for _ in range(8))
        if pin_problem(pin) is None:
            return pin


# Of pair1/live.mov: the person looking at the camera. Pair 1's person shows life
# within the door's look; pair 2's stands stiller and would be asked to turn the head,
# to a side drawn at random, which the recording answers only half the time.
ENROLL_FRAME = 60


def demo_videos() -> dict[str, Path]:
    data = config.shared_data_dir()
    if data is None:
        raise AccessctlError(
            "the demo plays videos from ../shared/data (or $ACCESSCTL_DATA), which is not here; "
            "run the kiosk on a video of your own: accessctl run --source VIDEO"
        )
    pair = data / "video" / "replay_pairs" / "pair1"
    videos = {
        "live": pair / "live.mov",
        "replay": pair / "replay.mp4",
        "stranger": data / "video" / "faces" / "single_face.mp4",
    }
    missing = [str(p) for p in videos.values() if not p.is_file()]
    if missing:
        raise AccessctlError(f"demo videos missing: {', '.join(missing)}")
    return videos


def prepare_demo(home: Path) -> tuple[list[str], str | None]:
    """Point this process at ``home``, enroll the demo person there, set a random admin
    PIN; returns the playlist (live, replay, stranger) and the PIN (None if one was set
    before)."""
    videos = demo_videos()
    os.environ["ACCESSCTL_HOME"] = str(home)
    with open_source(videos["live"]) as src:
        frame = next((f for f in src if f.index == ENROLL_FRAME), None)
    if frame is None:
        raise AccessctlError(f"{videos['live']} is shorter than expected")
    with Gallery() as gallery:
        if not gallery.people():
            enroll(
                gallery, [(f"{videos['live'].name} frame {ENROLL_FRAME}", frame.image)], "P1", "Pair One", Settings()
            )
    pin = AdminPin()
    new_pin = None
    if not pin.is_set():
        new_pin = new_demo_pin()
        pin.set(new_pin)
    return [str(videos["live"]), str(videos["replay"]), str(videos["stranger"])], new_pin
