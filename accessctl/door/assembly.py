"""The one place a door is put together: the headless command, the demo and the kiosk
window all open their door here, so a part added to a door (an output, a check at
start-up) is added once.

Two lifetimes. :func:`open_site` holds what outlives the pipeline's restarts: the
reporter (MQTT, metrics, the health file) and, on a many-door site, the store link
that keeps the door's replica current. :func:`open_door` holds one start of the
pipeline: the gallery it decides on, the audit log, the models, the runner and the
frame feed. The kiosk window restarts the second inside the first (out of service,
then again); a headless door opens each once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from accessctl.config import Settings
from accessctl.door.access import Decision
from accessctl.door.events import Listener, StoreNews
from accessctl.door.pipeline import FrameResult, Pipeline
from accessctl.door.report import Reporter
from accessctl.door.runner import Runner, RunStats
from accessctl.frames.capture import FeedStatus, FrameFeed
from accessctl.frames.sources import Frame
from accessctl.liveness.saved import load_liveness
from accessctl.storage.audit import AuditLog
from accessctl.storage.gallery import Gallery
from accessctl.storage.replica import door_store


@dataclass(frozen=True)
class Site:
    reporter: Reporter
    gallery_path: Path | None  # the replica a many-door site's door decides on; None: the door's own gallery


@contextmanager
def open_site(
    settings: Settings, notify: Listener, store_news: Callable[[StoreNews], None] | None = None
) -> Iterator[Site]:
    """The reporter and the store link. ``notify`` hears the reporter's own news (the
    MQTT broker away or back); ``store_news`` the store link's (default ``notify``)."""
    with Reporter(settings, notify) as reporter, door_store(settings, reporter.wrap(store_news or notify)) as replica:
        yield Site(reporter, replica)


@dataclass(frozen=True)
class Door:
    runner: Runner
    feed: FrameFeed

    def run(self) -> RunStats:
        """Decide on the feed's frames until it ends or :meth:`stop`."""
        return self.runner.run(self.feed)

    def stop(self) -> None:
        self.runner.stop()


@contextmanager
def open_door(
    settings: Settings,
    sources: str | Sequence[str],
    emit: Listener,
    *,
    reporter: Reporter | None = None,
    realtime: bool = False,
    loop: bool = False,
    gallery_path: Path | None = None,
    audit_path: Path | None = None,
    on_frame: Callable[[Frame, FrameResult, list[Decision]], None] | None = None,
    on_status: Callable[[FeedStatus], None] | None = None,
) -> Iterator[Door]:
    """One start of a door: its gallery (``gallery_path``, default the data folder's),
    audit log, models, runner and feed. The audit log is checked first: a door that
    cannot log does not start, nor load its models. ``emit`` hears every event;
    ``on_frame`` each processed frame; ``on_status`` the feed's states, after the
    runner has logged them."""
    with Gallery(gallery_path) as gallery, AuditLog(audit_path, kiosk=settings.kiosk.name) as audit:
        audit.check_writable()
        pipeline = Pipeline(gallery, settings, load_liveness())
        runner = Runner(pipeline, audit, emit, on_frame=on_frame, reporter=reporter)

        def status(s: FeedStatus) -> None:
            runner.feed_status(s)
            if on_status is not None:
                on_status(s)

        yield Door(runner, FrameFeed(sources, realtime=realtime, loop=loop, on_status=status))
