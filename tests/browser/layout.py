"""Layout checks run inside the page: overlapping elements and horizontal overflow.

"Overlap" compares the boxes of the things a person reads or clicks (headings,
links, buttons, form fields, labels, table cells' text, badges). Two of them
overlap when their boxes intersect by more than a pixel and neither contains
the other. Elements inside a sticky or fixed container (the chat composer) are
left out: they cover scrolled content on purpose. "Overflow" is the page being
wider than the window, or a box whose content is clipped or scrolled sideways.
"""

from pathlib import Path

_SCRIPT = (Path(__file__).parent / "layout.js").read_text()


def problems(page) -> list[str]:
    """Every overlap and sideways overflow on the page as it is now."""
    return page.evaluate(_SCRIPT)
