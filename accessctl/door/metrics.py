"""The door in numbers for Prometheus: decisions, refusals, frames, stage latencies,
the camera, the audit log, the store, the hook, and which models decide.

A registry of its own (never the client's global one), served over HTTP by the
official client's server thread; a scrape reads counters the door has already
updated, so it never waits on inference.
"""

from __future__ import annotations

import time

from accessctl.config import parse_listen
from accessctl.door.access import Decision, EventKind, Reason
from accessctl.door.events import CameraNews, DoorEvent, HookDone, Problem, StoreNews
from accessctl.door.mqtt import MqttOut
from accessctl.errors import AccessctlError

STAGE_BUCKETS_S = (0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.6, 1.2, 2.5)
HOOK_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)


class DoorMetrics:
    def __init__(self, listen: str) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

        host, port = parse_listen(listen)
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.decisions = Counter(
            "accessctl_decisions", "Decisions by event and reason", ["event", "reason"], registry=r
        )
        self.liveness_refusals = Counter(
            "accessctl_liveness_refusals",
            "Faces refused as not live, by cause (spoof, unsure, challenge: how it failed)",
            ["cause"],
            registry=r,
        )
        self.frames = Counter("accessctl_frames_processed", "Frames through the pipeline", registry=r)
        self.dropped = Counter(
            "accessctl_frames_dropped",
            "Camera frames replaced by a newer one before the pipeline took them",
            registry=r,
        )
        self.stage = Histogram(
            "accessctl_stage_seconds",
            "Time per frame in each pipeline stage",
            ["stage"],
            buckets=STAGE_BUCKETS_S,
            registry=r,
        )
        self.camera_reconnects = Counter(
            "accessctl_camera_reconnects", "Times the camera delivered frames again after it was lost", registry=r
        )
        self.camera_lost = Gauge("accessctl_camera_lost", "1 while the camera delivers no frames", registry=r)
        self.audit_backlog = Gauge(
            "accessctl_audit_backlog", "Audit events held in memory, not yet written", registry=r
        )
        self.replica_only = Gauge(
            "accessctl_store_replica_only",
            "1 while the site's central store cannot be reached (deciding on the replica)",
            registry=r,
        )
        self.store_lag = Gauge(
            "accessctl_store_lag_seconds",
            "Seconds since the replica was last known current (0 while the store is reachable)",
            registry=r,
        )
        self.store_lag.set_function(self._store_lag)
        self.hook_failures = Counter(
            "accessctl_hook_failures", "Door hooks that failed, timed out or could not run", registry=r
        )
        self.hook_seconds = Histogram(
            "accessctl_hook_seconds", "How long each door hook ran", buckets=HOOK_BUCKETS_S, registry=r
        )
        self.problems = Counter(
            "accessctl_problems", "Problems reported that do not stop the door, by reason", ["reason"], registry=r
        )
        self.out_of_service = Gauge(
            "accessctl_out_of_service", "1 while the door cannot decide (nobody is let in)", registry=r
        )
        self.last_frame = Gauge(
            "accessctl_last_frame_timestamp_seconds", "Unix time of the last frame processed", registry=r
        )
        self._build = Gauge(
            "accessctl_build_info",
            "The program and the models deciding (value 1): version, encoder, liveness model's SHA-256",
            ["version", "encoder", "liveness"],
            registry=r,
        )
        self._offline_since: float | None = None
        self._camera_lost = False
        self._dropped_seen = 0
        try:
            self._server, self._thread = start_http_server(port, host, registry=r)
        except OSError as exc:
            raise AccessctlError(f"[metrics] listen = {listen!r}: cannot serve there ({exc.strerror or exc})") from None
        self.port = self._server.server_port

    def _store_lag(self) -> float:
        since = self._offline_since
        return 0.0 if since is None else time.monotonic() - since

    def tell(self, event: DoorEvent) -> None:
        """Count one event of the door's."""
        match event:
            case Decision(event=kind, reason=reason):
                self.decisions.labels(str(kind), str(reason)).inc()
                if kind == EventKind.DENIED and reason in (Reason.SPOOF, Reason.UNSURE, Reason.CHALLENGE):
                    cause = f"challenge_{event.why}" if reason == Reason.CHALLENGE and event.why else str(reason)
                    self.liveness_refusals.labels(cause).inc()
            case HookDone():
                if event.failed:
                    self.hook_failures.inc()
                self.hook_seconds.observe(event.seconds)
            case CameraNews():
                if not event.lost and self._camera_lost:
                    self.camera_reconnects.inc()
                self._camera_lost = event.lost
                self.camera_lost.set(1 if event.lost else 0)
            case StoreNews():
                if not event.online:
                    self.replica_only.set(1)
                    if self._offline_since is None:
                        self._offline_since = time.monotonic()
                else:
                    self.replica_only.set(0)
                    self._offline_since = None
            case Problem():
                self.problems.labels(str(event.reason)).inc()

    def watch_mqtt(self, mqtt: MqttOut) -> None:
        """The MQTT link's state, read at each scrape."""
        from prometheus_client import Gauge

        Gauge("accessctl_mqtt_connected", "1 while the MQTT broker is connected", registry=self.registry).set_function(
            lambda: 1.0 if mqtt.connected else 0.0
        )
        Gauge("accessctl_mqtt_queued", "Events waiting for the MQTT broker", registry=self.registry).set_function(
            lambda: float(mqtt.queued)
        )
        Gauge(
            "accessctl_mqtt_dropped",
            "Events dropped since start because the MQTT queue was full",
            registry=self.registry,
        ).set_function(lambda: float(mqtt.dropped))

    def build_info(self, **labels: str) -> None:
        self._build.clear()  # a restarted pipeline may decide with other models
        self._build.labels(**labels).set(1)

    def frame(self, timings_ms: dict[str, float], dropped: int, audit_backlog: int) -> None:
        """One frame processed: its stage times, the feed's drop count so far, the audit backlog."""
        self.frames.inc()
        self.last_frame.set(time.time())
        for stage, ms in timings_ms.items():
            self.stage.labels(stage).observe(ms / 1000.0)
        if dropped < self._dropped_seen:  # a new feed (the kiosk restarted its pipeline): counts start again
            self._dropped_seen = 0
        self.dropped.inc(dropped - self._dropped_seen)
        self._dropped_seen = dropped
        self.audit_backlog.set(audit_backlog)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
