"""Charts as inline SVG text. Pure: values in, a string out.

Our own small module rather than a plotting library (docs/report.md says why): the
page carries its charts as markup, so it needs no script, no CDN and nothing fetched,
costs a few kilobytes a chart, and imports nothing heavy. Colours are CSS classes
(``s0``..``s7``, ``bad``, ``rule``) that the page defines for light and dark alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 560, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 14, 12, 46
PALETTE_SIZE = 8


@dataclass
class Series:
    """One line (or set of markers) of a plot."""

    name: str
    points: Sequence[tuple[float, float]]
    color: int = 0
    dashed: bool = False
    line: bool = True
    markers: bool = True
    marked: Sequence[bool] = ()  # True: drawn with the untrustworthy ring
    tips: Sequence[str] = ()  # a tooltip per point


@dataclass
class Rule:
    """A reference line across the plot: an SLO, a trust threshold."""

    value: float
    label: str
    axis: str = "y"  # "y": horizontal at y=value; "x": vertical at x=value


@dataclass
class Plot:
    title: str
    x_label: str  # with its units, e.g. "achieved throughput (requests/s)"
    y_label: str
    series: list[Series]
    rules: list[Rule] = field(default_factory=list)
    x_range: tuple[float, float] | None = None
    y_range: tuple[float, float] | None = None
    x_from_zero: bool = False
    y_from_zero: bool = True
    shade: list[tuple[float, float]] = field(default_factory=list)  # x intervals left out of the statistics
    empty: str = "no data"  # said in the frame when no series has a point


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (steps of 1, 2, 2.5 or 5 times a power of ten)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) * 0.1 or 1.0)
    raw = (hi - lo) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    start = math.floor(lo / step + 1e-9) * step
    stop = math.ceil(hi / step - 1e-9) * step
    return [round(start + i * step, 12) for i in range(int(round((stop - start) / step)) + 1)]


def fmt(value: float) -> str:
    """A short label: 12.5, 0.25, 1.2k, 3M."""
    size = abs(value)
    if size >= 1e6:
        return f"{value / 1e6:.3g}M"
    if size >= 1e4:
        return f"{value / 1e3:.3g}k"
    if size >= 100 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.3g}"


def _extent(values: list[float], given: tuple[float, float] | None, from_zero: bool) -> list[float]:
    if given is not None:
        return nice_ticks(*given)
    if not values:
        return nice_ticks(0.0, 1.0)
    lo, hi = min(values), max(values)
    if from_zero and lo >= 0:
        lo = 0.0
    if hi == lo:
        lo, hi = (lo * 0.9, hi * 1.1) if lo > 0 else (lo - 1, hi + 1)
    return nice_ticks(lo, hi)


class _Frame:
    """Maps data to pixels inside the plot area."""

    def __init__(self, xticks: list[float], yticks: list[float]) -> None:
        self.x0, self.x1 = xticks[0], xticks[-1]
        self.y0, self.y1 = yticks[0], yticks[-1]
        self.xticks, self.yticks = xticks, yticks

    def x(self, value: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return LEFT + (value - self.x0) / span * (WIDTH - LEFT - RIGHT)

    def y(self, value: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return HEIGHT - BOTTOM - (value - self.y0) / span * (HEIGHT - TOP - BOTTOM)


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _open(title: str) -> list[str]:
    return [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
            'xmlns="http://www.w3.org/2000/svg">', f"<title>{escape(title)}</title>"]


def _axes(out: list[str], frame: _Frame, x_label: str, y_label: str, *, x_names: Sequence[str] = ()) -> None:
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    out.append('<g class="grid">')
    for t in frame.yticks:
        out.append(f'<line x1="{LEFT}" x2="{right}" y1="{_n(frame.y(t))}" y2="{_n(frame.y(t))}"/>')
    out.append("</g>")
    out.append(f'<g class="axis"><line x1="{LEFT}" x2="{right}" y1="{bottom}" y2="{bottom}"/>'
               f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{bottom}"/></g>')
    out.append('<g class="ticks">')
    for t in frame.yticks:
        out.append(f'<text x="{LEFT - 6}" y="{_n(frame.y(t) + 4)}" text-anchor="end">{fmt(t)}</text>')
    if x_names:
        for i, name in enumerate(x_names):
            out.append(f'<text x="{_n(frame.x(i))}" y="{bottom + 16}" text-anchor="middle">{escape(name)}</text>')
    else:
        for t in frame.xticks:
            out.append(f'<text x="{_n(frame.x(t))}" y="{bottom + 16}" text-anchor="middle">{fmt(t)}</text>')
    out.append("</g>")
    out.append(f'<text class="label" x="{(LEFT + right) / 2:.0f}" y="{HEIGHT - 8}" text-anchor="middle">'
               f"{escape(x_label)}</text>")
    out.append(f'<text class="label" transform="translate(14 {(TOP + bottom) / 2:.0f}) rotate(-90)" '
               f'text-anchor="middle">{escape(y_label)}</text>')


def _empty(out: list[str], message: str) -> str:
    out.append(f'<text class="empty" x="{WIDTH / 2:.0f}" y="{HEIGHT / 2:.0f}" text-anchor="middle">'
               f"{escape(message)}</text></svg>")
    return "".join(out)


def line_plot(plot: Plot) -> str:
    """Lines and markers on linear axes, with reference rules and shaded x intervals."""
    xs = [x for s in plot.series for x, _ in s.points] + [r.value for r in plot.rules if r.axis == "x"]
    ys = [y for s in plot.series for _, y in s.points] + [r.value for r in plot.rules if r.axis == "y"]
    out = _open(plot.title)
    if not any(s.points for s in plot.series):
        return _empty(out, plot.empty)
    frame = _Frame(_extent(xs, plot.x_range, plot.x_from_zero), _extent(ys, plot.y_range, plot.y_from_zero))
    for lo, hi in plot.shade:
        a, b = frame.x(max(lo, frame.x0)), frame.x(min(hi, frame.x1))
        if b > a:
            out.append(f'<rect class="shade" x="{_n(a)}" y="{TOP}" width="{_n(b - a)}" height="{HEIGHT - TOP - BOTTOM}"/>')
    _axes(out, frame, plot.x_label, plot.y_label)
    for rule in plot.rules:
        if rule.axis == "y":
            y = _n(frame.y(rule.value))
            out.append(f'<g class="rule"><line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}"/>'
                       f'<text x="{WIDTH - RIGHT - 4}" y="{_n(frame.y(rule.value) - 4)}" text-anchor="end">'
                       f"{escape(rule.label)}</text></g>")
        else:
            px = frame.x(rule.value)
            # The label sits right of the line, or left of it near the right edge.
            place = (f'x="{_n(px - 4)}" text-anchor="end"' if px > LEFT + 0.8 * (WIDTH - LEFT - RIGHT)
                     else f'x="{_n(px + 4)}"')
            out.append(f'<g class="rule"><line x1="{_n(px)}" x2="{_n(px)}" y1="{TOP}" y2="{HEIGHT - BOTTOM}"/>'
                       f'<text {place} y="{HEIGHT - BOTTOM - 6}">{escape(rule.label)}</text></g>')
    for s in plot.series:
        _draw_series(out, frame, s)
    out.append("</svg>")
    return "".join(out)


def _draw_series(out: list[str], frame: _Frame, s: Series) -> None:
    cls = f"s{s.color % PALETTE_SIZE}"
    pixels = [(frame.x(x), frame.y(y)) for x, y in s.points]
    out.append(f'<g class="series {cls}">')
    if s.line and len(pixels) > 1:
        path = " ".join(f"{_n(x)},{_n(y)}" for x, y in pixels)
        out.append(f'<polyline class="{"dashed" if s.dashed else "solid"}" points="{path}"/>')
    for i, (px, py) in enumerate(pixels):
        if i < len(s.marked) and s.marked[i]:
            out.append(f'<circle class="untrusted" cx="{_n(px)}" cy="{_n(py)}" r="8"/>')
        if s.markers:
            tip = s.tips[i] if i < len(s.tips) else f"{s.name}: {fmt(s.points[i][0])}, {fmt(s.points[i][1])}"
            out.append(f'<circle class="{"hollow" if s.dashed else "dot"}" cx="{_n(px)}" cy="{_n(py)}" '
                       f'r="{3.5 if s.line else 5}">'
                       f"<title>{escape(tip)}</title></circle>")
    out.append("</g>")


@dataclass
class Stack:
    """One layer of a stacked bar plot: a value per category."""

    name: str
    values: Sequence[float]
    color: int = 0


def bar_plot(title: str, x_label: str, y_label: str, categories: Sequence[str], stacks: Sequence[Stack],
             *, marked: Sequence[bool] = ()) -> str:
    """Stacked bars, one per category; ``marked`` categories get the untrustworthy ring above them."""
    out = _open(title)
    totals = [sum(s.values[i] for s in stacks) for i in range(len(categories))]
    if not categories or not any(totals):
        return _empty(out, "none")
    frame = _Frame([-0.5 + i for i in range(len(categories) + 1)], nice_ticks(0.0, max(totals)))
    frame.x0, frame.x1 = -0.5, len(categories) - 0.5
    _axes(out, frame, x_label, y_label, x_names=categories)
    width = min(48.0, (WIDTH - LEFT - RIGHT) / len(categories) * 0.6)
    for i, name in enumerate(categories):
        base = 0.0
        for stack in stacks:
            value = stack.values[i]
            if value <= 0:
                continue
            top, bottom = frame.y(base + value), frame.y(base)
            out.append(f'<rect class="bar s{stack.color % PALETTE_SIZE}" x="{_n(frame.x(i) - width / 2)}" '
                       f'y="{_n(top)}" width="{_n(width)}" height="{_n(bottom - top)}">'
                       f"<title>{escape(f'{name}: {stack.name} {fmt(value)}')}</title></rect>")
            base += value
        if i < len(marked) and marked[i]:
            out.append(f'<text class="untrusted-label" x="{_n(frame.x(i))}" y="{_n(frame.y(base) - 6)}" '
                       'text-anchor="middle">untrustworthy</text>')
    out.append("</svg>")
    return "".join(out)


MAX_LEGEND = 16


def legend(entries: Sequence[tuple[str, int, bool]], *, untrusted: bool = False) -> str:
    """HTML under a chart: (name, colour, dashed) swatches; the ring explained when drawn.
    Past MAX_LEGEND entries colours repeat, and the rest are named in the points' tooltips."""
    items = [f'<span class="key"><svg viewBox="0 0 24 10" class="swatch s{color % PALETTE_SIZE}">'
             f'<line x1="1" x2="23" y1="5" y2="5" class="{"dashed" if dashed else "solid"}"/></svg>{escape(name)}</span>'
             for name, color, dashed in entries[:MAX_LEGEND]]
    if len(entries) > MAX_LEGEND:
        items.append(f'<span class="key">and {len(entries) - MAX_LEGEND} more: a point\'s tooltip names it</span>')
    if untrusted:
        items.append('<span class="key"><svg viewBox="0 0 24 18" class="swatch"><circle class="untrusted" cx="12" '
                     'cy="9" r="7"/></svg>untrustworthy stage</span>')
    return f'<div class="legend">{"".join(items)}</div>'
