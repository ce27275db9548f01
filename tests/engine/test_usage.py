"""Usage and cost through the engine: what the (simulated) vendors reported reaches
the ledger priced, failed attempts that were billed count too, the failover cost is
the difference to the route's first provider, and the ledger's buffer survives a
database outage (or says what it lost)."""

from decimal import Decimal
from unittest import mock

import pytest
from django.db import DatabaseError
from django.db.models import Sum
from prometheus_client import REGISTRY

from providers_app.adapters import openai
from providers_app.adapters.usage import Usage, estimate_tokens
from providers_app.engine import counters, fallback, usage
from providers_app.models import UsageLedger
from providers_app.selectors.routing import route_entry_for

from .conftest import HELLO

PRICED = {"price_input_per_mtok": Decimal("2.50"), "price_output_per_mtok": Decimal("10")}
PRICIER = {"price_input_per_mtok": Decimal("15"), "price_output_per_mtok": Decimal("60")}


def _ledger() -> dict:
    counters.flush_pending()
    return UsageLedger.objects.aggregate(
        **{
            name: Sum(name)
            for name in (
                "calls", "estimated_calls", "failed_attempts", "input_tokens",
                "cached_input_tokens", "output_tokens", "cost_nusd", "failed_cost_nusd",
                "failover_extra_nusd",
            )
        }
    )  # fmt: skip


def _nusd(tokens_in: int, tokens_out: int, prices: dict) -> int:
    dollars_per_m = (
        tokens_in * prices["price_input_per_mtok"] + tokens_out * prices["price_output_per_mtok"]
    )
    return int(dollars_per_m * 1000)


def test_cost_uses_the_cached_price_where_set_and_the_input_price_otherwise(make_provider):
    provider = make_provider(price_input_per_mtok=Decimal("3"), price_output_per_mtok=Decimal("15"))
    entry = route_entry_for(provider.pk)
    billed = Usage(input_tokens=1_000_000, output_tokens=2_000_000, cached_input_tokens=400_000)
    assert usage.cost_nusd(billed, entry) == 33 * 10**9  # 3 + 30 dollars
    provider.price_cached_input_per_mtok = Decimal("0.30")
    provider.save()
    entry = route_entry_for(provider.pk)
    # 600k at $3, 400k at $0.30, 2M at $15.
    assert usage.cost_nusd(billed, entry) == (1_800_000 + 120_000 + 30_000_000) * 1000


def test_an_unpriced_provider_counts_tokens_at_no_cost(make_provider):
    entry = route_entry_for(make_provider().pk)
    assert usage.cost_nusd(Usage(input_tokens=10, output_tokens=10), entry) == 0


def test_an_answer_is_counted_as_reported_and_priced(providers, primary):
    providers(**PRICED)
    answer = fallback.complete(HELLO, key_name="team-a")
    totals = _ledger()
    assert (totals["input_tokens"], totals["output_tokens"]) == (
        answer.input_tokens,
        answer.output_tokens,
    )
    assert totals["calls"] == 1
    assert totals["estimated_calls"] == 0
    assert totals["cost_nusd"] == _nusd(answer.input_tokens, answer.output_tokens, PRICED)
    row = UsageLedger.objects.get()
    assert (row.provider, row.route, row.key_name) == ("primary", answer.route, "team-a")


def test_a_pricier_fallback_answer_is_the_failover_cost(providers, primary, secondary):
    _first, second = providers(**PRICED)
    second.price_input_per_mtok, second.price_output_per_mtok = (
        PRICIER["price_input_per_mtok"],
        PRICIER["price_output_per_mtok"],
    )
    second.save()
    primary.set_fault("error", status=503)
    answer = fallback.complete(HELLO)
    assert answer.provider == "secondary"
    totals = _ledger()
    spent = _nusd(answer.input_tokens, answer.output_tokens, PRICIER)
    would_have = _nusd(answer.input_tokens, answer.output_tokens, PRICED)
    assert totals["cost_nusd"] == spent
    assert totals["failover_extra_nusd"] == spent - would_have > 0


def test_a_stream_cut_after_output_is_billed_as_a_failed_attempt(providers, primary, secondary):
    _first, second = providers(**PRICED)
    second.continuation = "trailing_assistant"
    second.save()
    primary.set_fault("midstream_error", chunks_before=2)
    stream = fallback.stream(HELLO)
    text = "".join(chunk.text for chunk in stream)
    assert text
    totals = _ledger()
    assert totals["failed_attempts"] == 1  # the cut stream: its output was generated
    assert totals["failed_cost_nusd"] > 0
    assert totals["calls"] == 1  # the continuation that answered


def test_a_stream_without_reported_usage_is_estimated_and_marked(providers, primary):
    """A server that ignores include_usage, as some compatible servers and older
    Azure api-versions do: simulated by dropping the option on the way out."""
    providers()
    original = openai.OpenAIAdapter._chat_body

    def without_usage(self, request, *, stream):
        body = original(self, request, stream=stream)
        body.pop("stream_options", None)
        return body

    with mock.patch.object(openai.OpenAIAdapter, "_chat_body", without_usage):
        text = "".join(chunk.text for chunk in fallback.stream(HELLO))
    totals = _ledger()
    assert totals["estimated_calls"] == 1
    assert totals["output_tokens"] == estimate_tokens(text)
    assert totals["input_tokens"] == estimate_tokens(HELLO[0]["content"])


def test_the_buffer_keeps_usage_through_a_database_outage(providers, primary):
    providers(**PRICED)
    answer = fallback.complete(HELLO)
    with mock.patch.object(usage, "_add_to_row", side_effect=DatabaseError("down")):
        usage.flush_pending()
        assert usage.has_pending()
    totals = _ledger()  # the database is back: the next flush writes it
    assert totals["input_tokens"] == answer.input_tokens
    assert not usage.has_pending()


def test_a_full_buffer_drops_the_oldest_rows_and_counts_them(providers, primary, settings):
    providers()
    settings.FALLBACK_USAGE_BUFFER_MAX_ROWS = 2
    labels = {"reason": "buffer_full"}
    before = REGISTRY.get_sample_value("fallback_usage_dropped_rows_total", labels) or 0
    with mock.patch.object(usage, "_add_to_row", side_effect=DatabaseError("down")):
        for key in ("a", "b", "c"):
            fallback.complete(HELLO, key_name=key)
            usage.flush_pending()
    assert usage.dropped_rows() == 1
    assert REGISTRY.get_sample_value("fallback_usage_dropped_rows_total", labels) == before + 1
    assert sorted(UsageLedger.objects.values_list("key_name", flat=True)) == []
    counters.flush_pending()
    assert sorted(UsageLedger.objects.values_list("key_name", flat=True)) == ["b", "c"]


def test_many_calls_write_one_row_per_flush(providers, primary):
    providers()
    fallback.complete(HELLO)
    counters.flush_pending()
    for _ in range(5):
        fallback.complete(HELLO)
    assert UsageLedger.objects.get().calls == 1  # the five are still buffered
    counters.flush_pending()
    assert UsageLedger.objects.get().calls == 6


@pytest.mark.parametrize("bad", ["-1", "abc"])
def test_a_price_must_be_a_non_negative_decimal(make_provider, bad):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        make_provider(price_output_per_mtok=bad)
    assert "price_output_per_mtok" in refused.value.message_dict


def test_a_calls_cost_is_rounded_half_to_even_nano_dollars(make_provider):
    entry = route_entry_for(make_provider(price_output_per_mtok=Decimal("0.0005")).pk)
    # $0.0005 per million tokens: 1 token is 0.5 nano-dollar, 3 tokens 1.5, 4 tokens 2.
    assert usage.cost_nusd(Usage(output_tokens=1), entry) == 0
    assert usage.cost_nusd(Usage(output_tokens=3), entry) == 2
    assert usage.cost_nusd(Usage(output_tokens=4), entry) == 2
