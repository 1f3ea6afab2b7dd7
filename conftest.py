"""Notebook claims are checked, not only displayed.

Notebooks are stored without outputs, so nbval has no reference output to compare a
`# NBVAL_CHECK_OUTPUT` cell with. The lesson's claims are therefore printed as
`<claim>: True` (or as rounded numbers) and this hook fails the cell when any of them
prints `False`: a claim that stops holding turns CI red.
"""
import re

import pytest


def _text(outputs) -> str:
    parts = []
    for out in outputs or ():
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
    return "".join(parts)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield                       # raises, and we stop here, if the cell failed
    source = getattr(getattr(item, "cell", None), "source", "")
    if "NBVAL_CHECK_OUTPUT" not in source:
        return result
    text = _text(getattr(item, "test_outputs", None))
    if not text.strip():
        pytest.fail(f"a claim cell printed nothing:\n{source}", pytrace=False)
    false = [line for line in text.splitlines() if re.search(r"\bFalse\b", line)]
    if false:
        pytest.fail("a claim of the lesson does not hold:\n  " + "\n  ".join(false)
                    + f"\nin the cell:\n{source}", pytrace=False)
    return result
