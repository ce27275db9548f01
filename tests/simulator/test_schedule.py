"""The fault schedule: a timetable by elapsed time, applied by a thread, shown on /_sim."""

import time

import pytest
import requests

from providers_app.simulator import FaultConfigError, UpstreamSimulator
from providers_app.simulator.faults import SimulatorState, parse_fault
from providers_app.simulator.schedule import DEMO_SCHEDULE, FaultSchedule, Phase, ScheduleRunner

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def _two_phases(first_s: float = 10, second_s: float = 5) -> FaultSchedule:
    return FaultSchedule(
        [
            Phase("calm", first_s, parse_fault("ok")),
            Phase("down", second_s, parse_fault("error", {"status": 503})),
        ]
    )


@pytest.mark.parametrize(
    ("elapsed", "cycle", "index", "remaining"),
    [(0, 0, 0, 10), (9.5, 0, 0, 0.5), (10, 0, 1, 5), (14, 0, 1, 1), (15, 1, 0, 10), (31, 2, 0, 9)],
)
def test_the_phase_in_force_follows_elapsed_time_and_repeats(elapsed, cycle, index, remaining):
    position = _two_phases().at(elapsed)
    assert (position.cycle, position.index) == (cycle, index)
    assert position.remaining_s == pytest.approx(remaining)


def test_a_schedule_refuses_no_phases_and_empty_phases():
    with pytest.raises(FaultConfigError) as empty:
        FaultSchedule([])
    assert empty.value.param == "phases"
    with pytest.raises(FaultConfigError) as zero:
        FaultSchedule([Phase("calm", 0, parse_fault("ok"))])
    assert zero.value.param == "phases[0].seconds"


def test_a_schedule_from_json_validates_each_fault():
    schedule = FaultSchedule.from_spec(
        [{"seconds": 3, "mode": "rate_limit", "options": {"retry_after": "7"}}]
    )
    assert schedule.phases[0].label == "rate_limit"
    assert schedule.phases[0].fault.option("retry_after") == "7"
    with pytest.raises(FaultConfigError) as bad:
        FaultSchedule.from_spec([{"seconds": 3, "mode": "explode"}])
    assert bad.value.param == "mode"
    with pytest.raises(FaultConfigError) as no_seconds:
        FaultSchedule.from_spec([{"mode": "ok"}])
    assert no_seconds.value.param == "phases[0].seconds"


def test_the_runner_switches_the_fault_at_each_boundary_only():
    now = [100.0]
    state = SimulatorState()
    runner = ScheduleRunner(_two_phases(), state, clock=lambda: now[0])
    runner._started_at = now[0]

    runner.tick()
    assert state.fault.mode == "ok"
    now[0] += 10.5
    runner.tick()
    assert state.fault.mode == "error"
    # A fault set by hand lasts until the next phase begins.
    state.set_fault(parse_fault("hang"))
    now[0] += 1
    runner.tick()
    assert state.fault.mode == "hang"
    now[0] += 4
    runner.tick()
    assert state.fault.mode == "ok"
    assert runner.status()["cycle"] == 1


def test_a_simulator_following_a_schedule_fails_by_itself_and_shows_it():
    with UpstreamSimulator("primary") as sim:
        sim.follow_schedule(_two_phases(first_s=0.3, second_s=60))
        base = f"http://127.0.0.1:{sim.port}"
        assert requests.post(f"{sim.base_url}/chat/completions", json=CHAT, timeout=5).ok
        time.sleep(0.6)  # the thread applies the second phase at its boundary
        failed = requests.post(f"{sim.base_url}/chat/completions", json=CHAT, timeout=5)
        assert failed.status_code == 503

        state = requests.get(f"{base}/_sim/state", timeout=5).json()
        assert state["mode"] == "error"
        assert state["schedule"]["phase"] == "down"
        assert [p["label"] for p in state["schedule"]["phases"]] == ["calm", "down"]
        assert sim.state()["schedule"]["phase_index"] == 1
        page = requests.get(f"{base}/_sim", timeout=5).text
        assert "Fault schedule" in page
        assert "0:00-0:00  calm" in page

        sim.stop_schedule()
        assert "schedule" not in requests.get(f"{base}/_sim/state", timeout=5).json()


def test_stop_ends_the_schedule_thread():
    sim = UpstreamSimulator("primary").start()
    runner = sim.follow_schedule(_two_phases())
    sim.stop()
    assert sim.schedule is None
    assert runner._thread is None


def test_the_demo_schedule_shows_the_whole_story_in_its_first_minute():
    """Outage from 0:10 to 0:40 (failover, breaker, probe, recovery), then the rest."""
    first_minute = {DEMO_SCHEDULE.at(t).phase.fault.mode for t in range(60)}
    assert first_minute == {"ok", "error"}
    assert DEMO_SCHEDULE.at(45).phase.fault.mode == "ok"
    modes = {phase.fault.mode for phase in DEMO_SCHEDULE.phases}
    assert modes == {"ok", "error", "rate_limit", "slow_first_token"}
    long_outages = [p for p in DEMO_SCHEDULE.phases if p.fault.mode == "error" and p.seconds >= 60]
    assert long_outages, "an outage of about a minute every cycle"
    assert 180 <= DEMO_SCHEDULE.cycle_s <= 360, "every few minutes"
    lines = DEMO_SCHEDULE.describe()
    assert lines[1] == "0:10-0:40  short outage: HTTP 503"
