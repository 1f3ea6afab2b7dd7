"""RL from feedback: sample, score, and nudge the policy toward what scored well -- on a leash.

The policy π_θ is the next-token distribution; a reward r(x, y) scores whole completions
after they are written. KL-regularised RL maximises

    J(θ) = E_{y~π_θ(·|x)}[r(x, y)] - β·KL(π_θ(·|x) ‖ π_ref(·|x))          (Ziegler et al. 2019)

whose optimum is the tilt π_ref·e^{r/β}/Z -- the Bayesian update of `labkit.bayes`
(Korbak, Perez & Buckley 2022). One step of `train`:

1. sample `num_generations` completions y_1..y_G of each prompt from π_θ (`sample`, the same
   sampling as `lk.generate`: softmax of logits / temperature, until an end token);
2. score them: R_i = r(x, y_i) - β·k(y_i), with the per-sequence KL estimate
   k1 = Σ_t log π_θ(y_t|·) - log π_ref(y_t|·) (TRL's RLOO); or, with kl_estimator="k3",
   R_i = r(x, y_i) and β·k3 = β·Σ_t (ρ_t - 1 - log ρ_t), ρ_t = π_ref/π_θ, is added to the
   loss instead (GRPO's way; Schulman 2020, "Approximating KL divergence"; `k3`);
3. the leave-one-out advantage A_i = R_i - 1/(G-1)·Σ_{j≠i} R_j (`rloo_advantage`; Kool,
   van Hoof & Welling 2019, "Buy 4 REINFORCE samples, get a baseline for free!"; Ahmadian et
   al. 2024) -- a baseline that does not depend on y_i, so the gradient stays unbiased;
4. the REINFORCE loss -1/n Σ_i A_i·log π_θ(y_i|x) (`reinforce_loss`; Williams 1992), one
   AdamW step.

The policy is a LoRA adapter on `lm`'s own weights; the reference is the same model with the
adapter off (no second copy of the weights). `lora_r=None` fine-tunes a full copy -- what the
toy world uses, where `tests/test_rlhf.py` checks that the trainer lands on the exact tilt.
`labkit.bayes.rl_finetune` is the teaching version of the same objective on the toy world,
with the *exact* gradient (a sum over all sequences instead of samples).

Left out on purpose: PPO's clipped ratio and value network (one gradient step per batch of
samples is on-policy, so there is nothing to clip), reward whitening, and several passes over
a batch.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings
from dataclasses import dataclass

import torch

from . import adapters
from .decoding import continuation_text
from .dpo import _policy, _tuned, cache_entry
from .pairs import collate, pad_id, padded, response_logprobs
from .rewards import check_reward, name_of
from .validate import number, whole


@dataclass
class RLConfig:
    """Settings of `train` (TRL's `RLOOConfig` names where TRL has the knob)."""

    beta: float = 0.05               # the KL leash; 0 = no leash (reward hacking)
    num_generations: int = 4         # completions per prompt (the leave-one-out group)
    prompts_per_step: int = 4        # so a step scores prompts_per_step × num_generations
    learning_rate: float = 1e-3      # AdamW on the LoRA weights
    max_steps: int = 30
    temperature: float = 1.0
    max_new_tokens: int = 16
    kl_estimator: str = "k1"         # "k1" (TRL's RLOO default) or "k3"
    max_grad_norm: float = 1.0
    max_kl: float = 200.0            # stop (keeping the last good policy) beyond this KL, nats
    lora_r: int | None = 8           # None = full fine-tuning of a copy (the toy world)
    lora_alpha: float = 16
    target_modules: tuple = ("q_proj", "v_proj")
    seed: int = 0

    def __post_init__(self):
        self.beta = number("beta", self.beta, low=0, hint=" (β ≥ 0: 0 is no KL penalty)")
        for f in ("learning_rate", "temperature", "max_grad_norm", "max_kl"):
            setattr(self, f, number(f, getattr(self, f), low=0, low_open=True))
        self.num_generations = whole("num_generations", self.num_generations, low=2, hint=(
            " (the leave-one-out baseline averages the *other* completions of a prompt, so "
            "it needs at least 2)"))
        for f, low in (("prompts_per_step", 1), ("max_steps", 1), ("max_new_tokens", 1),
                       ("seed", None)):
            setattr(self, f, whole(f, getattr(self, f), low=low))
        if self.kl_estimator not in ("k1", "k3"):
            raise ValueError(f"kl_estimator must be 'k1' or 'k3', got {self.kl_estimator!r}")
        if self.lora_r is not None:
            self.lora_r = whole("lora_r", self.lora_r, low=1, hint=" (None: full fine-tuning)")
        self.target_modules = tuple([self.target_modules] if isinstance(self.target_modules, str)
                                    else self.target_modules)


# --- the two equations ---------------------------------------------------------------------------


def rloo_advantage(rewards: torch.Tensor) -> torch.Tensor:
    """A_ij = R_ij - 1/(G-1)·Σ_{k≠j} R_ik for rewards [prompts, G] (G completions of each
    prompt) -> [prompts, G]; equal to G/(G-1)·(R_ij - mean_k R_ik). Naive version: for each
    j, the mean of the row without column j."""
    if rewards.dim() != 2 or rewards.shape[1] < 2:
        raise ValueError(f"rewards must be [prompts, G] with G ≥ 2 completions per prompt, got "
                         f"shape {tuple(rewards.shape)}")
    g = rewards.shape[1]
    others = (rewards.sum(1, keepdim=True) - rewards) / (g - 1)             # prompts G
    return rewards - others


def reinforce_loss(logp: torch.Tensor, advantage: torch.Tensor) -> torch.Tensor:
    """-1/n Σ_i A_i·log π_θ(y_i|x_i) (Williams 1992): its gradient is the policy gradient
    -E[A·∇log π_θ]. logp [n] sequence log-probs with grad, advantage [n] (no grad)."""
    return -(advantage.detach() * logp).mean()


def k3(logp: torch.Tensor, logp_ref: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Σ_t (ρ_t - 1 - log ρ_t), ρ_t = π_ref(y_t|·)/π_θ(y_t|·), per sequence [n] from per-token
    log-probs [n, T] (Schulman 2020): never negative, and E_{π_θ}[k3] = KL(π_θ ‖ π_ref).
    Differentiated in the loss (as GRPO does), its gradient is that of the token-level
    KL(π_ref ‖ π_θ) -- another leash than k1's, whose optimum is close to, not exactly, the tilt."""
    d = logp_ref - logp                                                          # n T
    return ((torch.exp(d) - 1 - d) * valid).sum(1)


# --- sampling ------------------------------------------------------------------------------------


def sample(lm, prompts, n: int = 1, *, temperature: float = 1.0, max_new_tokens: int = 16,
           seed: int = 0, batch_size: int = 16) -> list[tuple[str, list, list, str]]:
    """`n` completions of each prompt, batched -> [(prompt, prompt ids, completion ids,
    completion text)], prompt by prompt. The same distribution as `lk.generate(lm, prompt)`:
    softmax(logits / temperature), no top-k or top-p, until an end token (kept in the ids: the
    policy chose to stop) or `max_new_tokens`. Raw prompts (no chat template), by the one BOS
    rule, `batch_size` rows per call of transformers' `generate`; `seed` seeds torch's
    generator inside a fork (the caller's random state is kept)."""
    prompts = list(prompts)
    n = whole("n", n, low=1)
    temperature = number("temperature", temperature, low=0, low_open=True)
    max_new_tokens = whole("max_new_tokens", max_new_tokens, low=1)
    rows = [lm.ids(p, start=True) for p in prompts]
    flat = [(p, r) for p, r in zip(prompts, rows) for _ in range(n)]
    eos, pad = sorted(lm.eos_token_ids), pad_id(lm)
    devices = [lm.device] if lm.device.type == "cuda" else []
    result = []
    for b in range(0, len(flat), batch_size):
        chunk = flat[b:b + batch_size]
        ids, mask = padded([r for _, r in chunk], pad, lm.device, left=True)
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(seed + b)
            out = lm.model.generate(input_ids=ids, attention_mask=mask, do_sample=True,
                                    temperature=temperature, top_k=0, top_p=1.0,
                                    max_new_tokens=max_new_tokens, pad_token_id=pad,
                                    eos_token_id=eos)
        for (prompt, prompt_ids), row in zip(chunk, out[:, ids.shape[1]:].tolist()):
            stop = next((t for t, tok in enumerate(row) if tok in eos), None)
            new = row if stop is None else row[:stop + 1]
            text = continuation_text(lm.tokenizer, new[:-1] if stop is not None else new)
            result.append((prompt, prompt_ids, new, text))
    return result


# --- the trainer ---------------------------------------------------------------------------------


def train(lm, prompts, reward, config: RLConfig | None = None, *, gold=None,
          progress: bool = True, cache=False):
    """KL-regularised RL (RLOO) of `lm` on `prompts` with `reward` -> (tuned LM, history).

    `reward(prompts, completions) -> [n]` scores each completion text; `gold` (a reward too)
    is only measured, never optimised (over-optimisation: is the proxy still right?). Each
    step cycles through `prompts`. `history`: per step: step, reward (mean), kl (mean
    per-sequence KL(π_θ ‖ π_ref) estimated from the samples, k1), entropy (mean per-token
    entropy of π_θ on the samples), gold (with `gold=`), length (tokens), seconds, and the
    step's first completions (`samples`), all measured on the step's samples before its
    update. A run whose KL passes `max_kl` or whose loss is not finite stops with a warning,
    and the last policy found good is returned (and cached: the same run would stop again).
    `cache=True` (or a folder) keeps the adapter and history under a key of the base, the
    config, the prompts and the rewards' names (a reward model's weights too), and loads them
    next time instead of training; a tuned `lm` (RL on an SFT adapter) is not cached."""
    cfg = config if config is not None else RLConfig()
    if not isinstance(cfg, RLConfig):
        raise TypeError(f"config must be an RLConfig, got {type(cfg).__name__}")
    if isinstance(prompts, str) or not hasattr(prompts, "__iter__"):
        raise TypeError("prompts must be a list of strings")
    prompts = list(prompts)
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompts must be a non-empty list of strings (the toy world's is [''])")
    if not callable(reward):
        raise TypeError("reward must be a callable (prompts, completions) -> FloatTensor [n]")
    directory = cache_entry(lm, "rl", cache, cfg, prompts=prompts, reward=reward_key(reward),
                            gold=None if gold is None else reward_key(gold))
    hit = directory and adapters.cached(lm, directory)
    if hit:
        return hit
    model, view, params = _policy(lm, cfg, "rl")
    policy = dataclasses.replace(lm, model=model)
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
    history, t0 = [], time.perf_counter()
    good = _snapshot(params)
    from tqdm.auto import tqdm
    bar = tqdm(total=cfg.max_steps, desc=f"RL (β={cfg.beta:g})", unit="step", leave=False,
               disable=not progress)
    try:
        with bar:
            for step in range(1, cfg.max_steps + 1):
                at = (step - 1) * cfg.prompts_per_step
                batch = [prompts[(at + i) % len(prompts)] for i in range(cfg.prompts_per_step)]
                before = _snapshot(params)          # the policy this step samples from
                row, stop = _step(lm, policy, view, params, opt, batch, reward, gold, cfg, step)
                if stop:                            # it is bad: back to the one step `step - 1`
                    _restore(params, good)          # sampled from and found good
                    warnings.warn(f"RL stopped at step {step}: {stop}; the policy that step "
                                  f"{step - 1} sampled from is returned", stacklevel=2)
                    if history:
                        history[-1]["stopped"] = stop
                    break
                good = before
                row["seconds"] = time.perf_counter() - t0
                history.append(row)
                bar.set_postfix_str(f"reward {row['reward']:.3f} KL {row['kl']:.2f}",
                                    refresh=False)
                bar.update()
    except BaseException:
        if view is not None:
            adapters.delete(view)
        raise
    tuned = _tuned(lm, model, view, "rl", cfg)
    if directory:                         # a stopped run is kept too: it would stop again
        adapters.keep(tuned, directory, history)
    return tuned, history


def reward_key(reward) -> str:
    """What names a reward in a cache key: its name, and a reward model's weights' digest."""
    import hashlib
    weight = getattr(reward, "weight", None)
    digest = "" if weight is None else hashlib.sha256(
        torch.as_tensor(weight).detach().cpu().numpy().tobytes()).hexdigest()[:16]
    return f"{name_of(reward)}:{digest}"


def _step(lm, policy, view, params, opt, batch, reward, gold, cfg: RLConfig, step: int):
    """One RLOO step on the prompts `batch` -> (history row, None) or (None, why it stopped)."""
    done = sample(policy, batch, cfg.num_generations, temperature=cfg.temperature,
                  max_new_tokens=cfg.max_new_tokens, seed=cfg.seed * 100_003 + step)
    ps, texts = [d[0] for d in done], [d[3] for d in done]
    r = check_reward(reward(ps, texts), len(texts), reward, step)                  # n
    rows = [(d[1] + d[2], len(d[1])) for d in done]
    pad, device, g = pad_id(lm), lm.device, cfg.num_generations
    with torch.no_grad():                 # the reference: lm itself, the new adapter off
        ref = [response_logprobs(lm.model, collate(rows[i:i + g], pad, device))[0]
               for i in range(0, len(rows), g)]
    kls, ents, lens = [], [], []
    opt.zero_grad(set_to_none=True)
    with (adapters.training(view) if view is not None else contextlib.nullcontext()):
        policy.model.eval()               # no dropout: π_θ is what was sampled from
        for k, i in enumerate(range(0, len(rows), g)):       # one prompt's group at a time
            logp, valid, ent = response_logprobs(policy.model, collate(rows[i:i + g], pad,
                                                                       device), entropy=True)
            kl1 = (logp - ref[k]).detach().sum(1)                                # g
            if cfg.kl_estimator == "k1":          # in the reward: R = r - β·k1
                shaped = r[i:i + g].to(logp.device) - cfg.beta * kl1.double()
                extra = 0.0
            else:                                 # in the loss, differentiated (GRPO's way)
                shaped = r[i:i + g].to(logp.device)
                extra = cfg.beta * k3(logp, ref[k], valid).mean()
            adv = rloo_advantage(shaped[None])[0].float()                        # g
            loss = (reinforce_loss(logp.sum(1), adv) + extra) * g / len(rows)
            if not torch.isfinite(loss):
                return None, f"the loss became {loss.item()} (reward {name_of(reward)!r})"
            loss.backward()
            kls.append(kl1)
            ents.append((ent.sum() / valid.sum()).item())
            lens.append(valid.sum(1).float())
    kl = float(torch.cat(kls).mean())
    if not kl < cfg.max_kl:
        return None, f"the KL from the reference reached {kl:.1f} nats > max_kl={cfg.max_kl:g}"
    torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
    opt.step()
    row = {"step": step, "reward": float(r.mean()), "kl": kl,
           "entropy": sum(ents) / len(ents), "length": float(torch.cat(lens).mean()),
           "samples": [[p, t] for p, t in zip(ps[:4], texts[:4])]}
    if gold is not None:
        row["gold"] = float(check_reward(gold(ps, texts), len(texts), gold, step).mean())
    return row, None


def _snapshot(params) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


def _restore(params, saved) -> None:
    with torch.no_grad():
        for p, s in zip(params, saved):
            p.copy_(s)


def evaluate(policy, base, prompts, reward, *, n: int = 4, max_new_tokens: int = 16,
             temperature: float = 1.0, seed: int = 1, gold=None) -> dict:
    """Sample `n` completions of each prompt from `policy` and measure them -> {"reward": the
    mean reward, "kl": the mean per-sequence KL(policy ‖ base) estimated from those samples
    (k1, nats), "kl_se": its standard error, "gold" (with `gold=`), "completions":
    [(prompt, text)], "rewards": [n·prompts]}. `base` is the reference (the base LM)."""
    from .dpo import sequence_logprobs

    done = sample(policy, prompts, n, temperature=temperature, max_new_tokens=max_new_tokens,
                  seed=seed)
    ps, texts = [d[0] for d in done], [d[3] for d in done]
    r = check_reward(reward(ps, texts), len(texts), reward)
    rows = [(d[1] + d[2], len(d[1])) for d in done]
    kl = (sequence_logprobs(policy.model, rows, pad_id(policy), policy.device)
          - sequence_logprobs(base.model, rows, pad_id(base), base.device))           # n
    out = {"reward": float(r.mean()), "kl": float(kl.mean()),
           "kl_se": float(kl.std() / len(kl) ** 0.5) if len(kl) > 1 else float("nan"),
           "completions": list(zip(ps, texts)), "rewards": r}
    if gold is not None:
        out["gold"] = float(check_reward(gold(ps, texts), len(texts), gold).mean())
    return out
