"""One colour per thing, on every screen (dashboard, provider list, badges).

- Breaker states have their own colours (closed green, open red, ...), and no
  provider is ever drawn in one of them: a red line must mean "open".
- A provider's colour comes from its id, not from its place in a list or its
  traffic, so it stays the same on every screen, every range and every reload.
- A reason's colour is keyed by the reason's value, not by how often it
  happened, so "overloaded" is the same colour at 23:43 and at 23:49.

Every colour here carries white text at a contrast of at least 4.5:1 (WCAG AA);
`tests/dashboard/test_colours.py` checks it.
"""

import zlib

from ..models import BreakerState

State = BreakerState.State

STATE_COLOURS: dict[str, str] = {
    State.CLOSED: "#2e7d32",  # green
    State.HALF_OPEN: "#b34700",  # dark orange
    State.OPEN: "#c62828",  # red
    State.FORCED_OPEN: "#6a1b9a",  # purple
    State.NEVER_TRIP: "#595959",  # grey
}

# Providers: blues, cyans, magentas and browns, none near a state colour.
PROVIDER_PALETTE: tuple[str, ...] = (
    "#1565c0",  # blue
    "#00727d",  # dark cyan
    "#ad1457",  # magenta
    "#6d4c41",  # brown
    "#3949ab",  # indigo
    "#7a5d00",  # mustard
    "#0b6e99",  # steel blue
    "#8e3b8e",  # orchid
)

# Reasons, keyed by value (the failure categories, then skip and manual reasons).
REASON_COLOURS: dict[str, str] = {
    "transport": "#455a64",
    "timeout": "#8d4a00",
    "server_error": "#b71c1c",
    "overloaded": "#1a5fb4",
    "rate_limit": "#7b3fa0",
    "quota_exhausted": "#5d4037",
    "auth": "#880e4f",
    "permission": "#6a1b4d",
    "not_found": "#37474f",
    "context_length": "#00695c",
    "content_filter": "#4a6200",
    "invalid_request": "#4e5b00",
    "request_too_large": "#3e2723",
    "malformed_response": "#9c2f00",
    "stream_max_duration": "#424242",
    "internal_error": "#212121",
}
# A reason not listed above still gets one fixed colour, from its name.
OTHER_REASON_PALETTE: tuple[str, ...] = ("#5c6bc0", "#00796b", "#8e24aa", "#6d4c41", "#546e7a")


def provider_colour(provider_id: int) -> str:
    """The provider's colour on every screen."""
    return PROVIDER_PALETTE[provider_id % len(PROVIDER_PALETTE)]


def reason_colour(reason: str) -> str:
    """The reason's colour on every screen (crc32: stable across processes)."""
    if reason in REASON_COLOURS:
        return REASON_COLOURS[reason]
    return OTHER_REASON_PALETTE[zlib.crc32(reason.encode()) % len(OTHER_REASON_PALETTE)]


def state_colour(state: str) -> str:
    return STATE_COLOURS.get(state, STATE_COLOURS[State.NEVER_TRIP])


def contrast_ratio(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio of two #rrggbb colours (1 to 21)."""

    def luminance(colour: str) -> float:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)
