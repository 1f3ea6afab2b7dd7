"""The one number validator: clear messages that name the knob, the value and the range."""
import math

import pytest

from labkit.validate import number, whole


def test_number_accepts_numbers_in_range():
    assert number("top-p", 0.5, low=0, high=1, low_open=True) == 0.5
    assert number("t", "0.7") == 0.7                     # what float() accepts
    assert number("lam", math.inf, finite=False) == math.inf


@pytest.mark.parametrize("value, match", [
    ("abc", "top-p must be a number, got 'abc'"),
    (None, "must be a number"),
    (True, "must be a number"),
    (math.nan, "NaN"),
    (math.inf, "must be finite"),
    (0.0, r"must be in \(0, 1\], got 0"),
    (1.5, r"in \(0, 1\], got 1.5 \(1 keeps every token\)"),
])
def test_number_refuses_with_a_message_that_names_the_knob(value, match):
    with pytest.raises(ValueError, match=match):
        number("top-p", value, low=0, high=1, low_open=True, hint=" (1 keeps every token)")


def test_one_sided_ranges_read_naturally():
    with pytest.raises(ValueError, match="beta must be > 0, got -1"):
        number("beta", -1, low=0, low_open=True)
    with pytest.raises(ValueError, match="x must be ≤ 3, got 4"):
        number("x", 4, high=3)


def test_whole_numbers():
    assert whole("k", 3) == 3 and whole("k", 4.0) == 4 and isinstance(whole("k", 4.0), int)
    for bad in (2.5, "3", True, None):
        with pytest.raises(ValueError, match="k must be a whole number"):
            whole("k", bad)
    with pytest.raises(ValueError, match="k must be a whole number ≥ 1, got 0 \\(1 is greedy\\)"):
        whole("k", 0, low=1, hint=" (1 is greedy)")
