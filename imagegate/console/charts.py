"""Server-drawn SVG bar charts: numbers in, rectangles out; the template only places them.

No chart library and no script: an SVG made on the server works offline, under a strict CSP and
without JavaScript, and a chart of 30 days is a few dozen rectangles.
"""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 600
HEIGHT = 180
_LEFT = 48
_BOTTOM = 22
_TOP = 10


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: str


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    bars: list[Bar]
    top_label: str
    width: int = WIDTH
    height: int = HEIGHT
    left: int = _LEFT
    baseline: int = HEIGHT - _BOTTOM
    #: Every how many bars a label is drawn under the axis.
    label_every: int = 1


def bar_chart(title: str, points: list[tuple[str, float]], digits: int = 0) -> Chart:
    """Bars for ``(label, value)`` points, scaled to the largest value."""
    if not points:
        return Chart(title, [], "0")
    top = max(value for _, value in points)
    peak = top or 1.0  # all zero: flat bars, and the axis says 0
    plot_height = HEIGHT - _BOTTOM - _TOP
    slot = (WIDTH - _LEFT) / len(points)
    bars = []
    for index, (label, value) in enumerate(points):
        height = plot_height * max(0.0, value) / peak
        bars.append(
            Bar(
                x=round(_LEFT + index * slot + slot * 0.1, 1),
                y=round(HEIGHT - _BOTTOM - height, 1),
                width=round(max(1.0, slot * 0.8), 1),
                height=round(height, 1),
                label=label,
                value=f"{value:,.{digits}f}",
            )
        )
    return Chart(title, bars, f"{top:,.{digits}f}", label_every=max(1, len(points) // 8))
