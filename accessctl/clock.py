"""The one time format of every record (gallery, audit log, hook, events): UTC, ISO 8601,
to the second, with a Z, so rows from many doors sort and compare as text."""

from __future__ import annotations

import datetime as dt


def now() -> str:
    return stamp(dt.datetime.now(dt.timezone.utc))


def stamp(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
