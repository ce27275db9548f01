"""Chat slots and the admission wrapper (fallbackproject/capacity.py, admission.py),
in one process; tests/integration/test_overload.py drives them through gunicorn."""

import json
import threading

import pytest

from fallbackproject import capacity
from fallbackproject.admission import with_admission
from fallbackproject.capacity import Board, Load, Slots
from fallbackproject.health_listener import health_bind


def _call(app, path="/v1/chat/completions", method="POST"):
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, dict(headers)

    result = app({"PATH_INFO": path, "REQUEST_METHOD": method}, start_response)
    body = b"".join(result)
    return seen["status"], seen["headers"], body, result


def _app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"chat"]


def test_a_chat_beyond_capacity_and_queue_is_refused_at_once_with_retry_after():
    slots = Slots(capacity=1, queue=0, queue_s=5.0)
    app = with_admission(_app, slots)
    status, _, body, first = _call(app)  # holds the slot until closed
    assert (status, body) == ("200 OK", b"chat")

    status, headers, body, _ = _call(app)
    assert status.startswith("503")
    assert headers["Retry-After"] == "5"
    assert json.loads(body)["error"]["code"] == "server_at_capacity"

    first.close()  # the first chat's response is closed: its slot is free again
    assert _call(app)[0] == "200 OK"


def test_a_waiting_chat_gives_up_after_the_queue_time():
    slots = Slots(capacity=1, queue=1, queue_s=0.05)
    assert slots.enter()
    assert slots.enter() is False  # waited 50 ms, nobody left
    assert slots.load() == Load(capacity=1, running=1, waiting=0)


def test_a_waiting_chat_takes_the_slot_given_back():
    slots = Slots(capacity=1, queue=1, queue_s=30.0)
    assert slots.enter()
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(slots.enter()))
    waiter.start()
    while slots.load().waiting == 0:
        threading.Event().wait(0.01)
    slots.leave()
    waiter.join(timeout=10)
    assert got == [True]
    assert slots.load() == Load(capacity=1, running=1, waiting=0)


def test_the_slot_is_given_back_when_the_app_raises():
    def broken(environ, start_response):
        raise RuntimeError("boom")

    slots = Slots(capacity=1, queue=0, queue_s=0)
    with pytest.raises(RuntimeError):
        _call(with_admission(broken, slots))
    assert slots.load().running == 0


@pytest.mark.parametrize(
    ("path", "method"), [("/admin/", "POST"), ("/v1/models", "GET"), ("/healthz", "GET")]
)
def test_only_chats_take_slots(path, method):
    slots = Slots(capacity=1, queue=0, queue_s=0)
    assert slots.enter()  # saturated
    assert _call(with_admission(_app, slots), path, method)[0] == "200 OK"


def test_readiness_says_saturated_while_every_slot_is_busy():
    slots = Slots(capacity=1, queue=0, queue_s=0)
    app = with_admission(_app, slots)
    status, _, body, _ = _call(app, "/readyz", "GET")
    assert status == "200 OK"
    assert json.loads(body)["status"] == "ready"
    slots.enter()
    status, _, body, _ = _call(app, "/readyz", "GET")
    assert status.startswith("503")
    assert json.loads(body) == {
        "status": "saturated", "capacity": 1, "running": 1, "waiting": 0, "workers": 1
    }  # fmt: skip


def test_the_board_sums_the_workers_rows(monkeypatch):
    board = Board(rows=4)
    first, second = board.claim(), board.claim()
    monkeypatch.setattr(capacity, "board", board)
    monkeypatch.setattr(capacity, "board_row", first)
    slots = Slots(capacity=2, queue=0, queue_s=0)
    board.write(second, Load(capacity=2, running=2, waiting=0))
    assert board.total() == Load(capacity=4, running=2, waiting=0, workers=2)
    slots.enter()
    slots.enter()
    assert board.total().saturated
    board.release(second)
    assert board.total() == Load(capacity=2, running=2, waiting=0, workers=1)


@pytest.mark.parametrize(
    ("main", "configured", "expected"),
    [
        ("127.0.0.1:8000", None, ("127.0.0.1", 8001)),
        ("10.0.0.5:8000", "10.0.0.5:9000", ("10.0.0.5", 9000)),
        ("127.0.0.1:8000", "off", None),
        ("127.0.0.1:8000", "", None),
        ("unix:/run/app.sock", None, None),
    ],
)
def test_the_health_listener_binds_next_to_the_main_port_unless_told(main, configured, expected):
    assert health_bind(main, configured) == expected


def test_a_worker_holding_a_connection_per_slot_leaves_the_next_to_a_worker_with_room(
    monkeypatch,
):
    """Connections held count, not admitted chats: accepted connections whose
    threads have not yet admitted them must not let a burst overfill one worker."""
    board = Board(rows=4)
    own, sibling = board.claim(), board.claim()
    monkeypatch.setattr(capacity, "board", board)
    monkeypatch.setattr(capacity, "board_row", own)
    slots = Slots(capacity=2, queue=4, queue_s=1)
    monkeypatch.setattr(capacity, "local_slots", slots)
    board.write(sibling, Load(capacity=2, running=0, waiting=0, held=1))

    capacity.connections_held(1)
    assert not capacity.prefers_another_worker()  # room here
    capacity.connections_held(2)  # accepted, none admitted yet: running is still 0
    assert slots.load().running == 0
    assert capacity.prefers_another_worker()

    board.write(sibling, Load(capacity=2, running=1, waiting=0, held=2))
    assert not capacity.prefers_another_worker()  # no room anywhere: queue here
