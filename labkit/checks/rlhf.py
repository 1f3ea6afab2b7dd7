"""Notebook 04's checks: the RLOO advantage, the reward model's loss and DPO's loss.

References: `labkit.rlhf.rloo_advantage` (A_ij = R_ij - 1/(G-1)·Σ_{k≠j} R_ik: Kool, van Hoof
& Welling 2019; Ahmadian et al. 2024), `labkit.rewards.bradley_terry_loss` (-mean log
σ(r_chosen - r_rejected): Ouyang et al. 2022, "InstructGPT", eq. 1) and `labkit.dpo.dpo_loss`
(-mean log σ(β·[(log π_θ - log π_ref)(y_w) - (log π_θ - log π_ref)(y_l)]): Rafailov et al.
2023, eq. 7); the soft labels `p_chosen` are not part of the exercises. The cases are float32,
so log(sigmoid(...)) underflows on their large margins as in training. Two mistakes give the
same numbers as another and are named by it: softplus(Δ) is the flipped sign of -log σ(Δ) =
softplus(-Δ), and upside-down log-ratios (log π_ref - log π_θ) flip DPO's sign.
"""
from __future__ import annotations

import math
import numbers

import torch

from ..dpo import dpo_loss
from ..rewards import bradley_terry_loss
from ..rlhf import rloo_advantage
from ._runner import Case, Check, Mistake, Variant, read_none, read_tensor

_ls = torch.nn.functional.logsigmoid


def _f32(*rows):                       # float32, as a model's outputs are
    return torch.tensor(rows, dtype=torch.float32)


# --- the RLOO advantage ------------------------------------------------------------------------


def _others(r, dim=1):
    """The leave-one-out baseline along `dim`: the mean of the other entries."""
    return (r.sum(dim, keepdim=True) - r) / (r.shape[dim] - 1)


def _grpo(r, correction=1, eps=0.0, centre=lambda r: r - r.mean(1, keepdim=True)):
    return centre(r) / (r.std(1, keepdim=True, correction=correction) + eps)


RLOO_VARIANTS = [
    Variant("own_in_baseline", "the completion's own reward in its baseline",
            "the baseline of completion j is the mean of the *other* G-1 rewards of its prompt, "
            "(row sum - R_ij)/(G-1): R minus the row's mean shrinks every advantage by (G-1)/G",
            fns=[lambda r: r - r.mean(1, keepdim=True)]),
    Variant("sign", "advantage sign flipped",
            "A = R - baseline: a completion that scored above the others gets a positive "
            "advantage, so its log-probability is pushed up",
            fns=[lambda r: _others(r) - r]),
    Variant("divided_by_g", "the others' sum divided by G",
            "there are G-1 other completions: divide their sum by G-1, not by G",
            fns=[lambda r: r - (r.sum(1, keepdim=True) - r) / r.shape[1]]),
    Variant("batch_mean", "one baseline for the whole batch",
            "each prompt has its own baseline, from its own G completions (row i of rewards): "
            "reduce over dim=1 with keepdim=True, not over every reward of the batch",
            fns=[lambda r: r - r.mean(), lambda r: r - (r.sum() - r) / (r.numel() - 1)]),
    Variant("std_normalised", "divided by the standard deviation (GRPO's advantage)",
            "RLOO's advantage is R_ij minus the others' mean and nothing more; dividing by the "
            "row's std is GRPO's normalisation (and a row of equal rewards gives 0/0)",
            fns=[lambda r, c=c, e=e, m=m: _grpo(r, c, e, m) for c in (0, 1)
                 for e in (0.0, 1e-8, 1e-6, 1e-4)
                 for m in (lambda r: r - r.mean(1, keepdim=True), lambda r: r - _others(r))]),
    Variant("wrong_dim", "the mean over the wrong dimension",
            "rewards is [prompts, G]: the G completions of one prompt are a row, so average "
            "over dim=1 (the columns of that row), not dim=0",
            fns=[lambda r: r - r.mean(0, keepdim=True), lambda r: r - _others(r, 0)]),
    Variant("baseline_only", "the baseline returned, not the advantage",
            "you returned the others' mean itself: the advantage is R_ij minus it",
            fns=[_others, lambda r: r.mean(1, keepdim=True).expand_as(r)]),
]


def _read_advantage(out, rewards):
    return read_tensor(out, rewards, "advantage per completion, [prompts, G] like rewards")


def _rloo_facts(got, want, rewards) -> list[str]:
    facts = [] if torch.isfinite(got).all() else ["your advantages contain NaN or ±inf"]
    sums = got.sum(1)
    if torch.isfinite(sums).all() and (sums.abs() > 1e-4).any():
        facts.append("a row of your advantages does not sum to 0 (RLOO's always do)")
    return facts


def _rloo_cases() -> list[Case]:
    gen = torch.Generator().manual_seed(0)
    rand = torch.randn(5, 6, generator=gen) + torch.arange(5.0)[:, None] * 3     # prompts G
    return [
        Case("two prompts, G=2, the second with equal rewards: rewards=[[1, 3], [4, 4]]",
             (_f32([1.0, 3.0], [4.0, 4.0]),)),
        Case("two prompts, G=4: rewards=[[0, 1, 2, 5], [10, 10, 12, 16]]",
             (_f32([0.0, 1.0, 2.0, 5.0], [10.0, 10.0, 12.0, 16.0]),)),
        Case("three prompts, G=4: rewards=[[1, 1, 1, 1], [0, 0, 1, 0], [2, -1, 0.5, 3]]",
             (_f32([1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0], [2.0, -1.0, 0.5, 3.0]),)),
        Case("5 prompts, G=6, random rewards around 0, 3, 6, 9, 12", (rand,)),
    ]


def _show_advantage(want, got, rewards):
    """The whole [prompts, G] table when it is small, else the first row that differs."""
    w, g = ([[round(v, 4) for v in row] for row in t.tolist()] for t in (want, got))
    if want.numel() <= 16:
        return str(w), str(g)
    i = next((i for i in range(len(w)) if not torch.allclose(want[i], got[i], atol=1e-5)), 0)
    return f"row {i} {w[i]}", f"row {i} {g[i]}"


RLOO_ADVANTAGE = Check("check_rloo_advantage", reference=rloo_advantage, cases=_rloo_cases,
                       read=_read_advantage, variants=RLOO_VARIANTS, facts=_rloo_facts,
                       show=_show_advantage)


# --- the two preference losses: one number ------------------------------------------------------


def _read_loss(out, *args):
    """The loss as a float; it must be a one-number tensor, the thing loss.backward() needs."""
    read_none(out)
    if not isinstance(out, torch.Tensor):
        if isinstance(out, numbers.Real) and not isinstance(out, bool):
            raise Mistake(f"return the loss as a torch tensor, not a Python {type(out).__name__}: "
                          "a number has no gradient, loss.backward() needs the tensor (drop "
                          ".item() or float(...))", "type")
        raise Mistake(f"return the loss as a one-number torch tensor, not {type(out).__name__}",
                      "type")
    if out.numel() != 1:
        raise Mistake(f"return one number, the mean over the pairs: you returned shape "
                      f"{tuple(out.shape)} (one loss per pair? take .mean())", "shape")
    if not out.is_floating_point():
        raise Mistake(f"return a floating-point loss, not {out.dtype}", "dtype")
    return float(out.detach().cpu().double())


def _same_loss(got, want) -> bool:
    if math.isnan(got) or math.isnan(want):
        return math.isnan(got) and math.isnan(want)
    return got == want or math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-5)


def _loss_facts(got, want, *args) -> list[str]:
    if not math.isfinite(got):
        return [f"your loss is {got} (a log of 0? the large margin makes σ underflow)"]
    return ["your loss is negative: -log σ(...) is never below 0"] if got < 0 else []


def _show_loss(want, got, *args):
    return f"{want:.4f}", f"{got:.4f}"


_NAIVE = ("-torch.log(torch.sigmoid(Δ)) is inf once σ(Δ) rounds to 0, which float32 does "
          "for Δ below about -88 (Δ = -200 here): use torch.nn.functional.logsigmoid(Δ), or "
          "softplus(-Δ), which never takes the log of 0")


def _bt(f, reduce=torch.mean):
    """A Bradley–Terry variant from f(Δ) per pair, Δ = r_chosen - r_rejected."""
    return lambda rc, rr: reduce(f(rc - rr))


BT_VARIANTS = [
    Variant("sign", "chosen and rejected swapped",
            "the loss is -log σ(r_chosen - r_rejected) = softplus(r_rejected - r_chosen): it "
            "is small when the chosen completion scores higher (σ(r_rejected - r_chosen), or "
            "softplus(Δ) with Δ = r_chosen - r_rejected, is the other way round)",
            fns=[_bt(lambda d: -_ls(-d))]),
    Variant("no_minus", "the log-likelihood, not its negative",
            "mean log σ(Δ) is the log-likelihood, to be maximised; the optimiser minimises, so "
            "return its negative, -mean log σ(r_chosen - r_rejected)",
            fns=[_bt(_ls)]),
    Variant("summed", "summed over the pairs, not averaged",
            "take the mean over the pairs (.mean()), not the sum: the loss must not grow "
            "with the batch size",
            fns=[_bt(lambda d: -_ls(d), torch.sum)]),
    Variant("no_log", "σ without the log",
            "the loss is the negative *log* of σ(Δ), the probability of the label: -mean "
            "logsigmoid(Δ), not -σ(Δ) or 1 - σ(Δ)",
            fns=[_bt(lambda d: -torch.sigmoid(d)), _bt(lambda d: 1 - torch.sigmoid(d))]),
    Variant("naive_log", "log of sigmoid overflows", _NAIVE,
            fns=[_bt(lambda d: -torch.log(torch.sigmoid(d))),
                 _bt(lambda d: torch.log(1 + torch.exp(-d))),
                 _bt(lambda d: torch.log1p(torch.exp(-d)))]),
    Variant("margin_loss", "a hinge or squared loss, not Bradley–Terry",
            "the reward model maximises the Bradley–Terry likelihood: -mean log σ(r_chosen - "
            "r_rejected), not a margin max(0, 1 - Δ) or a squared error",
            fns=[_bt(lambda d: torch.relu(1 - d)), _bt(lambda d: torch.relu(-d)),
                 _bt(lambda d: (1 - d) ** 2), _bt(lambda d: (1 - torch.sigmoid(d)) ** 2)]),
]


def _bt_cases() -> list[Case]:
    gen = torch.Generator().manual_seed(1)
    rc, rr = torch.randn(16, generator=gen) * 2, torch.randn(16, generator=gen) * 2
    return [
        Case("one pair: r_chosen=[2], r_rejected=[0.5]", (_f32(2.0), _f32(0.5))),
        Case("four pairs, two ranked the wrong way or tied: r_chosen=[1, 0, -1, 3], "
             "r_rejected=[0, 2, -1, 0.5]", (_f32(1.0, 0.0, -1.0, 3.0), _f32(0.0, 2.0, -1.0, 0.5))),
        Case("a large negative margin (Δ = -200 in the second pair): r_chosen=[0, -100, 1], "
             "r_rejected=[1, 100, 0]", (_f32(0.0, -100.0, 1.0), _f32(1.0, 100.0, 0.0))),
        Case("16 random pairs", (rc, rr)),
    ]


BRADLEY_TERRY = Check("check_bradley_terry_loss", reference=bradley_terry_loss, cases=_bt_cases,
                      read=_read_loss, same=_same_loss, variants=BT_VARIANTS, facts=_loss_facts,
                      show=_show_loss)


# --- DPO's loss -----------------------------------------------------------------------------------


def _dpo(margin, per_pair=lambda u: -_ls(u), reduce=torch.mean, scale=lambda b: 1.0):
    """A DPO variant: margin(lc, lr, rc, rr, β) per pair, then reduce(per_pair(margin))."""
    return lambda lc, lr, rc, rr, b: scale(b) * reduce(per_pair(margin(lc, lr, rc, rr, b)))


def _u(lc, lr, rc, rr, b):
    return b * ((lc - rc) - (lr - rr))


DPO_VARIANTS = [
    Variant("no_reference", "the reference left out",
            "DPO's margin is of log-*ratios* to the reference: β·((logp_chosen - ref_chosen) - "
            "(logp_rejected - ref_rejected)); without ref_* the policy is not held near π_ref",
            fns=[_dpo(lambda lc, lr, rc, rr, b: b * (lc - lr))]),
    Variant("sign", "chosen and rejected swapped",
            "the loss must be small when the policy raises the chosen completion's log-ratio "
            "the most: -log σ(β·(h_chosen - h_rejected)), with h = logp - ref (log π_θ - "
            "log π_ref, not ref - logp)",
            fns=[_dpo(lambda *a: -_u(*a))]),
    Variant("no_beta", "β left out",
            "multiply the difference of log-ratios by β inside σ: β sets how far the policy "
            "may move from the reference",
            fns=[_dpo(lambda lc, lr, rc, rr, b: (lc - rc) - (lr - rr))]),
    Variant("beta_outside", "β multiplies the loss, not the margin",
            "β goes inside: -log σ(β·Δ), not β·(-log σ(Δ)) -- β outside only rescales the "
            "gradient, like a learning rate, and no longer sets how far the policy may move",
            fns=[_dpo(lambda lc, lr, rc, rr, b: (lc - rc) - (lr - rr), scale=lambda b: b)]),
    Variant("beta_on_policy", "β on the policy's log-probs only",
            "β multiplies the whole difference of log-ratios, the reference's part too: "
            "β·((logp_chosen - ref_chosen) - (logp_rejected - ref_rejected))",
            fns=[_dpo(lambda lc, lr, rc, rr, b: b * (lc - lr) - (rc - rr))]),
    Variant("reference_added", "the reference added, not subtracted",
            "each completion's log-ratio is its own logp minus its own ref: (logp_chosen - "
            "ref_chosen) - (logp_rejected - ref_rejected)",
            fns=[_dpo(lambda lc, lr, rc, rr, b: b * ((lc + rc) - (lr + rr)))]),
    Variant("no_minus", "the log-likelihood returned, not the loss",
            "mean log σ(...) is to be maximised; the optimiser minimises, so return its negative",
            fns=[_dpo(_u, per_pair=_ls)]),
    Variant("summed", "summed over the pairs, not averaged",
            "take the mean over the pairs (.mean()), not the sum: the loss must not grow "
            "with the batch size",
            fns=[_dpo(_u, reduce=torch.sum)]),
    Variant("naive_log", "log of sigmoid overflows", _NAIVE.replace("Δ", "u"),
            fns=[_dpo(_u, per_pair=lambda u: -torch.log(torch.sigmoid(u))),
                 _dpo(_u, per_pair=lambda u: torch.log(1 + torch.exp(-u))),
                 _dpo(_u, per_pair=lambda u: torch.log1p(torch.exp(-u)))]),
]


def _dpo_cases() -> list[Case]:
    gen = torch.Generator().manual_seed(2)
    lc, lr = -20 + 5 * torch.randn(16, generator=gen), -20 + 5 * torch.randn(16, generator=gen)
    rc, rr = lc + torch.randn(16, generator=gen), lr + torch.randn(16, generator=gen)
    return [
        Case("one pair, beta=0.5: logp_chosen=[-3], logp_rejected=[-5], ref_chosen=[-2], "
             "ref_rejected=[-6] (the reference prefers the chosen one even more)",
             (_f32(-3.0), _f32(-5.0), _f32(-2.0), _f32(-6.0), 0.5)),
        Case("three pairs, beta=0.1: logp_chosen=[-10, -8, -12], logp_rejected=[-11, -7, -12], "
             "ref_chosen=[-10.5, -9, -11], ref_rejected=[-10, -7.5, -13]",
             (_f32(-10.0, -8.0, -12.0), _f32(-11.0, -7.0, -12.0), _f32(-10.5, -9.0, -11.0),
              _f32(-10.0, -7.5, -13.0), 0.1)),
        Case("a large negative margin (u = -200 in the first pair), beta=0.5: logp_chosen="
             "[-300, -5], logp_rejected=[-50, -6], ref_chosen=[-50, -5], ref_rejected=[-200, -6]",
             (_f32(-300.0, -5.0), _f32(-50.0, -6.0), _f32(-50.0, -5.0), _f32(-200.0, -6.0), 0.5)),
        Case("16 random pairs, beta=2", (lc, lr, rc, rr, 2.0)),
    ]


DPO_LOSS = Check("check_dpo_loss", reference=dpo_loss, cases=_dpo_cases, read=_read_loss,
                 same=_same_loss, variants=DPO_VARIANTS, facts=_loss_facts, show=_show_loss)


def check_rloo_advantage(fn) -> bool:
    """Check `fn(rewards) -> advantages`: rewards [prompts, G], G completions per prompt ->
    A_ij = R_ij - 1/(G-1)·Σ_{k≠j} R_ik, the leave-one-out baseline of RLOO (reference:
    `labkit.rlhf.rloo_advantage`; Kool et al. 2019, Ahmadian et al. 2024)."""
    return RLOO_ADVANTAGE.check(fn)


def check_bradley_terry_loss(fn) -> bool:
    """Check `fn(r_chosen, r_rejected) -> loss`: -mean log σ(r_chosen - r_rejected), a
    one-number tensor (reference: `labkit.rewards.bradley_terry_loss`; InstructGPT eq. 1)."""
    return BRADLEY_TERRY.check(fn)


def check_dpo_loss(fn) -> bool:
    """Check `fn(logp_chosen, logp_rejected, ref_chosen, ref_rejected, beta) -> loss`:
    -mean log σ(β·((logp_chosen - ref_chosen) - (logp_rejected - ref_rejected))), a
    one-number tensor (reference: `labkit.dpo.dpo_loss`; Rafailov et al. 2023, eq. 7)."""
    return DPO_LOSS.check(fn)
