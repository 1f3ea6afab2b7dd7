"""Rewards: what RL from feedback maximises -- functions you can compute, and a model of judges.

A reward is a callable `reward(prompts, completions) -> FloatTensor [n]`, one number per
completion (the signature of TRL's reward functions): RL needs only to *recognise* the
behaviour, never an example of it.

* computable rewards: `sentiment` (VADER's compound score, `labkit.lexicon`), `length`
  (words), `matches(pattern)` (a format check: 1 if the regex matches), and `weighted` sums;
* `Annotator`: a simulated human judge. Given a hidden *gold* reward g it prefers a over b
  with the Bradley–Terry probability σ((g(a) - g(b))/τ) (Bradley & Terry 1952; Christiano et
  al. 2017, eq. 1): `label` draws one judgement per pair, `prob` is the soft label (the
  limit of many judges); τ is the label noise;
* `RewardModel`: a scalar head on the *frozen* LM's hidden states (averaged over the
  completion), trained by
  `train_reward_model` with the Bradley–Terry loss -log σ(r(chosen) - r(rejected)) (Ouyang et
  al. 2022, "InstructGPT", eq. 1; TRL's `RewardTrainer`). The LM's features are computed once,
  so training is a logistic regression on feature differences: seconds, not minutes. A
  LoRA'd LM as the scorer would train the body too, at ~9 ms a token for a forward and
  backward on 2 CPU cores (a few minutes an epoch of notebook 04's pairs, against seconds);
  its accuracy was not measured here;
* `gao_fit`: the gold reward of a policy at distance d = √KL from the base, fitted by Gao,
  Schulman & Hilton 2022 ("Scaling Laws for Reward Model Overoptimization", eq. 2 for RL):
  R(d) = d·(α - β·log d).

Left out on purpose: learned rewards per token (the reward here is per sequence), ensembles
of reward models, and a reward model that fine-tunes the LM's body.
"""
from __future__ import annotations

import math
import re
import time

import torch

from .pairs import padded, pad_id
from .validate import number, whole

# --- checking what a reward returns ------------------------------------------------------------


def name_of(reward) -> str:
    """A reward's name for messages and legends: its `name`, else its function's `__name__`."""
    return getattr(reward, "name", None) or getattr(reward, "__name__", None) or repr(reward)


def check_reward(values, n: int, reward=None, step: int | None = None) -> torch.Tensor:
    """`values` as float64 [n], or a ValueError that names the reward and the step."""
    who = f"the reward {name_of(reward)!r}" if reward is not None else "the reward"
    where = f" at step {step}" if step is not None else ""
    if isinstance(values, (list, tuple)) and all(isinstance(v, (int, float)) and not
                                                 isinstance(v, bool) for v in values):
        values = torch.tensor(values, dtype=torch.float64)
    if not isinstance(values, torch.Tensor):
        raise ValueError(f"{who} returned {type(values).__name__}{where}: it must return a "
                         f"tensor (or list of numbers) with one value per completion, shape ({n},)")
    if values.dtype == torch.bool or not (values.is_floating_point() or values.dtype in
                                          (torch.int32, torch.int64)):
        raise ValueError(f"{who} returned a {values.dtype} tensor{where}: return numbers "
                         "(e.g. .float())")
    if values.shape != (n,):
        raise ValueError(f"{who} returned shape {tuple(values.shape)}{where}, but there are {n} "
                         f"completions: return one number per completion, shape ({n},)")
    values = values.detach().double().cpu()
    bad = ~torch.isfinite(values)
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(f"{who} returned {values[i].item()} for completion {i}{where}: rewards "
                         "must be finite (clip them, or give a large finite penalty)")
    return values


def _texts(prompts, completions) -> tuple[list, list]:
    prompts, completions = list(prompts), list(completions)
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions: give one "
                         "prompt per completion")
    return prompts, completions


# --- rewards you can compute -------------------------------------------------------------------


def sentiment(prompts, completions) -> torch.Tensor:
    """VADER's compound sentiment of each completion, in [-1, 1] (`labkit.lexicon`)."""
    from .lexicon import sentiment as vader

    _, completions = _texts(prompts, completions)
    return torch.tensor([vader(c) for c in completions], dtype=torch.float64)


def length(prompts, completions) -> torch.Tensor:
    """The number of words of each completion."""
    _, completions = _texts(prompts, completions)
    return torch.tensor([len(c.split()) for c in completions], dtype=torch.float64)


def matches(pattern: str, *, name: str | None = None):
    """A format check: the reward 1.0 where `re.search(pattern, completion)` finds a match,
    else 0.0."""
    try:
        rx = re.compile(pattern)
    except (re.error, TypeError) as e:
        raise ValueError(f"the pattern {pattern!r} is not a regular expression: {e}") from None

    def reward(prompts, completions):
        _, completions = _texts(prompts, completions)
        return torch.tensor([float(rx.search(c) is not None) for c in completions],
                            dtype=torch.float64)
    reward.name = name or f"matches({pattern!r})"
    return reward


def weighted(*terms, name: str | None = None):
    """Σ_k w_k·r_k(prompts, completions) for terms (w_1, r_1), (w_2, r_2), ...: a reward that
    asks for several things at once (e.g. positive *and* short)."""
    if not terms or not all(isinstance(t, tuple) and len(t) == 2 and callable(t[1])
                            for t in terms):
        raise ValueError("weighted() takes (weight, reward) pairs, e.g. weighted((1.0, "
                         "sentiment), (-0.05, length))")
    terms = [(number("weight", w), r) for w, r in terms]

    def reward(prompts, completions):
        prompts, completions = _texts(prompts, completions)
        total = torch.zeros(len(completions), dtype=torch.float64)
        for w, r in terms:
            total += w * check_reward(r(prompts, completions), len(completions), r)
        return total
    reward.name = name or " + ".join(f"{w:g}·{name_of(r)}" for w, r in terms)
    return reward


# --- a simulated annotator ---------------------------------------------------------------------


class Annotator:
    """A judge who prefers a over b with probability σ((g(a) - g(b))/τ) (Bradley–Terry), g the
    hidden gold reward; τ → 0 always picks the better one, large τ is a coin flip."""

    def __init__(self, gold, tau: float = 1.0, *, seed: int = 0):
        if not callable(gold):
            raise TypeError("gold must be a reward: a callable (prompts, completions) -> [n]")
        self.gold, self.seed = gold, int(seed)
        self.tau = number("tau", tau, low=0, low_open=True,
                          hint=" (the label noise: τ → 0 is a perfect judge)")

    def prob(self, prompts, a, b) -> torch.Tensor:
        """P(a ≻ b) of each pair [n] float64: the soft label, as if many judges voted."""
        prompts, a = _texts(prompts, a)
        _, b = _texts(prompts, b)
        ga = check_reward(self.gold(prompts, a), len(a), self.gold)
        gb = check_reward(self.gold(prompts, b), len(b), self.gold)
        return torch.sigmoid((ga - gb) / self.tau)

    def label(self, prompts, a, b) -> list[tuple[str, str, str]]:
        """One judgement per pair -> [(prompt, chosen, rejected)], drawn with `seed`."""
        p = self.prob(prompts, a, b)
        gen = torch.Generator().manual_seed(self.seed)
        a_wins = (torch.rand(len(p), generator=gen, dtype=torch.float64) < p).tolist()
        return [(x, s, t) if w else (x, t, s) for x, s, t, w in zip(prompts, a, b, a_wins)]


# --- the reward model --------------------------------------------------------------------------


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor,
                       p_chosen: torch.Tensor | None = None) -> torch.Tensor:
    """-mean log σ(r_chosen - r_rejected): the negative log-likelihood of the labels under the
    Bradley–Terry model (InstructGPT eq. 1). With soft labels p = P(chosen ≻ rejected):
    -mean[p·log σ(Δ) + (1-p)·log σ(-Δ)]. Naive: -torch.log(torch.sigmoid(Δ)).mean(), which
    is +inf once σ underflows: logsigmoid is the stable form."""
    _same_shape(r_chosen=r_chosen, r_rejected=r_rejected)
    d = r_chosen - r_rejected                                               # pairs
    if p_chosen is None:
        return -torch.nn.functional.logsigmoid(d).mean()
    p = torch.as_tensor(p_chosen, dtype=d.dtype, device=d.device)
    return -(p * torch.nn.functional.logsigmoid(d) + (1 - p) * torch.nn.functional.logsigmoid(-d)).mean()


def _same_shape(**tensors) -> None:
    """A ValueError unless the tensors have one shape ([n] and [n, 1] would broadcast to n×n)."""
    shapes = {k: tuple(torch.as_tensor(v).shape) for k, v in tensors.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError("the inputs must have the same shape, one value per pair, got "
                         + ", ".join(f"{k} {v}" for k, v in shapes.items()))


def features(lm, prompts, completions, *, pool: str = "mean", batch_size: int = 32,
             memo: dict | None = None):
    """The frozen LM's last-layer hidden states averaged over the completion's tokens (the
    end token appended) -> [n, hidden] float32, CPU; `pool="last"`: the last token's state
    alone, as TRL's sequence classifier reads it. On 400 pairs of notebook 04's completions
    (240 labels, τ = 0.3, three weight decays) the mean ordered 54-62% of held-out pairs as
    the gold reward did, the last state 51-57%. `memo` (a dict the caller keeps) reuses the
    features already computed for a (prompt, completion), so several reward models on one
    data set cost one pass of the LM."""
    prompts, completions = _texts(prompts, completions)
    if pool not in ("mean", "last"):
        raise ValueError(f"pool must be 'mean' or 'last', got {pool!r}")
    memo = {} if memo is None else memo.setdefault(pool, {})
    end = [lm.eos_token_id] if lm.eos_token_id is not None else []
    todo = list(dict.fromkeys((p, c) for p, c in zip(prompts, completions) if (p, c) not in memo))
    body = lm.model.base_model
    with torch.no_grad():
        for b in range(0, len(todo), batch_size):
            chunk = todo[b:b + batch_size]
            heads = [lm.ids(p, start=True) for p, _ in chunk]
            rows = [h + lm.ids(c, start=False) + end for h, (_, c) in zip(heads, chunk)]
            ids, mask = padded(rows, pad_id(lm), lm.device)                    # batch seq
            hidden = body(input_ids=ids, attention_mask=mask).last_hidden_state  # b seq h
            for j, (key, h, r) in enumerate(zip(chunk, heads, rows)):
                states = hidden[j, len(h):len(r)].float()
                memo[key] = (states.mean(0) if pool == "mean" else states[-1]).cpu()
    if not prompts:
        return torch.zeros(0, lm.model.config.hidden_size)
    return torch.stack([memo[(p, c)] for p, c in zip(prompts, completions)])


class RewardModel:
    """r(x, y) = w·h(x, y), h the frozen LM's mean last hidden state (`features`), the head
    standardised by the training features' mean and scale. Called like a reward."""

    def __init__(self, lm, weight: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor,
                 name: str = "reward model", memo: dict | None = None, pool: str = "mean"):
        self.lm, self.weight, self.mean, self.scale, self.name = lm, weight, mean, scale, name
        self.memo, self.pool = memo, pool

    def score_features(self, h: torch.Tensor) -> torch.Tensor:
        return ((h - self.mean) / self.scale) @ self.weight

    def __call__(self, prompts, completions) -> torch.Tensor:
        return self.score_features(features(self.lm, prompts, completions, pool=self.pool,
                                            memo=self.memo)).double()

    def __repr__(self) -> str:
        return f"RewardModel({self.name!r}, on {self.lm.name}, {self.weight.numel()} features)"


def pair_accuracy(rm, pairs) -> float:
    """Share of (prompt, chosen, rejected) pairs the reward model ranks as labelled."""
    prompts = [p for p, _, _ in pairs]
    rc = rm(prompts, [c for _, c, _ in pairs])
    rr = rm(prompts, [r for _, _, r in pairs])
    return float(((rc > rr).double() + 0.5 * (rc == rr).double()).mean())


def train_reward_model(lm, pairs, *, eval_pairs=None, weight_decay: float = 0.1,
                       steps: int = 200, learning_rate: float = 0.05, name: str = "reward model",
                       pool: str = "mean", memo: dict | None = None, progress: bool = True):
    """Fit a `RewardModel` on (prompt, chosen, rejected) pairs -> (rm, history).

    Minimises the Bradley–Terry loss plus weight_decay·‖w‖² over the head, full batch with
    Adam, on features computed once. A reward is defined up to a constant, so there is no
    bias. `history`: per step: step, loss, accuracy (train pairs), eval_accuracy (every 20
    steps and the last, with `eval_pairs`), seconds. Identical pairs are dropped (warned).
    `memo`: a dict of features to reuse (`features`); the reward model keeps it to score
    texts it has seen for free. weight_decay 0.1 was the best of 0.001-0.1 measured on
    notebook 04's pairs (fewer labels than features: the head needs the penalty)."""
    from .dpo import check_pairs

    pairs, _ = check_pairs(pairs, what="reward-model pairs")
    steps = whole("steps", steps, low=1)
    weight_decay = number("weight_decay", weight_decay, low=0)
    learning_rate = number("learning_rate", learning_rate, low=0, low_open=True)
    t0 = time.perf_counter()
    prompts = [p for p, _, _ in pairs]
    hc = features(lm, prompts, [c for _, c, _ in pairs], pool=pool, memo=memo)     # pairs h
    hr = features(lm, prompts, [r for _, _, r in pairs], pool=pool, memo=memo)     # pairs h
    both = torch.cat([hc, hr])
    mean, scale = both.mean(0), both.std(0).clamp(min=1e-6)
    dc, dr = (hc - mean) / scale, (hr - mean) / scale
    if eval_pairs is not None:
        eval_pairs, _ = check_pairs(eval_pairs, what="held-out pairs")
        ep = [p for p, _, _ in eval_pairs]
        ec = (features(lm, ep, [c for _, c, _ in eval_pairs], pool=pool, memo=memo)
              - mean) / scale
        er = (features(lm, ep, [r for _, _, r in eval_pairs], pool=pool, memo=memo)
              - mean) / scale
    w = torch.zeros(hc.shape[1], requires_grad=True)
    opt = torch.optim.Adam([w], lr=learning_rate)
    history = []
    from tqdm.auto import tqdm
    for step in tqdm(range(steps), desc="reward model", unit="step", leave=False,
                     disable=not progress):
        loss = bradley_terry_loss(dc @ w, dr @ w) + weight_decay * (w * w).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            row = {"step": step + 1, "loss": loss.item(),
                   "accuracy": float(((dc - dr) @ w > 0).double().mean())}
            if eval_pairs is not None and ((step + 1) % 20 == 0 or step + 1 == steps):
                row["eval_accuracy"] = float(((ec - er) @ w > 0).double().mean())
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
    return RewardModel(lm, w.detach(), mean, scale, name=name, memo=memo, pool=pool), history


# --- over-optimisation: Gao et al.'s functional form ------------------------------------------


def gao_fit(d, gain) -> tuple[float, float]:
    """(α, β) of R(d) = d·(α - β·log d) fitted by least squares to the gold-reward gains R
    (gold minus the base's gold) at distances d = √KL > 0 (Gao et al. 2022, eq. 2, RL)."""
    d = torch.as_tensor(d, dtype=torch.float64)
    gain = torch.as_tensor(gain, dtype=torch.float64)
    keep = d > 0
    if int(keep.sum()) < 2:
        raise ValueError("gao_fit needs at least two points with d = √KL > 0")
    d, gain = d[keep], gain[keep]
    design = torch.stack([d, -d * torch.log(d)], 1)                        # points 2
    sol = torch.linalg.lstsq(design, gain[:, None]).solution[:, 0]
    return float(sol[0]), float(sol[1])


def gao_curve(d, alpha: float, beta: float) -> torch.Tensor:
    """R(d) = d·(α - β·log d), with R(0) = 0."""
    d = torch.as_tensor(d, dtype=torch.float64)
    return torch.where(d > 0, d * (alpha - beta * torch.log(d.clamp(min=1e-300))),
                       torch.zeros_like(d))


def best_of_n_kl(n: int) -> float:
    """KL(best-of-n ‖ π) = log n - (n - 1)/n (Stiennon et al. 2020; an upper bound, exact for
    a continuous reward)."""
    n = whole("n", n, low=1)
    return math.log(n) - (n - 1) / n
