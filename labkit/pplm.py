"""PPLM: steer by gradient ascent on the key-value cache (Dathathri et al. 2020, "Plug and Play
Language Models: A Simple Approach to Controlled Text Generation", ICLR).

At each step t, with H_t the past key-values and x_t the last token:

    ΔH ← 0
    repeat num_iterations times:                                       (§3.2, eq. 3)
        p̃   = softmax(LM(x_t; H_t + ΔH))                 # perturbed next-token distribution
        L   = -log p(a | p̃)  +  kl_scale · KL(p̃ ‖ p)      # attribute loss + KL term (§3.3)
        ΔH ← ΔH - α · ∇_ΔH L / ‖∇_ΔH L‖^γ                 # normalised, one norm per layer
    p_final ∝ p̃^gm_scale · p^(1 - gm_scale)               # geometric-mean fusion (§3.3)
    x_{t+1} ~ controls(p_final)                           # decoding.apply_controls, sample_step

The attribute loss is either the bag of words, -log Σ_{w∈bag} p̃(w) (eq. 4), or a
`labkit.steer.Discriminator` on the mean hidden state, -log p(a | (Σ_{s<t} h_s + h̃_t)/(t+1)).
p, the unperturbed distribution, and the unperturbed cache of the last token are read from the
first iteration (ΔH = 0), so they cost no extra forward pass. The original code carries the
*perturbed* cache to the next step (`carry=True`); on SmolLM2 the perturbations then compound
and the text degenerates within a few tokens, so the default starts each step from the plain
cache (the attribute still steers every token, through its own perturbation).

With α = 0 (or num_iterations = 0) this is plain decoding with the same controls and seed.

Left out on purpose: the window and grad_length options (the whole past is perturbed at every
step), the discriminator's one-step look-ahead through the expected next embedding
(horizon_length, one more forward per iteration), the "decay" mask, and batched prompts.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .decoding import Step, apply_controls, sample_step
from .dist import Distribution
from .steer import BagOfWords, Discriminator, _strength


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
        self.step_size = _strength("PPLM step_size", self.step_size,
                                   hint=": a negative step walks *away* from the attribute")
        self.kl_scale = _strength("PPLM kl_scale", self.kl_scale)
        self.gamma = _strength("PPLM gamma", self.gamma)
        self.gm_scale = _strength("PPLM gm_scale", self.gm_scale)
        if self.gm_scale > 1:
            raise ValueError(f"gm_scale is a mixing weight in [0, 1], got {self.gm_scale}")
        if isinstance(self.num_iterations, bool) or not isinstance(self.num_iterations, int) \
                or self.num_iterations < 0:
            raise ValueError(f"num_iterations must be a whole number ≥ 0, "
                             f"got {self.num_iterations!r}")


def _cache(kv):
    from transformers import DynamicCache
    return DynamicCache(kv)


def _forward(lm, token, kv):
    """One token through the model on the cache `kv` (a list of (key, value) per layer) ->
    (logits [vocab], last hidden [hidden], new kv)."""
    out = lm.model.base_model(input_ids=token, past_key_values=_cache(kv), use_cache=True)
    h = out.last_hidden_state[:, -1]                                    # 1 hidden
    logits = lm.model.get_output_embeddings()(h)[0].float()            # vocab
    new = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
    return logits, h[0].float(), new


def attribute_loss(logits, h, *, bag=None, disc=None, target=1, hsum=None, n=1):
    """-log p(a | ·): of the bag (eq. 4) and/or the discriminator, from the perturbed logits
    [vocab] and last hidden state [hidden] (hsum: sum of the earlier hidden states, n positions
    in all)."""
    loss = logits.new_zeros(())
    if bag is not None:
        logp = torch.log_softmax(logits, -1)
        loss = loss - torch.logsumexp(logp[bag.token_ids.to(logits.device)], 0)
    if disc is not None:
        loss = loss - torch.log_softmax(disc((hsum + h)[None] / n), -1)[0, target]
    return loss


def perturb(lm, token, kv, cfg: PPLMConfig, *, bag=None, disc=None, target=1, hsum=None, n=1):
    """PPLM's inner loop (eq. 3): -> (perturbed logits, unperturbed logits, hidden, next kv);
    the next kv is the perturbed one with `cfg.carry`, else the unperturbed one."""
    deltas = [(torch.zeros_like(k), torch.zeros_like(v)) for k, v in kv]
    unpert = plain_kv = None
    for _ in range(cfg.num_iterations):
        leaves = [(dk.requires_grad_(), dv.requires_grad_()) for dk, dv in deltas]
        logits, h, new_kv = _forward(lm, token, [(k + dk, v + dv)
                                                 for (k, v), (dk, dv) in zip(kv, leaves)])
        if unpert is None:                                              # ΔH = 0: p itself
            unpert = logits.detach()
            plain_kv = [(k.detach(), v.detach()) for k, v in new_kv]
        loss = attribute_loss(logits, h, bag=bag, disc=disc, target=target, hsum=hsum, n=n)
        if cfg.kl_scale:
            logp, logq = torch.log_softmax(logits, -1), torch.log_softmax(unpert, -1)
            loss = loss + cfg.kl_scale * (logp.exp() * (logp - logq)).sum()
        grads = torch.autograd.grad(loss, [d for pair in leaves for d in pair])
        new = []
        for i, (dk, dv) in enumerate(leaves):
            gk, gv = grads[2 * i], grads[2 * i + 1]
            step = [-cfg.step_size * g / (g.norm() + 1e-15) ** cfg.gamma for g in (gk, gv)]
            new.append((dk.detach() + step[0], dv.detach() + step[1]))
        deltas = new
    with torch.no_grad():
        logits, h, new_kv = _forward(lm, token, [(k + dk, v + dv)
                                                 for (k, v), (dk, dv) in zip(kv, deltas)])
        if unpert is None:
            unpert, plain_kv = logits, new_kv
    return logits, unpert, h, (new_kv if cfg.carry else plain_kv)


def fuse(pert_logits, unpert_logits, gm_scale: float) -> torch.Tensor:
    """Post-norm geometric-mean fusion: log p_final = gm·log p̃ + (1-gm)·log p (+ const)."""
    return (gm_scale * torch.log_softmax(pert_logits, -1)
            + (1 - gm_scale) * torch.log_softmax(unpert_logits, -1))


def generate(lm, prompt: str, *, bag: BagOfWords | None = None, discriminator: Discriminator | None
             = None, target=1, config: PPLMConfig | None = None, controls=(),
             max_new_tokens: int = 40, seed: int | None = None, chat: bool = False,
             trace: bool = False, stop_at_eos: bool = True, **overrides):
    """Sample a continuation of `prompt` with PPLM steering towards `bag` and/or the
    `discriminator`'s class `target`; `controls` (top-k, ...) act on the fused distribution.
    Keyword overrides (step_size=..., num_iterations=...) update `config`. Returns the text,
    or (text, steps) with `trace=True`, as `lk.generate` does."""
    if bag is None and discriminator is None:
        raise ValueError("PPLM needs an attribute: a bag of words (bag=) or a discriminator")
    if discriminator is not None:
        discriminator.check(lm)
        target = discriminator.target_index(target)
        discriminator = discriminator.on(lm.device)     # it reads hidden states on lm's device
    cfg = config or PPLMConfig()
    if overrides:
        cfg = PPLMConfig(**{**cfg.__dict__, **overrides})
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a whole number ≥ 1, got {max_new_tokens!r}")
    controls = list(controls)
    ids = lm.encode(prompt, chat=chat, room=max_new_tokens)             # 1 seq
    if ids.shape[1] < 2:
        ids = torch.cat([ids.new_tensor([[lm.tokenizer.bos_token_id or 0]]), ids], dim=1)
    generator = None
    if seed is not None:
        generator = torch.Generator(device=ids.device).manual_seed(int(seed))
    eos = lm.eos_token_id if stop_at_eos else None
    with torch.no_grad():
        out = lm.model.base_model(input_ids=ids[:, :-1], use_cache=True)
    kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
    hsum = out.last_hidden_state[0].float().sum(0)                      # hidden
    token, new, steps = ids[:, -1:], [], []
    for _ in range(max_new_tokens):
        n = ids.shape[1] + len(new)
        pert, unpert, h, kv = perturb(lm, token, kv, cfg, bag=bag, disc=discriminator,
                                      target=target, hsum=hsum, n=n)
        hsum = hsum + h
        context = torch.cat([ids, ids.new_tensor([new])], dim=1) if new else ids
        scores = fuse(pert, unpert, cfg.gm_scale)[None]                 # 1 vocab
        scores = apply_controls(controls, context, scores)
        token = sample_step(scores, generator)                          # 1 1
        token_id = int(token)
        if trace:
            steps.append(Step(token_id, lm.tokenizer.decode([token_id]),
                              Distribution.from_logits(unpert, lm.tokenizer, context.cpu()),
                              Distribution.from_logits(scores[0], lm.tokenizer, context.cpu())))
        if token_id == eos:
            break
        new.append(token_id)
    text = lm.tokenizer.decode(new, skip_special_tokens=True)
    return (text, steps) if trace else text


def next_token(lm, prompt: str, **kwargs) -> Distribution:
    """PPLM's fused distribution for the first token after `prompt` (after `controls`, if any)."""
    _, steps = generate(lm, prompt, max_new_tokens=1, trace=True, seed=0, **kwargs)
    return steps[0].after


__all__ = ["PPLMConfig", "attribute_loss", "fuse", "generate", "next_token", "perturb"]
