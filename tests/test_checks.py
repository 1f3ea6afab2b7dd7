"""The learner checks: each passes the reference solution, fails each classic mistake with
the hint that names it, and reports "not attempted yet" without raising."""
import pytest
import torch

import labkit as lk
from labkit import checks


def _nucleus(probs, p, *, keep):
    """A top-p written the way learners write it; `keep(cum, sorted)` picks the kept tokens."""
    s, order = probs.sort(descending=True, stable=True)
    cum = s.cumsum(0)
    kept = keep(cum, s)
    out = torch.zeros_like(probs)
    out[order[kept]] = s[kept]
    return out


def correct(probs, p):
    out = _nucleus(probs, p, keep=lambda cum, s: cum - s < p)
    return out / out.sum()


def correct_other_tie(probs, p):
    """Correct, but breaks ties at the boundary the other way (the later token first)."""
    flipped = correct(probs.flip(0), p)
    return flipped.flip(0)


def not_renormalised(probs, p):
    return _nucleus(probs, p, keep=lambda cum, s: cum - s < p)


def drops_crossing_token(probs, p):
    out = _nucleus(probs, p, keep=lambda cum, s: cum <= p)
    return out / out.sum()


def one_too_many(probs, p):
    out = _nucleus(probs, p, keep=lambda cum, s: cum - s <= p)
    return out / out.sum()


def unsorted(probs, p):
    cum = probs.cumsum(0)
    out = probs * (cum - probs < p)
    return out / out.sum()


def rescaled_wrongly(probs, p):
    out = _nucleus(probs, p, keep=lambda cum, s: cum - s < p)
    out[out > 0] = 1.0
    return out / out.sum()                      # uniform over the nucleus


def not_attempted(probs, p):
    """Return the nucleus distribution."""
    raise NotImplementedError


def test_reference_passes(capsys):
    assert checks.check_top_p(checks.reference_top_p) is True
    assert "✅ check_top_p" in capsys.readouterr().out


@pytest.mark.parametrize("fn", [correct, correct_other_tie])
def test_correct_learner_solutions_pass(fn, capsys):
    assert checks.check_top_p(fn) is True, capsys.readouterr().out


def test_reference_agrees_with_the_top_p_control():
    probs = torch.softmax(torch.randn(100, generator=torch.Generator().manual_seed(1)), 0)
    for p in (0.1, 0.5, 0.9, 0.99):
        want = lk.Distribution.from_logits(probs.log()).apply(lk.controls.TopP(p)).probs
        torch.testing.assert_close(checks.reference_top_p(probs, p), want)


@pytest.mark.parametrize("fn, hint", [
    (not_renormalised, "renormalise"),
    (drops_crossing_token, "dropped the token that crosses p"),
    (one_too_many, "one token too many"),
    (unsorted, "descending order"),
    (rescaled_wrongly, "relative probabilities"),
    (lambda probs, p: probs.tolist(), "return a torch tensor"),
    (lambda probs, p: probs[None], "expected shape"),
    (lambda probs, p: (probs > 0).long(), "floating-point"),
    (lambda probs, p: torch.zeros_like(probs), "kept no token"),
    (lambda probs, p: probs / 0 * 0, "NaN"),
])
def test_each_mistake_fails_with_its_hint(fn, hint, capsys):
    assert checks.check_top_p(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("❌ check_top_p") and hint in out, out


def test_not_attempted_is_reported_not_raised(capsys):
    assert checks.check_top_p(not_attempted) is False
    assert "not attempted yet" in capsys.readouterr().out


def test_an_exception_in_the_learner_code_is_reported(capsys):
    def broken(probs, p):
        return probs.sort()[2]
    assert checks.check_top_p(broken) is False
    assert "raised IndexError" in capsys.readouterr().out


def test_inputs_are_cloned_so_in_place_edits_cannot_spoil_later_cases(capsys):
    def in_place(probs, p):
        out = correct(probs, p)
        probs.zero_()
        return out
    assert checks.check_top_p(in_place) is True, capsys.readouterr().out


def test_the_generic_runner_reports_the_first_failing_case(capsys):
    def judge(out, x):
        if out != 2 * x:
            raise checks.Mistake("double it")
    cases = [checks.Case("x=1", (1,), judge), checks.Case("x=3", (3,), judge)]
    assert checks._run("check_double", lambda x: 2 * x, cases) is True
    assert checks._run("check_double", lambda x: x + 1, cases) is False
    out = capsys.readouterr().out.splitlines()
    assert out == ["✅ check_double: passed (2 cases)", "❌ check_double: on x=3: double it"]
