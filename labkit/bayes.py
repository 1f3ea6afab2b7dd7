"""Conditioning a language model is a Bayesian update -- computed exactly on the toy world.

Every control technique samples from some distribution other than the model's own π(x).
On an enumerable world (`labkit.toy`) each of them is a vector of N log-probabilities,
so we can compute the *target* exactly and check that a technique lands on it:

* **conditioning** on an event c:  π(x | c) = π(x)·1[c(x)] / π(c)            (Bayes' rule)
  Rejection sampling draws x ~ π and keeps it if c(x): acceptance rate π(c), so each
  accepted sample costs 1/π(c) draws -- rare conditions are expensive.
* **tilting** by a reward r with temperature β:  π_β(x) = π(x)·e^{r(x)/β} / Z
  This is the optimum of the KL-regularised RL objective
      J(θ) = E_{x~π_θ}[r(x)] - β·KL(π_θ ‖ π)                   (Ziegler et al. 2019, eq. 2)
  because J(θ) = -β·KL(π_θ ‖ π_β) + β·log Z (Korbak, Perez & Buckley 2022, "RL with KL
  penalties is better viewed as Bayesian inference", eq. 3-5): KL-regularised RL is
  variational inference with prior π and "evidence" e^{r/β}.
* the per-sequence **KL-penalised reward** that policy gradient maximises:
      R(x) = r(x) - β·(log π_θ(x) - log π(x))                   (Ziegler et al. 2019, eq. 2)
  with E_{π_θ}[R] = J(θ).
* a reward λ·Σ_{i∈S} δ(x_i, y_i) tilts toward "x_i = y_i for i in S"; as λ → ∞ the tilt
  becomes the hard condition, i.e. (for S a prefix) the prompt y.
* **DPO** (Rafailov et al. 2023, "Direct Preference Optimization", eq. 7) fits preference
  pairs under the Bradley-Terry model P(a ≻ b) = σ(r(a) - r(b)); its optimum is the same
  tilt π·e^{r/β}/Z, and its *implicit reward* β·log(π_θ(x)/π_ref(x)) (eq. 5) recovers r up
  to a constant.

Pure tensor functions first (`condition`, `tilt`, `kl` (labkit.dist's), `kl_penalised_reward`,
`implicit_reward`, `dpo_loss`), then the samplers and the two trainers (`rl_finetune`,
`dpo_finetune`), each returning (policy, history) with history a list of dicts per step.
All log-probabilities are float64 tensors [N] over `world.sequences()`.

**Estimators.** `rl_finetune` uses by default the *exact* policy gradient: the expectation
over x ~ π_θ is a sum over all N sequences weighted by π_θ(x) -- legitimate on an enumerable
world, and noise-free, so it converges reliably. `estimator="sampled"` is plain REINFORCE
with a mean baseline on `n_samples` draws per step (Williams 1992), what one does on a real
model: it never learns about sequences it never samples, which is why rare conditions stay
out of reach. Both stop early (when `steps` is None) once KL(π_θ ‖ target) < `tol`, a
luxury only an enumerable world affords.

Measured on the default world (`benchmarks/bench_toy.py`: 2 CPU cores, exact estimator,
default settings), steps and seconds to KL(π_θ ‖ target) < 0.005: rainy days β=1: 42 steps,
2.0 s; minus sunny days β=0.3: 71, 3.5 s; weather changes β=2: 30, 1.4 s; last day = snow
(λ=3) β=1: 72, 3.4 s; distinct words β=0.5: 156, 7.7 s. Limit: a reward with no structure
(an independent standard-normal number per sequence, β=1) asks the 2×32 policy to memorise
1,296 values and converges slowly (KL 0.009 after the 400 default steps).

Left out on purpose: PPO's clipping and value network (the exact gradient needs neither),
prompts/contexts (every sequence here is a whole "response"), and LoRA (the policy is a
full copy of the tiny base).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, replace

import torch

from .dist import kl  # noqa: F401  -- KL(p‖q) of log-probs [N]: the one kl, re-exported
from .dpo import dpo_loss  # noqa: F401  -- eq. 7 of Rafailov et al.: the one dpo_loss
from .models import freeze
from .toy import one_thread
from .validate import number, whole

# --- small pure functions on log-probabilities [N] -------------------------------------------


def check_beta(beta) -> float:
    """β as a float, or a ValueError naming what to change."""
    return number("beta", beta, low=0, low_open=True, hint=" (the strength of the KL penalty: "
                  "small beta = follow the reward, large = stay close to π)")


def check_reward(reward, n: int) -> torch.Tensor:
    """A reward vector [n] as float64, or a ValueError saying what is wrong with it."""
    if not isinstance(reward, torch.Tensor):
        raise ValueError(f"the reward must be a tensor with one value per sequence, got "
                         f"{type(reward).__name__}")
    if reward.shape != (n,):
        raise ValueError(f"the reward must have shape ({n},), one value per sequence, got "
                         f"{tuple(reward.shape)} -- reduce over the length dimension "
                         "(e.g. .sum(-1)) or check which sequences you scored")
    reward = reward.detach().double().cpu()
    if not torch.isfinite(reward).all():
        raise ValueError("the reward contains NaN or ±inf: return finite numbers (use a large "
                         "finite reward, or condition() for a hard constraint)")
    return reward


def condition(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Exact π(x | c) = π(x)·1[c(x)] / π(c), in log space: logp [N], mask [N] bool -> [N]
    (-inf outside c). π(c) = 0 is a ValueError: Bayes' rule cannot condition on it."""
    mask = torch.as_tensor(mask, dtype=torch.bool)
    if mask.shape != logp.shape:
        raise ValueError(f"the mask must have one entry per sequence {tuple(logp.shape)}, "
                         f"got {tuple(mask.shape)}")
    masked = logp.masked_fill(~mask, -math.inf)
    log_pc = torch.logsumexp(masked, dim=0)
    if not torch.isfinite(log_pc):
        raise ValueError("the condition has probability 0 (no sequence with π(x) > 0 "
                         "satisfies it): there is nothing to condition on -- loosen it")
    return masked - log_pc


def tilt(logp: torch.Tensor, reward: torch.Tensor, beta: float) -> torch.Tensor:
    """log π_β(x) = log π(x) + r(x)/β - log Z, Z = Σ_x π(x)·e^{r(x)/β}: the optimum of
    KL-regularised RL (Korbak et al. 2022, eq. 5). logp [N], reward [N] -> [N].

    Naive version: p = logp.exp() * (reward / beta).exp(); p / p.sum() -- overflows for
    large r/β; the log-space version subtracts the log-sum-exp instead.
    """
    beta = check_beta(beta)
    reward = check_reward(reward, logp.shape[0]).to(logp.dtype)
    scores = logp + reward / beta
    return scores - torch.logsumexp(scores, dim=0)


def kl_penalised_reward(reward: torch.Tensor, logp: torch.Tensor, logp_ref: torch.Tensor,
                        beta: float) -> torch.Tensor:
    """R(x) = r(x) - β·(log π_θ(x) - log π_ref(x)), per sequence (Ziegler et al. 2019, eq. 2).
    Its expectation under π_θ is the KL-regularised objective J(θ) = E[r] - β·KL(π_θ ‖ π_ref)."""
    return reward - check_beta(beta) * (logp - logp_ref)


def implicit_reward(logp: torch.Tensor, logp_ref: torch.Tensor, beta: float) -> torch.Tensor:
    """DPO's implicit reward β·log(π_θ(x)/π_ref(x)) (Rafailov et al. 2023, eq. 5), equal to
    the true reward up to a constant (β·log Z) when π_θ = π_ref·e^{r/β}/Z."""
    return check_beta(beta) * (logp - logp_ref)


def best_of_n(logp: torch.Tensor, reward: torch.Tensor, n: int) -> torch.Tensor:
    """Exact log-probs [N] of best-of-n: draw n sequences from π, keep the one with the
    highest reward (ties go to the later sequence in `sequences()` order). With the
    sequences sorted by reward and F their cumulative probability, P(best = x_i) =
    F_i^n - F_{i-1}^n. Its KL from π is at most log n - (n-1)/n (Stiennon et al. 2020)."""
    n = whole("n", n, low=1)
    reward = check_reward(reward, logp.shape[0])
    order = torch.argsort(reward, stable=True)
    p = logp.exp()[order]
    upper = p.cumsum(0).clamp(max=1.0)
    lower = (upper - p).clamp(min=0.0)
    out = torch.empty_like(p)
    out[order] = (upper ** n - lower ** n).clamp(min=0.0)
    return out.log()


def match_reward(targets: dict, lam: float):
    """The reward λ·Σ_{i∈S} δ(x_i, y_i) for targets {position i: word id y_i} -> reward_fn.
    With S = the first k positions and λ → ∞, tilting by it is prompting with y_1 .. y_k.
    Positions count from 0; word ids are the world's (`world.vocab.index(word)`)."""
    if not isinstance(targets, dict) or not targets:
        raise ValueError("targets must be a non-empty {position: word id} dict, e.g. "
                         "{0: world.vocab.index('snow')}")
    for what, values in (("position", targets.keys()), ("word id", targets.values())):
        for v in values:
            if isinstance(v, str):
                raise ValueError(f"got the {what} {v!r}, a string: give a number"
                                 + (" -- world.vocab.index(word) turns a word into its id"
                                    if what == "word id" else ""))
            if isinstance(v, torch.Tensor) and v.numel() == 1:
                v = v.item()
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"each {what} must be a whole number ≥ 0, got {v!r}")
    lam = number("lam", lam, hint=" (λ = ∞ is the hard condition: use condition())")
    pos = torch.tensor([int(k) for k in targets.keys()])
    ys = torch.tensor([int(v) for v in targets.values()])

    def reward_fn(seqs: torch.Tensor) -> torch.Tensor:
        if int(pos.max()) >= seqs.shape[1]:
            raise ValueError(f"position {int(pos.max())} is past the end of sequences of "
                             f"{seqs.shape[1]} words (positions count from 0)")
        return lam * (seqs[:, pos] == ys).double().sum(-1)             # n
    return reward_fn


# --- sampling ---------------------------------------------------------------------------------


def world_reward(world, reward_fn) -> torch.Tensor:
    """reward_fn applied to every sequence of the world, checked -> [N] float64."""
    seqs = world.sequences()
    return check_reward(reward_fn(seqs), seqs.shape[0])


def rejection_sample(world, predicate, n: int, seed: int = 0, *, model=None,
                     max_draws: int = 1_000_000):
    """Draw x ~ π, keep x if predicate(x), until n are kept -> (samples [n, length],
    acceptance rate over all draws made). The rate estimates π(c), so n samples cost ≈ n/π(c) draws;
    beyond `max_draws` draws it gives up with a ValueError (the condition is too rare)."""
    n = whole("n", n, low=1)
    kept, tried, batch, round_ = [], 0, max(256, 4 * n), 0
    while sum(len(k) for k in kept) < n:
        if tried >= max_draws:
            got = sum(len(k) for k in kept)
            raise ValueError(f"after {tried:,} draws only {got} satisfied the condition "
                             f"(acceptance rate ≈ {got / tried:.1e}): it is too rare to reach by "
                             "rejection -- ask for fewer samples, raise max_draws, or compute "
                             "it exactly with condition()")
        draws = world.sample(batch, model=model, seed=seed * 1_000_003 + round_)
        ok = torch.as_tensor(predicate(draws), dtype=torch.bool)
        if ok.shape != (batch,):
            raise ValueError(f"the predicate must return one True/False per sequence, shape "
                             f"({batch},), got {tuple(ok.shape)}")
        kept.append(draws[ok])
        tried, round_ = tried + batch, round_ + 1
    samples = torch.cat(kept)                                           # ≥ n length
    rate = len(samples) / tried                                         # estimates π(c)
    return samples[:n], rate


def preference_pairs(world, reward_fn, n: int, *, seed: int = 0, labels: str = "soft"):
    """n preference pairs under the Bradley-Terry model P(a ≻ b) = σ(r(a) - r(b)), with a, b
    drawn independently from the base π. labels="soft": (a, b, P(a ≻ b)); "hard": one
    simulated annotator per pair, (chosen, rejected)."""
    if labels not in ("soft", "hard"):
        raise ValueError(f"labels must be 'soft' or 'hard', got {labels!r}")
    r = world_reward(world, reward_fn)
    a = world.sample(n, seed=2 * seed)
    b = world.sample(n, seed=2 * seed + 1)
    p = torch.sigmoid(r[world.index(a)] - r[world.index(b)])          # n
    if labels == "soft":
        return a, b, p
    # the labels' own stream: seeded like `a`'s draws, they would reuse its uniforms, so the
    # sequences drawn first (low ids) would win more often than Bradley-Terry says
    gen = torch.Generator().manual_seed(2 * seed + 1_000_003)
    a_wins = torch.rand(n, generator=gen, dtype=torch.float64) < p
    return torch.where(a_wins[:, None], a, b), torch.where(a_wins[:, None], b, a)


# --- trainers ------------------------------------------------------------------------------


@dataclass
class RLConfig:
    """Settings of `rl_finetune`; each default is chosen to converge in well under 60 s."""

    lr: float = 3e-3            # Adam; the exact gradient has no noise, so a large step is safe
    max_steps: int = 400        # a ceiling when steps=None; typical rewards stop at 50-150
    tol: float = 0.005          # stop once KL(policy ‖ target) < tol nats (half the 0.01 goal)
    estimator: str = "exact"    # "exact": Σ over all sequences; "sampled": REINFORCE
    n_samples: int = 256        # draws per step for estimator="sampled"


def rl_finetune(world, reward_fn, beta, *, steps: int | None = None, seed: int = 0,
                config: RLConfig | None = None, progress: bool = True, **overrides):
    """Policy-gradient fine-tuning of a copy of world.base with a KL penalty to it.

    Maximises J(θ) = E_{π_θ}[r] - β·KL(π_θ ‖ π) through the KL-penalised reward
    R(x) = r(x) - β·log(π_θ(x)/π(x)) and the policy gradient ∇J = E_{π_θ}[(R - b)·∇log π_θ]
    (b = E[R], a baseline). By Korbak et al. 2022 the optimum is the tilt π·e^{r/β}/Z.
    reward_fn maps LongTensor [n, length] -> FloatTensor [n]. `steps=None` runs until
    KL(policy ‖ target) < tol (or max_steps); an int runs exactly that many steps. `seed`
    seeds the draws of estimator="sampled" (the exact estimator draws nothing).
    Settings: `RLConfig` fields, by keyword. Returns (policy, history); history has per step:
    step, reward (E_{π_θ}[r]), kl_base (KL(π_θ ‖ π)), kl_target (KL(π_θ ‖ π·e^{r/β}/Z)),
    objective (J), seconds. `progress` shows a progress bar (steps, KL to the target).
    """
    cfg = replace(config or RLConfig(), **overrides)
    beta = check_beta(beta)
    if cfg.estimator not in ("exact", "sampled"):
        raise ValueError(f"estimator must be 'exact' or 'sampled', got {cfg.estimator!r}")
    if steps is not None and (not isinstance(steps, int) or steps < 0):
        raise ValueError(f"steps must be None or a whole number ≥ 0, got {steps!r}")
    r = world_reward(world, reward_fn)                                  # N
    logp_ref = world.log_prob()                                         # N
    target = tilt(logp_ref, r, beta)                                    # N

    policy = copy.deepcopy(world.base).train()
    for p in policy.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(seed)
    history, t0 = [], time.perf_counter()
    n_steps = cfg.max_steps if steps is None else steps
    with one_thread(), _bar(n_steps, "RL on the toy world", progress) as bar:
        for step in range(n_steps + 1):
            logp = world.log_prob(policy, grad=True)                    # N
            with torch.no_grad():
                probs = logp.exp()                                      # N
                shaped = kl_penalised_reward(r, logp, logp_ref, beta)   # N
                history.append({"step": step, "reward": float(probs @ r),
                                "kl_base": float(kl(logp, logp_ref)),
                                "kl_target": float(kl(logp, target)),
                                "objective": float(probs @ shaped),
                                "seconds": time.perf_counter() - t0})
            bar.set_postfix_str(f"KL to target {history[-1]['kl_target']:.4f}", refresh=False)
            if step == steps or (steps is None and history[-1]["kl_target"] < cfg.tol):
                break
            bar.update()
            if cfg.estimator == "exact":          # Σ_x π_θ(x)·(R(x) - b)·∇log π_θ(x)
                adv = shaped - probs @ shaped                           # N
                loss = -(probs * adv * logp).sum()
            else:                                 # (1/n) Σ_i (R(x_i) - b)·∇log π_θ(x_i)
                rows = torch.multinomial(probs, cfg.n_samples, replacement=True, generator=gen)
                adv = shaped[rows] - shaped[rows].mean()                # n_samples
                loss = -(adv * logp[rows]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return freeze(policy), history


@dataclass
class DPOConfig:
    """Settings of `dpo_finetune`."""

    lr: float = 3e-3            # Adam, full batch over the pairs
    steps: int = 150            # the soft-label loss is flat by ~120 on the toy world


def dpo_finetune(world, pairs, beta, *, target: torch.Tensor | None = None,
                 config: DPOConfig | None = None, progress: bool = True, **overrides):
    """Direct Preference Optimization (Rafailov et al. 2023, eq. 7) of a copy of world.base
    (also the reference π_ref) on `pairs`: (chosen, rejected) LongTensors [n, length], or
    (a, b, P(a ≻ b)) with soft Bradley-Terry labels (see `preference_pairs`).

    Full batch: log π_θ of every sequence in one pass, then the pairs are looked up.
    `target` (log-probs [N], e.g. `tilt(world.log_prob(), r, beta)`) adds KL(π_θ ‖ target) to
    the history. Returns (policy, history) with per step: step, loss, accuracy (fraction of
    pairs ranked as labelled; a tie counts half), kl_base, kl_target (if target), seconds.
    """
    cfg = replace(config or DPOConfig(), **overrides)
    beta = check_beta(beta)
    if not isinstance(pairs, (tuple, list)) or len(pairs) not in (2, 3):
        raise ValueError("pairs must be (chosen, rejected) or (a, b, p_a_preferred)")
    ia, ib = world.index(pairs[0]), world.index(pairs[1])               # pairs
    if ia.shape != ib.shape or ia.dim() != 1 or len(ia) == 0:
        raise ValueError(f"chosen and rejected must both be [n, {world.length}] with n ≥ 1")
    p_a = None if len(pairs) == 2 else torch.as_tensor(pairs[2], dtype=torch.float64)
    if p_a is not None and (p_a.shape != ia.shape or not ((p_a >= 0) & (p_a <= 1)).all()):
        raise ValueError("the preference probabilities must be one number in [0, 1] per pair")
    logp_ref = world.log_prob()                                         # N

    policy = copy.deepcopy(world.base).train()
    for p in policy.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    history, t0 = [], time.perf_counter()
    with one_thread(), _bar(cfg.steps, "DPO on the toy world", progress) as bar:
        for step in range(cfg.steps + 1):
            logp = world.log_prob(policy, grad=True)                    # N
            h = logp - logp_ref                                         # N
            loss = dpo_loss(logp[ia], logp[ib], logp_ref[ia], logp_ref[ib], beta, p_a)
            with torch.no_grad():
                # a tie counts half: at step 0 (π_θ = π_ref) every pair ties, accuracy 0.5
                right = (h[ia] > h[ib]).double() + 0.5 * (h[ia] == h[ib]).double()  # pairs
                if p_a is not None:               # expected agreement with the soft labels
                    right = right * p_a + (1 - right) * (1 - p_a)
                acc = right.mean()
                row = {"step": step, "loss": loss.item(), "accuracy": float(acc),
                       "kl_base": float(kl(logp, logp_ref)), "seconds": time.perf_counter() - t0}
                if target is not None:
                    row["kl_target"] = float(kl(logp, target))
                history.append(row)
            if step == cfg.steps:
                break
            bar.update()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return freeze(policy), history


def _bar(total: int, desc: str, show: bool):
    """A tqdm.auto progress bar that disappears when done (a notebook runs many trainers)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False, disable=not show)
