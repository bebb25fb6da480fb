"""Inline SVG charts: no script, no library, stretched to their box by the browser."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape


def line_chart(values: Sequence[int], *, title: str, width: int = 720, height: int = 120) -> str:
    """A line of ``values`` (oldest first), scaled to its maximum."""
    top = max(values, default=0) or 1
    step = width / max(1, len(values) - 1)
    points = " ".join(
        f"{i * step:.1f},{height - 2 - v * (height - 12) / top:.1f}" for i, v in enumerate(values)
    )
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" preserveAspectRatio="none" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)} (max {top})</title>'
        f'<polyline fill="none" stroke="#017cee" stroke-width="1.5" vector-effect="non-scaling-stroke" '
        f'points="{points}"/></svg>'
    )


def bar_chart(bars: Sequence[tuple[str, int]], *, title: str, width: int = 720, height: int = 120) -> str:
    """One bar per ``(label, value)``, each with its value as a tooltip."""
    top = max((v for _, v in bars), default=0) or 1
    slot = width / max(1, len(bars))
    rects = "".join(
        f'<rect x="{i * slot + 1:.1f}" y="{height - v * (height - 10) / top:.1f}" width="{slot - 2:.1f}" '
        f'height="{v * (height - 10) / top:.1f}" fill="#00a65a"><title>{escape(label)}: {v}</title></rect>'
        for i, (label, v) in enumerate(bars)
    )
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" preserveAspectRatio="none" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>{rects}</svg>'
    )
