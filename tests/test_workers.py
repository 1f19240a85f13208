"""Pipeline threads are stopped and joined before the interpreter exits (an abort at
exit, "terminate called without an active exception", failed whole CI runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_a_worker_is_asked_to_stop_and_finishes_before_exit(tmp_path: Path) -> None:
    done = tmp_path / "done.txt"
    code = f"""
import threading, time
from accessctl.workers import start_worker
stop = threading.Event()
def work():
    while not stop.is_set():
        time.sleep(0.01)
    time.sleep(0.5)  # winding down takes a while, as a pipeline does
    open({str(done)!r}, "w").write("finished")
start_worker(work, (), "test-worker", stop.set)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert done.read_text() == "finished"  # a plain daemon thread would have been cut off
