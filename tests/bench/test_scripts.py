"""Each benchmark script runs end to end in its smallest configuration, without the
LiteLLM peer: the tables print and say the peer was skipped. No figure is asserted
(the machine is shared; benchmarks print tables, they do not pass or fail on speed)."""

import pytest

from bench import faults, latency, peer, serving

pytestmark = pytest.mark.bench


@pytest.fixture(autouse=True)
def no_peer(monkeypatch):
    """Our side only, even where a peer venv happens to be installed."""
    monkeypatch.setenv("BENCH_PEER", "off")


def test_without_the_peer_the_scripts_say_how_to_install_it():
    assert peer.peer_python() is None
    assert "make bench-peer" in peer.SKIPPED


def test_latency_prints_our_side_and_the_skip_line(capsys):
    text = latency.main(["--requests", "3", "--rounds", "1", "--no-postgres"])
    assert "| SQLite |" in text
    assert "| skipped |" in text
    assert peer.SKIPPED in text
    assert text in capsys.readouterr().out


def test_faults_prints_every_mode_for_our_side():
    text = faults.main(["--requests", "3", "--timeout", "0.2", "--budget", "2", "--window", "1"])
    for mode in ("refused", "503", "silent", "rate_limit"):
        assert f"| {mode} | ours |" in text
    assert "| litellm" not in text


def test_serving_runs_the_documented_server():
    text = serving.main(
        ["--requests", "3", "--down-requests", "2", "--budget", "2", "--memory-after", "5"]
    )
    assert "| ours |" in text
    # Every provider down ends in our 503, never a 500.
    down = text.split("### 6.")[1].split("###")[0]
    assert "| ours | 2 | 503 |" in down
    assert peer.SKIPPED in text


def test_peer_config_puts_the_primary_first_and_tunes_cooldowns():
    upstreams = ["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"]
    defaults = peer.router_settings(upstreams, tuned=False)
    tuned = peer.router_settings(upstreams, tuned=True)
    assert defaults == {"fallbacks": [{"primary": ["secondary"]}]}
    assert tuned["allowed_fails"] == 1
    assert tuned["num_retries"] == 0
    deployments = peer.model_list(upstreams, timeout_s=2, tuned=True)
    assert [d["litellm_params"]["api_base"] for d in deployments] == upstreams
    assert all(d["litellm_params"]["max_retries"] == 0 for d in deployments)


def _fake_peer_venv(folder, litellm_script: str):
    """A "venv" whose python and litellm are shell scripts: python exits at once
    (no litellm installed), litellm runs `litellm_script`."""
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    for name, body in (("python", "exit 3"), ("litellm", litellm_script)):
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    return str(bin_dir / "python")


def test_a_peer_venv_without_litellm_counts_as_missing(tmp_path, monkeypatch):
    python = _fake_peer_venv(tmp_path, "exit 1")
    monkeypatch.setenv("BENCH_PEER", "on")
    monkeypatch.setenv("BENCH_PEER_PYTHON", python)
    assert peer.peer_python() is None


def test_a_router_worker_that_dies_is_a_clear_error(tmp_path):
    worker = peer.RouterWorker(_fake_peer_venv(tmp_path, "exit 1"))
    with pytest.raises(RuntimeError, match="router worker exited"):
        worker.setup(["http://127.0.0.1:1/v1"], timeout_s=1)
    worker.close()
    assert worker.process.poll() is not None


def test_a_proxy_that_cannot_start_says_why_and_leaves_nothing_running(tmp_path):
    python = _fake_peer_venv(tmp_path, "echo 'Missing dependency: fastapi'; exit 1")
    proxy = peer.LiteLLMProxy(["http://127.0.0.1:1/v1"], python=python)
    with pytest.raises(RuntimeError, match="Missing dependency: fastapi"):
        proxy.start(timeout_s=10)
    assert proxy.process is None


def _concurrency_result(**overrides):
    result = {
        "chats_s": 64.0, "ideal": 64.0, "ratio": 1.0, "failed": 0, "added_p50": 20.0,
        "added_p99": 200.0, "healthz_p50": 1.7, "healthz_p99": 40.0, "rss": [110.0, 112.0],
        "pg_open": None, "pg_active": None, "cpu_ms": 4.0, "load": 2.0,
        "refused": 0, "gen_cores": 0.3, "gen_procs": 4,
    }  # fmt: skip
    return {**result, **overrides}


def test_concurrency_rows_carry_the_ratio_to_litellms_row_and_the_target_verdict():
    from bench import concurrency

    ours = _concurrency_result()
    litellm = _concurrency_result(chats_s=32.0, added_p50=80.0, added_p99=400.0)
    row = concurrency._row("SQLite", "ours", "stream", 256, ours, True, litellm)
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[-2:] == ["yes", "2.00x, 0.25x, 0.50x"]
    alone = concurrency._row("SQLite", "ours", "stream", 256, ours, True, None)
    assert alone.rstrip(" |").endswith("-")
    slow_liveness = _concurrency_result(healthz_p99=101.0)
    assert "| NO |" in concurrency._row("SQLite", "ours", "stream", 256, slow_liveness, True, None)


def test_the_concurrency_target_allows_503s_only_beyond_a_thousand_clients():
    """1,024 clients: every chat answered (no 503), added p99 <= 1 s; 2,048:
    graceful, i.e. 503s allowed but nothing failed and liveness kept."""
    from bench import concurrency

    overloaded = _concurrency_result(refused=500, ratio=0.4, added_p99=900.0)
    assert not concurrency._meets_target(overloaded, 1024)
    assert concurrency._meets_target(overloaded, 2048)
    assert concurrency._meets_target(_concurrency_result(added_p99=900.0), 1024)
    assert not concurrency._meets_target(_concurrency_result(added_p99=900.0), 256)
    assert not concurrency._meets_target(_concurrency_result(failed=1), 2048)
