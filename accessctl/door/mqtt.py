"""The door's news on MQTT, for building automation beside the door (Home Assistant,
Node-RED): every event as JSON on ``prefix/<kiosk>/events`` (QoS 1), and the door's
state retained on ``prefix/<kiosk>/status`` with ``offline`` as the broker's last will.

A broker that is down never holds up the door: :meth:`MqttOut.tell` only appends to a
bounded queue; paho-mqtt's network thread connects, reconnects with back-off, and a
sender thread hands the queue over, in order, only while connected. While away, the
oldest events are dropped past ``[mqtt] queue`` and counted; the audit log stays the
record. Messages already handed to paho are resent by it after a reconnect (QoS 1:
at least once).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from accessctl.clock import now as iso_now
from accessctl.config import MqttSettings, parse_mqtt_url
from accessctl.door.events import DoorEvent, Problem, ProblemKind
from accessctl.errors import AccessctlError

IN_FLIGHT = 100  # messages handed to paho and not yet acknowledged, at most
RECONNECT_S = (1, 30)  # paho's back-off between connection attempts: first, most


def _read_secret(path: str, what: str) -> str:
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise AccessctlError(
            f"[mqtt] {what} {path}: cannot be read ({getattr(exc, 'strerror', None) or exc})"
        ) from None
    if not text or "\n" in text:
        raise AccessctlError(f"[mqtt] {what} {path} must hold the password alone, on one line")
    return text


class MqttOut:
    """One door's connection to a broker: the event queue, the retained status and the will."""

    def __init__(self, settings: MqttSettings, kiosk: str, notify: Callable[[Problem], None] | None = None) -> None:
        """``notify`` hears, once each, when the broker cannot be reached (or refuses us) and when it can again."""
        import paho.mqtt.client as mqtt

        target = parse_mqtt_url(settings.url, kiosk)
        self.kiosk = kiosk
        self.events_topic, self.status_topic = target.events_topic, target.status_topic
        self.where = f"{'mqtts' if target.tls else 'mqtt'}://{target.host}:{target.port}"
        self._queue: deque[bytes] = deque()
        self._limit = settings.queue
        self._cv = threading.Condition()
        self._stop = False  # close() was called: send what is queued, then end
        self._closed = False  # ... and now end whatever is left
        self._connected = False
        self._status: dict[str, Any] = {"state": "online"}
        self.dropped = 0  # events lost because the queue was full while the broker was away
        self.notify = notify
        self._problem: str | None = None  # why the broker is not connected, once told
        # clean sessions (the queue here is the door's own): an id unique to this process
        client_id = f"accessctl-{kiosk}-{socket.gethostname()}-{os.getpid()}"[:200]
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        if target.username is not None:
            password = _read_secret(settings.password_file, "password_file") if settings.password_file else None
            client.username_pw_set(target.username, password)
        elif settings.password_file:
            raise AccessctlError("[mqtt] password_file is set but the url names no user (mqtts://USER@host/...)")
        if target.tls:
            if bool(settings.cert_file) != bool(settings.key_file):
                raise AccessctlError("[mqtt] cert_file and key_file go together")
            try:
                client.tls_set(
                    ca_certs=settings.ca_file or None,
                    certfile=settings.cert_file or None,
                    keyfile=settings.key_file or None,
                    cert_reqs=ssl.CERT_REQUIRED,
                )
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise AccessctlError(f"[mqtt] TLS files: {exc}") from None
        elif settings.ca_file or settings.cert_file or settings.key_file:
            raise AccessctlError("[mqtt] ca_file, cert_file and key_file need an mqtts:// url")
        client.will_set(
            self.status_topic, self._status_payload({"state": "offline", "why": "connection lost"}), qos=1, retain=True
        )
        client.reconnect_delay_set(*RECONNECT_S)
        client.max_inflight_messages_set(IN_FLIGHT)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        self._client = client
        try:
            client.connect_async(target.host, target.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise AccessctlError(f"[mqtt] {self.where}: {exc}") from None
        client.loop_start()
        self._sender = threading.Thread(target=self._send, name="accessctl-mqtt", daemon=True)
        self._sender.start()

    def _status_payload(self, status: dict[str, Any]) -> bytes:
        return json.dumps({"kiosk": self.kiosk, "time": iso_now(), **status}).encode()

    # -- paho's thread --------------------------------------------------------------------
    def _trouble(self, why: str) -> None:
        with self._cv:
            self._connected = False
            first, self._problem = self._problem is None, why
        if first and self.notify is not None:
            self.notify(
                Problem(
                    ProblemKind.MQTT, f"the MQTT broker {self.where}: {why}; events wait in a queue of {self._limit}"
                )
            )

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self._trouble("cannot connect")

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if getattr(reason, "is_failure", False):
            self._trouble(f"refused: {reason}")
            return
        with self._cv:
            self._connected = True
            status = dict(self._status)
            told, self._problem = self._problem, None
            self._cv.notify_all()
        if told is not None and self.notify is not None:
            self.notify(Problem(ProblemKind.MQTT, f"the MQTT broker {self.where} is connected again"))
        # the broker holds "offline" from the will or a last stop: say where the door is now
        client.publish(self.status_topic, self._status_payload(status), qos=1, retain=True)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if self._closed:
            with self._cv:
                self._connected = False
        else:
            self._trouble(f"connection lost ({reason})")

    # -- the door's side ------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def queued(self) -> int:
        return len(self._queue)

    def tell(self, event: DoorEvent) -> None:
        """Queue one event; never blocks on the network."""
        payload = json.dumps({"kiosk": self.kiosk, "time": iso_now(), **event.to_json()}).encode()
        with self._cv:
            self._queue.append(payload)
            while len(self._queue) > self._limit:
                self._queue.popleft()
                self.dropped += 1
            self._cv.notify_all()

    def status(self, state: str, why: str = "") -> None:
        """The door's state, retained: online, replica-only, out-of-service (with why)."""
        status = {"state": state, **({"why": why} if why else {})}
        with self._cv:
            if status == self._status:
                return
            self._status = status
        self._client.publish(self.status_topic, self._status_payload(status), qos=1, retain=True)

    def _send(self) -> None:
        in_flight: deque[Any] = deque()
        while True:
            with self._cv:
                while in_flight and in_flight[0].is_published():
                    in_flight.popleft()
                if self._closed or (self._stop and not self._queue and not in_flight):
                    return
                if not (self._connected and self._queue and len(in_flight) < IN_FLIGHT):
                    self._cv.wait(0.05 if in_flight else 0.5)
                    continue
                payload = self._queue.popleft()
            in_flight.append(self._client.publish(self.events_topic, payload, qos=1))

    def close(self, why: str = "stopped", wait_s: float = 3.0) -> None:
        """Send what is queued (for up to ``wait_s`` while connected), say offline, disconnect."""
        deadline = time.monotonic() + wait_s
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        while self._sender.is_alive() and self._connected and time.monotonic() < deadline:
            self._sender.join(0.05)
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        if self._connected:
            info = self._client.publish(
                self.status_topic, self._status_payload({"state": "offline", "why": why}), qos=1, retain=True
            )
            try:
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                pass
        self._client.disconnect()
        self._client.loop_stop()
