"""The door-unlock hook: an executable run on each grant (and, if asked, each denial).

Contract: the hook is run directly, never through a shell, as

    HOOK EVENT PERSON_ID NAME

with the environment variables ACCESSCTL_EVENT, ACCESSCTL_REASON, ACCESSCTL_PERSON_ID,
ACCESSCTL_NAME, ACCESSCTL_DISTANCE, ACCESSCTL_LIVENESS, ACCESSCTL_TIME (UTC, ISO 8601)
and ACCESSCTL_KIOSK. Names travel as single arguments, so no name can become a
command. A hook that runs past its timeout is killed with its whole process group.
Hooks run one at a time on their own thread: the kiosk never waits for a door.
"""

from __future__ import annotations

import os
import queue
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from accessctl.clock import now
from accessctl.door.access import Decision, EventKind


@dataclass(frozen=True)
class HookResult:
    decision: Decision
    returncode: int | None  # None when it could not run or was killed
    timed_out: bool
    output: str  # stdout and stderr, at most 4 KB
    error: str | None  # why it could not run
    seconds: float = 0.0  # from the start of the run to its result


def hook_env(decision: Decision, kiosk: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCESSCTL_")}
    env.update(
        {
            "ACCESSCTL_EVENT": decision.event,
            "ACCESSCTL_REASON": decision.reason,
            "ACCESSCTL_PERSON_ID": decision.person_id or "",
            "ACCESSCTL_NAME": decision.name or "",
            "ACCESSCTL_DISTANCE": "" if decision.distance is None else f"{decision.distance:.4f}",
            "ACCESSCTL_LIVENESS": "" if decision.liveness is None else f"{decision.liveness:.4f}",
            "ACCESSCTL_TIME": now(),
            "ACCESSCTL_KIOSK": kiosk,
        }
    )
    return env


OUTPUT_KEPT = 4096  # bytes of a hook's output kept for the audit log (the last ones)
EXIT_GRACE_S = 0.2  # after the hook exits, how long its output may still trickle in


def run_hook(executable: str | Path, decision: Decision, *, kiosk: str = "kiosk", timeout_s: float = 5.0) -> HookResult:
    """Run the hook once and say how it went; never raises, never outlives its timeout.

    The timeout bounds the whole run, reading included: a hook that leaves a helper
    holding its output pipe (a daemon started with setsid) is not waited for, and a
    hook that prints without end costs at most :data:`OUTPUT_KEPT` bytes of memory.
    """
    argv = [str(executable), decision.event, decision.person_id or "", decision.name or ""]
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=hook_env(decision, kiosk),
            start_new_session=True,
        )
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in an argument or the environment
        return HookResult(
            decision, None, False, "", f"cannot run {executable}: {getattr(exc, 'strerror', None) or exc}"
        )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    kept = b""
    exited_at: float | None = None
    ran_out = False  # still running at the deadline: timed out, whatever ends it after
    fd = proc.stdout.fileno()
    try:
        while True:
            now_s = time.monotonic()
            if exited_at is None and proc.poll() is not None:
                exited_at = now_s
            if now_s >= deadline:
                ran_out = exited_at is None
                break
            if exited_at is not None and now_s - exited_at >= EXIT_GRACE_S:
                break
            ready, _, _ = select.select([fd], [], [], min(0.05, deadline - now_s))
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:  # every writer closed the pipe
                    break
                kept = (kept + chunk)[-OUTPUT_KEPT:]
    finally:
        proc.stdout.close()  # a helper still writing gets EPIPE, not our memory
    try:  # the pipe can close a moment before the exit status is there
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        # a hook that ran out of time and then died of the closed pipe (SIGPIPE) was
        # still killed at its deadline: say so, not "exit status -13"
        timed_out = ran_out
    except subprocess.TimeoutExpired:
        timed_out = True
    if timed_out:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
    out = kept.decode("utf-8", "replace")
    if timed_out:
        return HookResult(decision, None, True, out, f"killed after {timeout_s:g} s")
    return HookResult(decision, proc.returncode, False, out, None)


class HookRunner:
    """One worker thread running hooks in order; results go to ``on_result``."""

    def __init__(
        self,
        executable: str | Path,
        on_result: Callable[[HookResult], None],
        *,
        kiosk: str = "kiosk",
        timeout_s: float = 5.0,
        on_deny: bool = False,
    ) -> None:
        self.executable, self.kiosk, self.timeout_s, self.on_deny = executable, kiosk, timeout_s, on_deny
        self.on_result = on_result
        self._queue: queue.Queue[Decision | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="accessctl-hook", daemon=True)
        self._thread.start()

    def deliver(self, decision: Decision) -> None:
        """Queue the hook for a grant (and for a denial when ``on_deny``): a sink of the runner."""
        if decision.event == EventKind.GRANTED or self.on_deny:
            self._queue.put(decision)

    @property
    def alive(self) -> bool:
        """False if the worker is gone: then no door opens, and the kiosk must say so."""
        return self._thread.is_alive()

    def _work(self) -> None:
        while True:
            decision = self._queue.get()
            if decision is None:
                return
            started = time.monotonic()
            try:
                result = run_hook(self.executable, decision, kiosk=self.kiosk, timeout_s=self.timeout_s)
            except Exception as exc:  # the worker must outlive any one hook: the next grant still opens
                result = HookResult(decision, None, False, "", f"the hook failed: {exc}")
            result = replace(result, seconds=time.monotonic() - started)
            try:
                self.on_result(result)
            except Exception:  # a failing listener (a full audit log) is reported by the listener itself
                pass

    def close(self, wait_s: float = 30.0) -> None:
        """Finish the hooks already queued, then stop."""
        self._queue.put(None)
        self._thread.join(wait_s)
