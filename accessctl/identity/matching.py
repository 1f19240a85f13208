"""Who is this face? Enrollment, 1:N identification and 1:1 verification.

One-shot by design: a single good photo is enough to enroll, because the encoder was
trained as a metric (same person <= 0.6 apart) rather than as a classifier over the
site's people. What enrollment must guard is the quality of that one template, so it
refuses faces that would make a weak one and says exactly why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from accessctl.config import Settings
from accessctl.errors import FaceQualityError, MultipleFacesError, NoFaceError
from accessctl.identity.encoders import FaceEncoder, load_encoder
from accessctl.identity.match import Match, identify, verify
from accessctl.storage.gallery import NewTemplate, PeopleStore, Person
from accessctl.thresholds import match_threshold
from accessctl.vision.faces import Face, Quality, analyzer

if TYPE_CHECKING:
    from accessctl.identity.architectures import BinaryHead


@dataclass(frozen=True)
class EncodedFace:
    face: Face
    embedding: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class EnrollResult:
    person: Person
    templates_added: int
    warnings: list[str]


def encode_faces(image: np.ndarray, encoder: FaceEncoder | None = None) -> list[EncodedFace]:
    """Every face in an RGB image with its 128-D descriptor, left to right (one batch)."""
    faces = analyzer().analyze(image)
    if not faces:
        return []
    embeddings = (encoder or load_encoder()).encode(np.stack([f.chip for f in faces]))
    return [EncodedFace(f, e) for f, e in zip(faces, embeddings, strict=True)]


def select_face(faces: Sequence[EncodedFace], source: str, face_number: int | None = None) -> EncodedFace:
    """The one face an operation is about: refuse none or several unless told which.

    ``face_number`` counts from 1 at the left of the image.
    """
    if not faces:
        raise NoFaceError(f"{source}: no face found")
    if face_number is not None:
        if not 1 <= face_number <= len(faces):
            raise MultipleFacesError(f"{source}: there is no face {face_number}; {len(faces)} found")
        return faces[face_number - 1]
    if len(faces) > 1:
        where = ", ".join(f"{i + 1} at x={f.face.box[0]:.0f}" for i, f in enumerate(faces))
        raise MultipleFacesError(
            f"{source}: {len(faces)} faces found ({where}); choose one with --face N (1 = leftmost)"
        )
    return faces[0]


DIM = 70  # mean grey of the face below which a blurry face is more likely a dark one


def quality_problem(q: Quality, settings: Settings) -> str | None:
    """Why a face would make a poor template, or None when it is good enough."""
    e = settings.enroll
    if q.size_px < e.min_face_px:
        return (
            f"face too small: {q.size_px:.0f} px "
            f"(at least {e.min_face_px} px needed; step closer or use a larger photo)"
        )
    if q.sharpness < e.min_sharpness:
        advice = (
            "add light in front of the face"
            if q.brightness < DIM
            else "come closer to the camera"
            if q.size_px < 1.5 * e.min_face_px
            else "hold still, and check the lens is clean and in focus"
        )
        return f"face too blurry: sharpness {q.sharpness:.0f} (at least {e.min_sharpness:.0f} needed); {advice}"
    for name, value, limit in (
        ("yaw", q.yaw, e.max_yaw_deg),
        ("pitch", q.pitch, e.max_pitch_deg),
        ("roll", q.roll, e.max_roll_deg),
    ):
        if abs(value) > limit:
            return f"head turned too far: {name} {value:+.0f} degrees (limit {limit:.0f}); look straight at the camera"
    return None


def quality_score(q: Quality) -> float:
    """One number in [0, 1] to rank templates: size, sharpness and frontality together."""
    size = min(1.0, q.size_px / 150.0)
    sharp = min(1.0, q.sharpness / 80.0)
    pose = math.cos(math.radians(min(abs(q.yaw), 90))) * math.cos(math.radians(min(abs(q.pitch), 90)))
    return round(size * sharp * pose, 4)


def sample_from_image(
    image: np.ndarray, source: str, settings: Settings, encoder: FaceEncoder, face_number: int | None = None
) -> EncodedFace:
    """The one enrollable face of a photo, or the reason there is none (an exception)."""
    face = select_face(encode_faces(image, encoder), source, face_number)
    problem = quality_problem(face.face.quality, settings)
    if problem:
        raise FaceQualityError(f"{source}: {problem}")
    return face


def enrollment_warnings(
    gallery: PeopleStore, samples: Sequence[tuple[str, EncodedFace]], employee_id: str, threshold: float
) -> list[str]:
    """What an admin should look at before saving (not refusals): a face that already
    matches someone else enrolled (a duplicate enrollment), or samples that do not look
    like one person."""
    warnings: list[str] = []
    for source, face in samples:
        match = identify(gallery, face.embedding, threshold)
        if match.person is not None and match.person.employee_id != employee_id.strip():
            warnings.append(
                f"{source}: this face already matches {match.person.name} ({match.person.employee_id}) "
                f"at distance {match.distance:.2f}; check that this is not a duplicate enrollment"
            )
    for i in range(len(samples)):
        for j in range(i + 1, len(samples)):
            d = float(np.linalg.norm(samples[i][1].embedding - samples[j][1].embedding))
            if d > threshold:
                warnings.append(
                    f"{samples[i][0]} and {samples[j][0]} do not look like the same person (distance {d:.2f})"
                )
    return warnings


def save_enrollment(
    gallery: PeopleStore,
    employee_id: str,
    name: str,
    samples: Sequence[tuple[str, EncodedFace]],
    *,
    append: bool = False,
) -> Person:
    """Write the person and one template per sample in one transaction."""
    return gallery.add_person(
        employee_id,
        name,
        [NewTemplate(f.embedding, quality_score(f.face.quality), src, f.face.chip) for src, f in samples],
        append=append,
    )


def enroll(
    gallery: PeopleStore,
    images: Sequence[tuple[str, np.ndarray]],
    employee_id: str,
    name: str,
    settings: Settings,
    *,
    face_number: int | None = None,
    append: bool = False,
) -> EnrollResult:
    """Enroll one person from (source label, RGB image) pairs; one image is enough.

    Every image must yield exactly one face of enrollable quality, or nothing is written.
    Warnings (not refusals): see :func:`enrollment_warnings`.
    """
    encoder = load_encoder(gallery.encoder_id)
    samples = [(source, sample_from_image(image, source, settings, encoder, face_number)) for source, image in images]
    warnings = enrollment_warnings(gallery, samples, employee_id, match_threshold(settings, gallery.encoder_id))
    person = save_enrollment(gallery, employee_id, name, samples, append=append)
    return EnrollResult(person, len(samples), warnings)


def identify_faces(gallery: PeopleStore, image: np.ndarray, settings: Settings) -> list[tuple[EncodedFace, Match]]:
    """1:N for every face in the image."""
    faces = encode_faces(image, load_encoder(gallery.encoder_id))
    threshold = match_threshold(settings, gallery.encoder_id)
    return [(f, identify(gallery, f.embedding, threshold)) for f in faces]


def verify_face(
    gallery: PeopleStore,
    employee_id: str,
    image: np.ndarray,
    source: str,
    settings: Settings,
    *,
    face_number: int | None = None,
    head: BinaryHead | None = None,
) -> tuple[EncodedFace, Match]:
    """1:1: is the face in the image the claimed employee?

    With a binary ``head`` the decision is P(same) >= ``match.min_probability`` over the
    claimant's templates; the match then reports 1 - P as its distance and
    1 - min_probability as its threshold, so lower still means "more alike".
    """
    face = select_face(encode_faces(image, load_encoder(gallery.encoder_id)), source, face_number)
    match = verify(gallery, employee_id, face.embedding, match_threshold(settings, gallery.encoder_id))
    if head is None:
        return face, match
    from accessctl.identity.pairhead import same_probability

    templates = gallery.embeddings(employee_id)
    p = (
        float(same_probability(head, templates, np.repeat(face.embedding[None], len(templates), 0)).max())
        if len(templates)
        else 0.0
    )
    need = settings.match.min_probability
    return face, Match(match.nearest if p >= need else None, 1.0 - p, 1.0 - need, match.nearest)
