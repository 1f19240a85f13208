"""What a door tells the systems beside it: MQTT, Prometheus, its health file and the
service manager's watchdog.

One :class:`Reporter` per door process, made before the store link and the runner
and outliving the kiosk's pipeline restarts. It hears the same events as the JSON
lines (the runner's ``emit`` and the store link's notices pass through
:meth:`Reporter.wrap`), and one call per frame; it keeps nothing the door decides on,
and nothing in it can block a decision: MQTT queues, metrics count, the health file
is written at most once a second.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType

from accessctl import __version__
from accessctl.config import Settings
from accessctl.door.events import CameraNews, DoorEvent, Problem, StoreNews
from accessctl.door.health import Heartbeat
from accessctl.door.metrics import DoorMetrics
from accessctl.door.mqtt import MqttOut

log = logging.getLogger(__name__)


class Reporter:
    """``notify``: where the reporter's own troubles go (a broker that cannot be
    reached): the headless JSON lines."""

    def __init__(self, settings: Settings, notify: Callable[[Problem], None] | None = None) -> None:
        kiosk = settings.kiosk.name
        self._notify = notify
        self.heartbeat = Heartbeat(kiosk)
        self.mqtt: MqttOut | None = None
        self.metrics: DoorMetrics | None = None
        self._why_out = ""
        self._store_why = ""
        try:
            if settings.metrics.listen:
                self.metrics = DoorMetrics(settings.metrics.listen)
            if settings.mqtt.url:
                self.mqtt = MqttOut(settings.mqtt, kiosk, self._own_news)
                if self.metrics is not None:
                    self.metrics.watch_mqtt(self.mqtt)
        except BaseException:
            self.close("could not start")
            raise

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close(str(exc) if exc is not None and not isinstance(exc, KeyboardInterrupt) else "stopped")

    def wrap(self, emit: Callable[[StoreNews], None]) -> Callable[[StoreNews], None]:
        """``emit``, then this reporter: what a listener is told, the integrations hear too."""

        def both(event: StoreNews) -> None:
            emit(event)
            self.tell(event)

        return both

    def _own_news(self, event: Problem) -> None:
        if self._notify is not None:
            self._notify(event)
        if self.metrics is not None:
            self.metrics.tell(event)

    def tell(self, event: DoorEvent) -> None:
        try:
            self._tell(event)
        except Exception:  # an integration's fault never stops a door that decides rightly
            log.exception("accessctl: reporting an event failed")

    def _tell(self, event: DoorEvent) -> None:
        if self.metrics is not None:
            self.metrics.tell(event)
        if self.mqtt is not None:
            self.mqtt.tell(event)
        if isinstance(event, StoreNews):
            self._store_why = "" if event.online else (event.detail or "unreachable")
            self.heartbeat.state.store = self._store_why
            self._publish_status()
        elif isinstance(event, CameraNews):
            self.heartbeat.state.camera = event.reason if event.lost else ""
            self.heartbeat.beat(force=True)

    def models(self, encoder: str, liveness: str) -> None:
        """Which models decide (the build info gauge): told by each pipeline start."""
        if self.metrics is not None:
            self.metrics.build_info(version=__version__, encoder=encoder, liveness=liveness)

    def frame(
        self, timings_ms: dict[str, float], *, dropped: int, audit_backlog: int, fps: float | None, min_fps: float
    ) -> None:
        """One frame processed by the runner's loop."""
        try:
            if self.metrics is not None:
                self.metrics.frame(timings_ms, dropped, audit_backlog)
            self.heartbeat.frame(fps, min_fps, audit_backlog)
        except Exception:  # as in tell: the health file then goes stale, which is the right news
            log.exception("accessctl: reporting a frame failed")

    def ready(self) -> None:
        """The runner's loop starts (after the models are loaded and warmed up)."""
        self.heartbeat.ready()

    def alive(self) -> None:
        """The loop is alive without a frame (a camera being reopened)."""
        self.heartbeat.beat()

    def out_of_service(self, why: str) -> None:
        """Nobody can be let in (``why``), or, with "", the door decides again."""
        self._why_out = why
        self.heartbeat.state.out_of_service = why
        self.heartbeat.beat(force=True)
        if self.metrics is not None:
            self.metrics.out_of_service.set(1 if why else 0)
        self._publish_status()

    def _publish_status(self) -> None:
        if self.mqtt is None:
            return
        if self._why_out:
            self.mqtt.status("out-of-service", self._why_out)
        elif self._store_why:
            self.mqtt.status("replica-only", self._store_why)
        else:
            self.mqtt.status("online")

    def close(self, why: str = "stopped") -> None:
        if self.mqtt is not None:
            self.mqtt.close(why)
            self.mqtt = None
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None
        self.heartbeat.close()
