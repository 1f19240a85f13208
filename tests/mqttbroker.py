"""A throwaway Mosquitto broker for the tests, on a free loopback port, with its
sessions kept on disk so that a subscriber's queued messages survive a restart (the
broker stopped mid-run and started again, as a real one is)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests.certs import issue, make_ca
from tests.pgserver import _free_port


def find_mosquitto() -> str | None:
    for path in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.path.isfile(path):
            return path
    return shutil.which("mosquitto")


class Broker:
    """``secure``: TLS only, with a throwaway CA, and a client must bring both a
    certificate that CA signed and the password of user ``door`` (in ``password_file``)."""

    def __init__(self, secure: bool = False) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise FileNotFoundError("the Mosquitto MQTT broker is not installed (apt-get install mosquitto)")
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="accessctl-mqtt-"))
        self.port = _free_port()
        self.secure = secure
        self.conf = self.root / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {self.root}/",
            "log_dest stderr",
        ]
        if secure:
            self._certificates()
            lines += [
                f"cafile {self.root}/ca.pem",
                f"certfile {self.root}/server.crt",
                f"keyfile {self.root}/server.key",
                "require_certificate true",
                "allow_anonymous false",
                f"password_file {self.root}/passwd",
            ]
        else:
            lines.append("allow_anonymous true")
        if os.geteuid() == 0:
            lines.append("user root")  # otherwise it drops to 'mosquitto', who cannot write here
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def _certificates(self) -> None:
        make_ca(self.root)
        issue(self.root, "server", "127.0.0.1", server=True)
        issue(self.root, "client", "door-1", server=False)
        self.password_file = self.root / "door.password"
        self.password_file.write_text("correct horse battery\n")
        subprocess.run(
            ["mosquitto_passwd", "-c", "-b", str(self.root / "passwd"), "door", "correct horse battery"],
            check=True,
            capture_output=True,
            timeout=60,
        )

    @property
    def url(self) -> str:
        return f"mqtts://door@127.0.0.1:{self.port}" if self.secure else f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.root / "broker.log", "ab")  # noqa: SIM115 - the broker's, closed with it
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start: {(self.root / 'broker.log').read_text()[-2000:]}")

    def stop(self) -> None:
        """As a service manager stops it: SIGTERM (it saves its sessions), then wait."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(20)
        self.proc = None

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


class Subscriber:
    """A persistent-session subscriber (QoS 1) that keeps every message in order."""

    def __init__(self, broker: Broker, topic: str, client_id: str = "accessctl-test-subscriber") -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, dict[str, Any], bool]] = []  # (topic, payload, retained)
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        self.client.reconnect_delay_set(0.2, 1)
        self.client.on_connect = lambda c, u, f, r, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        if broker.secure:
            r = broker.root
            self.client.tls_set(
                ca_certs=str(r / "ca.pem"), certfile=str(r / "client.crt"), keyfile=str(r / "client.key")
            )
            self.client.username_pw_set("door", "correct horse battery")
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("the test subscriber could not subscribe")

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._lock:
            self.messages.append((msg.topic, json.loads(msg.payload), bool(msg.retain)))

    def wait_for(self, test: Any, timeout_s: float = 30.0) -> list[tuple[str, dict[str, Any], bool]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                got = list(self.messages)
            if test(got):
                return got
            time.sleep(0.05)
        raise AssertionError(f"not seen in {timeout_s} s; got {got[-10:]}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
