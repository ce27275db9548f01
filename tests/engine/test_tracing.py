"""The trace buffer: where sampled traces are written (engine/tracing.py)."""

import pytest

from providers_app.engine import counters
from providers_app.engine.tracing import BATCH, Outcome, TraceRecorder, flush_traces, trace_buffer
from providers_app.models import RequestTrace


@pytest.fixture(autouse=True)
def _empty_buffer(settings):
    settings.FALLBACK_TRACE_SAMPLE_RATE = 1.0
    trace_buffer.discard()
    yield
    trace_buffer.discard()


def _answered(n: int) -> None:
    for i in range(n):
        recorder = TraceRecorder(f"r{i}")
        step = recorder.attempt_started("primary")
        recorder.attempt_answered(step, first_output_s=None)
        recorder.finish(Outcome.ANSWERED, provider="primary")


def test_outside_a_serving_process_a_full_batch_is_written_by_the_request(db, fake_clock):
    _answered(BATCH - 1)
    assert not RequestTrace.objects.exists()
    _answered(1)
    assert RequestTrace.objects.count() == BATCH


def test_in_a_serving_process_requests_leave_the_writes_to_the_timer_thread(db, fake_clock):
    counters.flush_in_background()  # what fallbackproject/wsgi.py does
    try:
        _answered(BATCH + 1)
        fake_clock.advance(60)  # a flush long due
        _answered(1)
        assert not RequestTrace.objects.exists()  # no request wrote
        flush_traces()  # the timer thread's tick
        assert RequestTrace.objects.count() == BATCH + 2
    finally:
        counters.stop_background_flush()
