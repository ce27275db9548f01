"""One colour per provider, reason and state: stable, distinct from the state
colours, and every one carries white text at 4.5:1 or more."""

import pytest

from providers_app.dashboard import colours
from providers_app.dashboard.colours import (
    OTHER_REASON_PALETTE,
    PROVIDER_PALETTE,
    REASON_COLOURS,
    STATE_COLOURS,
    contrast_ratio,
    provider_colour,
    reason_colour,
)


@pytest.mark.parametrize(
    "colour",
    [*STATE_COLOURS.values(), *PROVIDER_PALETTE, *REASON_COLOURS.values(), *OTHER_REASON_PALETTE],
)
def test_white_text_on_every_colour_reads_at_4_5_to_1(colour):
    assert contrast_ratio("#ffffff", colour) >= 4.5


def test_the_contrast_formula_matches_wcag_reference_values():
    assert round(contrast_ratio("#000000", "#ffffff"), 1) == 21.0
    assert round(contrast_ratio("#767676", "#ffffff"), 2) == 4.54


def test_no_provider_is_drawn_in_a_state_colour():
    assert not set(PROVIDER_PALETTE) & set(STATE_COLOURS.values())
    assert len(set(PROVIDER_PALETTE)) == len(PROVIDER_PALETTE)


def test_a_provider_keeps_its_colour_whatever_its_place_or_traffic():
    assert provider_colour(3) == provider_colour(3)
    assert {provider_colour(i) for i in range(len(PROVIDER_PALETTE))} == set(PROVIDER_PALETTE)


def test_a_reason_keeps_its_colour_whatever_its_count(monkeypatch):
    assert reason_colour("overloaded") == REASON_COLOURS["overloaded"]
    # an unknown reason: the same colour every time, from its name (not Python's salted hash)
    first = reason_colour("some_new_reason")
    monkeypatch.setattr(colours, "REASON_COLOURS", {})
    assert reason_colour("some_new_reason") == first
    assert first in OTHER_REASON_PALETTE


def test_the_failover_chart_colours_reasons_by_value_not_by_count():
    from collections import Counter
    from datetime import UTC, datetime

    from providers_app.dashboard.charts import failover_chart
    from providers_app.dashboard.reads import dashboard_window

    window = dashboard_window("1h", now=datetime(2026, 1, 10, 12, 0, tzinfo=UTC))
    few = failover_chart(window, {window.bins[0]: Counter(overloaded=1, timeout=9)})
    many = failover_chart(window, {window.bins[0]: Counter(overloaded=9, timeout=1)})
    colour_of = lambda chart: {item.label: item.colour for item in chart.legend}  # noqa: E731
    assert colour_of(few) == colour_of(many)
