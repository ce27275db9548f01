"""The routing snapshot: reused while the one-row version holds, reread when anything moves."""

import threading
import time

import pytest
from django.db import OperationalError, connection

from providers_app.engine.routing import (
    LISTENER_APPLICATION_NAME,
    routing_snapshot,
    routing_table,
    routing_version,
)
from providers_app.models import BreakerState, Provider
from providers_app.services.routes import route_create, route_members_set
from tests.factories import provider_create


def _names() -> list[str]:
    return [entry.name for entry in routing_snapshot()]


def test_an_unchanged_version_reuses_the_snapshot_with_one_small_query(
    db, django_assert_num_queries
):
    provider_create(name="a")
    provider_create(name="b")
    assert _names() == ["a", "b"]
    with django_assert_num_queries(1) as captured:
        assert _names() == ["a", "b"]
    assert "routingversion" in captured.captured_queries[0]["sql"]


def _route_names() -> list[str]:
    return [entry.name for entry in routing_table().resolve(None).entries]


def test_a_save_a_route_reorder_and_a_raw_breaker_update_each_move_the_version(db):
    first = provider_create(name="a")
    second = provider_create(name="b")
    assert _names() == ["a", "b"]

    first.timeout_s = 7
    first.save()
    assert routing_snapshot()[0].timeout_s == 7

    route = route_create(name="r", providers=[second, first], is_default=True)
    assert _route_names() == ["b", "a"]
    # bulk_create skips signals and save(): the trigger still sees it.
    route_members_set(route=route, providers=[first, second])
    assert _route_names() == ["a", "b"]

    # A queryset update (as breaker transitions make) is seen on the next read.
    before = routing_version()
    BreakerState.objects.filter(pk=first.pk).update(state="open")
    assert routing_version() > before
    assert [e.state for e in routing_snapshot()] == ["open", "closed"]

    Provider.objects.filter(pk=second.pk).update(enabled=False)
    assert _names() == ["a"]


def test_a_raw_sql_write_moves_the_version(db):
    provider = provider_create(name="a")
    assert [e.timeout_s for e in routing_snapshot()] == [provider.timeout_s]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Provider._meta.db_table} SET timeout_s = 7 WHERE id = %s",  # noqa: S608
            [provider.pk],
        )
    assert [e.timeout_s for e in routing_snapshot()] == [7]


def test_an_unreadable_database_answers_from_the_last_snapshot(db, monkeypatch):
    provider_create(name="a")
    assert _names() == ["a"]

    from providers_app.engine import routing

    def unreachable():
        raise OperationalError("connection refused")

    monkeypatch.setattr(routing, "routing_version", unreachable)
    assert _names() == ["a"]


@pytest.mark.django_db(transaction=True)
def test_threads_reading_while_the_order_flips_always_see_a_whole_snapshot_and_end_current():
    """32 threads read the snapshot 50 times each while another thread reorders
    two providers 20 times; every read is one of the two orders (never a mix, never
    empty), and once the reorders stop every thread's next read is the final order."""
    first = provider_create(name="a")
    second = provider_create(name="b")
    route = route_create(name="r", providers=[first, second], is_default=True)
    assert _route_names() == ["a", "b"]  # a process that has read once (as a serving one has)
    orders = {("a", "b"), ("b", "a")}
    seen_bad: list[tuple] = []
    reorders: list[int] = []
    final: list[tuple] = []
    start = threading.Barrier(33)
    done = threading.Event()

    def reader() -> None:
        start.wait()
        try:
            for _ in range(50):
                names = tuple(_route_names())
                if names not in orders:
                    seen_bad.append(names)
            done.wait(timeout=30)
            final.append(tuple(_route_names()))
        finally:
            connection.close()

    def writer() -> None:
        start.wait()
        try:
            for i in range(20):
                a_first = i % 2 == 1
                order = [first, second] if a_first else [second, first]
                _until_written(lambda o=order: route_members_set(route=route, providers=o))
                reorders.append(i)
        finally:
            connection.close()

    threads = [threading.Thread(target=reader) for _ in range(32)]
    threads.append(threading.Thread(target=writer))
    for thread in threads:
        thread.start()
    threads[-1].join(timeout=60)
    done.set()
    for thread in threads:
        thread.join(timeout=60)
    assert reorders == list(range(20))
    assert seen_bad == []
    assert final == [("a", "b")] * 32  # the last reorder (i = 19) put a first


def _until_written(write) -> None:
    """SQLite's shared-cache test database refuses a write while readers hold the
    table ("database table is locked") instead of waiting; PostgreSQL waits."""
    for _ in range(500):
        try:
            return write()
        except OperationalError as error:
            if "locked" not in str(error):
                raise
            time.sleep(0.005)
    raise AssertionError("the reorder never got the table")


# ---------------------------------------------------------------------------
# PostgreSQL: changes arrive as notifications; no round trip while none do
# ---------------------------------------------------------------------------


def _eventually(condition, timeout_s: float = 10.0) -> bool:
    give_up = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > give_up:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def listening(transactional_db):
    if connection.vendor != "postgresql":
        pytest.skip("notifications are PostgreSQL's")
    from providers_app.engine.routing import change_listener

    routing_snapshot()  # starts the listener
    assert _eventually(lambda: change_listener.epoch() is not None), "listener never connected"
    return change_listener


def test_while_listening_an_unchanged_snapshot_costs_no_query(listening, django_assert_num_queries):
    provider_create(name="a")
    assert _eventually(lambda: _names() == ["a"])
    with django_assert_num_queries(0):
        assert _names() == ["a"]
        assert _names() == ["a"]


def test_a_change_committed_by_another_connection_is_seen_once_notified(listening):
    provider = provider_create(name="a")
    assert _eventually(lambda: _names() == ["a"])

    def other_process_opens_the_breaker() -> None:
        BreakerState.objects.filter(pk=provider.pk).update(state="open")
        connection.close()

    writer = threading.Thread(target=other_process_opens_the_breaker)
    writer.start()
    writer.join()
    assert _eventually(lambda: [e.state for e in routing_snapshot()] == ["open"])


def test_a_lost_listener_falls_back_to_the_version_row_then_reconnects(
    listening, django_assert_num_queries
):
    provider = provider_create(name="a")
    assert _eventually(lambda: _names() == ["a"])
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s",
            [LISTENER_APPLICATION_NAME],
        )
        assert cursor.fetchall() == [(True,)]
    assert _eventually(lambda: listening.epoch() is None)
    Provider.objects.filter(pk=provider.pk).update(timeout_s=9)
    # Not listening: the version row (one query) says it changed.
    assert [e.timeout_s for e in routing_snapshot()] == [9]
    assert _eventually(lambda: listening.epoch() is not None), "listener never came back"
