"""The CSV lists accessctl reads (pair lists, clip lists): one reader, one set of errors.

Paths in a list are relative to the list's own folder unless absolute, so a list can
be moved together with its data.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from accessctl.errors import AccessctlError


def read_rows(
    path: Path, columns: tuple[str, ...], optional: tuple[str, ...] = ()
) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row with every value stripped) of a CSV whose header holds ``columns``
    (and maybe ``optional`` ones, empty where absent)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AccessctlError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AccessctlError(f"{path}: cannot read: {exc}") from None
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames or not set(columns) <= set(reader.fieldnames):
        raise AccessctlError(f"{path}: expected a CSV with header {','.join(columns)}")
    for line, row in enumerate(reader, start=2):
        yield line, {k: (row.get(k) or "").strip() for k in columns + optional}


def list_path(listing: Path, value: str) -> Path:
    """A path from a list, resolved against the list's folder when relative."""
    p = Path(value)
    return p if p.is_absolute() else listing.parent / p
