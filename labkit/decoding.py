"""The lab's one sampling loop: ancestral sampling with a key-value cache.

    for t = 1 .. max_new_tokens:
        z      = model(x_<t)[-1]            # next-token logits
        z'     = controls(x_<t, z)          # temperature, top-p, token pool, bias, ...
        x_t    ~ softmax(z')                # sample
        stop if x_t is end-of-sequence

Every notebook generates through `generate`, so a control behaves the same in the
explorer widget, in a trace plot and in a scoreboard. With `trace=True` each step
also keeps the distribution before and after the controls (`Step`), for the plots.

The same seed gives the same text: sampling draws from a `torch.Generator` seeded
once per call, never from the global random state.

Left out on purpose: beam search, batched generation and speculative decoding;
notebook 06's PPLM replaces only the forward pass and then reuses `sample_step`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .dist import Distribution


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


def generate(lm, prompt: str, *, controls=(), max_new_tokens: int = 40, seed: int | None = None,
             chat: bool = False, trace: bool = False, stop_at_eos: bool = True):
    """Sample a continuation of `prompt` token by token with `controls` applied at every step.

    Returns the continuation only (str), stopping at the end-of-sequence token; with
    `trace=True`, returns (text, steps) where steps is a list of `Step`.
    `chat=True` wraps the prompt in the model's chat template (instruction-tuned models).
    For greedy decoding pass `controls=[lk.controls.Greedy()]`.
    """
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a whole number ≥ 1, got {max_new_tokens!r}")
    controls = list(controls)
    ids = lm.encode(prompt, chat=chat, room=max_new_tokens)             # 1 seq
    generator = None
    if seed is not None:
        generator = torch.Generator(device=ids.device).manual_seed(int(seed))
    eos = lm.eos_token_id if stop_at_eos else None

    new: list[int] = []
    steps: list[Step] = []
    past, step_input = None, ids
    with torch.inference_mode():
        for _ in range(max_new_tokens):
            out = lm.model(input_ids=step_input, past_key_values=past, use_cache=True)
            past = out.past_key_values
            logits = out.logits[:, -1, :].float()                       # 1 vocab
            context = torch.cat([ids, step_input.new_tensor([new])], dim=1) if new else ids
            scores = apply_controls(controls, context, logits)          # 1 vocab
            token = sample_step(scores, generator)                      # 1 1
            token_id = int(token)
            if trace:
                steps.append(Step(token_id, lm.tokenizer.decode([token_id]),
                                  Distribution.from_logits(logits[0], lm.tokenizer, context.cpu()),
                                  Distribution.from_logits(scores[0], lm.tokenizer, context.cpu())))
            if token_id == eos:
                break
            new.append(token_id)
            step_input = token
    text = lm.tokenizer.decode(new, skip_special_tokens=True)
    return (text, steps) if trace else text
