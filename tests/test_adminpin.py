"""The admin PIN: salted scrypt hash in a private file, wrong guesses limited."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from accessctl.storage.adminpin import MAX_FAILURES, AdminPin, PinError


def test_pin_is_stored_as_a_salted_hash_in_a_private_file(tmp_path: Path) -> None:
    pin = AdminPin(tmp_path / "admin.json")
    assert not pin.is_set()
    with pytest.raises(PinError, match="no admin PIN"):
        pin.check("482913")
    pin.set("482913")
    raw = (tmp_path / "admin.json").read_text()
    assert "482913" not in raw and json.loads(raw)["scrypt"]["n"] >= 2**14
    assert stat.S_IMODE((tmp_path / "admin.json").stat().st_mode) == 0o600
    assert pin.check("482913").ok and not pin.check("482914").ok
    other = AdminPin(tmp_path / "other.json")
    other.set("482913")
    assert json.loads((tmp_path / "other.json").read_text())["hash"] != json.loads(raw)["hash"]  # salted


def test_weak_pins_are_refused_and_changing_needs_the_current_one(tmp_path: Path) -> None:
    pin = AdminPin(tmp_path / "admin.json")
    for weak, why in (
        ("12345", "6 to 32"),
        ("12ab56", "digits 0-9 only"),
        ("111111", "too easy"),
        ("234567", "too easy"),
        ("121212", "too easy"),
        ("123123", "too easy"),
        ("987654", "too easy"),
        ("02468024", "too easy"),
        ("12341234", "too easy"),
        ("246810", "published"),
        ("\u0661\u0662\u0663\u0664\u0665\u0666", "digits 0-9 only"),
        # the hardening issue's: a common PIN, too few digits, keypad lines
        ("112233", "too easy|commonest"),
        ("000001", "different digits"),
        ("999998", "different digits"),
        ("147258", "too easy|commonest"),
        ("159753", "too easy|commonest"),
        ("753951", "keypad"),
        ("369147", "keypad"),
        ("520520", "too easy|commonest"),
        ("314159", "commonest"),
    ):
        with pytest.raises(PinError, match=why):
            pin.set(weak)
    pin.set("482913")
    with pytest.raises(PinError, match="current PIN is wrong"):
        pin.set("730165", "000000")
    pin.set("730165", "482913")
    assert pin.check("730165").ok and not pin.check("482913").ok


def test_repeated_wrong_pins_lock_it_even_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "admin.json"
    AdminPin(path).set("482913")
    for i in range(MAX_FAILURES - 1):
        check = AdminPin(path).check("000000")
        assert not check.ok and check.locked_for_s == 0 and check.failures == i + 1
    check = AdminPin(path).check("000000")
    assert not check.ok and check.locked_for_s >= 60
    locked = AdminPin(path).check("482913")  # a new process: still locked, even with the right PIN
    assert not locked.ok and locked.locked_for_s > 50


def test_simultaneous_wrong_guesses_all_count_and_a_lockout_says_so(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "admin.json"
    AdminPin(path).set("482913")
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(AdminPin(path).check("000000"))) for _ in range(MAX_FAILURES)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.failures for r in results) == [0, 1, 2, 3, 4]  # exact: the fifth locked it (and reset)
    assert AdminPin(path).check("482913").locked_for_s > 0
    with pytest.raises(PinError, match="locked for"):
        AdminPin(path).set("730165", "482913")


def test_a_damaged_pin_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "admin.json"
    path.write_text("{not json")
    with pytest.raises(PinError, match="unreadable"):
        AdminPin(path).check("482913")
    path.write_text("{}")
    with pytest.raises(PinError, match="damaged"):
        AdminPin(path).is_set()
