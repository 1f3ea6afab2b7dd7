"""The judging machinery of every learner check: run, copy, read, compare with known mistakes.

A check is a table, not a chain of guesses:

    TOP_P = Check("check_top_p", reference=reference_top_p, cases=_cases, read=_read,
                  same=close, variants=[
                      Variant("ascending", "sorted ascending", "sort with descending=True ...",
                              fns=[top_p_sorted_ascending]),
                      ...])

    def check_top_p(fn) -> bool:
        return TOP_P.check(fn)

Each `Variant` is the reference solution with one known mistake made on purpose (its `fns`:
one or more ways to write that mistake), or, for a broad mistake, a `test(got, want, *args)`
that states a fact about the output ("proportional to the expected, but not summing to 1").
`Check.verdict(fn)` reaches its verdict in this order, and never guesses:

1. every case runs on a *copy* of its arguments (tensors, lists, dicts, sets -- not models or
   tokenizers), so a function that edits its input in place spoils nothing; the reference
   and the variants run on copies too, before and after the learner's function;
2. `NotImplementedError` on the first case is "not attempted yet"; any other exception, from
   the function or from reading what it returned, is a verdict that names it (with the line);
3. `read(out, *args)` turns the output into a comparable value or raises `Mistake(hint, key)`
   for a wrong type, shape or dtype (every check's read starts with `read_none`: a missing
   `return` is named as such);
4. equal to the reference (or an `also_correct` solution) on every case: passed;
5. equal, case by case, to exactly one variant's output: that variant is named, with the
   smallest case that shows the mistake (input, expected, got);
6. else the first broad variant whose test holds on every failing case;
7. else the smallest failing case (input, expected, got, and `facts`: true symptoms only),
   and a plain "this mistake is not one the check knows".

Cases are listed smallest first, so "the first failing case" is the smallest one.
tests/checks/ runs a corpus of plausible wrong answers through every check; a new check
(the later notebooks') is a reference, a variant table and a few cases that tell the
variants apart (tests/test_checks.py asserts they do, for every check it lists).

Left out on purpose: scoring, hidden tests, randomised property testing, and naming two
mistakes made at once (the smallest failing case is shown instead).
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

PASSED, NOT_ATTEMPTED, NOT_CALLABLE = "passed", "not_attempted", "not_callable"
RAISED, UNREADABLE, UNKNOWN, BROKEN = "raised", "unreadable", "unknown", "check_failed"


class Mistake(AssertionError):
    """Raised by a check's `read` when the output cannot be judged (wrong type, shape...);
    its message is the hint shown to the learner, its `key` names the mistake."""

    def __init__(self, hint: str, key: str = "type"):
        super().__init__(hint)
        self.key = key


@dataclass
class Case:
    """One call of the learner's function, `fn(*args)`; `label` describes the input."""

    label: str                      # shown in the verdict, e.g. "probs=[0.1, 0.5], p=0.7"
    args: tuple


@dataclass
class Variant:
    """A known mistake: the reference solution written with that mistake (`fns`, any of
    which may match), or a `test(got, want, *args) -> bool` that holds when `got` shows it."""

    key: str                        # stable name (tests and benchmarks/checks_report.py use it)
    title: str                      # what the learner did, in a few words: "not renormalised"
    hint: str                       # what to change
    fns: Sequence[Callable] = ()
    test: Callable | None = None


@dataclass
class Verdict:
    passed: bool
    key: str                        # PASSED, a variant's key, a read key, RAISED, UNKNOWN, ...
    message: str

    def line(self, name: str) -> str:
        mark = "✅" if self.passed else ("⏳" if self.key == NOT_ATTEMPTED else "❌")
        return f"{mark} {name}: {self.message}"


def copy_arg(x):
    """A copy of an argument: tensors, lists, tuples, dicts and sets (recursively); numbers and
    strings are immutable; anything else (a model, a tokenizer) is shared, not copied."""
    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, list):
        return [copy_arg(v) for v in x]
    if isinstance(x, tuple):
        return tuple(copy_arg(v) for v in x)
    if isinstance(x, dict):
        return {k: copy_arg(v) for k, v in x.items()}
    if isinstance(x, (set, frozenset)):
        return type(x)(x)
    return x


def _safe(fn, *args):
    """fn(*args), or None when it raises (a variant that cannot run on a case never matches)."""
    try:
        return fn(*args)
    except Exception:
        return None


def short(x, limit: int = 160) -> str:
    """repr(x), cut to `limit` characters; never raises."""
    try:
        text = repr(x)
    except Exception as e:
        text = f"<{type(x).__name__} whose repr raised {type(e).__name__}>"
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _where(error: BaseException, fn) -> str:
    """' (line 7: out[order] = s)': the last line of the learner's own code in the traceback."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return ""
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if f.filename == code.co_filename]
    if not frames:
        return ""
    f = frames[-1]
    return f" (line {f.lineno}: {f.line.strip()})" if f.line else f" (line {f.lineno})"


# --- reading and showing values (shared by the checks) ----------------------------------------


def read_none(out) -> None:
    if out is None:
        raise Mistake("your function returned None -- did you forget `return`? (editing the "
                      "input in place does not give it back)", "none")


def read_tensor(out, like: torch.Tensor, what: str) -> torch.Tensor:
    """`out` as a float64 CPU tensor shaped like `like` (one `what` per entry), or a Mistake."""
    read_none(out)
    if not isinstance(out, torch.Tensor):
        raise Mistake(f"return a torch tensor, not {type(out).__name__} (torch.tensor(...) "
                      "makes one)", "type")
    if tuple(out.shape) != tuple(like.shape):
        raise Mistake(f"return one {what}: expected shape {tuple(like.shape)}, got "
                      f"{tuple(out.shape)}", "shape")
    if not out.is_floating_point():
        raise Mistake(f"return floating-point numbers, not {out.dtype} (a mask of True/False "
                      "or whole numbers is not the answer)", "dtype")
    return out.detach().to("cpu", torch.float64)


def close(got, want, atol: float = 1e-5, rtol: float = 1e-5) -> bool:
    """Tensors of one shape, equal within tolerance (NaN equals NaN, -inf equals -inf)."""
    return (isinstance(got, torch.Tensor) and isinstance(want, torch.Tensor)
            and got.shape == want.shape
            and torch.allclose(got.double(), want.double(), atol=atol, rtol=rtol, equal_nan=True))


def proportional(got: torch.Tensor, want: torch.Tensor) -> bool:
    """got = c·want for one c ≠ 1 (finite, > 0): the right entries, the wrong total."""
    if not (torch.isfinite(got).all() and torch.isfinite(want).all()):
        return False
    if not torch.equal(got == 0, want == 0) or not (want > 0).any():
        return False
    ratio = got[want > 0] / want[want > 0]
    c = float(ratio.mean())
    return c > 0 and abs(c - 1) > 1e-4 and torch.allclose(ratio, torch.full_like(ratio, c),
                                                          rtol=1e-5, atol=1e-9)


def show_vector(t: torch.Tensor, digits: int = 4, limit: int = 8) -> str:
    """[0.5, 0.25, ...] for a short vector; {index: value} of the non-zero entries otherwise."""
    if t.numel() <= limit:
        return "[" + ", ".join(f"{v:.{digits}g}" for v in t.tolist()) + "]"
    nz = t.nonzero().flatten().tolist()
    shown = ", ".join(f"{i}: {float(t[i]):.{digits}g}" for i in nz[:limit])
    more = f", … {len(nz) - limit} more" if len(nz) > limit else ""
    return f"{{{shown}{more}}} (the other {t.numel() - len(nz)} are 0)"


def diff_vector(want: torch.Tensor, got: torch.Tensor, digits: int = 4, limit: int = 4,
                name=lambda i: f"index {i}") -> str:
    """Where two long vectors differ: 'at index 3: expected 0.25, got 0'."""
    bad = (~torch.isclose(got, want, atol=1e-5, equal_nan=True)).nonzero().flatten().tolist()
    parts = [f"at {name(i)}: expected {float(want[i]):.{digits}g}, got {float(got[i]):.{digits}g}"
             for i in bad[:limit]]
    more = f" (and {len(bad) - limit} more entries)" if len(bad) > limit else ""
    return "; ".join(parts) + more


# --- the check ------------------------------------------------------------------------------


def _default_show(want, got, *args) -> tuple[str, str]:
    if isinstance(want, torch.Tensor) and isinstance(got, torch.Tensor):
        if want.numel() > 8 and want.shape == got.shape:
            return "", diff_vector(want, got)
        return show_vector(want), show_vector(got)
    if isinstance(want, float) and isinstance(got, float):
        return f"{want:.4f}", f"{got:.4f}"
    return short(want), short(got)


@dataclass
class Check:
    """A learner check: the reference, the cases (smallest first), how to read an output, and
    the table of known mistakes. `check(fn)` prints the verdict and returns True/False."""

    name: str
    reference: Callable
    cases: Callable[..., list]                      # (**context) -> [Case], smallest first
    read: Callable                                  # (out, *args) -> comparable; or Mistake
    same: Callable = close                          # (got, want) -> bool
    variants: list = field(default_factory=list)
    also_correct: Sequence[Callable] = ()           # other correct solutions (ties broken...)
    show: Callable = _default_show                  # (want, got, *args) -> (text, text)
    facts: Callable | None = None                   # (got, want, *args) -> [true symptoms]

    def check(self, fn, **context) -> bool:
        v = self.verdict(fn, **context)
        print(v.line(self.name))
        return v.passed

    def verdict(self, fn, **context) -> Verdict:
        try:
            return self._verdict(fn, context)
        except Exception as e:       # the check's own failure must not stop a notebook either
            return Verdict(False, BROKEN, f"the check itself could not run ({type(e).__name__}: "
                                          f"{e}) -- if you passed it a model or a tokenizer, "
                                          "check that argument; your function was not judged")

    # -- the steps --------------------------------------------------------------------------

    def _out(self, fn, case: Case):
        out = fn(*(copy_arg(a) for a in case.args))
        return self.read(out, *case.args)

    def _verdict(self, fn, context) -> Verdict:
        if not callable(fn):
            return Verdict(False, NOT_CALLABLE, f"expected a function, got {type(fn).__name__} "
                           "-- pass the function itself: check(my_fn), not check(my_fn(...))")
        cases = self.cases(**context)
        wants = [self._out(self.reference, c) for c in cases]
        gots = []
        for i, case in enumerate(cases):
            try:
                out = fn(*(copy_arg(a) for a in case.args))
            except NotImplementedError as e:
                if i == 0:
                    return Verdict(False, NOT_ATTEMPTED, "not attempted yet -- replace `raise "
                                   "NotImplementedError` with your code and run this cell again")
                return self._raised(fn, case, e)
            except Exception as e:       # the learner's bug: report it, never raise it
                return self._raised(fn, case, e)
            try:
                gots.append(self.read(out, *case.args))
            except Mistake as m:
                return Verdict(False, m.key, f"on {case.label}: {m}")
            except Exception as e:
                return Verdict(False, UNREADABLE, f"on {case.label}, reading what your function "
                               f"returned ({short(out, 60)}) raised {type(e).__name__}: {e}")
        ok = [self._correct(g, w, c) for g, w, c in zip(gots, wants, cases)]
        if all(ok):
            return Verdict(True, PASSED, f"passed ({len(cases)} cases)")
        failing = [i for i, good in enumerate(ok) if not good]
        first = failing[0]
        exact = [v for v in self.variants if v.fns and self._matches(v, cases, gots, wants, ok)]
        if len(exact) == 1:
            return self._named(exact[0], cases[first], wants[first], gots[first])
        if not exact:
            for v in self.variants:
                if v.test is not None and all(self._shows(v, gots[i], wants[i], cases[i])
                                              for i in failing):
                    return self._named(v, cases[first], wants[first], gots[first])
        return self._unknown(cases[first], wants[first], gots[first])

    def _raised(self, fn, case, e) -> Verdict:
        return Verdict(False, RAISED, f"on {case.label}, your function raised "
                                      f"{type(e).__name__}: {e}{_where(e, fn)}")

    def _same(self, got, want) -> bool:
        return bool(_safe(self.same, got, want))

    def _correct(self, got, want, case) -> bool:
        if self._same(got, want):
            return True
        return any(self._same(got, _safe(self._out, f, case)) for f in self.also_correct)

    def _shows(self, v: Variant, got, want, case) -> bool:
        """v's test holds against the reference's output, or another correct one's."""
        others = [_safe(self._out, f, case) for f in self.also_correct]
        return any(bool(_safe(v.test, got, w, *case.args))
                   for w in [want, *others] if w is not None)

    def _matches(self, v: Variant, cases, gots, wants, ok) -> bool:
        """The learner's output equals one of the variant's on every case (where both are
        correct, either way of being correct will do)."""
        for case, got, want, good in zip(cases, gots, wants, ok):
            outs = [_safe(self._out, f, case) for f in v.fns]
            outs = [o for o in outs if o is not None]
            if any(self._same(got, o) for o in outs):
                continue
            if good and any(self._correct(o, want, case) for o in outs):
                continue
            return False
        return True

    def _example(self, case, want, got, *, facts: bool = False) -> str:
        try:
            w, g = self.show(want, got, *case.args)
        except Exception:
            w, g = short(want), short(got)
        shown = f"expected {w}, got {g}" if w else g
        extra = ""
        if facts and self.facts is not None:
            found = _safe(self.facts, got, want, *case.args) or []
            extra = "".join(f"; {f}" for f in found)
        return f"on {case.label}: {shown}{extra}"

    def _named(self, v: Variant, case, want, got) -> Verdict:
        return Verdict(False, v.key, f"{v.title} -- {v.hint}\n    "
                                     f"{self._example(case, want, got)}")

    def _unknown(self, case, want, got) -> Verdict:
        return Verdict(False, UNKNOWN, f"{self._example(case, want, got, facts=True)}\n    This "
                       "is not a mistake the check knows, so it names none: compare your output "
                       "with the expected one on this, the smallest failing case.")


# --- a check that calls every function through an adapter (notebook 03) ----------------------


class Adapted:
    """`call(fn, *args)` as a function of the case's args. It carries fn's `__code__`, so an
    error raised in the learner's code is still shown with the learner's line."""

    def __init__(self, fn, call):
        self.fn, self.call = fn, call
        self.__code__ = getattr(fn, "__code__", None)

    def __call__(self, *args):
        return self.call(self.fn, *args)


@dataclass
class Adapting(Check):
    """A Check whose functions (the learner's, the reference, every variant's) are called
    through `adapt(fn, *case.args)`."""

    adapt: Callable | None = None

    def verdict(self, fn, **context):
        return super().verdict(Adapted(fn, self.adapt) if callable(fn) else fn, **context)

    def _out(self, fn, case: Case):
        return super()._out(Adapted(fn, self.adapt), case)
