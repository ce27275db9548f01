"""All-failed events: coalesced to one row per window, with no failure lost.

A burst inside one window writes one row at once; the timer writes the rest of
the burst's count when the window ends, and the process writes what is still
pending when it exits.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db.models import Sum

from providers_app.engine import events, fallback
from providers_app.models import FailoverEvent

HELLO = [{"role": "user", "content": "Say hello."}]
BURST = 7
ROOT = Path(__file__).resolve().parent.parent.parent


def _all_failed_total() -> int:
    rows = FailoverEvent.objects.filter(kind="all_failed")
    return rows.aggregate(total=Sum("count"))["total"] or 0


def _burst(n: int = BURST) -> None:
    for _ in range(n):
        with pytest.raises(fallback.AllProvidersFailed):
            fallback.complete(HELLO)


@pytest.fixture
def failing(providers, primary, secondary):
    providers()
    primary.set_fault("error", status=500)
    secondary.set_fault("error", status=503)


def test_a_burst_writes_one_row_at_once_and_the_rest_at_process_exit(failing):
    _burst()
    rows = FailoverEvent.objects.filter(kind="all_failed")
    assert [r.count for r in rows] == [1]  # one write, not one per request

    events._flush_at_exit()  # what atexit (and the Celery worker hook) runs

    assert _all_failed_total() == BURST
    assert FailoverEvent.objects.filter(kind="all_failed").count() == 2


def test_nothing_pending_writes_nothing_at_exit(failing):
    _burst(1)
    events._flush_at_exit()
    assert FailoverEvent.objects.filter(kind="all_failed").count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_timer_writes_the_pending_count_when_the_window_ends(failing, settings):
    """The timer thread writes with its own connection, so the rows are committed."""
    settings.FALLBACK_ALL_FAILED_COALESCE_S = 0.5
    _burst()

    deadline = time.monotonic() + 10  # how long to wait for the timer, not a speed goal
    while _all_failed_total() < BURST and time.monotonic() < deadline:
        time.sleep(0.05)

    assert _all_failed_total() == BURST
    assert FailoverEvent.objects.filter(kind="all_failed").count() < BURST


def test_a_short_lived_process_leaves_its_pending_count_at_exit(tmp_path):
    """A real interpreter exit: the atexit hook writes what the window held back."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "fallbackproject.settings.test",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, cwd=ROOT)
    script = (
        "import django; django.setup()\n"
        "from providers_app.engine.events import all_failed_events\n"
        f"for _ in range({BURST}):\n"
        "    all_failed_events.record(reason='all_failed', detail='d', request_id='r')\n"
    )
    subprocess.run([sys.executable, "-c", script], env=env, check=True, cwd=ROOT)
    total = subprocess.run(
        [*manage, "shell", "-c",
         "from django.db.models import Sum; from providers_app.models import FailoverEvent; "
         "print(FailoverEvent.objects.aggregate(t=Sum('count'))['t'])"],
        env=env, check=True, cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert total.stdout.strip().splitlines()[-1] == str(BURST)
