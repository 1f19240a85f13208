"""Who is this? 1:N (:func:`identify`) and 1:1 (:func:`verify`) over any store's
templates: a door's SQLite gallery or a site's central store give their active
templates as one :class:`~accessctl.storage.gallery.TemplateIndex` and the people
behind its rows; the search and the rule (accept at distance <= threshold) are
written once, here.

The threshold is the caller's, already resolved for the store's encoder (see
:func:`accessctl.thresholds.match_threshold`, called once where a door or a command
starts): a door asks about ten times a second per face, and a threshold does not
change between two questions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accessctl.errors import GalleryError
from accessctl.storage.gallery import PeopleStore, Person


@dataclass(frozen=True)
class Match:
    """The answer to "who is this?": ``person`` is None when nobody is close enough.

    ``nearest`` is the closest enrolled person even when the match is refused, so that
    logs can say how close a refused stranger came.
    """

    person: Person | None
    distance: float
    threshold: float
    nearest: Person | None = None
    template_id: int | None = None

    @property
    def accepted(self) -> bool:
        return self.person is not None


def identify(store: PeopleStore, embedding: np.ndarray, threshold: float) -> Match:
    """1:N: the enrolled, active person closest to ``embedding``, if within ``threshold``."""
    index = store.index()
    row, distance = index.nearest(embedding)
    if row < 0:
        return Match(None, distance, threshold)
    person = store.indexed_person(index, row)
    if person is None:  # removed since the index was built: nobody
        return Match(None, distance, threshold)
    tid = int(index.template_ids[row])
    return Match(person if distance <= threshold else None, distance, threshold, person, tid)


def verify(store: PeopleStore, employee_id: str, embedding: np.ndarray, threshold: float) -> Match:
    """1:1: is this the claimed person? The distance to the claimant's nearest
    template; a disabled person is refused outright."""
    person = store.get(employee_id)
    if not person.active:
        raise GalleryError(f"employee id {employee_id!r} ({person.name}) is disabled")
    emb = store.embeddings(employee_id)
    if len(emb) == 0:
        return Match(None, float("inf"), threshold, person)
    distance = float(np.min(np.linalg.norm(emb - np.asarray(embedding, np.float32).reshape(1, -1), axis=1)))
    return Match(person if distance <= threshold else None, distance, threshold, person)
