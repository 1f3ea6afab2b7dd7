"""Notebook 04's exercises, answered the way learners answer them: RLOO's leave-one-out
advantage, the reward model's Bradley–Terry loss and DPO's loss, written from the exercise
texts, each with the verdict key it must get."""
import torch
import torch.nn.functional as F

from labkit.checks._corpus import Entry


def todo(*args):
    raise NotImplementedError


# --- rloo_advantage(rewards): A_ij = R_ij - 1/(G-1)·Σ_{k≠j} R_ik ------------------------------


def rloo_loops(rewards):
    """Correct: the definition, one completion at a time."""
    prompts, g = rewards.shape
    out = []
    for i in range(prompts):
        row = []
        for j in range(g):
            others = [float(rewards[i, k]) for k in range(g) if k != j]
            row.append(float(rewards[i, j]) - sum(others) / (g - 1))
        out.append(row)
    return torch.tensor(out)


def rloo_vectorised(rewards):
    """Correct: the others' sum is the row's sum minus the completion's own reward."""
    g = rewards.shape[1]
    baseline = (rewards.sum(dim=1, keepdim=True) - rewards) / (g - 1)
    return rewards - baseline


def rloo_rescaled(rewards):
    """Correct: G/(G-1)·(R - row mean), the same numbers."""
    g = rewards.shape[1]
    return g / (g - 1) * (rewards - rewards.mean(dim=1, keepdim=True))


def rloo_eye_mask(rewards):
    """Correct: a [G, G] mask of the others, one matrix product."""
    g = rewards.shape[1]
    others = 1 - torch.eye(g, dtype=rewards.dtype)
    return rewards - rewards @ others / (g - 1)


def rloo_rows(rewards):
    """Correct: row by row, with torch on each row."""
    rows = []
    for r in rewards:
        rows.append(r - (r.sum() - r) / (len(r) - 1))
    return torch.stack(rows)


def rloo_in_place(rewards):
    """Correct: subtracts the baseline from the rewards themselves."""
    baseline = (rewards.sum(1, keepdim=True) - rewards) / (rewards.shape[1] - 1)
    rewards -= baseline
    return rewards


def rloo_in_place_loop(rewards):
    """Edits column j in place, so the later columns' baselines use advantages, not rewards."""
    g = rewards.shape[1]
    for j in range(g):
        rewards[:, j] -= (rewards.sum(1) - rewards[:, j]) / (g - 1)
    return rewards


def rloo_row_mean_loop(rewards):
    out = torch.empty_like(rewards)
    for i in range(rewards.shape[0]):
        out[i] = rewards[i] - rewards[i].mean()         # the mean of the whole row, j included
    return out


def rloo_no_return(rewards):
    g = rewards.shape[1]
    advantage = rewards - (rewards.sum(1, keepdim=True) - rewards) / (g - 1)    # noqa: F841


def _others(rewards):
    return (rewards.sum(1, keepdim=True) - rewards) / (rewards.shape[1] - 1)


RLOO = [
    Entry("loops", rloo_loops, "passed", "correct, the definition in loops"),
    Entry("vectorised", rloo_vectorised, "passed", "correct, row sum minus own"),
    Entry("rescaled", rloo_rescaled, "passed", "correct, G/(G-1)·(R - mean)"),
    Entry("eye_mask", rloo_eye_mask, "passed", "correct, a mask of the others"),
    Entry("rows", rloo_rows, "passed", "correct, row by row"),
    Entry("in_place", rloo_in_place, "passed", "correct, edits rewards in place"),
    Entry("row_mean", lambda r: r - r.mean(dim=1, keepdim=True), "own_in_baseline",
          "R - row mean: the completion is in its own baseline"),
    Entry("row_mean_loop", rloo_row_mean_loop, "own_in_baseline", "the same, in a loop"),
    Entry("flipped", lambda r: _others(r) - r, "sign", "baseline - R"),
    Entry("over_g", lambda r: r - (r.sum(1, keepdim=True) - r) / r.shape[1], "divided_by_g",
          "the others' sum over G"),
    Entry("batch_mean", lambda r: r - r.mean(), "batch_mean", "one mean for the whole batch"),
    Entry("grpo", lambda r: (r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-8),
          "std_normalised", "GRPO's (R - mean)/std"),
    Entry("grpo_biased", lambda r: (r - r.mean(1, keepdim=True)) / r.std(1, keepdim=True,
                                                                           unbiased=False),
          "std_normalised", "GRPO with the biased std, 0/0 on the equal row"),
    Entry("columns", lambda r: r - r.mean(dim=0, keepdim=True), "wrong_dim",
          "the mean of each column (over prompts)"),
    Entry("columns_loo", lambda r: r - (r.sum(0, keepdim=True) - r) / (r.shape[0] - 1),
          "wrong_dim", "leave-one-out over the prompts"),
    Entry("baseline", _others, "baseline_only", "returns the baseline"),
    Entry("flipped_row_mean", lambda r: r.mean(1, keepdim=True) - r, "unknown",
          "two mistakes: sign and own reward in the baseline"),
    Entry("in_place_loop", rloo_in_place_loop, "unknown",
          "edits column by column, the later baselines spoiled"),
    Entry("no_keepdim", lambda r: r - (r.sum(1) - r) / (r.shape[1] - 1), "raised",
          "no keepdim: [prompts] broadcast against [prompts, G]"),
    Entry("returns_none", rloo_no_return, "none", "no return"),
    Entry("todo", todo, "not_attempted", "not attempted"),
    Entry("returns_list", lambda r: rloo_vectorised(r).tolist(), "type", "a list"),
    Entry("returns_numpy", lambda r: rloo_vectorised(r).numpy(), "type", "a numpy array"),
    Entry("flattened", lambda r: rloo_vectorised(r).flatten(), "shape", "one flat vector"),
    Entry("beats_baseline", lambda r: r > _others(r), "dtype", "True where R beats the baseline"),
]

# --- bradley_terry_loss(r_chosen, r_rejected): -mean log σ(r_chosen - r_rejected) --------------


def bt_loop(r_chosen, r_rejected):
    """Correct: pair by pair, keeping the tensors (and their gradient)."""
    total = 0.0
    for c, r in zip(r_chosen, r_rejected):
        total = total - F.logsigmoid(c - r)
    return total / len(r_chosen)


def bt_in_place(r_chosen, r_rejected):
    """Correct: the margin written into r_chosen."""
    r_chosen -= r_rejected
    return -F.logsigmoid(r_chosen).mean()


def bt_raises(r_chosen, r_rejected):
    return -torch.log_sigmoid(r_chosen - r_rejected).mean()      # no such function in torch


def bt_no_return(r_chosen, r_rejected):
    loss = -F.logsigmoid(r_chosen - r_rejected).mean()           # noqa: F841


BT = [
    Entry("logsigmoid", lambda c, r: -F.logsigmoid(c - r).mean(), "passed", "correct"),
    Entry("softplus", lambda c, r: F.softplus(r - c).mean(), "passed", "correct, softplus(-Δ)"),
    Entry("bce", lambda c, r: F.binary_cross_entropy_with_logits(c - r, torch.ones_like(c)),
          "passed", "correct, cross-entropy with label 1"),
    Entry("logaddexp", lambda c, r: torch.logaddexp(torch.zeros_like(c), r - c).mean(),
          "passed", "correct, log(1 + e^-Δ) stably"),
    Entry("loop", bt_loop, "passed", "correct, pair by pair"),
    Entry("in_place", bt_in_place, "passed", "correct, edits r_chosen in place"),
    Entry("flipped", lambda c, r: -F.logsigmoid(r - c).mean(), "sign", "σ(r_rejected - r_chosen)"),
    Entry("softplus_wrong_sign", lambda c, r: F.softplus(c - r).mean(), "sign", "softplus(Δ)"),
    Entry("log_likelihood", lambda c, r: F.logsigmoid(c - r).mean(), "no_minus",
          "the log-likelihood, no minus"),
    Entry("minus_softplus", lambda c, r: -F.softplus(r - c).mean(), "no_minus",
          "-softplus(-Δ): the log-likelihood again"),
    Entry("summed", lambda c, r: -F.logsigmoid(c - r).sum(), "summed", "sum over the pairs"),
    Entry("sigmoid", lambda c, r: -torch.sigmoid(c - r).mean(), "no_log", "-mean σ(Δ)"),
    Entry("one_minus_sigmoid", lambda c, r: (1 - torch.sigmoid(c - r)).mean(), "no_log",
          "mean 1 - σ(Δ)"),
    Entry("naive", lambda c, r: -torch.log(torch.sigmoid(c - r)).mean(), "naive_log",
          "-log(sigmoid(Δ)): inf at Δ = -200"),
    Entry("naive_formula", lambda c, r: torch.log(1 + torch.exp(-(c - r))).mean(), "naive_log",
          "log(1 + exp(-Δ)): exp overflows"),
    Entry("hinge", lambda c, r: torch.clamp(1 - (c - r), min=0).mean(), "margin_loss",
          "a hinge with margin 1"),
    Entry("squared", lambda c, r: ((c - r - 1) ** 2).mean(), "margin_loss", "a squared error"),
    Entry("flipped_summed", lambda c, r: -F.logsigmoid(r - c).sum(), "unknown",
          "two mistakes: sign and sum"),
    Entry("mean_margin", lambda c, r: -F.logsigmoid((c - r).mean()), "unknown",
          "log σ of the mean margin"),
    Entry("clamped_naive", lambda c, r: -torch.log(torch.sigmoid(c - r).clamp(min=1e-7)).mean(),
          "unknown", "log(sigmoid) clamped at 1e-7: finite, wrong at Δ = -200"),
    Entry("raises", bt_raises, "raised", "torch.log_sigmoid does not exist"),
    Entry("returns_none", bt_no_return, "none", "no return"),
    Entry("todo", todo, "not_attempted", "not attempted"),
    Entry("item", lambda c, r: (-F.logsigmoid(c - r).mean()).item(), "type",
          "a Python float (.item())"),
    Entry("per_pair", lambda c, r: -F.logsigmoid(c - r), "shape", "one loss per pair"),
]

# --- dpo_loss(logp_chosen, logp_rejected, ref_chosen, ref_rejected, beta) ----------------------


def dpo_trl(logp_chosen, logp_rejected, ref_chosen, ref_rejected, beta):
    """Correct: as TRL writes it, the policy's log-ratio minus the reference's."""
    pi_logratios = logp_chosen - logp_rejected
    ref_logratios = ref_chosen - ref_rejected
    logits = pi_logratios - ref_logratios
    return -F.logsigmoid(beta * logits).mean()


def dpo_loop(logp_chosen, logp_rejected, ref_chosen, ref_rejected, beta):
    """Correct: pair by pair."""
    losses = []
    for lc, lr, rc, rr in zip(logp_chosen, logp_rejected, ref_chosen, ref_rejected):
        losses.append(-F.logsigmoid(beta * ((lc - rc) - (lr - rr))))
    return torch.stack(losses).mean()


def dpo_in_place(logp_chosen, logp_rejected, ref_chosen, ref_rejected, beta):
    """Correct: the log-ratios written into the policy's tensors."""
    logp_chosen -= ref_chosen
    logp_rejected -= ref_rejected
    return -F.logsigmoid(beta * (logp_chosen - logp_rejected)).mean()


def dpo_raises(logp_chosen, logp_rejected, ref_chosen, ref_rejected, beta):
    u = beta * ((logp_chosen - ref_chosen) - (logp_rejected - ref_rejected))
    return -F.logsigmoid(u).mean(dim=1)                          # the pairs are one dimension


def dpo_no_return(logp_chosen, logp_rejected, ref_chosen, ref_rejected, beta):
    u = beta * ((logp_chosen - ref_chosen) - (logp_rejected - ref_rejected))
    loss = -F.logsigmoid(u).mean()                               # noqa: F841


def _dpo(margin, per_pair=lambda u: -F.logsigmoid(u), reduce=torch.mean):
    return lambda lc, lr, rc, rr, b: reduce(per_pair(margin(lc, lr, rc, rr, b)))


DPO = [
    Entry("direct", _dpo(lambda lc, lr, rc, rr, b: b * ((lc - rc) - (lr - rr))), "passed",
          "correct"),
    Entry("trl", dpo_trl, "passed", "correct, TRL's order"),
    Entry("softplus", _dpo(lambda lc, lr, rc, rr, b: b * ((lr - rr) - (lc - rc)), F.softplus),
          "passed", "correct, softplus of the negated margin"),
    Entry("loop", dpo_loop, "passed", "correct, pair by pair"),
    Entry("in_place", dpo_in_place, "passed", "correct, edits its inputs in place"),
    Entry("no_reference", _dpo(lambda lc, lr, rc, rr, b: b * (lc - lr)), "no_reference",
          "β·(logp_chosen - logp_rejected)"),
    Entry("flipped", _dpo(lambda lc, lr, rc, rr, b: b * ((lr - rr) - (lc - rc))), "sign",
          "rejected minus chosen"),
    Entry("ratios_upside_down", _dpo(lambda lc, lr, rc, rr, b: b * ((rc - lc) - (rr - lr))),
          "sign", "log π_ref - log π_θ"),
    Entry("no_beta", _dpo(lambda lc, lr, rc, rr, b: (lc - rc) - (lr - rr)), "no_beta",
          "β left out"),
    Entry("beta_outside", lambda lc, lr, rc, rr, b: b * -F.logsigmoid((lc - rc) - (lr - rr)).mean(),
          "beta_outside", "β·(-log σ(Δ))"),
    Entry("beta_on_policy", _dpo(lambda lc, lr, rc, rr, b: b * (lc - lr) - (rc - rr)),
          "beta_on_policy", "β on the policy's difference only"),
    Entry("ref_added", _dpo(lambda lc, lr, rc, rr, b: b * ((lc + rc) - (lr + rr))),
          "reference_added", "logp + ref"),
    Entry("refs_crossed", _dpo(lambda lc, lr, rc, rr, b: b * ((lc - rr) - (lr - rc))),
          "reference_added", "each logp against the other's reference"),
    Entry("log_likelihood", _dpo(lambda lc, lr, rc, rr, b: b * ((lc - rc) - (lr - rr)),
                                 F.logsigmoid), "no_minus", "no minus"),
    Entry("summed", _dpo(lambda lc, lr, rc, rr, b: b * ((lc - rc) - (lr - rr)),
                         reduce=torch.sum), "summed", "sum over the pairs"),
    Entry("naive", _dpo(lambda lc, lr, rc, rr, b: b * ((lc - rc) - (lr - rr)),
                        lambda u: -torch.log(torch.sigmoid(u))), "naive_log",
          "-log(sigmoid(u)): inf at u = -200"),
    Entry("beta_divides", _dpo(lambda lc, lr, rc, rr, b: ((lc - rc) - (lr - rr)) / b), "unknown",
          "divides by β"),
    Entry("no_reference_no_beta", _dpo(lambda lc, lr, rc, rr, b: lc - lr), "unknown",
          "two mistakes: no reference, no β"),
    Entry("raises", dpo_raises, "raised", "mean over a dimension the pairs do not have"),
    Entry("returns_none", dpo_no_return, "none", "no return"),
    Entry("todo", todo, "not_attempted", "not attempted"),
    Entry("item", lambda *a: dpo_trl(*a).item(), "type", "a Python float (.item())"),
    Entry("per_pair", _dpo(lambda lc, lr, rc, rr, b: b * ((lc - rc) - (lr - rr)),
                           reduce=lambda x: x), "shape", "one loss per pair"),
]

CORPUS = {"check_rloo_advantage": RLOO, "check_bradley_terry_loss": BT, "check_dpo_loss": DPO}
