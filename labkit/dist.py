"""The next-token distribution: what a language model computes, and what every control reshapes.

A causal language model maps a context x_<t to logits z over the vocabulary; the
next-token distribution is softmax(z). Controls (temperature, top-k, top-p, token
pools, biases) are functions logits -> logits; `Distribution.apply` runs them and
returns a new Distribution, so before/after comparisons are one line.

Pure tensor functions first (`entropy`, `kl`, `seq_logprob`), then the
`Distribution` view, then the model calls (`next_token`, `perplexity`).

References: Shannon entropy H(p) = -Σ p log p (nats); Kullback-Leibler
divergence KL(p‖q) = Σ p (log p - log q) (Kullback & Leibler 1951); perplexity
= exp(-1/T Σ_t log p(x_t | x_<t)) (Jelinek et al. 1977).

Left out on purpose: batching of several prompts (notebook 02 adds it where it
pays), and bits: every figure here is in nats.
"""
from __future__ import annotations

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

    Tokens with p = 0 add nothing; a token with p > 0 and q = 0 makes it +inf.
    """
    logp = torch.log_softmax(p_logits.float(), dim=-1)
    logq = torch.log_softmax(q_logits.float(), dim=-1)
    p = logp.exp()
    terms = torch.where(p > 0, p * (logp - logq), torch.zeros_like(p))
    return terms.sum(-1)


def seq_logprob(model, ids: torch.Tensor, start: int) -> torch.Tensor:
    """Σ_{t ≥ start} log p(ids_t | ids_<t): the log-probability of the tokens from `start` on.

    ids: LongTensor [batch, seq]; returns [batch]. Naive version: one forward pass per
    position; this one scores every position in a single pass (teacher forcing).
    """
    if not 1 <= start < ids.shape[1]:
        raise ValueError(f"start must be in [1, {ids.shape[1] - 1}], got {start}")
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[:, start - 1:-1].float()  # batch seq' vocab
    logp = torch.log_softmax(logits, dim=-1)
    picked = logp.gather(-1, ids[:, start:, None]).squeeze(-1)           # batch seq'
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
        logits = lm.model(input_ids=ids).logits[0, -1]                  # vocab
    d = Distribution.from_logits(logits, lm.tokenizer, context=ids.cpu())
    return d.apply(*controls) if controls else d


def continuation_ids(lm, prompt: str, continuation: str, *, chat: bool = False):
    """(ids [1, seq], start): prompt and continuation tokenized separately, then joined, so the
    continuation's tokens are exactly those it has on its own."""
    if not continuation:
        raise ValueError("the continuation is empty: there is nothing to score")
    prompt_ids = lm.encode(prompt, chat=chat)
    cont = lm.tokenizer(continuation, add_special_tokens=False, return_tensors="pt").input_ids
    ids = torch.cat([prompt_ids, cont.to(prompt_ids.device)], dim=1)
    from .models import check_fits
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
