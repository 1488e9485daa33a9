"""Server-rendered SVG charts for the dashboard: bars and lines, right-to-left aware, nothing loaded from outside.

Each function returns markup safe to put in a page (every label is escaped). With ``rtl`` the bars grow from
the right and the time axis runs right to left, as a Persian reader reads. Each drawing says its own
``direction`` (else a right-to-left page's would flip every ``text-anchor``), so ``start`` is the side where
reading starts. Numbers are drawn as the caller shows them (``shown``, ``number``), so a Persian page passes
Persian digits. A bar's row may carry a ``key`` (its ``data-step``) and a ``hint`` (what the figure means): the
row's ``<title>``, which a browser shows on hover.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from markupsafe import Markup, escape

__all__ = ["Bar", "bars", "sections", "lines"]

WIDTH = 640
ROW = 26
LABEL = 150
COLOURS = ("#2563eb", "#16a34a", "#d97706", "#dc2626", "#7c3aed", "#0891b2")


class Bar(NamedTuple):
    """One bar: its label, value and shown value; ``key`` and ``hint`` as the module says."""

    label: str
    value: float
    shown: str
    key: str = ""
    hint: str = ""


def _open(title: str, height: int, rtl: bool) -> str:
    return (f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" width="100%" '
            f'direction="{"rtl" if rtl else "ltr"}" aria-label="{escape(title)}"><title>{escape(title)}</title>')


def _bar(row: Bar, y: float, top: float, rtl: bool) -> str:
    span = WIDTH - LABEL - 90
    length = max(span * row.value / top, 0)
    if rtl:
        x_label, x_bar = WIDTH - 4, WIDTH - LABEL - length
        x_value = x_bar - 6
    else:
        x_label, x_bar = 4, LABEL
        x_value = LABEL + length + 6
    hover = f"{row.label}: {row.shown}" + (f" ({row.hint})" if row.hint else "")
    step = f' data-step="{escape(row.key)}"' if row.key else ""
    return (f'<g class="row"{step}><title>{escape(hover)}</title>'
            f'<text x="{x_label}" y="{y + 16}" text-anchor="start">{escape(row.label)}</text>'
            f'<rect class="bar" x="{x_bar:.1f}" y="{y + 3}" width="{length:.1f}" height="{ROW - 8}" '
            f'fill="{COLOURS[0]}"/>'
            f'<text class="value" x="{x_value:.1f}" y="{y + 16}" text-anchor="start">{escape(row.shown)}</text>'
            f'</g>')


def bars(title: str, rows: list[tuple], *, rtl: bool = False) -> Markup:
    """Horizontal bars: ``rows`` of :class:`Bar` (or plain (label, value, shown) tuples)."""
    rows = [Bar(*r) for r in rows]
    top = max((r.value for r in rows), default=0) or 1
    parts = [_open(title, ROW * max(len(rows), 1) + 8, rtl)]
    parts += [_bar(row, 4 + i * ROW, top, rtl) for i, row in enumerate(rows)]
    if not rows:
        parts.append(f'<text x="{WIDTH / 2}" y="20" text-anchor="middle">–</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def sections(title: str, groups: list[tuple[str, list[Bar]]], *, rtl: bool = False) -> Markup:
    """Bars in headed groups (a funnel per touch: one group per touch), on one scale so groups compare."""
    top = max((r.value for _, rows in groups for r in rows), default=0) or 1
    height = sum(ROW * (len(rows) + 1) for _, rows in groups) + 8
    parts, y = [_open(title, max(height, ROW + 8), rtl)], 4
    for heading, rows in groups:
        parts.append(f'<g class="section" data-section="{escape(heading)}">'
                     f'<text class="heading" x="{WIDTH - 4 if rtl else 4}" y="{y + 16}" '
                     f'text-anchor="start" font-weight="bold">{escape(heading)}</text>')
        y += ROW
        for row in rows:
            parts.append(_bar(row, y, top, rtl))
            y += ROW
        parts.append("</g>")
    if not groups:
        parts.append(f'<text x="{WIDTH / 2}" y="20" text-anchor="middle">–</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def lines(title: str, labels: list[str], series: dict[str, list[int]], names: dict[str, str], *,
          rtl: bool = False, number: Callable[[float], str] = "{:,}".format) -> Markup:
    """One line per series over ``labels`` (days), with a legend; ``number`` shows the scale and the totals."""
    height, pad, legend = 220, 30, 24
    top = max((v for values in series.values() for v in values), default=0) or 1
    n = max(len(labels) - 1, 1)

    def x(i: int) -> float:
        step = pad + (WIDTH - 2 * pad) * i / n
        return WIDTH - step if rtl else step

    def y(v: int) -> float:
        return height - pad - (height - 2 * pad - legend) * v / top

    parts = [_open(title, height, rtl),
             f'<line x1="{pad}" y1="{height - pad}" x2="{WIDTH - pad}" y2="{height - pad}" stroke="#999"/>',
             f'<text x="{WIDTH - pad if rtl else pad}" y="{legend + 12}" text-anchor="start" '
             f'class="muted">{escape(number(top))}</text>']
    for k, (key, values) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        parts.append(f'<polyline class="series" data-series="{escape(key)}" fill="none" stroke="{colour}" '
                     f'stroke-width="2" points="{points}"><title>{escape(names.get(key, key))}: '
                     f'{escape(number(sum(values)))}</title></polyline>')
        lx = WIDTH - pad - 140 * k if rtl else pad + 140 * k
        parts.append(f'<rect x="{lx - 14 if rtl else lx}" y="4" width="12" height="12" fill="{colour}"/>'
                     f'<text x="{lx - 18 if rtl else lx + 16}" y="15" text-anchor="start">'
                     f'{escape(names.get(key, key))}</text>')
    if labels:
        for i, anchor in ((0, "start"), (len(labels) - 1, "end")):  # the first day at the reading start
            parts.append(f'<text x="{x(i):.1f}" y="{height - 8}" text-anchor="{anchor}">{escape(labels[i])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
