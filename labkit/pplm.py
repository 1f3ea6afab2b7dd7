"""PPLM: steer by gradient ascent on the key-value cache (Dathathri et al. 2020, "Plug and Play
Language Models: A Simple Approach to Controlled Text Generation", ICLR).

At each step t, with H_t the past key-values and x_t the last token:

    ΔH ← 0
    repeat num_iterations times:                                       (§3.2, eq. 3)
        p̃   = softmax(LM(x_t; H_t + ΔH))                 # perturbed next-token distribution
        L   = -log p(a | p̃)  +  kl_scale · KL(p̃ ‖ p)      # attribute loss + KL term (§3.3)
        for each layer l:                                 # one norm per layer, over its
            ΔH_l ← ΔH_l - α · ∇_l L / ‖∇_l L‖^γ           #   keys and values together
    p_final ∝ p̃^gm_scale · p^(1 - gm_scale)               # geometric-mean fusion (§3.3)
    x_{t+1} ~ controls(p_final)                           # the one loop: decoding.generate

This file is only the forward step of that loop (`Perturbed`, passed as
`decoding.generate(..., forward=...)`): the controls, the sampling, the stopping and the
trace are the lab's one sampling loop, so α = 0 (or num_iterations = 0) is plain decoding
with the same controls and seed, token for token.

The attribute loss is either the bag of words, -log Σ_{w∈bag} p̃(w) over the bag's one-token
spellings (eq. 4), or a `labkit.discriminator.Discriminator` on the mean hidden state,
-log p(a | (Σ_{s<t} h_s + h̃_t)/(t+1)), where the h_s are the *unperturbed* hidden states of
the text so far (as the authors' code accumulates them) and h̃_t the perturbed one of x_t.
p, the unperturbed distribution, its hidden state and the unperturbed cache of x_t are read
from the first iteration (ΔH = 0), so they cost no extra forward pass.

Deviations from the paper and the authors' code, on purpose:

* `carry` (default False): the authors' code carries the *perturbed* cache to the next step;
  on SmolLM2 the perturbations then compound and the text degenerates within a few tokens,
  so by default each step starts from the plain cache (the attribute still steers every
  token, through its own perturbation). `carry=True` does as the code does, and keeps a
  plain cache beside it for p and the h_s (one more forward per token).
* the discriminator's gradient flows through h̃_t itself; the authors' code detaches h̃_t and
  instead looks one step ahead through the expected next embedding (horizon_length, one
  more forward per iteration) -- left out.
* the gradient norm is the current one, as eq. 3 writes it; for a bag the authors' code
  divides by the running maximum of each layer's norm over the whole generation.
* left out: the window and grad_length options (the whole past is perturbed at every
  step), the "decay" mask, and batched prompts.
* a one-token prompt has no past to perturb: its first step is plain (as in the authors'
  code); no BOS token is invented to make one.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from . import decoding
from .discriminator import Discriminator
from .dist import Distribution, cache_of
from .dist import forward as run_model
from .steer import BagOfWords
from .validate import number, whole


@dataclass
class PPLMConfig:
    """PPLM's knobs; defaults from the paper's code, except num_iterations (3 there) chosen so
    that one token costs ≤ 10 plain ones on a CPU (benchmarks/bench_steer.py)."""

    step_size: float = 0.03        # α: how far each gradient step moves the cache
    num_iterations: int = 2        # gradient steps per token (each = forward + backward)
    kl_scale: float = 0.01         # weight of KL(p̃ ‖ p): keeps the text fluent
    gm_scale: float = 0.95         # 1 = use p̃ only, 0 = ignore the perturbation
    gamma: float = 1.5             # gradient-normalisation exponent
    carry: bool = False            # True: the next step starts from the perturbed cache, as the
                                   # original code does (perturbations compound; on SmolLM2 the
                                   # text degenerates within ~10 tokens); False: from the plain one

    def __post_init__(self):
        self.step_size = number("PPLM step_size", self.step_size, low=0,
                                hint=": a negative step walks *away* from the attribute")
        self.kl_scale = number("PPLM kl_scale", self.kl_scale, low=0)
        self.gamma = number("PPLM gamma", self.gamma, low=0)
        self.gm_scale = number("PPLM gm_scale", self.gm_scale, low=0, high=1,
                               hint=": it is a mixing weight")
        self.num_iterations = whole("PPLM num_iterations", self.num_iterations, low=0)
        if not isinstance(self.carry, bool):
            raise ValueError(f"PPLM carry must be True or False, got {self.carry!r}")


# --- one token through the model, on an explicit past -------------------------------------------


def _forward(lm, token, kv):
    """One token [1, 1] through the model on the past `kv` (a list of (key, value) per layer,
    or None) -> (logits [vocab], last hidden [hidden], new kv)."""
    from transformers import DynamicCache

    cache = DynamicCache(kv) if kv is not None else None
    out = run_model(lm.model.base_model, token, cache=cache, use_cache=True)
    h = out.last_hidden_state[:, -1]                                    # 1 hidden
    logits = lm.model.get_output_embeddings()(h)[0].float()            # vocab
    return logits, h[0].float(), _layers(cache_of(out))


def _layers(cache):
    return [(layer.keys, layer.values) for layer in cache.layers]


def _detached(kv):
    return [(k.detach(), v.detach()) for k, v in kv]


# --- the pieces of one step ---------------------------------------------------------------------


def attribute_loss(logits, h, *, bag=None, disc=None, target=1, hsum=None, n=1):
    """-log p(a | ·): of the bag (eq. 4) and/or the discriminator, from the perturbed logits
    [vocab] and last hidden state [hidden] (hsum: sum of the earlier, unperturbed hidden
    states; n positions in all)."""
    loss = logits.new_zeros(())
    if bag is not None:
        logp = torch.log_softmax(logits, -1)
        loss = loss - torch.logsumexp(logp[bag.token_ids.to(logits.device)], 0)
    if disc is not None:
        loss = loss - torch.log_softmax(disc((hsum + h)[None] / n), -1)[0, target]
    return loss


def layer_steps(grads, step_size: float, gamma: float):
    """-α · ∇_l / ‖∇_l‖^γ for each layer's (key grad, value grad): one norm per layer, over
    its keys and values together (eq. 3; the authors' code stacks them in one tensor)."""
    out = []
    for gk, gv in grads:
        norm = torch.sqrt(gk.pow(2).sum() + gv.pow(2).sum()) + 1e-15
        scale = -step_size / norm ** gamma
        out.append((scale * gk, scale * gv))
    return out


def perturb(lm, token, kv, cfg: PPLMConfig, *, bag=None, disc=None, target=1, hsum=None, n=1,
            plain=None):
    """PPLM's inner loop (eq. 3) for the input `token` [1, 1] on the past `kv`.

    `plain` = (logits, hidden, next kv) of the unperturbed model at this step, if `kv` is not
    the plain past (carry=True); else they are read from the first iteration (ΔH = 0).
    Returns (perturbed logits [vocab], plain, the next perturbed kv)."""
    deltas = [(torch.zeros_like(k), torch.zeros_like(v)) for k, v in kv]
    for _ in range(cfg.num_iterations):
        with torch.enable_grad():
            leaves = [(dk.requires_grad_(), dv.requires_grad_()) for dk, dv in deltas]
            logits, h, new_kv = _forward(lm, token, [(k + dk, v + dv)
                                                     for (k, v), (dk, dv) in zip(kv, leaves)])
            if plain is None:                                           # ΔH = 0: p itself
                plain = (logits.detach(), h.detach(), _detached(new_kv))
            loss = attribute_loss(logits, h, bag=bag, disc=disc, target=target, hsum=hsum, n=n)
            if cfg.kl_scale:
                logp, logq = torch.log_softmax(logits, -1), torch.log_softmax(plain[0], -1)
                loss = loss + cfg.kl_scale * (logp.exp() * (logp - logq)).sum()
            flat = torch.autograd.grad(loss, [d for pair in leaves for d in pair])
        grads = list(zip(flat[0::2], flat[1::2]))
        deltas = [(dk.detach() + sk, dv.detach() + sv)
                  for (dk, dv), (sk, sv) in zip(leaves, layer_steps(grads, cfg.step_size,
                                                                     cfg.gamma))]
    with torch.no_grad():
        logits, h, new_kv = _forward(lm, token, [(k + dk, v + dv)
                                                 for (k, v), (dk, dv) in zip(kv, deltas)])
    if plain is None:                                                   # no iterations
        plain = (logits, h, new_kv)
    return logits, plain, new_kv


def fuse(pert_logits, unpert_logits, gm_scale: float) -> torch.Tensor:
    """Post-norm geometric-mean fusion: log p_final = gm·log p̃ + (1-gm)·log p (+ const)."""
    return (gm_scale * torch.log_softmax(pert_logits, -1)
            + (1 - gm_scale) * torch.log_softmax(unpert_logits, -1))


# --- the forward step of the one sampling loop ----------------------------------------------------


class Perturbed:
    """PPLM's forward step for `decoding.generate(..., forward=...)`: called with the prompt
    [1, seq] the first time and the last sampled token [1, 1] after that, it returns (fused
    logits, unperturbed logits), both [1, vocab] float32. Its state is one generation's:
    the past (plain, or perturbed with `carry`), the plain past beside it with `carry`, and
    the sum of the unperturbed hidden states for the discriminator's mean."""

    def __init__(self, lm, cfg: PPLMConfig, *, bag=None, disc=None, target=1):
        self.lm, self.cfg, self.bag, self.disc, self.target = lm, cfg, bag, disc, target
        self.kv = self.plain_kv = self.hsum = None
        self.n = 0                                  # positions in the past

    def __call__(self, ids: torch.Tensor):
        if self.kv is None and ids.shape[1] > 1:    # the prompt: its past, unperturbed
            with torch.no_grad():
                out = run_model(self.lm.model.base_model, ids[:, :-1], use_cache=True)
            self.kv = self.plain_kv = _layers(cache_of(out))
            self.hsum = out.last_hidden_state[0].float().sum(0)        # hidden
            self.n = ids.shape[1] - 1
            ids = ids[:, -1:]
        if self.kv is None:                         # a one-token prompt: no past to perturb
            with torch.no_grad():
                logits, h, kv = _forward(self.lm, ids, None)
            self.kv = self.plain_kv = kv
            self.hsum, self.n = h, 1
            return logits[None], logits[None]
        plain = None
        if self.cfg.carry:                          # the plain model beside the carried past
            with torch.no_grad():
                plain = _forward(self.lm, ids, self.plain_kv)
        pert, (p, h, plain_kv), pert_kv = perturb(
            self.lm, ids, self.kv, self.cfg, bag=self.bag, disc=self.disc, target=self.target,
            hsum=self.hsum, n=self.n + 1, plain=plain)
        self.hsum, self.n = self.hsum + h, self.n + 1                   # unperturbed h
        self.plain_kv = plain_kv
        self.kv = pert_kv if self.cfg.carry else plain_kv
        return fuse(pert, p, self.cfg.gm_scale)[None], p[None]         # 1 vocab, 1 vocab


def generate(lm, prompt: str, *, bag: BagOfWords | None = None, discriminator: Discriminator | None
             = None, target=1, config: PPLMConfig | None = None, controls=(),
             max_new_tokens: int = 40, seed: int | None = None, chat: bool = False,
             trace: bool = False, stop_at_eos: bool = True, **overrides):
    """Sample a continuation of `prompt` with PPLM steering towards `bag` and/or the
    `discriminator`'s class `target`; `controls` (top-k, ...) act on the fused distribution.
    Keyword overrides (step_size=..., num_iterations=...) update `config`. Returns the text,
    or (text, steps) with `trace=True`, as `lk.generate` does (it is `lk.generate` with
    PPLM's forward step; `Step.before` is the unperturbed distribution)."""
    if bag is None and discriminator is None:
        raise ValueError("PPLM needs an attribute: a bag of words (bag=) or a discriminator")
    if bag is not None and not isinstance(bag, BagOfWords):
        raise TypeError(f"bag= takes a steer.BagOfWords, not {type(bag).__name__}")
    if discriminator is not None:
        discriminator.check(lm)
        target = discriminator.target_index(target)
        discriminator = discriminator.on(lm.device)     # it reads hidden states on lm's device
    cfg = config or PPLMConfig()
    if overrides:
        unknown = sorted(set(overrides) - set(PPLMConfig.__dataclass_fields__))
        if unknown:
            raise TypeError(f"unknown PPLM setting(s) {unknown}; the settings are "
                            f"{sorted(PPLMConfig.__dataclass_fields__)}")
        cfg = PPLMConfig(**{**cfg.__dict__, **overrides})
    step = functools.partial(Perturbed, cfg=cfg, bag=bag, disc=discriminator, target=target)
    return decoding.generate(lm, prompt, controls=controls, max_new_tokens=max_new_tokens,
                             seed=seed, chat=chat, trace=trace, stop_at_eos=stop_at_eos,
                             forward=step)


def next_token(lm, prompt: str, **kwargs) -> Distribution:
    """PPLM's fused distribution for the first token after `prompt` (after `controls`, if any)."""
    _, steps = generate(lm, prompt, max_new_tokens=1, trace=True, seed=0, **kwargs)
    return steps[0].after


__all__ = ["PPLMConfig", "Perturbed", "attribute_loss", "fuse", "generate", "layer_steps",
           "next_token", "perturb"]
