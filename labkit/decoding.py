"""The lab's one sampling loop: ancestral sampling with a key-value cache.

    for t = 1 .. max_new_tokens:
        z      = model(x_<t)[-1]            # next-token logits        (a `Forward` step)
        z'     = controls(x_<t, z)          # temperature, top-p, token pool, bias, ...
        x_t    ~ softmax(z')                # sample
        stop if x_t is end-of-sequence

Every notebook generates through `generate`, so a control behaves the same in the
explorer widget, in a trace plot and in a scoreboard. With `trace=True` each step
also keeps the distribution before and after the controls (`Step`), for the plots.

The forward pass is a replaceable piece: `generate(..., forward=...)` takes a `Forward`
-- the plain one runs the model on its key-value cache; PPLM's (`labkit.pplm`) perturbs that
cache first. Everything else (controls, sampling, stopping, tracing) is this one loop.

The same seed gives the same text: sampling draws from a `torch.Generator` seeded
once per call, never from the global random state.

Controls with state (a token pool follows its automaton, guidance keeps a cache) are
`reset()` at the start of every call, and after the last step each control that has a
`finish(text, max_new_tokens=...)` is told how the text ended: a token pool raises
`labkit.pool.Incomplete` there rather than return a truncated text as if it were valid.

Left out on purpose: beam search, batched generation and speculative decoding.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .dist import Distribution, cache_of
from .dist import forward as run_model
from .validate import whole


@dataclass
class Step:
    """One step of generation: the token drawn and the distributions it was drawn from."""

    token_id: int
    text: str
    before: Distribution      # the model's own next-token distribution
    after: Distribution       # after the controls: what was sampled from

    @property
    def prob(self) -> float:
        """Probability of the chosen token under the controlled distribution."""
        return float(self.after.probs[self.token_id])


def apply_controls(controls, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Run each control on (input_ids [batch, seq], scores [batch, vocab]) in turn."""
    for control in controls:
        scores = control(input_ids, scores)
    return scores


def sample_step(scores: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Draw one token per row of scores [batch, vocab] -> LongTensor [batch, 1]."""
    if torch.isneginf(scores).all(dim=-1).any():
        raise ValueError("the controls masked every token: no token is allowed at this step, "
                         "so nothing can be sampled -- widen the allowed set")
    if torch.isnan(scores).any():
        raise ValueError("the controls produced NaN scores: check the control's arithmetic "
                         "(e.g. a NaN strength or bias)")
    probs = torch.softmax(scores.float(), dim=-1)                        # batch vocab
    return torch.multinomial(probs, 1, generator=generator)             # batch 1


def continuation_text(tokenizer, new: list[int]) -> str:
    """What the `new` tokens write after a prompt. Not `decode(new)`: a SentencePiece
    decoder (Llama-2, Mistral) drops the leading space of a text's *first* token, so
    "▁Paris" alone decodes to "Paris". Decoding a reference token ("a") + new and cutting the
    reference off gives " Paris", as the text really reads after the prompt (the prompt's own
    ids are not read back: they may live on a GPU). Byte-level tokenizers (GPT-2, SmolLM2)
    give decode(new) either way."""
    if not new:
        return ""
    ref = tokenizer("a", add_special_tokens=False).input_ids
    if len(ref) == 1:
        head = tokenizer.decode(ref, skip_special_tokens=True)
        whole = tokenizer.decode(ref + list(new), skip_special_tokens=True)
        if whole.startswith(head):
            return whole[len(head):]
    return tokenizer.decode(new, skip_special_tokens=True)


class Forward:
    """The plain forward step: `step(ids)` runs the model on the prompt the first time and on
    one new token after that, on its key-value cache, and returns (logits for the controls,
    the model's own logits), both [1, vocab] float32 -- the same tensor here; PPLM's step
    returns its fused logits and the unperturbed ones."""

    def __init__(self, lm):
        self.lm, self.cache = lm, None

    def __call__(self, ids: torch.Tensor):
        with torch.inference_mode():
            out = run_model(self.lm.model, ids, cache=self.cache, use_cache=True,
                            last_only=True)
        self.cache = cache_of(out)
        logits = out.logits[:, -1, :].float()                           # 1 vocab
        return logits, logits


def generate(lm, prompt: str, *, controls=(), max_new_tokens: int = 40, seed: int | None = None,
             chat: bool = False, trace: bool = False, stop_at_eos: bool = True,
             forward: type | None = None):
    """Sample a continuation of `prompt` token by token with `controls` applied at every step.

    Returns the continuation only (str), stopping at an end-of-sequence token (any of
    `lm.eos_token_ids`); with `trace=True`, returns (text, steps) where steps is a list of
    `Step`. `chat=True` wraps the prompt in the model's chat template (instruction-tuned
    models). For greedy decoding pass `controls=[lk.controls.Greedy()]`. `forward` replaces
    the plain `Forward` step (a class called with `lm`; PPLM passes its own).
    """
    max_new_tokens = whole("max_new_tokens", max_new_tokens, low=1)
    controls = list(controls)
    for control in controls:                    # a new generation: forget the last one
        if callable(getattr(control, "reset", None)):
            control.reset()
    ids = lm.encode(prompt, chat=chat, room=max_new_tokens)             # 1 seq
    generator = None
    if seed is not None:
        generator = torch.Generator(device=ids.device).manual_seed(int(seed))
    eos = lm.eos_token_ids if stop_at_eos else frozenset()
    step = (forward or Forward)(lm)

    new: list[int] = []
    steps: list[Step] = []
    step_input, ended = ids, False
    for _ in range(max_new_tokens):
        scores, own = step(step_input)                                  # 1 vocab, 1 vocab
        context = torch.cat([ids, ids.new_tensor([new])], dim=1) if new else ids
        with torch.inference_mode():
            scores = apply_controls(controls, context, scores)          # 1 vocab
            token = sample_step(scores, generator)                      # 1 1
        token_id = int(token)
        if trace:
            steps.append(Step(token_id, lm.tokenizer.decode([token_id]),
                              Distribution.from_logits(own[0], lm.tokenizer, context.cpu()),
                              Distribution.from_logits(scores[0], lm.tokenizer, context.cpu())))
        if token_id in eos:
            ended = True
            break
        new.append(token_id)
        step_input = token.clone()              # a normal tensor: PPLM's step needs grads
    text = continuation_text(lm.tokenizer, new)
    if not ended:                               # out of tokens: may a control object?
        for control in controls:
            if callable(getattr(control, "finish", None)):
                control.finish(text, max_new_tokens=max_new_tokens)
    return (text, steps) if trace else text
