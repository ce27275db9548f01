"""Stopping an upstream read when the client is gone (DESIGN §12).

A ``Cancellation`` is set from another thread (the API's hang-up watcher) when
the client hung up. Setting it runs the hooks the running stream registered:
``run_stream`` shuts its upstream socket down, which wakes a read blocked on a
silent upstream at once, so the read stops within the watcher's poll interval
whether or not the stream is held back. What follows is ``ClientGone``, never a
provider failure: nobody is there to blame the provider for.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)


class ClientGone(Exception):
    """The client went away: the upstream read was stopped on purpose."""


class Cancellation:
    """A one-way flag with hooks; thread-safe."""

    def __init__(self) -> None:
        self._set = threading.Event()
        self._lock = threading.Lock()
        self._hooks: list[Callable[[], None]] = []

    @property
    def cancelled(self) -> bool:
        return self._set.is_set()

    def cancel(self) -> None:
        with self._lock:
            if self._set.is_set():
                return
            self._set.set()
            hooks, self._hooks = self._hooks, []
        for hook in hooks:
            try:
                hook()
            except Exception:  # a hook must not stop the others
                logger.exception("cancellation hook failed")

    def on_cancel(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Run ``hook`` on cancel (at once if already cancelled); returns the unregister."""
        with self._lock:
            if not self._set.is_set():
                self._hooks.append(hook)

                def unregister() -> None:
                    with self._lock, contextlib.suppress(ValueError):
                        self._hooks.remove(hook)

                return unregister
        hook()
        return lambda: None

    def raise_if_cancelled(self) -> None:
        if self._set.is_set():
            raise ClientGone("the client went away")
