"""The next-token distribution: what a language model computes, and what every control reshapes.

A causal language model maps a context x_<t to logits z over the vocabulary; the
next-token distribution is softmax(z). Controls (temperature, top-k, top-p, token
pools, biases) are functions logits -> logits; `Distribution.apply` runs them and
returns a new Distribution, so before/after comparisons are one line.

Pure tensor functions first (`entropy`, `kl`, `seq_logprob`), then the
`Distribution` view, then the model calls (`next_token`, `perplexity`) and the one helper
through which labkit runs a transformers model (`forward`, `cache_of`): it passes the
key-value cache under the name the installed transformers understands (`cache` from 5.2x,
`past_key_values` before: Colab's 5.15), so no deprecation warning reaches a learner, and
asks for the last position's logits only where only those are used.

References: Shannon entropy H(p) = -Σ p log p (nats); Kullback-Leibler
divergence KL(p‖q) = Σ p (log p - log q) (Kullback & Leibler 1951); perplexity
= exp(-1/T Σ_t log p(x_t | x_<t)) (Jelinek et al. 1977).

Left out on purpose: batching of several prompts (notebook 02 adds it where it
pays), and bits: every figure here is in nats.
"""
from __future__ import annotations

import functools
import inspect
import math

import torch

# --- small pure functions ---------------------------------------------------------------


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """H(softmax(logits)) in nats over the last dimension; -inf logits (masked tokens) add 0."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    p = logp.exp()
    return (-(p * logp.nan_to_num(neginf=0.0)).sum(-1)).clamp(min=0.0) + 0.0  # no -0.0


def kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(p‖q) = Σ p (log p - log q) in nats, p and q given as logits over the last dimension.

    Tokens with p = 0 add nothing; a token with p > 0 and q = 0 makes it +inf. Log-probabilities
    are logits too (log_softmax leaves them as they are), so this is also the exact KL of two
    distributions over enumerated sequences (`labkit.bayes`); float64 stays float64.
    """
    logp = torch.log_softmax(_at_least_float(p_logits), dim=-1)
    logq = torch.log_softmax(_at_least_float(q_logits), dim=-1)
    p = logp.exp()
    terms = torch.where(p > 0, p * (logp - logq), torch.zeros_like(p))
    return terms.sum(-1).clamp(min=0.0)          # ≥ 0; rounding must not make it -1e-17


def _at_least_float(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype == torch.float64 else x.float()


def seq_logprob(model, ids: torch.Tensor, start: int, *, grad: bool = False,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Σ_{t ≥ start} log p(ids_t | ids_<t): the log-probability of the tokens from `start` on.

    ids: LongTensor [batch, seq] (the prompt's ids as `LM.encode` makes them, so the one BOS
    rule holds); returns [batch] in `dtype`. `grad=True` keeps the graph (a trainer's loss).
    Naive version: one forward pass per position; this one scores every position in a single
    pass (teacher forcing). The one sequence log-probability of labkit: the toy world's exact
    log π(x) (`labkit.toy`) is this with ids = <s> x and start = 1.
    """
    if not 1 <= start < ids.shape[1]:
        raise ValueError(f"start must be in [1, {ids.shape[1] - 1}], got {start}")
    with torch.inference_mode(not grad):
        logits = forward(model, ids).logits[:, start - 1:-1].to(dtype)   # batch seq' vocab
        logp = torch.log_softmax(logits, dim=-1)
        picked = logp.gather(-1, ids[:, start:, None]).squeeze(-1)       # batch seq'
        return picked.sum(-1)


# --- the distribution view ----------------------------------------------------------------


class Distribution:
    """A distribution over the next token, kept as logits (masked tokens are -inf).

    >>> d = Distribution.from_logits(torch.tensor([2.0, 1.0, 0.0]))
    >>> round(float(d.probs.sum()), 6)
    1.0
    """

    def __init__(self, logits: torch.Tensor, tokenizer=None, context: torch.Tensor | None = None):
        self.logits = logits
        self.tokenizer = tokenizer
        self.context = context  # the token ids it was computed from (controls may look at them)

    @classmethod
    def from_logits(cls, logits, tokenizer=None, context=None) -> "Distribution":
        """Any 1-D logits (tensor or sequence of numbers) -> Distribution."""
        logits = torch.as_tensor(logits).detach().float()
        if logits.dim() == 2 and logits.shape[0] == 1:
            logits = logits[0]
        if logits.dim() != 1 or logits.numel() == 0:
            raise ValueError(f"logits must be 1-D and non-empty (one score per token), "
                             f"got shape {tuple(logits.shape)}")
        if torch.isnan(logits).any():
            raise ValueError("logits contain NaN: check the model's output or the control "
                             "applied before")
        if torch.isposinf(logits).any():
            raise ValueError("logits contain +inf: a control set a score to +inf instead of "
                             "masking the others with -inf")
        if torch.isneginf(logits).all():
            raise ValueError("every token is masked (-inf): no token is allowed, so there is "
                             "nothing to sample -- widen the allowed set")
        return cls(logits.cpu(), tokenizer, context)

    @property
    def probs(self) -> torch.Tensor:
        """Probabilities [vocab], summing to 1."""
        return torch.softmax(self.logits, dim=-1)

    @property
    def logprobs(self) -> torch.Tensor:
        return torch.log_softmax(self.logits, dim=-1)

    def __len__(self) -> int:
        return self.logits.numel()

    def entropy(self) -> float:
        """Entropy in nats."""
        return float(entropy(self.logits))

    def kl(self, other: "Distribution") -> float:
        """KL(self‖other) in nats."""
        return float(kl(self.logits, other.logits))

    def support(self) -> int:
        """How many tokens have non-zero probability."""
        return int(torch.isfinite(self.logits).sum())

    def mass(self, token_ids) -> float:
        """Total probability of `token_ids`."""
        return float(self.probs[torch.as_tensor(token_ids, dtype=torch.long)].sum())

    def token_text(self, token_id: int) -> str:
        if self.tokenizer is None:
            return str(int(token_id))
        return self.tokenizer.decode([int(token_id)])

    def top(self, k: int = 10) -> list[tuple[str, float]]:
        """The k most likely tokens as [(token_text, prob)], most likely first."""
        ids, probs = self.top_ids(k)
        return [(self.token_text(i), p) for i, p in zip(ids, probs)]

    def top_ids(self, k: int = 10) -> tuple[list[int], list[float]]:
        """The k most likely token ids and their probabilities, most likely first."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        probs, ids = self.probs.topk(min(k, len(self)))
        return ids.tolist(), probs.tolist()

    def apply(self, *controls) -> "Distribution":
        """A new Distribution with each control (a transformers LogitsProcessor) applied in turn."""
        context = self.context if self.context is not None else torch.zeros(1, 0, dtype=torch.long)
        logits = self.logits[None]                                       # 1 vocab
        for control in controls:
            logits = control(context, logits)
        return Distribution.from_logits(logits[0], self.tokenizer, self.context)

    def sample(self, n: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        """n token ids drawn (with replacement) from the distribution."""
        return torch.multinomial(self.probs, n, replacement=True, generator=generator)

    def __repr__(self) -> str:
        shown = ", ".join(f"{t!r}: {p:.3f}" for t, p in self.top(3))
        return f"Distribution({len(self)} tokens, entropy {self.entropy():.2f} nats; {shown}, ...)"


# --- model calls --------------------------------------------------------------------------


def next_token(lm, prompt: str, *, chat: bool = False, controls=()) -> Distribution:
    """The model's distribution over the token that follows `prompt`, with `controls` applied.

    `chat=True` wraps the prompt in the model's chat template first (instruction-tuned models).
    """
    ids = lm.encode(prompt, chat=chat, room=1)                          # 1 seq
    with torch.inference_mode():
        logits = forward(lm.model, ids, last_only=True).logits[0, -1]   # vocab
    d = Distribution.from_logits(logits, lm.tokenizer, context=ids.cpu())
    return d.apply(*controls) if controls else d


def continuation_ids(lm, prompt: str, continuation: str, *, chat: bool = False):
    """(ids [1, seq], start): prompt and continuation tokenized separately, then joined, so the
    continuation's tokens are exactly those it has on its own."""
    if not continuation:
        raise ValueError("the continuation is empty: there is nothing to score")
    prompt_ids = lm.encode(prompt, chat=chat)
    cont = torch.tensor([lm.ids(continuation, start=False)], device=prompt_ids.device)
    ids = torch.cat([prompt_ids, cont], dim=1)
    check_fits(ids.shape[1], 0, lm.context_length)
    return ids, prompt_ids.shape[1]


def logprob(lm, prompt: str, continuation: str, *, chat: bool = False) -> float:
    """log p(continuation | prompt) in nats, summed over the continuation's tokens."""
    ids, start = continuation_ids(lm, prompt, continuation, chat=chat)
    return float(seq_logprob(lm.model, ids, start)[0])


def perplexity(lm, prompt: str, continuation: str, *, chat: bool = False) -> float:
    """exp(-mean log p) of the continuation's tokens given the prompt: 1 is certain, the
    vocabulary size is a uniform guess."""
    ids, start = continuation_ids(lm, prompt, continuation, chat=chat)
    n = ids.shape[1] - start
    return math.exp(-float(seq_logprob(lm.model, ids, start)[0]) / n)


def check_fits(n_prompt: int, room: int, context: int) -> None:
    """Raise a clear ValueError if `n_prompt` tokens plus `room` new ones exceed `context`."""
    if n_prompt + room > context:
        raise ValueError(
            f"the prompt has {n_prompt} tokens and {room} more were asked for, but the model's "
            f"context window is {context} tokens: shorten the prompt or ask for fewer new tokens")


# --- running a transformers model: the one place that knows its keyword names -------------


@functools.lru_cache(maxsize=None)
def _accepts(cls: type, name: str) -> bool:
    """Does `cls.forward` take the keyword `name`? A subclass whose forward passes **kwargs on
    (the toy world's ToyLlama) takes what its parent's takes."""
    for klass in cls.__mro__:
        if "forward" not in vars(klass):
            continue
        try:
            params = inspect.signature(vars(klass)["forward"]).parameters
        except (TypeError, ValueError):
            return False
        if name in params:
            return True
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return False
    return False


def forward(module, input_ids: torch.Tensor | None = None, *, cache=None, last_only: bool = False,
            **kwargs):
    """`module(input_ids=..., **kwargs)` for a transformers model (a causal LM, its
    `base_model`, or a peft-wrapped one), with the key-value `cache` passed under the name
    this transformers version understands, and, with `last_only`, the vocabulary projection
    run on the last position only (`logits_to_keep=1`: a 1,000-token prompt would otherwise
    cost ~200 MB of float32 logits). Read the cache back with `cache_of(out)`."""
    inner = module.get_base_model() if hasattr(module, "get_base_model") else module
    cls = type(inner)
    if cache is not None:
        kwargs["cache" if _accepts(cls, "cache") else "past_key_values"] = cache
    if last_only and _accepts(cls, "logits_to_keep"):
        kwargs["logits_to_keep"] = 1
    return module(input_ids=input_ids, **kwargs)


def cache_of(out):
    """The key-value cache of a model output, under its new name (`cache`) or its old one."""
    if "cache" in getattr(type(out), "__dataclass_fields__", {}):
        return out["cache"] if "cache" in out else None
    return out.past_key_values
