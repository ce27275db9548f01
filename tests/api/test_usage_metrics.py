"""`/metrics` token and cost counters equal what the (simulated) vendor reported,
for plain chats, streams with `include_usage` and streams without it; the client
sees a usage chunk only when it asked for one. Through HTTP."""

import json
from decimal import Decimal

from prometheus_client.parser import text_string_to_metric_families

from providers_app.simulator import payloads

HELLO = [{"role": "user", "content": "Say hello to the whole team, please."}]
URL = "/v1/chat/completions"


def _scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def _tokens(samples, kind: str) -> float:
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "fallback_tokens_total"
        and dict(labels)["key"] == "test-bot"
        and dict(labels)["type"] == kind
        and dict(labels)["source"] == "reported"
    )


def _cost(samples) -> float:
    return sum(
        value
        for (name, labels), value in samples.items()
        if name == "fallback_cost_usd_total" and dict(labels)["key"] == "test-bot"
    )


def _events(response) -> list[dict]:
    text = b"".join(response.streaming_content).decode()
    return [
        json.loads(line[len("data: ") :])
        for line in text.splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]


def test_token_counters_equal_the_vendors_usage(client, providers, primary, auth):
    provider = providers[0]
    provider.price_input_per_mtok = Decimal("2")
    provider.price_output_per_mtok = Decimal("8")
    provider.save()
    before = _scrape(client)
    reported_in = reported_out = 0

    # A plain chat: the vendor's usage is the body's.
    body = client.post(URL, {"model": "default", "messages": HELLO},
                       content_type="application/json", headers=auth).json()  # fmt: skip
    reported_in += body["usage"]["prompt_tokens"]
    reported_out += body["usage"]["completion_tokens"]

    # A stream with include_usage: the client's usage chunk is the vendor's.
    events = _events(client.post(
        URL, {"model": "default", "messages": HELLO, "stream": True,
              "stream_options": {"include_usage": True}},
        content_type="application/json", headers=auth,
    ))  # fmt: skip
    usage = events[-1]["usage"]
    assert events[-1]["choices"] == []
    reported_in += usage["prompt_tokens"]
    reported_out += usage["completion_tokens"]

    # A stream without it: the client gets no usage, the vendor was still asked.
    events = _events(client.post(
        URL, {"model": "default", "messages": HELLO, "stream": True},
        content_type="application/json", headers=auth,
    ))  # fmt: skip
    assert all(event.get("usage") is None for event in events)
    sent = primary.last_request["json"]
    assert sent["stream_options"] == {"include_usage": True}
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    reported_in += payloads.prompt_words(sent["messages"])  # the simulator's own count
    reported_out += payloads.count_words(text)

    after = _scrape(client)
    assert _tokens(after, "input") - _tokens(before, "input") == reported_in
    assert _tokens(after, "output") - _tokens(before, "output") == reported_out
    expected_cost = (reported_in * 2 + reported_out * 8) / 1_000_000
    assert abs((_cost(after) - _cost(before)) - expected_cost) < 1e-12
    # The key's name labels the counters; the key itself appears nowhere.
    raw_key = auth["Authorization"].removeprefix("Bearer ")
    assert raw_key not in client.get("/metrics").content.decode()
