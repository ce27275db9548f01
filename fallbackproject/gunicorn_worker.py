"""Gunicorn's threaded worker, which leaves a new connection to a sibling worker
while its own chat slots are all taken and a sibling has a free one.

Each worker accepts more connections than it has chat slots (the queue and
the spare threads, fallbackproject/serving.py), and the kernel hands a new
connection to whichever worker accepts first. Without this, a worker with
every slot busy could take a chat that then waits in its queue, and is refused
after WEB_QUEUE_S, while the other worker had room. "Busy" counts the
connections the worker holds (gunicorn's `nr_conns`, published on the shared
board after every accept and finish), since admitted chats lag behind them.
Declining pauses accepting until the next turn of gunicorn's loop (at most a
second; sooner as soon as any request finishes), and `DECLINE_PAUSE_S` keeps a
connection no sibling has taken yet from spinning the loop.
"""

import time

from gunicorn.workers.gthread import ThreadWorker

from fallbackproject import capacity

DECLINE_PAUSE_S = 0.02


class ChatThreadWorker(ThreadWorker):
    def accept(self, listener) -> None:
        if capacity.prefers_another_worker():
            self.set_accept_enabled(False)  # the run loop enables it again next turn
            time.sleep(DECLINE_PAUSE_S)
            return
        super().accept(listener)
        capacity.connections_held(self.nr_conns)

    def finish_request(self, conn, fs) -> None:
        super().finish_request(conn, fs)
        capacity.connections_held(self.nr_conns)
