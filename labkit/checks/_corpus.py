"""Scoring a check against a corpus of answers whose mistakes are known.

An `Entry` is one learner's answer, written as a student would write it from the exercise
text, with the verdict key it must get (`"passed"`, a variant's key, a read key such as
`"none"` or `"shape"`, `"raised"`, or `"unknown"` when the check cannot know the mistake and
must show the smallest failing case). `score(check, entry)` runs it and says how it fared;
tests/checks/ asserts every entry, and benchmarks/checks_report.py prints the table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ._runner import PASSED, UNKNOWN, Check


@dataclass
class Entry:
    name: str
    fn: Callable
    expect: str                     # the verdict key it must get
    mistake: str = ""               # what it does wrong, in words


@dataclass
class Outcome:
    entry: Entry
    key: str                        # the verdict's key ("crash" if the check itself raised)
    message: str
    misleading: bool                # names a known mistake the entry does not make

    @property
    def wrong(self) -> bool:       # the entry is a wrong answer
        return self.entry.expect != PASSED

    @property
    def caught(self) -> bool:
        return self.wrong and self.key != PASSED

    @property
    def named(self) -> bool:       # the verdict names exactly the mistake
        return self.wrong and self.entry.expect != UNKNOWN and self.key == self.entry.expect

    @property
    def fallback(self) -> bool:    # shown as a smallest failing case
        return self.wrong and self.key == UNKNOWN

    @property
    def crashed(self) -> bool:
        return self.key == "crash"

    @property
    def ok(self) -> bool:          # the verdict is the one the entry must get
        return self.key == self.entry.expect and not self.misleading


def titles_named(check: Check, message: str) -> list[str]:
    """The keys of the variants whose title appears in `message`."""
    return [v.key for v in check.variants if v.title in message]


def score(check: Check, entry: Entry, **context) -> Outcome:
    try:
        v = check.verdict(entry.fn, **context)
    except BaseException as e:          # a check must never raise; count it if it does
        return Outcome(entry, "crash", f"{type(e).__name__}: {e}", False)
    others = [k for k in titles_named(check, v.message) if k != entry.expect]
    return Outcome(entry, v.key, v.message, bool(others))


def table(rows: dict[str, list[Outcome]]) -> str:
    """A text table: per check, the corpus size and how its wrong answers fared."""
    head = ("check", "wrong", "caught", "named", "fallback", "misleading", "crash", "correct ok")
    lines, total, n_right = [], [0] * 7, 0

    def line(name, cells):
        return f"{name:<24}" + "".join(f"{c:>11}" for c in cells)

    lines.append(line(head[0], head[1:]))
    for name, outs in rows.items():
        wrong = [o for o in outs if o.wrong]
        right = [o for o in outs if not o.wrong]
        cells = [len(wrong), sum(o.caught for o in wrong), sum(o.named for o in wrong),
                 sum(o.fallback for o in wrong), sum(o.misleading for o in outs),
                 sum(o.crashed for o in outs), sum(o.key == PASSED for o in right)]
        total = [t + c for t, c in zip(total, cells)]
        n_right += len(right)
        lines.append(line(name, cells[:-1] + [f"{cells[-1]}/{len(right)}"]))
    lines.append(line("total", total[:-1] + [f"{total[-1]}/{n_right}"]))
    return "\n".join(lines)
