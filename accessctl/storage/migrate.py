"""``store migrate``: a door's own SQLite gallery and audit log copied into a site's
empty central store, all or nothing.

Apart from both backends, so that neither imports the other's internals: it reads the
gallery and the event spool through their public calls and hands everything to
:meth:`~accessctl.storage.central.CentralStore.fill_empty` in one transaction.
"""

from __future__ import annotations

from pathlib import Path

from accessctl.storage.central import CentralStore
from accessctl.storage.gallery import Gallery
from accessctl.storage.replica import Spool


def migrate(url: str, gallery: Path, audit: Path | None) -> tuple[int, int, int]:
    """Copy people, templates (with their chips) and events; returns their counts.
    Events keep the ids that this door's uploads would give them, and the spool is
    marked as sent, so a kiosk later pointed at the store does not send them twice."""
    with Gallery(gallery) as g:
        people = g.people()
        encoder_id = g.encoder_id
        templates = g.template_rows()
    events: list[dict] = []
    if audit is not None and audit.exists():
        spool = Spool(audit)
        try:
            while batch := spool.pending(limit=100_000, after=events[-1]["kiosk_seq"] if events else 0):
                events += batch
        finally:
            spool.close()
    with CentralStore(url) as store:
        store.check_schema()
        store.fill_empty(encoder_id, people, templates, events)
    if audit is not None and events:
        spool = Spool(audit)
        try:
            spool.mark(events[-1]["kiosk_seq"])  # the store has them: a kiosk here does not send them again
        finally:
            spool.close()
    return len(people), len(templates), len(events)
