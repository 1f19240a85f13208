"""The admin PIN that guards the kiosk's admin area and the enrollment wizard.

Stored as a salted scrypt hash (never the PIN) in a private file in the data folder.
scrypt makes each guess cost memory and time, so a copied file cannot be brute-forced
cheaply; wrong guesses at the kiosk are limited too: after :data:`MAX_FAILURES` in a
row the PIN is refused for a while, doubling each time, and that state is kept in the
file so a restart does not reset it.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from accessctl import config
from accessctl.errors import AccessctlError

PIN_FILE = "admin.json"
MIN_LENGTH = 6
MAX_LENGTH = 32
MAX_FAILURES = 5  # wrong PINs in a row before the PIN is refused for a while
LOCK_S = 60.0  # the first wait; it doubles with each further lock, up to an hour
SCRYPT = {"n": 2**14, "r": 8, "p": 1}  # ~16 MB and ~40 ms per check


class PinError(AccessctlError):
    """A PIN that cannot be set, or a check that cannot be made now."""


@dataclass(frozen=True)
class PinCheck:
    ok: bool
    locked_for_s: float = 0.0  # > 0: refused without checking; try again after this
    failures: int = 0  # wrong PINs in a row so far


def _hash(pin: str, salt: bytes, params: dict[str, int]) -> bytes:
    return hashlib.scrypt(
        pin.encode("utf-8"), salt=salt, n=params["n"], r=params["r"], p=params["p"], maxmem=128 * 1024 * 1024, dklen=32
    )


# PINs printed in this project's own documentation: public, so never a real PIN.
KNOWN_PINS = frozenset({"246810"})


# The commonest 6-digit PINs people choose (Wang, Li, Hu, Shen, Wang: "Understanding
# Human-Chosen PINs: Characteristics, Distribution and Security", AsiaCCS 2017, and
# the DataGenetics study of leaked PINs): the first guesses of anyone at the keypad.
COMMON_PINS = frozenset(
    {
        "123456",
        "654321",
        "111111",
        "000000",
        "123123",
        "666666",
        "888888",
        "121212",
        "112233",
        "520520",
        "123321",
        "147258",
        "159753",
        "789456",
        "456789",
        "987654",
        "111222",
        "131313",
        "101010",
        "202020",
        "147852",
        "159357",
        "741852",
        "963852",
        "852456",
        "258456",
        "456123",
        "321654",
        "147369",
        "369258",
        "135790",
        "135246",
        "142536",
        "123654",
        "112358",
        "314159",
        "123789",
        "789123",
        "102030",
        "100200",
        "110110",
        "520131",
        "521521",
        "201314",
        "520521",
        "168168",
        "518518",
        "696969",
        "777777",
        "999999",
        "123000",
        "000123",
        "123457",
        "012345",
        "098765",
        "778899",
        "998877",
        "445566",
        "665544",
        "246802",
    }
)

# Straight lines of three keys on a phone-style keypad (rows, columns, diagonals and
# the 2-5-8-0 column, either way): a PIN made only of such strokes is a shape, not a number.
_KEYPAD_LINES = frozenset(
    line for fwd in ("123", "456", "789", "147", "258", "369", "580", "159", "357") for line in (fwd, fwd[::-1])
)
MIN_DISTINCT = 4  # digits a 6-digit PIN must use at least (112233 and 999998 use 3 and 2)


def pin_problem(pin: str) -> str | None:
    """Why a new PIN is refused, or None."""
    if not (pin.isascii() and pin.isdigit()):  # "١٢٣٤٥٦" is digits to Python, not on a keypad
        return "the PIN must be digits 0-9 only"
    if not MIN_LENGTH <= len(pin) <= MAX_LENGTH:
        return f"the PIN must have {MIN_LENGTH} to {MAX_LENGTH} digits"
    if pin in KNOWN_PINS:
        return "that PIN is published in accessctl's documentation; choose another"
    if len(set(pin)) < min(MIN_DISTINCT, len(pin) - 2):
        return f"the PIN is too easy to guess (use at least {MIN_DISTINCT} different digits)"
    if len(pin) % 3 == 0 and all(pin[i : i + 3] in _KEYPAD_LINES for i in range(0, len(pin), 3)):
        return "the PIN is too easy to guess (a pattern of lines on the keypad)"
    steps = {(int(b) - int(a)) % 10 for a, b in pairwise(pin)}
    if len(steps) == 1:  # 111111, 123456, 975319, 024680: one step repeated
        return "the PIN is too easy to guess (repeated digits or a sequence)"
    for cycle in range(2, len(pin) // 2 + 1):  # 121212, 123123, 12341234: a short block repeated
        if pin == (pin[:cycle] * (len(pin) // cycle + 1))[: len(pin)]:
            return "the PIN is too easy to guess (a short block repeated)"
    if pin in COMMON_PINS:
        return "that PIN is among the commonest PINs people choose; choose another"
    return None


class AdminPin:
    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else config.data_dir() / PIN_FILE

    def _read(self) -> dict | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise PinError(
                f"admin PIN file {self.path} is unreadable ({exc}); restore it or delete it to set a new PIN"
            ) from None
        if not isinstance(data, dict) or not {"salt", "hash", "scrypt"} <= set(data):
            raise PinError(f"admin PIN file {self.path} is damaged; restore it or delete it to set a new PIN")
        return data

    def _write(self, data: dict) -> None:
        config.write_private(self.path, json.dumps(data, indent=1))

    def is_set(self) -> bool:
        return self._read() is not None

    def set(self, new_pin: str, current_pin: str | None = None) -> None:
        """Set the PIN; changing an existing one needs the current one."""
        if self.is_set():
            if current_pin is None:
                raise PinError("the current PIN is wrong")
            result = self.check(current_pin)
            if result.locked_for_s > 0 and not result.ok:
                raise PinError(f"too many wrong PINs: the PIN is locked for {result.locked_for_s:.0f} s")
            if not result.ok:
                raise PinError("the current PIN is wrong")
        problem = pin_problem(new_pin)
        if problem:
            raise PinError(problem)
        salt = os.urandom(16)
        self._write(
            {
                "version": 1,
                "scrypt": dict(SCRYPT),
                "salt": base64.b64encode(salt).decode(),
                "hash": base64.b64encode(_hash(new_pin, salt, SCRYPT)).decode(),
                "failures": 0,
                "locks": 0,
                "locked_until": 0.0,
            }
        )

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One check at a time, across threads and processes: twenty simultaneous wrong
        guesses count twenty (a lock file beside the PIN file, flock)."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        config.private_dir(lock_path.parent)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def check(self, pin: str) -> PinCheck:
        with self._locked():
            return self._check(pin)

    def refusal(self, pin: str) -> str | None:
        """None when ``pin`` is the admin PIN; otherwise, in one line, why it was refused
        (the words the kiosk's dialogs and the command line both show)."""
        try:
            check = self.check(pin)
        except PinError as exc:
            return str(exc)
        if check.ok:
            return None
        return (
            f"too many wrong PINs: try again in {check.locked_for_s:.0f} s" if check.locked_for_s > 0 else "wrong PIN"
        )

    def _check(self, pin: str) -> PinCheck:
        data = self._read()
        if data is None:
            raise PinError("no admin PIN is set yet")
        now = time.time()
        if data.get("locked_until", 0.0) > now:
            return PinCheck(False, data["locked_until"] - now, data.get("failures", 0))
        ok = hmac.compare_digest(
            _hash(pin, base64.b64decode(data["salt"]), data["scrypt"]), base64.b64decode(data["hash"])
        )
        if ok:
            if data.get("failures") or data.get("locks"):
                data.update(failures=0, locks=0, locked_until=0.0)
                self._write(data)
            return PinCheck(True)
        data["failures"] = data.get("failures", 0) + 1
        locked_for = 0.0
        if data["failures"] >= MAX_FAILURES:
            locked_for = min(3600.0, LOCK_S * 2 ** data.get("locks", 0))
            data.update(failures=0, locks=data.get("locks", 0) + 1, locked_until=now + locked_for)
        self._write(data)
        return PinCheck(False, locked_for, data["failures"])
