"""Benchmarks (``make bench``): each ``bench_*.py`` module measures one promise of the product.

A module has ``main() -> dict`` (its measurements, JSON-ready) and ``summary(result) -> list[Row]``
(its lines of the one table ``make bench`` prints). Benchmarks measure; tests assert.
"""

from __future__ import annotations

#: One line of the table: figure, measured value, target (or ""), and whether the target is met
#: (``None`` when the figure has no target).
Row = tuple[str, str, str, bool | None]
