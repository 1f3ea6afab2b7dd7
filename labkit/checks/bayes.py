"""Notebook 01's checks: the tilt π(x)·e^{r(x)/β}/Z and the KL-penalised reward.

References: `labkit.bayes.tilt` (Korbak, Perez & Buckley 2022, "RL with KL penalties is better
viewed as Bayesian inference", eq. 5) and `labkit.bayes.kl_penalised_reward` (Ziegler et al.
2019, "Fine-Tuning Language Models from Human Preferences", eq. 2). Each known mistake is
written out as a variant; "not normalised" is a fact about the output (right up to a
constant), so it covers every wrong constant, not just one.
"""
from __future__ import annotations

import torch

from ..bayes import kl_penalised_reward, tilt
from ._runner import Case, Check, Variant, read_tensor

_lsm = lambda x: torch.log_softmax(x, 0)   # noqa: E731


def _shifted(got, want) -> bool:
    """got = want + c for one constant c ≠ 0: right up to the normalising constant."""
    d = got - want
    return bool(torch.isfinite(d).all()) and abs(float(d.mean())) > 1e-4 and \
        torch.allclose(d, d.mean().expand_as(d), atol=1e-6)


def _overflowing(logp, reward, beta):
    p = logp.exp() * (reward / beta).exp()
    return (p / p.sum()).log()


TILT_VARIANTS = [
    Variant("probabilities", "probabilities returned",
            "return log-probabilities, log π_β(x), not the probabilities π_β(x) themselves",
            fns=[lambda logp, r, beta: torch.softmax(logp + r / beta, 0)]),
    Variant("times_beta", "reward multiplied by β",
            "the tilt is e^{r/β}: divide the reward by β",
            fns=[lambda logp, r, beta: _lsm(logp + r * beta)]),
    Variant("sign", "reward sign flipped",
            "higher reward must mean higher probability: add r/β (e^{+r/β})",
            fns=[lambda logp, r, beta: _lsm(logp - r / beta)]),
    Variant("no_prior", "prior dropped",
            "the tilt is π(x)·e^{r/β}/Z: add log π(x) to r/β before normalising",
            fns=[lambda logp, r, beta: _lsm(r / beta)]),
    Variant("tempered_prior", "prior divided by β too",
            "divide only the reward by β: log π(x) + r(x)/β, not (log π(x) + r(x))/β",
            fns=[lambda logp, r, beta: _lsm((logp + r) / beta)]),
    Variant("overflow", "computed outside log space",
            "with large rewards e^{r/β} overflows to inf and the result becomes NaN or -inf: "
            "stay in log space, log π + r/β - logsumexp(log π + r/β)",
            fns=[_overflowing,
                 lambda logp, r, beta: logp + r / beta - (logp + r / beta).exp().sum().log()]),
    Variant("not_normalised", "not normalised",
            "your values are right up to a constant: subtract log Z = logsumexp(log π + r/β) "
            "so that exp of the result sums to 1",
            test=lambda got, want, *args: _shifted(got, want)),
]

KL_VARIANTS = [
    Variant("sign", "penalty sign flipped",
            "R = r - β·(log π_θ - log π_ref): moving away from the reference costs reward (check "
            "the sign, and that the ratio is π_θ over π_ref, not upside down)",
            fns=[lambda r, lp, lq, beta: r + beta * (lp - lq)]),
    Variant("no_beta", "β forgotten",
            "multiply the log-ratio by β", fns=[lambda r, lp, lq, beta: r - (lp - lq)]),
    Variant("ratio_over_beta", "log-ratio divided by β",
            "multiply the log-ratio by β, do not divide it",
            fns=[lambda r, lp, lq, beta: r - (lp - lq) / beta]),
    Variant("reward_over_beta", "reward divided by β",
            "leave r as it is: R = r - β·log(π_θ/π_ref) (r/β - log ratio is R/β, another scale)",
            fns=[lambda r, lp, lq, beta: r / beta - (lp - lq)]),
    Variant("beta_on_all", "β multiplies the reward too",
            "β multiplies only the log-ratio: r - β·(log π_θ - log π_ref), not β·(r - ...)",
            fns=[lambda r, lp, lq, beta: beta * (r - (lp - lq))]),
    Variant("probabilities", "probabilities instead of log-probabilities",
            "use the log-ratio log π_θ(x) - log π_ref(x) (a difference of the *logs* you are "
            "given), not a difference or ratio of probabilities",
            fns=[lambda r, lp, lq, beta: r - beta * (lp.exp() - lq.exp()),
                 lambda r, lp, lq, beta: r - beta * (lp.exp() / lq.exp())]),
    Variant("log_twice", "log taken of the log-probabilities",
            "logp and logp_ref are already logs: the log-ratio is logp - logp_ref, no further log",
            fns=[lambda r, lp, lq, beta: r - beta * torch.log(lp / lq)]),
    Variant("batch_kl", "one KL for every sequence",
            "the penalty is per sequence, β·(log π_θ(x) - log π_ref(x)) of its own x -- not "
            "an average over the sequences or the KL of the whole distribution",
            fns=[lambda r, lp, lq, beta: r - beta * (lp - lq).mean(),
                 lambda r, lp, lq, beta: r - beta * (lp.exp() * (lp - lq)).sum()]),
]


def _read_per_sequence(out, first, *args):
    return read_tensor(out, first, "value per sequence (don't sum or average over sequences)")


def _read_tilt(out, logp, reward, beta):
    return _read_per_sequence(out, logp)


def _tilt_facts(got, want, logp, reward, beta):
    if not torch.isfinite(got).all():
        return ["your result contains NaN or ±inf"]
    return [f"exp of your result sums to {float(got.exp().sum()):.4g}"]


def _tilt_cases() -> list[Case]:
    f64 = lambda *xs: torch.tensor(xs, dtype=torch.float64)   # noqa: E731
    logp = torch.log(f64(0.5, 0.25, 0.125, 0.125))
    gen = torch.Generator().manual_seed(0)
    logp_rand = torch.log_softmax(torch.randn(20, generator=gen, dtype=torch.float64), 0)
    r_rand = torch.randn(20, generator=gen, dtype=torch.float64)
    return [
        Case("logp=log[0.5, 0.25, 0.125, 0.125], reward=[0, 1, 2, 0], beta=1",
             (logp, f64(0.0, 1.0, 2.0, 0.0), 1.0)),
        Case("the same with beta=0.5 (a stronger tilt)", (logp, f64(0.0, 1.0, 2.0, 0.0), 0.5)),
        Case("large rewards (reward=[0, 1000, 999, 0], beta=1)",
             (logp, f64(0.0, 1000.0, 999.0, 0.0), 1.0)),
        Case("20 sequences, random rewards, beta=2", (logp_rand, r_rand, 2.0)),
    ]


def _kl_cases() -> list[Case]:
    f64 = lambda *xs: torch.tensor(xs, dtype=torch.float64)   # noqa: E731
    lp = torch.log(f64(0.5, 0.25, 0.125, 0.125))
    lq = torch.log(f64(0.25, 0.25, 0.25, 0.25))
    return [
        Case("reward=[1, 0, 2, 0], π_θ=[0.5, 0.25, 0.125, 0.125], π_ref uniform, beta=0.5",
             (f64(1.0, 0.0, 2.0, 0.0), lp, lq, 0.5)),
        Case("the same with beta=2", (f64(1.0, 0.0, 2.0, 0.0), lp, lq, 2.0)),
        Case("π_θ = π_ref (no penalty, R = r), beta=0.5", (f64(3.0, -1.0, 0.5, 0.0), lq, lq, 0.5)),
    ]


TILT = Check("check_tilt", reference=tilt, cases=_tilt_cases, read=_read_tilt,
             same=lambda got, want: _close(got, want), variants=TILT_VARIANTS, facts=_tilt_facts)
KL_REWARD = Check("check_kl_reward", reference=kl_penalised_reward, cases=_kl_cases,
                  read=_read_per_sequence, same=lambda got, want: _close(got, want),
                  variants=KL_VARIANTS,
                  facts=lambda got, *a: [] if torch.isfinite(got).all() else
                  ["your result contains NaN or ±inf"])


def _close(got, want) -> bool:
    return got.shape == want.shape and torch.allclose(got, want, atol=1e-4, rtol=1e-6,
                                                      equal_nan=True)


def check_tilt(fn) -> bool:
    """Check `fn(logp, reward, beta) -> log π_β`: log-probs of π(x)·e^{r(x)/β}/Z, normalised,
    computed in log space (Korbak, Perez & Buckley 2022, eq. 5)."""
    return TILT.check(fn)


def check_kl_reward(fn) -> bool:
    """Check `fn(reward, logp, logp_ref, beta) -> R`: the KL-penalised per-sequence reward
    R(x) = r(x) - β·(log π_θ(x) - log π_ref(x)) (Ziegler et al. 2019, eq. 2)."""
    return KL_REWARD.check(fn)
