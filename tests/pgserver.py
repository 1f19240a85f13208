"""A throwaway PostgreSQL server for the tests: initdb into a fresh folder, pg_ctl start
on a free loopback port, stopped (or killed) by the test. As root (CI), the server
runs as the ``postgres`` user, since PostgreSQL refuses to run as root."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.certs import issue, make_ca, openssl

BIN_DIRS = [Path("/usr/lib/postgresql/15/bin"), *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)]


def find_bin(name: str) -> str | None:
    for d in BIN_DIRS:
        if (d / name).is_file():
            return str(d / name)
    return shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    def __init__(self) -> None:
        self.initdb, self.pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if not (self.initdb and self.pg_ctl):
            raise FileNotFoundError("PostgreSQL's initdb and pg_ctl are not installed (apt-get install postgresql)")
        self.root = Path(tempfile.mkdtemp(prefix="accessctl-pg-"))
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.port = _free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres")
        self.root.chmod(0o755)
        self._run([self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        self.ca = self._certificates()

    def _certificates(self) -> Path | None:
        """A throwaway CA and a server certificate for 127.0.0.1, so that TLS with
        sslmode=verify-full can be tested; None without openssl (TLS is then off)."""
        if openssl() is None:
            return None
        d = self.root
        make_ca(d)
        issue(d, "server", "127.0.0.1", server=True)
        for name in ("server.key", "server.crt"):
            if self.as_user:
                shutil.chown(d / name, "postgres")
        (d / "server.key").chmod(0o600)
        return d / "ca.pem"

    def _run(self, cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.as_user + cmd, check=True, capture_output=True, text=True, timeout=120, cwd=self.root, **kw
        )  # type: ignore[call-overload, no-any-return]

    def start(self) -> None:
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        if self.ca is not None:
            opts += f" -c ssl=on -c ssl_cert_file={self.root}/server.crt -c ssl_key_file={self.root}/server.key"
        self._run([self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "-t", "60", "start"])

    def stop(self, mode: str = "fast") -> None:
        """``immediate``: the server killed as a crash would (no checkpoint, clients cut off)."""
        subprocess.run(
            self.as_user + [self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.root,
        )

    def url(self, user: str = "postgres", db: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{db}"

    def wait_until_down(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.1)

    def cleanup(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
