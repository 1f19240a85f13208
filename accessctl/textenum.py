"""The base of every state and reason enum: a member is its own text.

States cross borders (JSON events, audit rows, hook arguments, the screen), so each
member compares equal to, formats as, and is stored as its value, on Python 3.10
too (``enum.StrEnum`` is 3.11+).
"""

from __future__ import annotations

from enum import Enum


class Label(str, Enum):
    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)
