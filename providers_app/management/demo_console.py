"""The demo's terminal: the credentials block last, then the live story, then one
line when Ctrl-C has stopped everything.

- `EventStory` prints one line per failover event row the web process writes
  (failover, breaker opened, probe, closed, all failed, continuation, ...), with
  provider names, instead of the log lines and request lines that would bury it.
- `console_quiet` raises the console's log level once the story starts:
  errors still show; the worker's and beat's logs are in files.
- `terminal_foreground` puts the demo in a process group of its own that owns
  the terminal, so Ctrl-C reaches the demo and its children but not `make`,
  which would otherwise print "make: *** [run] Interrupt" and exit 2.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator

from django.db.models.signals import post_save
from django.utils import timezone

from providers_app.models import FailoverEvent, Provider

Kind = FailoverEvent.Kind


class EventStory:
    """Prints a line for each FailoverEvent saved in this process while connected."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        self._names: dict[int, str] = {}
        self._lock = threading.Lock()

    def connect(self) -> EventStory:
        post_save.connect(self._saved, sender=FailoverEvent, weak=False)
        return self

    def disconnect(self) -> None:
        post_save.disconnect(self._saved, sender=FailoverEvent)

    def _saved(self, sender, instance: FailoverEvent, created: bool, **kwargs) -> None:
        if created:
            self._write(self.line(instance))

    def line(self, event: FailoverEvent) -> str:
        at = timezone.localtime(event.created_at)
        return f"{at:%H:%M:%S}  {event.get_kind_display():<22} {self._what(event)}"

    def _what(self, event: FailoverEvent) -> str:
        provider = self._name(event.provider_id)
        status = f", HTTP {event.status_code}" if event.status_code else ""
        why = f"({event.reason}{status})" if event.reason else ""
        if event.kind == Kind.FAILOVER:
            return f"{provider} -> {self._name(event.to_provider_id)} {why}".rstrip()
        if event.kind == Kind.BREAKER_HALF_OPEN:
            return f"{provider}: probing, one request may try it again"
        if event.kind == Kind.BREAKER_CLOSED:
            return f"{provider}: breaker closed, traffic is back {why}".rstrip()
        if event.kind == Kind.ALL_FAILED:
            times = f" x{event.count}" if event.count > 1 else ""
            return f"every provider failed{times} {why}".rstrip()
        if event.kind == Kind.CONTINUATION:
            return f"{provider} cut off; {self._name(event.to_provider_id)} finished the answer"
        return f"{provider} {why}".rstrip()

    def _name(self, provider_id: int | None) -> str:
        if provider_id is None:
            return "-"
        with self._lock:
            if provider_id not in self._names:
                self._names.update(Provider.objects.values_list("pk", "name"))
            return self._names.get(provider_id, f"provider {provider_id}")


def console_quiet() -> None:
    """Only errors reach the terminal's log handlers from now on, and the request
    log not even those: an all-failed 503 is told by the story."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setLevel(logging.ERROR)
    # Django's own console handler hangs on "django" (4xx warnings like a probe
    # of /metrics without its token); the request log has one of its own.
    logging.getLogger("django").setLevel(logging.ERROR)
    logging.getLogger("django.server").setLevel(logging.CRITICAL)


@contextlib.contextmanager
def terminal_foreground() -> Iterator[None]:
    """Own the terminal's foreground for the demo's life, then give it back.

    A no-op without a terminal (tests, CI, a supervisor) or where the process
    already leads its group.
    """
    try:
        tty = sys.stdin.fileno()
        if not os.isatty(tty) or os.getpgrp() == os.getpid():
            raise OSError
        previous = os.tcgetpgrp(tty)
    except (OSError, ValueError):
        yield
        return
    # Changing the foreground from a background group sends SIGTTOU; ignored here.
    ttou = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.setpgid(0, 0)
        os.tcsetpgrp(tty, os.getpgrp())
    except OSError:
        signal.signal(signal.SIGTTOU, ttou)
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.tcsetpgrp(tty, previous)
        signal.signal(signal.SIGTTOU, ttou)
