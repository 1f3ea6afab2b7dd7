"""Direct Preference Optimization: fit preferences without a reward model or sampling.

Rafailov et al. 2023 ("Direct Preference Optimization: Your Language Model is Secretly a
Reward Model") start from the KL-regularised RL objective, whose optimum is the tilt
π*(y|x) = π_ref(y|x)·e^{r(x,y)/β}/Z(x) (eq. 4), and solve it for the reward:

    r(x, y) = β·log π*(y|x)/π_ref(y|x) + β·log Z(x)                          (eq. 5)

Put into the Bradley–Terry likelihood P(y_w ≻ y_l) = σ(r(x,y_w) - r(x,y_l)), Z cancels, and
the policy itself is fitted to the preference pairs (x, y_w, y_l):

    L_DPO(θ) = -E log σ(β·[log π_θ(y_w|x)/π_ref(y_w|x) - log π_θ(y_l|x)/π_ref(y_l|x)])  (eq. 7)

`dpo_loss` is the lab's one copy of eq. 7 (`labkit.bayes` uses it on the toy world, with soft
labels too); `train` runs it on `lk.LM`s with LoRA, the reference being the same model with
the adapter off, so no second copy of the weights is kept. The reference log-probabilities
never change, so they are computed once before training (TRL's `precompute_ref_log_probs`).
`implicit_reward` reads eq. 5 back from a tuned model. Names follow TRL's `DPOConfig`.

Left out on purpose: the IPO/hinge/robust variants of the loss, label smoothing (soft labels
through `p_chosen` instead), and a separate reference model (the adapter off is π_ref).
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import time
import warnings
from dataclasses import dataclass

import torch

from . import adapters
from .models import cache_dir, freeze
from .pairs import batch_order, collate, pad_id, response_logprobs
from .validate import number, whole


def dpo_loss(logp_chosen: torch.Tensor, logp_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float,
             p_chosen: torch.Tensor | None = None) -> torch.Tensor:
    """-mean log σ(β·(h_w - h_l)), h = log π_θ(y|x) - log π_ref(y|x) of each sequence
    (Rafailov et al. 2023, eq. 7); the four inputs are [pairs] sequence log-probabilities.

    With soft labels p = P(chosen ≻ rejected) (Bradley–Terry probabilities, the limit of many
    annotators per pair) it is the expected loss -mean[p·log σ(u) + (1-p)·log σ(-u)].
    Naive version: u = beta * ((logp_chosen - ref_chosen) - (logp_rejected - ref_rejected));
    -torch.log(torch.sigmoid(u)).mean() -- which is +inf once σ(u) underflows: logsigmoid."""
    beta = number("beta", beta, low=0, low_open=True,
                  hint=" (DPO's β: the strength of the KL leash to the reference)")
    shapes = {tuple(torch.as_tensor(t).shape) for t in (logp_chosen, logp_rejected, ref_chosen,
                                                        ref_rejected)}
    if len(shapes) > 1:
        raise ValueError(f"the four log-probabilities must have the same shape, one value per "
                         f"pair, got {sorted(shapes)}")
    u = beta * ((logp_chosen - ref_chosen) - (logp_rejected - ref_rejected))  # pairs
    if p_chosen is None:
        return -torch.nn.functional.logsigmoid(u).mean()
    p = torch.as_tensor(p_chosen, dtype=u.dtype, device=u.device)
    return -(p * torch.nn.functional.logsigmoid(u)
             + (1 - p) * torch.nn.functional.logsigmoid(-u)).mean()


@dataclass
class DPOConfig:
    """Settings of `train` (TRL's `DPOConfig` names where TRL has the knob)."""

    beta: float = 0.1                # TRL's default: the KL leash (small = follow the labels)
    learning_rate: float = 5e-4      # AdamW; LoRA on a 135M model takes a large rate
    max_steps: int = 60
    batch_size: int = 4              # pairs per step (2 × rows in the forward pass)
    micro_batch: int | None = None   # pairs per forward pass (gradients accumulate): less memory
    max_length: int = 256            # longer pairs are refused, not truncated
    max_grad_norm: float = 1.0
    lora_r: int | None = 8           # None = full fine-tuning of a copy (the toy world)
    lora_alpha: float = 16
    target_modules: tuple = ("q_proj", "v_proj")
    seed: int = 0

    def __post_init__(self):
        self.beta = number("beta", self.beta, low=0, low_open=True,
                           hint=" (DPO's β must be > 0: it divides the implicit reward)")
        self.learning_rate = number("learning_rate", self.learning_rate, low=0, low_open=True)
        self.max_grad_norm = number("max_grad_norm", self.max_grad_norm, low=0, low_open=True)
        for f, low in (("max_steps", 1), ("batch_size", 1), ("max_length", 2), ("seed", None)):
            setattr(self, f, whole(f, getattr(self, f), low=low))
        if self.micro_batch is not None:
            self.micro_batch = whole("micro_batch", self.micro_batch, low=1,
                                     hint=" (None: the whole batch in one forward pass)")
        if self.lora_r is not None:
            self.lora_r = whole("lora_r", self.lora_r, low=1, hint=" (None: full fine-tuning)")
        self.target_modules = tuple([self.target_modules] if isinstance(self.target_modules, str)
                                    else self.target_modules)


def check_pairs(pairs, *, what: str = "preference pairs") -> tuple[list, int]:
    """(the usable (prompt, chosen, rejected) triples, how many were dropped): a pair whose
    chosen and rejected texts are identical teaches nothing -- it is dropped with a warning."""
    if isinstance(pairs, (str, bytes)) or not hasattr(pairs, "__iter__"):
        raise TypeError(f"{what} must be a list of (prompt, chosen, rejected) triples")
    pairs = list(pairs)
    for i, p in enumerate(pairs):
        if not (isinstance(p, (tuple, list)) and len(p) == 3 and all(isinstance(s, str) for s in p)):
            raise TypeError(f"{what}: item {i} must be a (prompt, chosen, rejected) triple of "
                            f"strings, got {p!r:.80}")
    kept = [tuple(p) for p in pairs if p[1] != p[2]]
    dropped = len(pairs) - len(kept)
    if dropped:
        warnings.warn(f"{dropped} of {len(pairs)} {what} had identical chosen and rejected "
                      "texts: they say nothing about which is better and were dropped",
                      stacklevel=3)
    if not kept:
        raise ValueError(f"no usable {what}: give at least one (prompt, chosen, rejected) triple "
                         "whose chosen and rejected texts differ")
    return kept, dropped


def sequence_logprobs(model, rows, pad: int, device, batch_size: int = 16) -> torch.Tensor:
    """Σ_t log π(y_t | x, y_<t) of each (ids, prompt_length) row, no gradient -> [rows]."""
    out = []
    with torch.no_grad():
        for b in range(0, len(rows), batch_size):
            logp, _ = response_logprobs(model, collate(rows[b:b + batch_size], pad, device))
            out.append(logp.sum(1).double().cpu())
    return torch.cat(out)


def _unique_logprobs(model, rows, pad: int, device) -> torch.Tensor:
    """Σ_t log π_θ of each row [rows] float64, with gradient, each distinct row computed once
    (a toy world's pairs repeat the same few sequences thousands of times). Rows are
    (ids, prompt length) with ids a tuple (`_rows` makes them so: hashable as they are)."""
    where = {}
    order = [where.setdefault(row, len(where)) for row in rows]
    unique = [(list(ids), p) for ids, p in where]
    logp, _ = response_logprobs(model, collate(unique, pad, device))
    return logp.sum(1).double()[torch.tensor(order, device=logp.device)]


def _rows(lm, prompts, completions, max_length: int) -> list:
    """(ids, prompt_length) of prompt + completion + end token; raw text (no chat template)."""
    from .pairs import encode
    return [(tuple(ids), p) for ids, p in encode(lm, list(zip(prompts, completions)),
                                                 chat=False, max_length=max_length)]


def implicit_reward(tuned, base, prompts, completions, *, beta: float = 0.1) -> torch.Tensor:
    """DPO's implicit reward β·log π_θ(y|x)/π_ref(y|x) (eq. 5) of each completion -> [n]
    float64, with `tuned` the policy and `base` the reference (the same base, adapter off).
    It equals the reward DPO fitted up to a per-prompt constant β·log Z(x)."""
    beta = number("beta", beta, low=0, low_open=True)
    rows = _rows(base, prompts, completions, 10**9)
    return beta * (sequence_logprobs(tuned.model, rows, pad_id(tuned), tuned.device)
                   - sequence_logprobs(base.model, rows, pad_id(base), base.device))


CACHE_VERSION = 1      # bump when DPO or RL training changes: cached adapters are retrained


def cache_entry(lm, trainer: str, cache, cfg, **data):
    """The cache directory of a run (`cache`: True for labkit's cache, or a folder) keyed on
    the base, the trainer, its config and `data`; None when not caching."""
    if not cache:
        return None
    if cfg.lora_r is None or isinstance(lm.model, adapters.AdapterView):
        raise ValueError("cache=True keeps one LoRA adapter on the plain base: train this one "
                         "(full fine-tuning, or on a tuned LM: a stack) without cache")
    from pathlib import Path
    root = cache_dir() / "adapters" if cache is True else Path(cache).expanduser()
    return root / adapters.cache_key(lm, trainer, version=CACHE_VERSION,
                                     config=dataclasses.asdict(cfg), **data)


def train(lm, pairs, config: DPOConfig | None = None, *, progress: bool = True,
          cache=False):
    """DPO of `lm` on (prompt, chosen, rejected) triples -> (tuned LM, history).

    Prompts are raw text (the toy world's is ""); each completion gets the end token. With
    LoRA (default) the tuned model is an `adapters.AdapterView` on `lm`'s own weights and the
    reference is `lm` itself; `lora_r=None` fine-tunes a full copy. `history`: per step: step,
    loss, accuracy (the batch's pairs ranked as labelled by the implicit reward), margin (mean
    β·(h_w - h_l)), seconds; history[0]["dropped"] counts the identical pairs dropped.
    `cache=True` (or a folder) keeps the adapter and history, and loads them next time."""
    cfg = config if config is not None else DPOConfig()
    if not isinstance(cfg, DPOConfig):
        raise TypeError(f"config must be a DPOConfig, got {type(cfg).__name__}")
    pairs, dropped = check_pairs(pairs)
    directory = cache_entry(lm, "dpo", cache, cfg, pairs=[list(p) for p in pairs])
    hit = directory and adapters.cached(lm, directory)
    if hit:
        return hit
    prompts = [p for p, _, _ in pairs]
    chosen = _rows(lm, prompts, [c for _, c, _ in pairs], cfg.max_length)
    rejected = _rows(lm, prompts, [r for _, _, r in pairs], cfg.max_length)
    pad, device = pad_id(lm), lm.device
    ref_c = sequence_logprobs(lm.model, chosen, pad, device)                   # pairs
    ref_r = sequence_logprobs(lm.model, rejected, pad, device)                 # pairs
    model, view, params = _policy(lm, cfg, "dpo")
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
    history, t0 = [], time.perf_counter()
    from tqdm.auto import tqdm
    bar = tqdm(total=cfg.max_steps, desc="DPO", unit="step", leave=False, disable=not progress)
    try:
        with bar, (adapters.training(view) if view is not None else contextlib.nullcontext()):
            model.eval()                                   # no dropout: π_θ = π_ref at step 0
            for step, idx in enumerate(batch_order(len(pairs), cfg.batch_size, cfg.max_steps,
                                                   cfg.seed)):
                opt.zero_grad(set_to_none=True)
                us, total = [], 0.0
                size = cfg.micro_batch or len(idx)
                for part in (idx[j:j + size] for j in range(0, len(idx), size)):
                    seq = _unique_logprobs(model, [chosen[i] for i in part]
                                           + [rejected[i] for i in part], pad, device)  # 2·part
                    k = len(part)
                    loss = dpo_loss(seq[:k], seq[k:], ref_c[part].to(seq.device),
                                    ref_r[part].to(seq.device), cfg.beta) * k / len(idx)
                    if not torch.isfinite(loss):
                        raise ValueError(f"the DPO loss became {loss.item()} at step {step + 1}: "
                                         f"training diverged -- lower learning_rate (now "
                                         f"{cfg.learning_rate:g})")
                    loss.backward()
                    total += loss.item()
                    with torch.no_grad():
                        us.append(cfg.beta * ((seq[:k].cpu() - ref_c[part])
                                              - (seq[k:].cpu() - ref_r[part])))
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                opt.step()
                u = torch.cat(us)
                history.append({"step": step + 1, "loss": total,
                                "accuracy": float((u > 0).double().mean()),
                                "margin": float(u.mean()), "seconds": time.perf_counter() - t0})
                bar.set_postfix_str(f"loss {total:.3f}", refresh=False)
                bar.update()
    except BaseException:
        if view is not None:
            adapters.delete(view)
        raise
    if history:
        history[0]["dropped"] = dropped
    tuned = _tuned(lm, model, view, "dpo", cfg)
    if directory:
        adapters.keep(tuned, directory, history)
    return tuned, history


def _policy(lm, cfg, prefix: str):
    """(the model to train, its AdapterView or None, the parameters to train): a new LoRA
    adapter on `lm`'s weights, or (`lora_r=None`) a full copy with every weight trainable."""
    if cfg.lora_r is None:
        model = copy.deepcopy(lm.model)
        params = [p for n, p in model.named_parameters() if "lora_" not in n]
        for p in params:
            p.requires_grad_(True)
        return model, None, params
    from peft import LoraConfig
    view = adapters.create(lm, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                                          lora_dropout=0.0,
                                          target_modules=list(cfg.target_modules)),
                           prefix=prefix, seed=cfg.seed)
    return view, view, adapters.adapter_parameters(adapters.split(view)[0], view.names[-1])


def _tuned(lm, model, view, trainer: str, cfg):
    """The trained policy as an `lk.LM` (frozen; a view keeps its trainer and settings)."""
    if view is None:
        return dataclasses.replace(lm, model=freeze(model), name=f"{lm.name} ({trainer})")
    view.meta.update(trainer=trainer, config=dataclasses.asdict(cfg), chat=False)
    return dataclasses.replace(lm, model=view, name=f"{lm.name} + {view.names[-1]}")
