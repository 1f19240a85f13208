"""``enroll``, ``verify``, ``identify`` and ``gallery``: people in, matches out."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from accessctl.cli.common import (
    EXIT_REFUSED,
    READS,
    method_opt,
    open_gallery,
    pair_head,
    read_images,
    run_settings,
    threshold_opt,
)
from accessctl.errors import AccessctlError

NORM_TOLERANCE = 0.25  # an encoder's descriptors of real faces: within 2% of one length (SFace 1.0, dlib 1.38-1.41)


def _import_check(gallery, source: str, warnings: list[str]):
    """An import check. Each template must be a face's encoding at all: its length
    within :data:`NORM_TOLERANCE` of what this encoder gives a real face (a person's
    template scaled by 0.001 sits at about the threshold from everyone, and let
    strangers in); and, where its face is stored, the encoding of that face (within
    the match threshold), so a crafted template cannot stand in for a person. A face
    that already matches someone else enrolled is a warning, as at enrollment."""
    from accessctl import config
    from accessctl.config import load_settings
    from accessctl.door.pipeline import WARMUP_FACE
    from accessctl.errors import GalleryError
    from accessctl.frames.images import load_image
    from accessctl.identity.encoders import load_encoder
    from accessctl.identity.match import identify
    from accessctl.thresholds import match_threshold
    from accessctl.vision.faces import analyzer

    threshold = match_threshold(load_settings(), gallery.encoder_id)

    def check(templates: np.ndarray, faces: list[np.ndarray | None], owners: list[str]) -> None:
        encoder = load_encoder(gallery.encoder_id)
        reference = analyzer().analyze(load_image(config.assets_dir() / WARMUP_FACE))[0].chip
        length = float(np.linalg.norm(encoder.encode(reference[None])[0]))
        norms = np.linalg.norm(templates, axis=1)
        odd = np.flatnonzero(np.abs(norms / length - 1.0) > NORM_TOLERANCE)
        if len(odd):
            k = int(odd[0])
            raise GalleryError(
                f"{source}: a template of {owners[k]!r} is no face's encoding (its length "
                f"{norms[k]:.3g}, where this encoder's faces have {length:.3g}); nothing was imported"
            )
        stored = [i for i, f in enumerate(faces) if f is not None]
        chips = [f for f in faces if f is not None]
        if chips:
            d = np.linalg.norm(encoder.encode(np.stack(chips)) - templates[stored], axis=1)
            worst = int(np.argmax(d))
            if d[worst] > threshold:
                raise GalleryError(
                    f"{source}: a template of {owners[stored[worst]]!r} is not the encoding of its own "
                    f"stored face (distance {d[worst]:.3f}, threshold {threshold:.3f}); nothing was "
                    "imported"
                )
        # A template near most of the faces known here (enrolled, and this file's own) is
        # no one person: a "wolf" (a centroid of faces at a face's length) would let
        # strangers in. A real face matches at most a few of them.
        index = gallery.index()
        known = np.concatenate([index.embeddings, templates]) if len(index) else templates
        who = np.array(
            [*(index.employee_ids if len(index) and index.employee_ids is not None else []), *owners], dtype=object
        )
        for owner, t in zip(owners, templates, strict=True):
            others = set(who[who != owner])
            near = set(who[(np.linalg.norm(known - t, axis=1) <= threshold) & (who != owner)])
            if len(others) >= 2 and len(near) >= max(2, len(others) / 2):
                raise GalleryError(
                    f"{source}: a template of {owner!r} matches {len(near)} of the {len(others)} other "
                    "people known here: it is no one person's face; nothing was imported"
                )
        for owner, t in zip(owners, templates, strict=True):
            match = identify(gallery, t, threshold)
            if match.person is not None and match.person.employee_id != owner:
                warnings.append(
                    f"{source}: {owner}'s face already matches {match.person.name} "
                    f"({match.person.employee_id}) at distance {match.distance:.2f}; check that this is "
                    "not a duplicate enrollment"
                )

    return check


def _person_json(p) -> dict:
    return {
        "employee_id": p.employee_id,
        "name": p.name,
        "active": p.active,
        "challenge": p.challenge,
        "created": p.created,
        "templates": p.templates,
    }


def _match_json(m) -> dict:
    near = m.nearest
    return {
        "accepted": m.accepted,
        "employee_id": m.person.employee_id if m.person else None,
        "name": m.person.name if m.person else None,
        "distance": None if m.distance == float("inf") else round(m.distance, 4),
        "threshold": m.threshold,
        "nearest_employee_id": near.employee_id if near else None,
    }


def _box(face) -> list[int]:
    return [round(v) for v in face.face.box]


def cmd_enroll(args: argparse.Namespace) -> int:
    from accessctl.identity.matching import enroll

    settings = run_settings(args)
    with open_gallery() as gallery:
        result = enroll(
            gallery,
            read_images(args.images),
            args.employee_id,
            args.name,
            settings,
            face_number=args.face,
            append=args.append,
        )
    for warning in result.warnings:
        print(f"accessctl: warning: {warning}", file=sys.stderr)
    p = result.person
    if args.challenge:
        with open_gallery() as gallery:
            p = gallery.set_challenge(p.employee_id, True)
    print(
        f"enrolled {p.name} ({p.employee_id}): {result.templates_added} template(s) added, {p.templates} in total"
        + ("; the door asks them to turn their head" if p.challenge else "")
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from accessctl.identity.matching import verify_face

    settings = run_settings(args)
    ((source, image),) = read_images([args.image])
    with open_gallery() as gallery:
        head = pair_head(args, gallery.encoder_id)
        face, match = verify_face(gallery, args.employee_id, image, source, settings, face_number=args.face, head=head)
    row = {"image": source, "box": _box(face), "method": args.method, **_match_json(match)}
    if head is not None:
        row["probability"] = round(1.0 - match.distance, 4)
    if args.json:
        print(json.dumps(row))
    else:
        who = f"{match.nearest.name} ({match.nearest.employee_id})" if match.nearest else args.employee_id
        verdict = "MATCH" if match.accepted else "NO MATCH"
        if head is None:
            print(f"{verdict}: {source} vs {who}: distance {match.distance:.3f} (threshold {match.threshold:.3f})")
        else:
            print(
                f"{verdict}: {source} vs {who}: P(same) {1 - match.distance:.3f} (at least {1 - match.threshold:.3f})"
            )
    return 0 if match.accepted else EXIT_REFUSED


def cmd_identify(args: argparse.Namespace) -> int:
    from accessctl.identity.matching import identify_faces

    settings = run_settings(args)
    rows = []
    with open_gallery() as gallery:
        for source, image in read_images(args.images):
            results = identify_faces(gallery, image, settings)
            if not results:
                rows.append({"image": source, "face": None, "accepted": False, "reason": "no face"})
                if not args.json:
                    print(f"{source}: no face found")
            for i, (face, match) in enumerate(results, start=1):
                rows.append({"image": source, "face": i, "box": _box(face), **_match_json(match)})
                if not args.json:
                    who = f"{match.person.name} ({match.person.employee_id})" if match.person else "unknown"
                    print(f"{source}: face {i} at {_box(face)}: {who}, distance {match.distance:.3f}")
    if args.json:
        for row in rows:
            print(json.dumps(row))
    return 0


def cmd_gallery(args: argparse.Namespace) -> int:
    local = f"gallery {args.gallery_cmd}" if args.gallery_cmd in ("export", "import") else ""
    with open_gallery(local_only=local) as gallery:
        return _GALLERY_ACTIONS[args.gallery_cmd](gallery, args)


def _gallery_list(gallery, args: argparse.Namespace) -> int:
    people = gallery.people()
    if args.json:
        print(json.dumps([_person_json(p) for p in people]))
    elif not people:
        print(f"the gallery is empty ({gallery.path})")
    else:
        print(f"{'EMPLOYEE ID':<16} {'NAME':<28} {'ACTIVE':<7} {'CHALLENGE':<10} {'TEMPLATES':>9}  CREATED")
        for p in people:
            active, asked = "yes" if p.active else "no", "always" if p.challenge else "-"
            print(f"{p.employee_id:<16} {p.name:<28} {active:<7} {asked:<10} {p.templates:>9}  {p.created}")
    return 0


def _gallery_show(gallery, args: argparse.Namespace) -> int:
    p = gallery.get(args.employee_id)
    print(
        f"employee id: {p.employee_id}\nname: {p.name}\nactive: {'yes' if p.active else 'no'}\n"
        f"challenge: {'always' if p.challenge else 'when unsure'}\ncreated: {p.created}"
    )
    print(f"templates: {p.templates}")
    for t in gallery.templates(args.employee_id):
        print(f"  #{t.id}  quality {t.quality:.2f}  {t.created}  {t.encoder}  {t.source}")
    return 0


def _gallery_remove(gallery, args: argparse.Namespace) -> int:
    p = gallery.get(args.employee_id)
    if not args.yes:
        if not sys.stdin.isatty():
            raise AccessctlError(f"removing {p.name} ({p.employee_id}) needs --yes when not run at a terminal")
        answer = input(f"remove {p.name} ({p.employee_id}) and {p.templates} template(s)? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing removed")
            return EXIT_REFUSED
    gallery.remove(args.employee_id)
    print(f"removed {p.name} ({p.employee_id})")
    return 0


def _gallery_rename(gallery, args: argparse.Namespace) -> int:
    old = gallery.get(args.employee_id)
    p = gallery.rename(args.employee_id, args.name)
    print(f"renamed {old.employee_id}: {old.name} -> {p.name}")
    return 0


def _gallery_enable(gallery, args: argparse.Namespace) -> int:
    p = gallery.set_active(args.employee_id, args.gallery_cmd == "enable")
    print(f"{p.name} ({p.employee_id}) is now {'enabled' if p.active else 'disabled'}")
    return 0


def _gallery_challenge(gallery, args: argparse.Namespace) -> int:
    p = gallery.set_challenge(args.employee_id, args.setting == "on")
    print(
        f"{p.name} ({p.employee_id}): "
        + ("the door always asks them to turn their head" if p.challenge else "the door asks them only when unsure")
    )
    return 0


def _gallery_export(gallery, args: argparse.Namespace) -> int:
    n = gallery.export(args.file)
    print(f"exported {n} people to {args.file} (it holds biometric templates: keep it private)")
    return 0


def _gallery_import(gallery, args: argparse.Namespace) -> int:
    warnings: list[str] = []
    added, skipped = gallery.import_(
        args.file,
        skip_existing=args.skip_existing,
        check=_import_check(gallery, args.file, warnings),
        without_faces=args.without_faces,
    )
    for warning in dict.fromkeys(warnings):
        print(f"accessctl: warning: {warning}", file=sys.stderr)
    print(f"imported {added} people from {args.file}" + (f", skipped {skipped} already enrolled" if skipped else ""))
    return 0


_GALLERY_ACTIONS = {
    "list": _gallery_list,
    "show": _gallery_show,
    "remove": _gallery_remove,
    "rename": _gallery_rename,
    "enable": _gallery_enable,
    "disable": _gallery_enable,
    "challenge": _gallery_challenge,
    "export": _gallery_export,
    "import": _gallery_import,
}


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("enroll", help="enroll a person from one or more photos")
    p.add_argument("--employee-id", required=True, help="unique employee id")
    p.add_argument("--name", required=True, help="display name")
    p.add_argument("--face", type=int, help="which face to use when a photo has several (1 = leftmost)")
    p.add_argument("--append", action="store_true", help="add templates to an already enrolled employee id")
    p.add_argument(
        "--challenge",
        action="store_true",
        help="the door always asks this person to turn their head (see [liveness] challenge)",
    )
    threshold_opt(p)
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.set_defaults(func=cmd_enroll, admin="enroll")

    p = sub.add_parser("verify", help="1:1 - is the face in IMAGE the claimed employee? (exit 0 yes, 1 no)")
    p.add_argument("--employee-id", required=True)
    p.add_argument("--face", type=int, help="which face to use when the photo has several (1 = leftmost)")
    p.add_argument("--json", action="store_true")
    method_opt(p)
    threshold_opt(p)
    p.add_argument("image", metavar="IMAGE")
    p.set_defaults(func=cmd_verify, admin=READS)

    p = sub.add_parser("identify", help="1:N - who are the faces in these images?")
    p.add_argument("--json", action="store_true", help="one JSON object per face")
    threshold_opt(p)
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.set_defaults(func=cmd_identify, admin=READS)

    g = sub.add_parser("gallery", help="list and manage enrolled people")
    gsub = g.add_subparsers(dest="gallery_cmd", required=True, metavar="ACTION")
    q = gsub.add_parser("list", help="everyone enrolled")
    q.add_argument("--json", action="store_true")
    q.set_defaults(admin=READS)
    for name, text, label in (
        ("show", "one person and their templates", READS),
        ("enable", "let a person in again", "gallery enable"),
        ("disable", "stop matching a person without deleting them", "gallery disable"),
    ):
        q = gsub.add_parser(name, help=text)
        q.add_argument("employee_id")
        q.set_defaults(admin=label)
    q = gsub.add_parser("remove", help="delete a person and their templates")
    q.add_argument("employee_id")
    q.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    q.set_defaults(admin="gallery remove")
    q = gsub.add_parser(
        "challenge",
        help="on: the door always asks this person to turn their head; off: only when "
        "unsure (needs [liveness] challenge unsure or always)",
    )
    q.add_argument("employee_id")
    q.add_argument("setting", choices=["on", "off"])
    q.set_defaults(admin="gallery challenge")
    q = gsub.add_parser("rename", help="change a person's display name")
    q.add_argument("employee_id")
    q.add_argument("name")
    q.set_defaults(admin="gallery rename")
    q = gsub.add_parser("export", help="write people and templates to a JSON file")
    q.add_argument("file")
    q.set_defaults(admin="gallery export")  # it copies every template out
    q = gsub.add_parser("import", help="add people and templates from an exported file")
    q.add_argument("file")
    q.add_argument(
        "--skip-existing", action="store_true", help="skip employee ids already enrolled instead of refusing"
    )
    q.add_argument(
        "--without-faces",
        action="store_true",
        help="import templates that carry no stored face (old exports), which nothing can check",
    )
    q.set_defaults(admin="gallery import")
    g.set_defaults(func=cmd_gallery)
