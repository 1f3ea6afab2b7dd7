"""Supervised fine-tuning: teach a model by example, with LoRA, a warm-up, and few epochs.

Given pairs (prompt, response), SFT maximises the likelihood of each response given its
prompt. The loss is the mean cross-entropy over the *response tokens only*:

    L(θ) = -1/|R| Σ_{(i,t) ∈ R} log π_θ(x_{i,t} | x_{i,<t})           R = response positions

(the prompt and the padding are masked, `masked_labels`; `sft_loss` shifts logits and labels
by one, since the logits at t predict the token at t + 1). Training on samples of π(x | c)
fits π(x | c): SFT is conditioning by example, which `tests/test_sft.py` checks exactly on the
toy world. Instruction tuning on many task types helps on unseen ones (FLAN: Wei et al. 2022,
"Finetuned Language Models Are Zero-Shot Learners"; Chung et al. 2022, "Scaling
Instruction-Finetuned Language Models").

* **LoRA** (Hu et al. 2021, eq. 3): h = W0·x + B·A·x · α/r, W0 frozen, only A and B trained
  (r = 8 on the attention's q_proj and v_proj, the paper's §7.1 choice). The adapter lives in
  the shared base (`labkit.adapters`): the base LM keeps its distribution. `lora_r=None`
  is full fine-tuning of a copy (the toy world; measured for SmolLM2 in benchmarks/).
* **Schedule**: a linear warm-up from 0, then linear decay to 0 (`lr_at`: Goyal et al. 2017,
  "Accurate, Large Minibatch SGD", §2.2; transformers' `get_linear_schedule_with_warmup`).
* **AdamW** (Loshchilov & Hutter 2019) with gradient clipping at `max_grad_norm`.

Names follow TRL's `SFTConfig`/`SFTTrainer` where a knob means the same, so a learner can move
to TRL. Batches are right-padded; a seed makes two runs identical. `finetune(..., cache=True)`
saves the adapter and its history under a key of base + config + data, so a notebook run
again (or notebook 07 after 03) loads it instead of training. Memory: activations dominate a
LoRA step (SmolLM2-135M, 12 rows of ~50 tokens: 2.4 GB at the peak, 1.5 GB with
`gradient_checkpointing=True`, which recomputes them in the backward pass; bench_sft.py;
notebook 03's 4 rows of ~30 tokens peak near 1.3 GB).

Left out on purpose: packing several examples into one row, gradient accumulation, mixed
precision on the CPU (bf16 autocast is ~35× slower there: fp32 always; bf16 only on CUDA),
multi-turn conversations, and truncation: an example longer than `max_length` is refused,
since a cut response teaches the model to stop without its end token.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from . import adapters
from .dist import _accepts, forward as run_model
from .models import cache_dir, freeze
from .pairs import (IGNORE, batch_order, collate, encode,  # noqa: F401  (masked_labels: the
                    masked_labels, pad_id)               # exercise's reference, re-exported)
from .validate import number, whole

CACHE_VERSION = 1      # bump when training changes: cached adapters are then trained again


@dataclass
class SFTConfig:
    """Settings of `finetune` (TRL's names where TRL has the knob); defaults fit 2 CPU cores,
    where one LoRA step on 12 chat examples of ~50 tokens takes ~2.5-3.5 s (bench_sft.py)."""

    learning_rate: float = 2e-4      # LoRA trains few weights: ~10× full fine-tuning's 2e-5
    num_train_epochs: float = 3      # few epochs: more overfits a small data set (TRL's default)
    max_steps: int = -1              # > 0 overrides the epochs (-1: off, TRL's meaning)
    batch_size: int = 8              # 8 rows of ~50 tokens: ~2 s a step on 2 cores, ~2 GB
    warmup_steps: float = 0.1        # < 1: a share of the steps (transformers 5); 10% warm-up
    lr_scheduler_type: str = "linear"   # warm-up then linear decay; "constant": no schedule
    max_length: int = 512            # longer examples are refused; the lab's are < 100 tokens
    max_grad_norm: float = 1.0       # clip the gradient norm (TRL's default): no wild first steps
    weight_decay: float = 0.0        # AdamW's decoupled decay, off (TRL's default)
    lora_r: int | None = 8           # rank of B·A; None = full fine-tuning of a copy
    lora_alpha: float = 16           # update scaled by α/r = 2 (peft's usual 2·r)
    lora_dropout: float = 0.05       # on the adapter's input, a little regularisation
    target_modules: tuple = ("q_proj", "v_proj")   # the LoRA paper's choice (§7.1)
    eval_every: int = 10             # steps between eval losses (and at the last step)
    seed: int = 0                    # adapter init, batch order and dropout: two runs identical
    bf16: bool = False               # bf16 autocast, CUDA only (on this CPU it is ~35× slower)
    gradient_checkpointing: bool = False   # recompute activations: ~0.6× the peak, ~1.5× time

    def __post_init__(self):
        self.learning_rate = number("learning_rate", self.learning_rate, low=0, low_open=True,
                                    hint=" (a typical LoRA rate is 1e-4 to 5e-4)")
        for f in ("num_train_epochs", "max_grad_norm", "lora_alpha"):
            setattr(self, f, number(f, getattr(self, f), low=0, low_open=True))
        for f, low in (("max_steps", -1), ("batch_size", 1), ("max_length", 2),
                       ("eval_every", 1), ("seed", None)):
            setattr(self, f, whole(f, getattr(self, f), low=low))
        self.weight_decay = number("weight_decay", self.weight_decay, low=0)
        self.lora_dropout = number("lora_dropout", self.lora_dropout, low=0, high=1, high_open=True)
        self.warmup_steps = number("warmup_steps", self.warmup_steps, low=0)
        if self.max_steps == 0:
            raise ValueError("max_steps must be > 0, or -1 to train for num_train_epochs")
        if self.warmup_steps >= 1 and not float(self.warmup_steps).is_integer():
            raise ValueError(f"warmup_steps must be a share in [0, 1) or a whole number of "
                             f"steps, got {self.warmup_steps:g}")
        if self.lr_scheduler_type not in ("linear", "constant"):
            raise ValueError(f"lr_scheduler_type must be 'linear' or 'constant', got "
                             f"{self.lr_scheduler_type!r}")
        if self.lora_r is not None:
            self.lora_r = whole("lora_r", self.lora_r, low=1, hint=" (None: full fine-tuning)")
        mods = self.target_modules
        mods = (mods,) if isinstance(mods, str) else mods
        if not mods or not all(isinstance(m, str) and m for m in mods):
            raise ValueError(f"target_modules must name the layers LoRA adapts, e.g. "
                             f"('q_proj', 'v_proj'), got {self.target_modules!r}")
        self.target_modules = tuple(mods)


# --- the loss and the schedule (the labels are `labkit.pairs.masked_labels`) -----------------


def sft_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L = -1/|R| Σ_{(i,t)∈R} log softmax(logits[i, t-1])[labels[i, t]]: the mean cross-entropy
    over the positions whose label is not -100, with the next-token shift (logits [batch, seq,
    vocab] at t - 1 predict the label at t). Naive version: one example at a time, summing
    -log p of each response token, divided by the number of response tokens of all examples."""
    pred = logits[:, :-1].float()                                           # batch seq-1 vocab
    target = labels[:, 1:]                                                  # batch seq-1
    if not (target != IGNORE).any():
        raise ValueError("no response token to learn from: every label is masked")
    return torch.nn.functional.cross_entropy(pred.reshape(-1, pred.shape[-1]),
                                             target.reshape(-1), ignore_index=IGNORE)


def lr_at(step: int, *, learning_rate: float, warmup_steps: int, max_steps: int) -> float:
    """The learning rate at optimizer step `step` (0-based) of a linear warm-up then linear
    decay, exactly transformers.get_linear_schedule_with_warmup's: learning_rate * step /
    max(1, warmup_steps) while step < warmup_steps, then learning_rate * max(0, (max_steps -
    step) / max(1, max_steps - warmup_steps))."""
    if step < warmup_steps:
        return learning_rate * step / max(1, warmup_steps)
    return learning_rate * max(0.0, (max_steps - step) / max(1, max_steps - warmup_steps))


def _batch_loss(model, ids, mask, labels, bf16: bool = False) -> torch.Tensor:
    """`sft_loss` of one right-padded batch [batch, seq]. Only the positions from the earliest
    response token's predecessor on predict a response token, so only their logits are
    computed (`logits_to_keep`: 49k floats a position are most of a small model's activations)."""
    keep = ids.shape[1] - int((labels != IGNORE).int().argmax(1).min()) + 1
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    kw = {"logits_to_keep": keep} if _accepts(type(inner), "logits_to_keep") else {}
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16 and ids.device.type == "cuda"):
        logits = run_model(model, ids, attention_mask=mask, use_cache=False,
                           **kw).logits                                   # batch keep vocab
    return sft_loss(logits[:, -keep:], labels[:, -keep:])


def _mean_loss(model, rows, pad_id, device, batch_size: int, bf16: bool = False) -> float:
    """The mean response-token loss over all `rows` (no gradient), batch by batch."""
    total, count = 0.0, 0
    with torch.no_grad():
        for b in range(0, len(rows), batch_size):
            ids, mask, labels = collate(rows[b:b + batch_size], pad_id, device)
            n = int((labels[:, 1:] != IGNORE).sum())           # response tokens in the batch
            total += float(_batch_loss(model, ids, mask, labels, bf16)) * n
            count += n
    return total / count


def eval_loss(lm, examples, *, chat: bool = True, batch_size: int = 8,
              max_length: int = 512) -> float:
    """The mean response-token loss of `lm` on `examples` (a held-out loss; nats per token)."""
    was = lm.model.training
    lm.model.eval()
    try:
        return _mean_loss(lm.model, encode(lm, examples, chat=chat, max_length=max_length),
                          pad_id(lm), lm.device, batch_size)
    finally:
        lm.model.train(was)


# --- the trainer ------------------------------------------------------------------------------


def finetune(lm, examples, config: SFTConfig | None = None, *, eval_examples=None,
             chat: bool = True, progress: bool = True, cache=False, force: bool = False):
    """Fine-tune `lm` on (prompt, response) pairs -> (tuned LM, history).

    The loss is `sft_loss` over the response tokens. With LoRA (the default) the tuned LM's
    model is an `adapters.AdapterView` on `lm`'s own weights (nothing is copied; `lm` keeps
    the base distribution; a tuned `lm` gets a second adapter on top); with
    `config.lora_r=None` it is a fully fine-tuned copy. `chat` wraps each prompt in the chat
    template (False for raw text and the toy world, whose prompts are ""). `history`: one
    dict per step: step, epoch, loss (the step's batch), learning_rate, seconds, and
    eval_loss (over `eval_examples`) every `eval_every` steps and at the last. `cache=True`
    (or a directory) keeps the adapter and its history under a key of base + config + data
    and returns them without training next time; `force=True` trains again.
    """
    cfg = config if config is not None else SFTConfig()
    if not isinstance(cfg, SFTConfig):
        raise TypeError(f"config must be an SFTConfig, got {type(cfg).__name__}")
    rows = encode(lm, examples, chat=chat, max_length=cfg.max_length)
    held = None if eval_examples is None else encode(lm, eval_examples, chat=chat,
                                                     max_length=cfg.max_length)
    directory = cache and _cache_entry(lm, cfg, examples, eval_examples, chat, cache)
    hit = None if not directory or force else adapters.cached(lm, directory)
    if hit is not None:
        return hit

    per_epoch = math.ceil(len(rows) / cfg.batch_size)
    steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(per_epoch * cfg.num_train_epochs)
    warmup = (int(cfg.warmup_steps) if cfg.warmup_steps >= 1
              else math.ceil(steps * cfg.warmup_steps))
    device, pad = lm.device, pad_id(lm)
    if cfg.lora_r is None:
        model, view = copy.deepcopy(lm.model), None
    else:
        from peft import LoraConfig
        model = view = adapters.create(lm, LoraConfig(
            r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
            target_modules=list(cfg.target_modules)), prefix="sft", seed=cfg.seed)
    history, t0 = [], time.perf_counter()
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, desc=f"SFT ({'full' if view is None else f'LoRA r={cfg.lora_r}'})",
               unit="step", leave=False, disable=not progress)
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), bar, \
                _training(model, view) as params, \
                _checkpointing(adapters.split(model)[0], cfg.gradient_checkpointing):
            torch.manual_seed(cfg.seed + 1)                                # dropout
            opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
            for step, idx in enumerate(batch_order(len(rows), cfg.batch_size, steps, cfg.seed)):
                lr = (lr_at(step, learning_rate=cfg.learning_rate, warmup_steps=warmup,
                            max_steps=steps)
                      if cfg.lr_scheduler_type == "linear" else cfg.learning_rate)
                model.train()
                batch = collate([rows[i] for i in idx], pad, device)      # ids, mask, labels
                row = {"step": step + 1, "epoch": (step + 1) / per_epoch,
                       "loss": _step(model, opt, params, batch, lr, cfg, step),
                       "learning_rate": lr}
                if held is not None and ((step + 1) % cfg.eval_every == 0 or step + 1 == steps):
                    model.eval()
                    row["eval_loss"] = _mean_loss(model, held, pad, device, cfg.batch_size,
                                                  cfg.bf16)
                row["seconds"] = time.perf_counter() - t0
                history.append(row)
                bar.set_postfix_str(f"loss {row['loss']:.3f}", refresh=False)
                bar.update()
    except BaseException:
        if view is not None:          # no half-trained adapter stays in the shared base
            adapters.delete(view)
        raise
    if view is None:
        return dataclasses.replace(lm, model=freeze(model), name=f"{lm.name} (fine-tuned)"), history
    view.meta.update(trainer="sft", config=dataclasses.asdict(cfg), chat=chat)
    tuned = dataclasses.replace(lm, model=view, name=f"{lm.name} + {view.names[-1]}")
    if directory:
        adapters.keep(tuned, directory, history, force=force)
    return tuned, history


def _step(model, opt, params, batch, lr: float, cfg: SFTConfig, step: int) -> float:
    """One AdamW step at learning rate `lr` on one batch (ids, mask, labels), the gradient
    clipped to `max_grad_norm` -> the batch's loss (before the step); NaN stops training."""
    for group in opt.param_groups:
        group["lr"] = lr
    loss = _batch_loss(model, *batch, cfg.bf16)
    if not torch.isfinite(loss):
        raise ValueError(f"the loss became {loss.item()} at step {step + 1} (learning rate "
                         f"{lr:.3g}): training diverged -- lower learning_rate (now "
                         f"{cfg.learning_rate:g}) or warm up longer")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
    opt.step()
    return loss.item()


def _cache_entry(lm, cfg: SFTConfig, examples, eval_examples, chat: bool, cache) -> Path:
    """The cache directory of this run: `cache` (a folder) or labkit's cache, / the key."""
    if cfg.lora_r is None:
        raise ValueError("cache=True keeps LoRA adapters; full fine-tuning (lora_r=None) "
                         "makes a whole model, which is not cached: train it without cache")
    if isinstance(lm.model, adapters.AdapterView):
        raise ValueError("cache=True saves one adapter; this LM is tuned already, so the "
                         "new adapter would be a stack: train it without cache")
    root = cache_dir() / "adapters" if cache is True else Path(cache).expanduser()
    return root / adapters.cache_key(
        lm, "sft", version=CACHE_VERSION, config=dataclasses.asdict(cfg), chat=chat,
        examples=[list(e) for e in examples],
        eval=None if eval_examples is None else [list(e) for e in eval_examples])


def _training(model, view):
    """The block in which `model` trains -> the parameters to train: a LoRA view's own
    adapter (`adapters.training`), or every weight of a full copy but other adapters'."""
    if view is not None:
        return adapters.training(view)
    params = [p for n, p in model.named_parameters() if "lora_" not in n]
    for p in params:
        p.requires_grad_(True)
    return contextlib.nullcontext(params)


@contextlib.contextmanager
def _checkpointing(base, on: bool):
    """transformers' activation (gradient) checkpointing of `base` inside the block, if `on`
    (`activation_checkpointing_*` from transformers 5.2x, `gradient_checkpointing_*` before)."""
    new = hasattr(base, "activation_checkpointing_enable")
    if on:
        kwargs = {"use_reentrant": False}
        (base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs) if new
         else base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs))
    try:
        yield
    finally:
        if on and new:
            base.activation_checkpointing_disable()
        elif on:
            base.gradient_checkpointing_disable()


# --- saving and loading -----------------------------------------------------------------------


def save(tuned, directory, *, history=None, overwrite: bool = False) -> Path:
    """Write a LoRA-tuned LM's adapter to `directory` (atomically; an existing adapter is
    refused unless `overwrite`), with its training history if given. `lk.load(directory)`
    loads base + adapter; `load_adapter(lm, directory)` attaches it to a loaded base."""
    return adapters.save(tuned, directory, history=history, overwrite=overwrite)


def load_adapter(lm, directory):
    """The adapter saved in `directory` attached to the already loaded base `lm` (its weights
    shared, not copied) -> a tuned LM; refused if it was made for another base."""
    return adapters.attach(lm, directory)
