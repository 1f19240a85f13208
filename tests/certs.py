"""A throwaway certificate authority for the tests' real servers (PostgreSQL, Mosquitto):
EC P-256 keys made by the openssl command, valid for two days."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def openssl() -> str | None:
    return shutil.which("openssl")


def _run(folder: Path, *args: str) -> None:
    tool = openssl()
    if tool is None:
        raise FileNotFoundError("openssl is not installed")
    subprocess.run([tool, *args], check=True, capture_output=True, cwd=folder, timeout=60)


def _key(name: str) -> list[str]:
    return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{name}.key"]


def make_ca(folder: Path, cn: str = "accessctl test CA") -> Path:
    """``folder``/ca.key and ca.pem, a self-signed CA; returns ca.pem."""
    _run(folder, "req", "-x509", *_key("ca"), "-out", "ca.pem", "-days", "2", "-subj", f"/CN={cn}")
    return folder / "ca.pem"


def issue(folder: Path, name: str, cn: str, *, server: bool) -> Path:
    """``folder``/NAME.key and NAME.crt signed by the CA in ``folder``; a server's names
    127.0.0.1 as its address. Returns NAME.crt."""
    _run(folder, "req", *_key(name), "-out", f"{name}.csr", "-subj", f"/CN={cn}")
    ext = []
    if server:
        (folder / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
        ext = ["-extfile", "ext"]
    sign = ["-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", *ext]
    _run(folder, "x509", "-req", "-in", f"{name}.csr", *sign, "-out", f"{name}.crt")
    return folder / f"{name}.crt"
