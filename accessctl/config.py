"""Settings and the folders the program writes to.

Everything accessctl writes (gallery, cache of converted weights, configuration) lives
under one home folder so that a kiosk, a test or an admin can point the whole program
somewhere else with ``ACCESSCTL_HOME``. Without it, the platform's user data and cache
folders are used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import platformdirs

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from accessctl.errors import AccessctlError

APP_NAME = "accessctl"
CONFIG_FILE = "config.toml"
# The template space of the pretrained encoder; a gallery records which space it is in,
# and templates of two encoders never mix. Kept here so that gallery tools need no torch.
PRETRAINED_ENCODER_ID = "dlib-resnet-v1"
SFACE_ENCODER_ID = "sface-2021dec"
# A new gallery's template space: SFace, the encoder whose default threshold is safe on
# every shared pair set (see DEFAULT_THRESHOLD). A gallery keeps the encoder it records.
NEW_GALLERY_ENCODER = SFACE_ENCODER_ID


def check_text(
    value: object, what: str, max_chars: int, error: type[Exception] = AccessctlError, *, allow_empty: bool = False
) -> str:
    """Text as it may be stored or passed on: a string, stripped, bounded, and free of
    control and format characters (a newline forges a log line, an ANSI escape rewrites
    a terminal, a NUL byte breaks the door hook, a bidi override disguises a name)."""
    if not isinstance(value, str):
        raise error(f"{what} must be text, not {type(value).__name__}")
    text = value.strip()
    if not text and not allow_empty:
        raise error(f"{what} must not be empty")
    if len(text) > max_chars:
        raise error(f"{what} is {len(text)} characters long; at most {max_chars} are allowed")
    bad = next((c for c in text if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")), None)
    if bad is not None:
        raise error(f"{what} {text!r} holds a control character (U+{ord(bad):04X}); use printable text only")
    return text


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) readable by the owner only: it holds biometric data."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.chmod(path, 0o700)
    except PermissionError:  # shared folder owned by someone else: leave it as it is
        pass
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty and readable by its owner only if it does not exist, and
    make it so if it does: for SQLite files, which SQLite would create world-readable
    (it gives -wal/-shm files the main file's mode)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:  # never through a link: O_EXCL fails on any existing name, a dangling link included
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o600))
    except FileExistsError:  # there already, or created meanwhile by another process: checked below
        pass
    except OSError as exc:
        raise AccessctlError(f"cannot create {path}: {exc.strerror or exc}") from None
    if path.is_symlink():  # a planted link would make us chmod, and write, its target
        raise AccessctlError(f"{path} is a symbolic link; accessctl does not follow links for its data files")
    if not path.is_file():
        raise AccessctlError(f"{path} is not a regular file")
    try:
        # Group and others lose access; the owner's own bits stay, so a gallery made
        # read-only stays read-only and changes to it fail clearly.
        os.chmod(path, path.stat().st_mode & 0o700)
    except PermissionError:  # someone else's file: leave it as it is
        pass
    return path


LOW_SPACE_BYTES = 16 * 2**20  # less free than this where a database lives: the disk is full for it


def storage_problem(exc: Exception, path: Path) -> str:
    """SQLite's words for a failed write, with the cause named when it is a full disk:
    SQLite itself says only "disk I/O error" or "database or disk is full"."""
    text = str(exc)
    if "disk I/O error" in text or "disk is full" in text:
        try:
            free = shutil.disk_usage(path.parent).free
        except OSError:
            return text
        if free < LOW_SPACE_BYTES:
            return f"no space left on the device ({free // 1024} KiB free beside {path.name}; SQLite: {text})"
    return text


def write_private(path: Path, content: str | Callable[[str], object]) -> None:
    """Replace ``path`` atomically with a file only its owner can read.

    ``content`` is text, or a function that writes the file at the temporary path it is
    given. Readers see the old file or the new one, never half of it; what accessctl
    writes (templates, face chips, weights, settings) is private. Only a regular file
    is ever replaced: not a folder, a device (an export to ``/dev/full`` would replace
    it) or a symbolic link. A full or read-only disk is one clear error, and the old
    file stays as it was.
    """
    if path.is_symlink() or (path.exists() and not path.is_file()):
        kind = "a symbolic link" if path.is_symlink() else "a folder" if path.is_dir() else "not a regular file"
        raise AccessctlError(f"{path} is {kind}; give the path of a file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise AccessctlError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(fd)
    try:
        if isinstance(content, str):
            Path(tmp).write_text(content, encoding="utf-8")
        else:
            content(tmp)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise AccessctlError(f"cannot write {path}: {exc.strerror or exc}; it was left as it was") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in chunks: every model file is checked by it."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_model_file(
    path: Path, digest: str, what: str, error: type[Exception] = AccessctlError, missing: str | None = None
) -> None:
    """Refuse a model file that is missing or whose SHA-256 is not ``digest``, before
    any library parses it: a replaced file is code that decides who gets in."""
    try:
        got = sha256_file(path)
    except FileNotFoundError:
        raise error(missing or f"the {what} is missing ({path})") from None
    if got != digest:
        raise error(f"the {what} {path} is damaged or replaced (SHA-256 {got[:12]}..., expected {digest[:12]}...)")


def data_dir() -> Path:
    """Folder for the gallery, the configuration and the audit log."""
    home = os.environ.get("ACCESSCTL_HOME")
    base = Path(home).expanduser() if home else Path(platformdirs.user_data_dir(APP_NAME))
    folder = private_dir(base)
    _warn_unsafe_folder(folder)
    return folder


_warned: set[Path] = set()


def _warn_unsafe_folder(folder: Path) -> None:
    """Say once when the data folder is someone else's or others may write in it: they
    could replace the gallery, the configuration or the audit log."""
    if folder in _warned or not hasattr(os, "getuid"):
        return
    st = folder.stat()
    problems = []
    if st.st_uid != os.getuid():
        problems.append(f"is owned by user id {st.st_uid}, not you ({os.getuid()})")
    if st.st_mode & 0o002:
        problems.append("can be written by every user")
    elif st.st_mode & 0o020:
        problems.append("can be written by its group")
    problem = " and ".join(problems)
    if problem:
        _warned.add(folder)
        print(
            f"accessctl: warning: the data folder {folder} {problem}; anyone who can write there can change "
            "who gets in",
            file=sys.stderr,
        )


def cache_dir() -> Path:
    """Folder for things that can be rebuilt (converted weights, chip caches)."""
    home = os.environ.get("ACCESSCTL_HOME")
    base = (Path(home).expanduser() / "cache") if home else Path(platformdirs.user_cache_dir(APP_NAME))
    return private_dir(base)


def assets_dir() -> Path:
    """Model weights and files shipped inside the package (``accessctl/assets/``).

    Package data, so a built wheel carries them; they must be plain files on disk
    (torch, OpenCV and the hash checks read paths), which every pip install gives.
    """
    folder = resources.files("accessctl") / "assets"
    if not isinstance(folder, Path):
        raise AccessctlError(f"accessctl's model files are not plain files ({folder}); install it unzipped")
    return folder


def shared_data_dir() -> Path | None:
    """The real face data set used by tests and benchmarks, if it is reachable.

    ``ACCESSCTL_DATA`` wins; otherwise ``../shared/data`` next to the project checkout
    or the current directory.
    """
    env = os.environ.get("ACCESSCTL_DATA")
    candidates = [Path(env)] if env else []
    project_root = Path(__file__).resolve().parent.parent
    candidates += [project_root.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None


@dataclass
class MatchSettings:
    # Same person at or below this descriptor distance; 0: the gallery encoder's own
    # default (DEFAULT_THRESHOLD). See match_threshold.
    threshold: float = 0.0
    # The encoder the threshold was chosen for ("": any; calibrate and encoder use set it).
    encoder: str = ""
    # verify --method binary: accept when the fitted head gives P(same) at least this.
    min_probability: float = 0.5


@dataclass
class LivenessSettings:
    # P(live) at or above which a face is live; 0: the shipped model's own (its model
    # card: chosen on cross-source scores for at most 2% of live people refused). A
    # site that re-checks on its own camera (`accessctl liveness eval`) may set its own.
    threshold: float = 0.0
    # When the door asks for a head turn (accessctl.liveness.challenge): "off" (never:
    # a face with no evidence of life in time is refused), "unsure" (then, or when the
    # motion score clears its threshold by less than challenge_band), "always" (every
    # face, before any grant).
    challenge: str = "unsure"
    challenge_steps: int = 1  # 1: turn left or right; 2: then the other way
    challenge_s: float = 3.0  # seconds to answer each step
    challenge_band: float = 0.0  # under "unsure": motion scores this close above the threshold are asked too


@dataclass
class EnrollSettings:
    # Faces smaller than this (shorter side of the detector box, pixels in the original
    # image) carry too little detail for a template that must last for years.
    min_face_px: int = 64
    # faces.sharpness(): focus, independent of light and contrast. Calibrated on
    # ../shared/data: live webcam faces 53 and up, photos 56 and up, 4 px blurs under 51.
    min_sharpness: float = 51.0
    max_yaw_deg: float = 30.0
    max_pitch_deg: float = 30.0
    max_roll_deg: float = 30.0


@dataclass
class RuntimeSettings:
    # torch intra-op threads; 0 = as many as the cores this process may use, at most 4.
    threads: int = 0


@dataclass
class AccessSettings:
    # Identity checks in a row (one every 0.1 s) that must name the same person.
    matches_needed: int = 3
    # Identity checks of a live face matching nobody before it is denied as unknown.
    unknown_after: int = 3
    # One person is not granted again within this many seconds.
    cooldown_s: float = 10.0
    # After this many denials within lockout_window_s the kiosk grants nobody for
    # lockout_pause_s and raises an alert (someone is trying photos at the door).
    lockout_after: int = 5
    lockout_window_s: float = 60.0
    lockout_pause_s: float = 30.0


@dataclass
class HookSettings:
    # Executable run on each grant (see README, "Door-unlock hook"); empty = none.
    path: str = ""
    timeout_s: float = 5.0
    on_deny: bool = False


@dataclass
class KioskSettings:
    name: str = "kiosk"  # ACCESSCTL_KIOSK for hooks, and the kiosk column of the audit log
    fullscreen: bool = False  # kiosk mode: full screen, and leaving it needs the admin PIN
    mirror: bool = True  # show the preview as a mirror, as people expect of a screen facing them
    banner_s: float = 3.0  # how long a decision stays on screen
    idle_after_s: float = 5.0  # no face for this long: the idle screen


@dataclass
class AuditSettings:
    # Keep a JPEG of the face (with some context) for each denied attempt. Off by
    # default: it is a photo of someone who was not let in.
    snapshots: bool = False
    snapshot_days: float = 30.0  # snapshots older than this are deleted
    # Events that cannot be written are kept in memory and retried; past backlog_s (or
    # AUDIT_BACKLOG events) the kiosk goes OUT OF SERVICE rather than grant unlogged.
    fail_closed: bool = True
    backlog_s: float = 10.0


@dataclass
class StoreSettings:
    # Empty: this door's own SQLite gallery and audit log (one door, or several on one
    # machine). postgresql://...: a site's central store (people, templates, every
    # door's events); each kiosk then decides on a local replica and spools its events.
    # libpq's URL options pass through: ?sslmode=verify-full&sslrootcert=/etc/ca.pem.
    # Keep passwords out of it (PGPASSFILE or a client certificate).
    url: str = ""
    # Catch-up by version this often, besides the change notifications.
    sync_s: float = 5.0


@dataclass
class MqttSettings:
    # Empty: no MQTT. mqtt://[user@]host[:1883]/prefix or mqtts://[user@]host[:8883]/prefix:
    # every event as JSON on prefix/<kiosk name>/events (QoS 1), the door's state on
    # prefix/<kiosk name>/status (retained, "offline" as the last will). Secrets never
    # go in this text: the password and the client key are read from files.
    url: str = ""
    password_file: str = ""  # the broker password, alone in a file only the door's user can read
    ca_file: str = ""  # mqtts: the CA that signed the broker's certificate (empty: the system's CAs)
    cert_file: str = ""  # mqtts: a client certificate (PEM), with key_file
    key_file: str = ""
    queue: int = 10000  # events held while the broker is away; past this the oldest are dropped (and counted)


@dataclass
class MetricsSettings:
    # Empty: none. "127.0.0.1:9464" (or just "9464", which binds to loopback): Prometheus
    # metrics over HTTP at /metrics. Another address exposes them to the network.
    listen: str = ""


@dataclass
class AdminSettings:
    # Ask for the admin PIN before a command-line change (enroll, gallery changes,
    # calibrate, encoder use): off by default, since the CLI already needs a login on
    # the machine, and every CLI change is audited with the OS user either way.
    require_pin_for_cli: bool = False


@dataclass
class Settings:
    match: MatchSettings = field(default_factory=MatchSettings)
    liveness: LivenessSettings = field(default_factory=LivenessSettings)
    enroll: EnrollSettings = field(default_factory=EnrollSettings)
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    access: AccessSettings = field(default_factory=AccessSettings)
    hook: HookSettings = field(default_factory=HookSettings)
    kiosk: KioskSettings = field(default_factory=KioskSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)


# The range each numeric setting must lie in (inclusive); others: 0 to DEFAULT_LIMIT.
LIMITS: dict[tuple[str, str], tuple[float, float]] = {
    ("match", "threshold"): (0.0, 1000.0),  # 0: the encoder's default; a trained space can be small or large
    ("match", "min_probability"): (0.01, 0.99),
    ("liveness", "threshold"): (0.0, 0.99),  # 0: the model's own
    ("liveness", "challenge_steps"): (1, 2),
    ("liveness", "challenge_s"): (1.0, 30.0),
    ("liveness", "challenge_band"): (0.0, 0.5),
    ("store", "sync_s"): (0.2, 3600),
    ("enroll", "min_face_px"): (16, 4096),
    ("enroll", "max_yaw_deg"): (1, 90),
    ("enroll", "max_pitch_deg"): (1, 90),
    ("enroll", "max_roll_deg"): (1, 90),
    ("runtime", "threads"): (0, 64),
    ("access", "matches_needed"): (1, 100),
    ("access", "unknown_after"): (1, 100),
    ("access", "lockout_after"): (1, 10000),
    ("access", "lockout_window_s"): (1, 86400),
    ("hook", "timeout_s"): (0.1, 600),
    ("kiosk", "banner_s"): (0.5, 60),
    ("kiosk", "idle_after_s"): (0.5, 3600),
    ("audit", "snapshot_days"): (0.01, 3650),
    ("mqtt", "queue"): (1, 1_000_000),
}
DEFAULT_LIMIT = 86400.0


def limits(section: str, key: str) -> tuple[float, float]:
    return LIMITS.get((section, key), (0.0, DEFAULT_LIMIT))


def check_settings(settings: Settings) -> None:
    """Refuse a setting outside its range, or text with control characters (the kiosk
    name reaches hooks, logs and terminals), naming it (AccessctlError)."""
    for section in dataclasses.fields(settings):
        values = getattr(settings, section.name)
        for f in dataclasses.fields(values):
            value = getattr(values, f.name)
            if isinstance(value, str):
                check_text(value, f"[{section.name}] {f.name}", 4096, allow_empty=True)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                lo, hi = limits(section.name, f.name)
                if not lo <= value <= hi:
                    raise AccessctlError(f"[{section.name}] {f.name} = {value:g} is out of range ({lo:g} to {hi:g})")
    if settings.liveness.challenge not in ("off", "unsure", "always"):
        raise AccessctlError(f"[liveness] challenge = {settings.liveness.challenge!r}: one of off, unsure, always")
    if settings.store.url and not settings.store.url.startswith(("postgresql://", "postgres://")):
        raise AccessctlError("[store] url must be empty (this door's own files) or a postgresql:// URL")
    if settings.mqtt.url:
        parse_mqtt_url(settings.mqtt.url, settings.kiosk.name)
    if settings.metrics.listen:
        parse_listen(settings.metrics.listen)


@dataclass(frozen=True)
class MqttTarget:
    """An ``[mqtt] url`` taken apart."""

    tls: bool
    host: str
    port: int
    username: str | None
    events_topic: str
    status_topic: str


def _topic_level(text: str, what: str) -> str:
    if not text or any(c in text for c in "+#/\0"):
        raise AccessctlError(f"{what} {text!r} cannot be an MQTT topic level (empty, or holds / + # or NUL)")
    return text


def parse_mqtt_url(url: str, kiosk: str) -> MqttTarget:
    """``mqtt[s]://[user@]host[:port]/prefix`` and the kiosk's name as its topics; a
    password in the URL is refused (it would sit in a readable config and in logs)."""
    from urllib.parse import unquote, urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise AccessctlError(f"[mqtt] url: {exc}") from None
    if parts.scheme not in ("mqtt", "mqtts"):
        raise AccessctlError("[mqtt] url must start with mqtt:// or mqtts:// (TLS)")
    if parts.password is not None:
        raise AccessctlError("[mqtt] url holds a password: put it alone in a file and name it in [mqtt] password_file")
    if not parts.hostname:
        raise AccessctlError("[mqtt] url names no broker host")
    if parts.query or parts.fragment:
        raise AccessctlError("[mqtt] url takes no ?query or #fragment")
    prefix = unquote(parts.path).strip("/") or APP_NAME
    for level in prefix.split("/"):
        _topic_level(level, "[mqtt] url's topic prefix part")
    name = _topic_level(kiosk, "[kiosk] name")
    tls = parts.scheme == "mqtts"
    return MqttTarget(
        tls,
        parts.hostname,
        port or (8883 if tls else 1883),
        unquote(parts.username) if parts.username else None,
        f"{prefix}/{name}/events",
        f"{prefix}/{name}/status",
    )


def parse_listen(listen: str) -> tuple[str, int]:
    """``[metrics] listen``: "host:port", "[::1]:port", or a port alone (loopback)."""
    host, sep, port_text = listen.strip().rpartition(":")
    host = host.strip("[]") if sep else "127.0.0.1"
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535 or (sep and not host):
        raise AccessctlError(f"[metrics] listen = {listen!r}: give host:port (127.0.0.1:9464) or a port")
    return host, int(port_text)


def config_path() -> Path:
    return data_dir() / CONFIG_FILE


def _apply(section_obj: Any, values: dict[str, Any], section: str) -> None:
    known = {f.name: f for f in dataclasses.fields(section_obj)}
    for key, value in values.items():
        if key not in known:
            raise AccessctlError(f"{config_path()}: unknown setting [{section}] {key}")
        default = getattr(section_obj, key)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise AccessctlError(f"{config_path()}: [{section}] {key} must be true or false, got {value!r}")
        elif isinstance(default, str):
            if not isinstance(value, str):
                raise AccessctlError(f"{config_path()}: [{section}] {key} must be a string, got {value!r}")
        elif not isinstance(value, (int, float)) or isinstance(value, bool):
            raise AccessctlError(f"{config_path()}: [{section}] {key} must be a number, got {value!r}")
        elif isinstance(default, int) and not float(value).is_integer():  # 1.9 must not become 1 unseen
            raise AccessctlError(f"{config_path()}: [{section}] {key} must be a whole number, got {value!r}")
        setattr(section_obj, key, type(default)(value))


def load_settings(path: Path | None = None) -> Settings:
    """Defaults overlaid with the TOML file in the data folder, if there is one."""
    settings = Settings()
    path = path or config_path()
    if not path.exists():
        return settings
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as exc:
        raise AccessctlError(f"cannot read configuration {path}: {exc}") from None
    for section, values in raw.items():
        if not hasattr(settings, section) or not isinstance(values, dict):
            raise AccessctlError(f"{path}: unknown section [{section}]")
        _apply(getattr(settings, section), values, section)
    try:
        check_settings(settings)
    except AccessctlError as exc:
        raise AccessctlError(f"{path}: {exc}") from None
    return settings


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string
    return repr(value)


def settings_toml(settings: Settings) -> str:
    """Every setting as TOML, section by section, defaults included."""
    lines = []
    for section in dataclasses.fields(settings):
        lines.append(f"[{section.name}]")
        for f in dataclasses.fields(getattr(settings, section.name)):
            lines.append(f"{f.name} = {toml_value(getattr(getattr(settings, section.name), f.name))}")
        lines.append("")
    return "\n".join(lines)


def save_settings(settings: Settings, path: Path | None = None) -> Path:
    """Write every setting to the TOML file atomically (readable by its owner only)."""
    check_settings(settings)
    path = path or config_path()
    write_private(path, "# accessctl configuration; see README.md for each setting\n\n" + settings_toml(settings))
    return path


def cpu_threads(settings: Settings | None = None) -> int:
    """Threads for inference: the cores we may run on, capped so a kiosk stays responsive."""
    wanted = (settings or Settings()).runtime.threads
    if wanted > 0:
        return wanted
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        available = os.cpu_count() or 1
    return max(1, min(available, 4))
