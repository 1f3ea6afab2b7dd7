"""Notebook 01's exercises, answered the way learners answer them: the tilt and the
KL-penalised reward, written from the exercise text, each with the verdict key it must get."""
import torch

from labkit.checks._corpus import Entry


def todo(*args):
    raise NotImplementedError


# --- the tilt: log of π(x)·e^{r(x)/β}/Z ------------------------------------------------------

def tilt_log_softmax(logp, reward, beta):
    return torch.log_softmax(logp + reward / beta, dim=0)


def tilt_logsumexp(logp, reward, beta):
    scores = logp + reward / beta
    return scores - torch.logsumexp(scores, dim=0)


def tilt_unnormalised(logp, reward, beta):
    return logp + reward / beta


def tilt_max_subtracted(logp, reward, beta):
    scores = logp + reward / beta
    return scores - scores.max()                # the stability trick, taken for normalising


def tilt_prior_z(logp, reward, beta):
    scores = logp + reward / beta
    return scores - torch.logsumexp(logp, dim=0)   # Z of the prior (= 1)


def tilt_probabilities(logp, reward, beta):
    return torch.softmax(logp + reward / beta, dim=0)


def tilt_exp_space(logp, reward, beta):
    p = torch.exp(logp + reward / beta)
    return torch.log(p / p.sum())


def tilt_times_beta(logp, reward, beta):
    return torch.log_softmax(logp + beta * reward, dim=0)


def tilt_minus(logp, reward, beta):
    return torch.log_softmax(logp - reward / beta, dim=0)


def tilt_no_prior(logp, reward, beta):
    return torch.log_softmax(reward / beta, dim=0)


def tilt_tempered(logp, reward, beta):
    return torch.log_softmax((logp + reward) / beta, dim=0)


def tilt_unnormalised_probs(logp, reward, beta):
    return torch.exp(logp + reward / beta)     # two mistakes: probabilities, not normalised


def tilt_raises(logp, reward, beta):
    scores = logp + reward / beta
    return scores - torch.logsumexp(scores)    # logsumexp needs a dim


def tilt_scalar(logp, reward, beta):
    return torch.logsumexp(logp + reward / beta, dim=0)


# --- the KL-penalised reward: r - β·(log π_θ - log π_ref) -------------------------------------

def kl_ok(reward, logp, logp_ref, beta):
    return reward - beta * (logp - logp_ref)


def kl_via_probs(reward, logp, logp_ref, beta):
    return reward - beta * torch.log(logp.exp() / logp_ref.exp())


def kl_in_place(reward, logp, logp_ref, beta):
    logp -= logp_ref
    reward -= beta * logp
    return reward


CORPUS = {
    "check_tilt": [
        Entry("log_softmax", tilt_log_softmax, "passed", "correct"),
        Entry("logsumexp", tilt_logsumexp, "passed", "correct"),
        Entry("unnormalised", tilt_unnormalised, "not_normalised", "no log Z"),
        Entry("max_subtracted", tilt_max_subtracted, "not_normalised", "subtracts the max"),
        Entry("prior_z", tilt_prior_z, "not_normalised", "subtracts the prior's log Z"),
        Entry("probabilities", tilt_probabilities, "probabilities", "softmax, not log_softmax"),
        Entry("exp_space", tilt_exp_space, "overflow", "normalises in probability space"),
        Entry("times_beta", tilt_times_beta, "times_beta", "r·β instead of r/β"),
        Entry("minus", tilt_minus, "sign", "log π - r/β"),
        Entry("no_prior", tilt_no_prior, "no_prior", "log_softmax(r/β)"),
        Entry("tempered", tilt_tempered, "tempered_prior", "(log π + r)/β"),
        Entry("unnormalised_probs", tilt_unnormalised_probs, "unknown",
              "two mistakes: probabilities and not normalised"),
        Entry("todo", todo, "not_attempted", "not attempted"),
        Entry("raises", tilt_raises, "raised", "logsumexp without dim"),
        Entry("returns_none", lambda logp, reward, beta: None, "none", "no return"),
        Entry("returns_list", lambda *a: tilt_log_softmax(*a).tolist(), "type", "a list"),
        Entry("returns_scalar", tilt_scalar, "shape", "returns log Z, one number"),
    ],
    "check_kl_reward": [
        Entry("direct", kl_ok, "passed", "correct"),
        Entry("via_probs", kl_via_probs, "passed", "correct (log of the probability ratio)"),
        Entry("in_place", kl_in_place, "passed", "correct, edits its inputs in place"),
        Entry("plus", lambda r, lp, lq, b: r + b * (lp - lq), "sign", "adds the penalty"),
        Entry("ratio_flipped", lambda r, lp, lq, b: r - b * (lq - lp), "sign",
              "log π_ref - log π_θ"),
        Entry("no_beta", lambda r, lp, lq, b: r - (lp - lq), "no_beta", "β left out"),
        Entry("ratio_over_beta", lambda r, lp, lq, b: r - (lp - lq) / b, "ratio_over_beta",
              "divides the log-ratio by β"),
        Entry("reward_over_beta", lambda r, lp, lq, b: r / b - (lp - lq), "reward_over_beta",
              "divides the reward by β"),
        Entry("beta_on_all", lambda r, lp, lq, b: b * (r - (lp - lq)), "beta_on_all",
              "β multiplies everything"),
        Entry("prob_difference", lambda r, lp, lq, b: r - b * (torch.exp(lp) - torch.exp(lq)),
              "probabilities", "difference of probabilities"),
        Entry("prob_ratio", lambda r, lp, lq, b: r - b * torch.exp(lp) / torch.exp(lq),
              "probabilities", "ratio of probabilities, no log"),
        Entry("log_of_logs", lambda r, lp, lq, b: r - b * torch.log(lp / lq), "log_twice",
              "log of the ratio of log-probabilities"),
        Entry("mean_ratio", lambda r, lp, lq, b: r - b * (lp - lq).mean(), "batch_kl",
              "the average log-ratio for every sequence"),
        Entry("true_kl", lambda r, lp, lq, b: r - b * (lp.exp() * (lp - lq)).sum(), "batch_kl",
              "KL(π_θ‖π_ref) for every sequence"),
        Entry("plus_no_beta", lambda r, lp, lq, b: r + (lp - lq), "unknown",
              "two mistakes: sign and β"),
        Entry("todo", todo, "not_attempted", "not attempted"),
        Entry("raises", lambda r, lp, lq, b: r - b * (lp - lq[:2]), "raised", "shapes mismatch"),
        Entry("returns_none", lambda *a: None, "none", "no return"),
        Entry("returns_mean", lambda r, lp, lq, b: (r - b * (lp - lq)).mean(), "shape",
              "averages over the sequences"),
        Entry("returns_float", lambda r, lp, lq, b: float((r - b * (lp - lq)).sum()), "type",
              "one float"),
    ],
}
