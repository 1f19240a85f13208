"""The many-door figures of the README: a throwaway PostgreSQL server, a site of
PEOPLE people (one template each, random unit descriptors), then

1. a kiosk replica's start-up (the first full copy): time and the process's memory;
2. a change (an enrollment) reaching a running kiosk's replica, many times over;
3. 1:N identification on the replica: time per identity check;
4. KIOSKS kiosk processes deciding on real videos while an admin enrolls in a loop:
   events per second into the server, and events lost or duplicated (must be 0).

    .venv/bin/python scripts/store_bench.py [--people 100000] [--kiosks 8] [--seconds 60]

Needs PostgreSQL's binaries (initdb, pg_ctl) and ../shared/data's videos.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from accessctl.identity.match import identify  # noqa: E402
from accessctl.storage.audit import AuditLog  # noqa: E402
from accessctl.storage.central import ADMIN_ROLE, KIOSK_ROLE, CentralGallery, CentralStore  # noqa: E402
from accessctl.storage.gallery import Gallery, NewTemplate, encode_embedding  # noqa: E402
from accessctl.storage.replica import StoreLink  # noqa: E402
from tests.pgserver import PgServer  # noqa: E402


def fill(url: str, n: int, encoder: str) -> float:
    """n people with one template each, by COPY (what `store migrate` of a big site costs is
    not the question here: the kiosks' side is)."""
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT nextval('accessctl_version')")
        version = cur.fetchone()[0]
        with cur.copy("COPY people(employee_id, name, active, created, version) FROM STDIN") as copy:
            for i in range(n):
                copy.write_row((f"P{i:06d}", f"Person {i}", True, "2026-12-01T00:00:00Z", version))
        with cur.copy("COPY templates(employee_id, embedding, quality, source, encoder, created) FROM STDIN") as copy:
            for start in range(0, n, 10_000):
                emb = rng.standard_normal((min(10_000, n - start), 128)).astype(np.float32)
                emb /= np.linalg.norm(emb, axis=1, keepdims=True)
                for j, e in enumerate(emb):
                    copy.write_row(
                        (f"P{start + j:06d}", encode_embedding(e), 0.9, "bench", encoder, "2026-12-01T00:00:00Z")
                    )
        conn.commit()
    return time.perf_counter() - t0


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def replica_startup(url: str, home: Path) -> dict:
    """In a fresh process, so that its memory is the kiosk's own."""
    code = f"""
import json, resource, time, sys
sys.path.insert(0, {str(ROOT)!r})
from accessctl.storage.replica import StoreLink
from accessctl.storage.gallery import Gallery
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0 = time.perf_counter()
link = StoreLink({url!r}, notify=lambda _: None, replica=__import__('pathlib').Path({str(home / "replica.db")!r}),
                 events=__import__('pathlib').Path({str(home / "events.db")!r}))
link.start()
copy_s = time.perf_counter() - t0
t1 = time.perf_counter()
g = Gallery(link.replica_file)
g.index()
index_s = time.perf_counter() - t1
link.stop()
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"copy_s": copy_s, "index_s": index_s, "rss_mb": rss_mb, "rss_before_mb": before}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1800, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def change_latency(kiosk_url: str, admin_url: str, home: Path, rounds: int) -> list[float]:
    link = StoreLink(kiosk_url, notify=lambda _: None, replica=home / "replica.db", events=home / "events.db")
    link.start()
    admin = CentralGallery(admin_url)
    rng = np.random.default_rng(1)
    out = []
    with Gallery(home / "replica.db") as kiosk:
        kiosk.index()
        for i in range(rounds):
            e = rng.standard_normal(128).astype(np.float32)
            e /= np.linalg.norm(e)
            t0 = time.perf_counter()
            admin.add_person(f"L{i:04d}", f"Latency {i}", [NewTemplate(e, 0.9, "bench")])
            while identify(kiosk, e, 0.3).person is None:  # what the door's next identity check sees
                time.sleep(0.005)
            out.append(time.perf_counter() - t0)
    admin.close()
    link.stop()
    return out


def identify_ms(home: Path, repeat: int = 50) -> dict:
    rng = np.random.default_rng(2)
    with Gallery(home / "replica.db") as g:
        g.index()
        times = []
        for _ in range(repeat):
            q = rng.standard_normal(128).astype(np.float32)
            q /= np.linalg.norm(q)
            t0 = time.perf_counter()
            identify(g, q, 1.0)
            times.append((time.perf_counter() - t0) * 1000)
    return {"median_ms": statistics.median(times), "max_ms": max(times)}


def upload_rate(kiosk_url: str, home: Path, n: int = 20_000) -> dict:
    """What one kiosk's spool upload can push (a backlog after an outage): n events."""
    from accessctl.storage.audit import Event
    from accessctl.storage.replica import upload_now

    with AuditLog(home / "events.db", kiosk="backlog") as log:
        for i in range(n):
            log.append(Event("denied", "spoof", frame=i, liveness=0.1))
    t0 = time.perf_counter()
    sent = upload_now(kiosk_url, home / "events.db")
    seconds = time.perf_counter() - t0
    again = upload_now(kiosk_url, home / "events.db")  # nothing is sent twice
    return {"events": sent, "seconds": seconds, "events_per_s": sent / seconds, "sent_again": again}


def kiosks(kiosk_url: str, admin_url: str, root: Path, n: int, seconds: float, videos: list[str]) -> dict:
    homes = []
    for i in range(n):
        h = root / f"door-{i}"
        h.mkdir()
        # Eight doors on one small machine: one thread each (a real door has the machine to itself).
        (h / "config.toml").write_text(
            f'[store]\nurl = "{kiosk_url}"\n[kiosk]\nname = "door-{i}"\n[runtime]\nthreads = 1\n'
        )
        homes.append(h)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCESSCTL_")} | {"OMP_NUM_THREADS": "1"}
    # Every frame of the video (its own clock): on 2 cores 8 doors cannot keep a camera's pace, and
    # liveness needs frames 1/15 s apart, so each door takes the video at the speed it can.
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "accessctl", "run", "--headless", "--loop", "--source", videos[i % len(videos)]],
            cwd=ROOT,
            stdout=open(h / "out.jsonl", "w"),
            stderr=open(h / "err.txt", "w"),
            env=env | {"ACCESSCTL_HOME": str(h)},
        )
        for i, h in enumerate(homes)
    ]
    stop = threading.Event()
    enrolled = [0]

    def enroll_loop() -> None:
        admin = CentralGallery(admin_url)
        rng = np.random.default_rng(3)
        while not stop.is_set():
            e = rng.standard_normal(128).astype(np.float32)
            admin.add_person(f"A{enrolled[0]:05d}", "Looped", [NewTemplate(e / np.linalg.norm(e), 0.9, "bench")])
            enrolled[0] += 1
            stop.wait(0.5)
        admin.close()

    # The kiosks load their models and copy the site (on 2 cores, 8 at once take minutes).
    def started(h: Path) -> bool:
        text = (h / "out.jsonl").read_text()
        return '"state": "online"' in text and '"event": "state"' in text

    t_start = time.monotonic()
    while not all(started(h) for h in homes) and time.monotonic() - t_start < 600:
        time.sleep(1)
    startup_s = time.monotonic() - t_start
    t_admin = threading.Thread(target=enroll_loop)
    t_admin.start()
    with psycopg.connect(admin_url) as conn:
        start_count = conn.execute("SELECT count(*) FROM events WHERE kiosk LIKE 'door-%'").fetchone()[0]
    t0 = time.monotonic()
    time.sleep(seconds)
    with psycopg.connect(admin_url) as conn:
        end_count = conn.execute("SELECT count(*) FROM events WHERE kiosk LIKE 'door-%'").fetchone()[0]
    rate = (end_count - start_count) / (time.monotonic() - t0)
    stop.set()
    t_admin.join()
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(300)
    lost = duplicated = local_total = 0
    with psycopg.connect(admin_url) as conn:
        for h in homes:
            with AuditLog(h / "events.db") as log:
                local = {r["id"] for r in log.query()}
            rows = [r[0] for r in conn.execute("SELECT kiosk_seq FROM events WHERE kiosk = %s", (h.name,))]
            local_total += len(local)
            lost += len(local - set(rows))
            duplicated += len(rows) - len(set(rows))
    if local_total == 0:
        print((homes[0] / "err.txt").read_text()[-3000:], file=sys.stderr)
    return {
        "kiosks": n,
        "all_deciding_after_s": startup_s,
        "seconds": seconds,
        "events_per_s": rate,
        "events": local_total,
        "lost": lost,
        "duplicated": duplicated,
        "admin_enrollments": enrolled[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=100_000)
    ap.add_argument("--kiosks", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    data = ROOT.parent / "shared" / "data" / "video"
    videos = [
        str(data / "replay_pairs" / "pair2" / "live.mp4"),
        str(data / "replay_pairs" / "pair2" / "replay.mp4"),
        str(data / "faces" / "WolfgangLanger_Pexels.mp4"),
    ]
    server = PgServer()
    server.start()
    try:
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE site")
        url = server.url(db="site")
        with CentralStore(url) as store:
            store.init()
            encoder = store.meta("encoder") or ""
        kiosk_url, admin_url = (url.replace("postgres@", f"{r}@") for r in (KIOSK_ROLE, ADMIN_ROLE))
        result: dict = {"people": args.people, "fill_s": fill(url, args.people, encoder)}
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "a").mkdir()
            result["replica_startup"] = replica_startup(kiosk_url, root / "a")
            result["identify"] = identify_ms(root / "a")
            (root / "b").mkdir()
            lat = change_latency(kiosk_url, admin_url, root / "b", args.rounds)
            result["change_to_kiosk_s"] = {"median": statistics.median(lat), "max": max(lat), "n": len(lat)}
            (root / "c").mkdir()
            result["backlog_upload"] = upload_rate(kiosk_url, root / "c")
            if args.kiosks:
                result["kiosks"] = kiosks(kiosk_url, admin_url, root, args.kiosks, args.seconds, videos)
        buf = io.StringIO()
        json.dump(result, buf, indent=1)
        print(buf.getvalue())
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
