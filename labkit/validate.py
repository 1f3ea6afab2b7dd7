"""The one number validator: every knob, strength and setting of labkit is checked here.

A learner who types `Temperature("0.7")`, `BagOfWords(..., strength=float("nan"))` or
`RLConfig(beta=0)` gets a `ValueError` that names the knob, the value and what to change,
never a traceback from deep inside torch. Every module of labkit that takes a number from a
user calls `number` (or `whole`), so the messages read alike.

Left out on purpose: units and type coercion beyond float()/int() (a string that parses as
a number is accepted, as float() accepts it).
"""
from __future__ import annotations

import math


def number(name: str, value, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, finite: bool = True,
           hint: str = "") -> float:
    """`value` as a float, or a ValueError naming `name`, the value and the allowed range.

    `low`/`high` bound it (inclusive unless `low_open`/`high_open`); `finite=False` lets ±inf
    through; `hint` is appended to a range error (what to do instead)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if math.isnan(value):
        raise ValueError(f"{name} is NaN: give a number")
    if finite and math.isinf(value):
        raise ValueError(f"{name} must be finite, got {value}{hint}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        raise ValueError(f"{name} must be {_range(low, high, low_open, high_open)}, "
                         f"got {value:g}{hint}")
    return value


def whole(name: str, value, *, low: int | None = None, high: int | None = None,
          hint: str = "") -> int:
    """`value` as an int (a float with no fractional part is accepted), or a ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"{name} must be a whole number, got {value!r}{hint}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be a whole number {_range(low, high, False, False)}, "
                         f"got {value}{hint}")
    return value


def _range(low, high, low_open, high_open) -> str:
    lo = None if low is None else (">" if low_open else "≥") + f" {low:g}"
    hi = None if high is None else ("<" if high_open else "≤") + f" {high:g}"
    if lo and hi:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    return lo or hi or "a number"
