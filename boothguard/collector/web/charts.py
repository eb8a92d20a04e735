"""Stacked bar charts as inline SVG, drawn on the server (no script, no external library).

Only presentation attributes are used (no `style`), so the pages' strict CSP holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from markupsafe import Markup

# Colour-blind friendly (Okabe-Ito), assigned in series order; severities get fixed colours.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999")
SEVERITY_COLOURS = {
    "info": "#999999",
    "low": "#56B4E9",
    "medium": "#E69F00",
    "high": "#D55E00",
    "critical": "#8B0000",
}


def _nice_max(value: int) -> int:
    """An axis top of 4 whole steps (1, 2, 2.5, 5 x 10^k, integer) covering `value`."""
    k = 1
    while True:
        for m in (1, 2, 2.5, 5):
            step = m * k
            if step == int(step) and 4 * step >= value:
                return int(4 * step)
        k *= 10


def stacked_bars(
    *,
    labels: Sequence[str],
    series: Mapping[str, Sequence[int]],
    title: str,
    colours: dict[str, str] | None = None,
    series_labels: dict[str, str] | None = None,
    label_every: int = 1,
    width: int = 860,
    height: int = 260,
    empty_text: str = "no data",
) -> Markup:
    """One bar per label, stacked by series; a legend underneath; `<title>` tooltips per segment."""
    left, right, top, bottom = 44, 10, 10, 46
    legend_rows = (len(series) + 5) // 6
    total_h = height + legend_rows * 20
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(labels), 1)
    totals = [sum(s[i] for s in series.values()) for i in range(len(labels))]
    ymax = _nice_max(max(totals, default=0))
    slot = plot_w / n
    bar_w = max(slot * 0.7, 1.0)
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {total_h}"'
        f' width="100%" preserveAspectRatio="xMinYMin meet" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for i in range(5):
        value = ymax * i / 4
        y = top + plot_h - plot_h * i / 4
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#dddddd"/>')
        out.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="#555555">'
            f"{value:g}</text>"
        )
    palette = dict(colours or {})
    names = list(series)
    for j, name in enumerate(names):
        palette.setdefault(name, PALETTE[j % len(PALETTE)])
    for i, label in enumerate(labels):
        x = left + slot * i + (slot - bar_w) / 2
        base = float(top + plot_h)
        for name in names:
            value = series[name][i]
            if value <= 0:
                continue
            h = plot_h * value / ymax
            base -= h
            shown = (series_labels or {}).get(name, name)
            out.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{palette[name]}"><title>{escape(label)} {escape(shown)}: {value}</title></rect>'
            )
        if i % label_every == 0:
            out.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 16}" font-size="11" '
                f'text-anchor="middle" fill="#333333">{escape(label)}</text>'
            )
    out.append(
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#333333"/>'
    )
    if not any(totals):
        out.append(
            f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" font-size="14" '
            f'text-anchor="middle" fill="#777777">{escape(empty_text)}</text>'
        )
    for j, name in enumerate(names):
        lx = left + (j % 6) * 135
        ly = height - 8 + (j // 6) * 20
        shown = (series_labels or {}).get(name, name)
        out.append(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{palette[name]}"/>')
        out.append(f'<text x="{lx + 16}" y="{ly}" font-size="12" fill="#333333">{escape(shown)}</text>')
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every interpolated text above is escaped
