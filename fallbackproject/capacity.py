"""How full the web workers are: each worker's chat slots, and a board that
the gunicorn master and every worker share, so readiness speaks for the whole
server and not for whichever worker a probe happened to reach.

`Slots` (one per worker process) admits a chat when one of its `capacity`
slots is free; otherwise the chat waits at most `queue_s` seconds for one, and
at most `queue` chats wait at once; a chat that gets no slot is refused (the
caller answers 503, fallbackproject/admission.py). Admitted chats are never
slowed down by the ones waiting: a waiting chat holds a thread blocked on a
condition and costs no CPU.

`Board` is an anonymous shared memory map made by the master before it forks
its workers: one row per worker (capacity, running, waiting), claimed by the
master when it forks a worker and released when the worker exits. A worker
rewrites its row whenever its counts change; the master's health listener
(fallbackproject/health_listener.py) and `/readyz` on the main port read the
sum. A row is a few aligned 8-byte integers: a reader may see one count a
change behind, which readiness tolerates.
"""

import mmap
import struct
import threading
import time
from dataclasses import dataclass

_ROW = struct.Struct("qqqqq")  # claimed, capacity, running, waiting, held


@dataclass(frozen=True)
class Load:
    """Chats running and waiting against the capacity (one worker, or the sum).

    `held` counts the connections a worker holds, chats or not, from the moment
    its main loop accepts them: ahead of `running`, which counts a chat only
    once a thread has admitted it."""

    capacity: int
    running: int
    waiting: int
    workers: int = 1
    held: int = 0

    @property
    def saturated(self) -> bool:
        """No free slot: the next chat would wait (or be refused)."""
        return self.running >= self.capacity

    def as_json(self) -> dict:
        return {
            "status": "saturated" if self.saturated else "ready",
            "capacity": self.capacity,
            "running": self.running,
            "waiting": self.waiting,
            "workers": self.workers,
        }


class Board:
    """Rows of worker load in memory shared across fork (see the module's docstring)."""

    def __init__(self, rows: int = 64) -> None:
        self.rows = rows
        # Anonymous and MAP_SHARED (mmap's default on Unix): forked workers
        # write into the very pages the master reads.
        self._memory = mmap.mmap(-1, rows * _ROW.size)
        self._claim_lock = threading.Lock()

    def claim(self) -> int:
        """A free row for a worker about to be forked (master)."""
        with self._claim_lock:
            for row in range(self.rows):
                if _ROW.unpack_from(self._memory, row * _ROW.size)[0] == 0:
                    _ROW.pack_into(self._memory, row * _ROW.size, 1, 0, 0, 0, 0)
                    return row
        raise RuntimeError(f"more than {self.rows} workers at once")

    def release(self, row: int) -> None:
        """The worker of `row` exited (master)."""
        _ROW.pack_into(self._memory, row * _ROW.size, 0, 0, 0, 0, 0)

    def write(self, row: int, load: Load) -> None:
        """A worker's current counts (worker)."""
        row_values = (load.capacity, load.running, load.waiting, load.held)
        _ROW.pack_into(self._memory, row * _ROW.size, 1, *row_values)

    def total(self) -> Load:
        """The sum over the workers that have started serving (capacity > 0)."""
        capacity = running = waiting = held = workers = 0
        for load in self._serving():
            capacity, running = capacity + load.capacity, running + load.running
            waiting, held = waiting + load.waiting, held + load.held
            workers += 1
        return Load(capacity, running, waiting, workers, held)

    def room_elsewhere(self, own_row: int) -> bool:
        """Another serving worker holds fewer connections than it has chat slots."""
        return any(
            load.held < load.capacity for row, load in self._serving(rows=True) if row != own_row
        )

    def _serving(self, *, rows: bool = False):
        for row in range(self.rows):
            claimed, cap, run, wait, held = _ROW.unpack_from(self._memory, row * _ROW.size)
            if claimed and cap > 0:
                load = Load(cap, run, wait, 1, held)
                yield (row, load) if rows else load


# Set in the worker by gunicorn.conf.py's post_fork hook: the shared board and
# this worker's row. Unset (None) under runserver, tests and other servers,
# where readiness speaks for this process alone.
board: Board | None = None
board_row: int | None = None


def attach(shared: Board, row: int) -> None:
    global board, board_row
    board, board_row = shared, row


class Slots:
    """A worker's chat slots (see the module's docstring)."""

    def __init__(self, capacity: int, queue: int, queue_s: float) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity, self.queue, self.queue_s = capacity, max(0, queue), max(0.0, queue_s)
        self._cond = threading.Condition()
        self._running = 0
        self._waiting = 0
        self._held = 0
        self._publish()  # the worker counts in readiness before its first chat
        global local_slots
        local_slots = self

    def enter(self) -> bool:
        """Take a slot, waiting at most queue_s; False when none was had."""
        with self._cond:
            if self._running < self.capacity:
                self._running += 1
                self._publish()
                return True
            if self._waiting >= self.queue or self.queue_s <= 0:
                return False
            self._waiting += 1
            self._publish()
            deadline = time.monotonic() + self.queue_s
            try:
                while self._running >= self.capacity:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(left)
                self._running += 1
                return True
            finally:
                self._waiting -= 1
                self._publish()

    def leave(self) -> None:
        """Give the slot back: the longest-waiting chat, if any, takes it."""
        with self._cond:
            self._running -= 1
            self._publish()
            self._cond.notify()

    def hold(self, connections: int) -> None:
        """The connections this worker holds now (its gunicorn worker tells)."""
        self._held = connections
        self._publish()

    def load(self) -> Load:
        return Load(self.capacity, self._running, self._waiting, 1, self._held)

    def _publish(self) -> None:
        if board is not None and board_row is not None:
            board.write(board_row, self.load())


# The chat slots of this process (the last made; one per serving process).
local_slots: Slots | None = None


def prefers_another_worker() -> bool:
    """This worker holds as many connections as it has chat slots while another
    worker holds fewer: a new connection is better accepted there
    (fallbackproject/gunicorn_worker.py).

    Connections, not admitted chats: a worker's main loop accepts faster than
    its threads admit, and while only admitted chats counted, one worker took
    some 700 connections for 576 slots in a burst and refused chats with 503
    while the other worker had room (bench/concurrency.py, 1,024 clients)."""
    if local_slots is None or board is None or board_row is None:
        return False
    if local_slots.load().held < local_slots.capacity:
        return False
    return board.room_elsewhere(board_row)


def connections_held(count: int) -> None:
    """This worker's gunicorn loop now holds `count` connections."""
    if local_slots is not None:
        local_slots.hold(count)


def server_load(slots: Slots) -> Load:
    """The whole server's load when the board is attached, else this process's."""
    if board is not None:
        return board.total()
    return slots.load()
