"""Notebook 02's checks: the few-shot prompt builder and the multi-token label scorer.

References: `labkit.prompting.build_prompt` (Brown et al. 2020, "Language Models are
Few-Shot Learners": a task shown by examples in the context), and log p(" " + label | prompt)
summed over every token of the label, computed by `labkit.dist.logprob` with the lab's one
BOS rule (`LM.ids`). The label scorer's variants all come from one forward pass per case
(`_scores`): each mistake is a different way of reading the same logits.
"""
from __future__ import annotations

import math
import re

import torch

from ..dist import forward, logprob
from ..prompting import build_prompt
from ._runner import Case, Check, Mistake, Variant, read_none, short

# --- the few-shot prompt builder ------------------------------------------------------------

_SHOT = "Review: {text}\nSentiment: {label}"


def _prompt(shots, query, instruction="", *, shot=_SHOT, sep="\n\n", order=1,
            instruction_at="start"):
    """build_prompt with its parts replaceable, each replacement a known mistake."""
    blocks = [shot.format(text=t, label=label) for t, label in list(shots)[::order]]
    if instruction and instruction_at == "before_query":
        blocks.append(instruction)
    start = [instruction] if instruction and instruction_at == "start" else []
    body = sep.join(start + blocks + [f"Review: {query}\nSentiment:"])
    return body + (f"\n\n{instruction}" if instruction and instruction_at == "end" else "")


def _squash(s: str, chars: str) -> str:
    return re.sub(f"[{chars}]+", "", s)


PROMPT_VARIANTS = [
    Variant("reversed_shots", "shots in reverse order",
            "keep the shots in the order given: order changes the answer, and the notebook "
            "measures exactly that", fns=[lambda s, q, i="": _prompt(s, q, i, order=-1)]),
    Variant("label_glued", "no space before the label",
            "each shot reads 'Sentiment: positive', with one space after the colon",
            fns=[lambda s, q, i="": _prompt(s, q, i, shot="Review: {text}\nSentiment:{label}")]),
    Variant("no_labels", "shots without their labels",
            "each shot ends with its label ('Sentiment: positive'): the model learns the task "
            "from these answers",
            fns=[lambda s, q, i="": _prompt(s, q, i, shot="Review: {text}\nSentiment:")]),
    Variant("single_newline", "blocks separated by one newline",
            "separate the blocks (instruction, each shot, the query) by a blank line, '\\n\\n'",
            fns=[lambda s, q, i="": _prompt(s, q, i, sep="\n"),
                 lambda s, q, i="": (i + "\n" if i else "") + _prompt(s, q)]),
    Variant("no_instruction", "instruction left out",
            "when an instruction is given, it opens the prompt, followed by a blank line",
            fns=[lambda s, q, i="": _prompt(s, q)]),
    Variant("instruction_position", "instruction in the wrong place",
            "the instruction comes first, before the shots, then a blank line",
            fns=[lambda s, q, i="": _prompt(s, q, i, instruction_at="before_query"),
                 lambda s, q, i="": _prompt(s, q, i, instruction_at="end")]),
    Variant("blank_start", "a blank line for a missing instruction",
            "with no instruction the prompt starts directly with the first block: do not put "
            "an empty instruction (and its blank line) in front",
            fns=[lambda s, q, i="": i + "\n\n" + _prompt(s, q) if not i else _prompt(s, q, i)]),
    Variant("trailing", "something after the final colon",
            "the prompt must stop right at the colon of the last 'Sentiment:' -- no space or "
            "newline after it: the tokenizer attaches a space to the word after it, so the "
            "answer token is ' positive', space included",
            test=lambda got, want, *a: got != want and got.rstrip() == want),
    Variant("spacing", "spaces differ",
            "only the spaces differ from the expected prompt: 'Review: <text>' and "
            "'Sentiment: <label>', one space after each colon, none elsewhere",
            test=lambda got, want, *a: _squash(got, " ") == _squash(want, " ")),
    Variant("newlines", "line breaks differ",
            "only the line breaks differ: 'Review: <text>\\nSentiment: <label>' per shot, the "
            "blocks separated by one blank line ('\\n\\n'), nothing after the final colon",
            test=lambda got, want, *a: _squash(got, "\n") == _squash(want, "\n")),
]


def _read_prompt(out, shots, query, instruction=""):
    read_none(out)
    if not isinstance(out, str):
        raise Mistake(f"return the prompt as one string, not {type(out).__name__}", "type")
    return out


def _show_prompt(want, got, *args):
    at = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
    lo = max(at - 12, 0)
    return (f"{want!r}", f"{got!r} (the first difference is at character {at}: expected "
                         f"{want[lo:at + 8]!r}, got {got[lo:at + 8]!r})")


def _prompt_cases() -> list[Case]:
    two = [("The food was great.", "positive"), ("The staff was rude.", "negative")]
    return [
        Case("zero shots, query 'The movie was superb.'", ([], "The movie was superb.")),
        Case(f"shots={two}, query 'The movie was superb.'", (two, "The movie was superb.")),
        Case("the same two shots in the other order, query 'It was fine.'",
             (two[::-1], "It was fine.")),
        Case("two shots and the instruction 'Classify the sentiment.'",
             (two, "Bad coffee.", "Classify the sentiment.")),
    ]


FEW_SHOT_PROMPT = Check("check_few_shot_prompt", reference=build_prompt, cases=_prompt_cases,
                        read=_read_prompt, same=lambda got, want: got == want,
                        variants=PROMPT_VARIANTS, show=_show_prompt)


def check_few_shot_prompt(fn) -> bool:
    """Check `fn(shots, query, instruction="") -> str`: a raw few-shot sentiment prompt
    (reference: `labkit.prompting.build_prompt`)."""
    return FEW_SHOT_PROMPT.check(fn)


# --- the multi-token label scorer -----------------------------------------------------------


_SCORED: dict = {}         # (model id, prompt, continuation) -> _scores; emptied per verdict


def _scores(lm, prompt: str, continuation: str):
    """(ids [seq], n = prompt length, logits [seq, vocab] float32 on the CPU), computed once per
    verdict: every variant reads the same logits."""
    key = (id(lm.model), prompt, continuation)
    if key not in _SCORED:
        p, c = lm.ids(prompt, start=True), lm.ids(continuation, start=False)
        ids = torch.tensor([p + c], device=lm.device)                   # 1 seq
        with torch.inference_mode():
            logits = forward(lm.model, ids).logits[0].float().cpu()     # seq vocab
        _SCORED[key] = (ids[0].cpu(), len(p), logits)
    return _SCORED[key]


def _reading(read):
    """A variant from a way of reading the logits: read(ids, n, logits) -> a float."""
    def variant(lm, prompt, label, *, space=" "):
        return float(read(*_scores(lm, prompt, space + label)))
    return variant


def _picked(logp, rows, ids):
    return logp[rows].gather(-1, ids[:, None]).sum()


def _label(ids, n, logits):                 # the reference, read off the same logits
    return _picked(logits.log_softmax(-1), slice(n - 1, -1), ids[n:])


_reference = _reading(_label)

LABEL_VARIANTS = [
    Variant("first_token_only", "only the first token scored",
            "sum log p over *every* token of the label, each given the ones before it",
            fns=[_reading(lambda ids, n, z: z.log_softmax(-1)[n - 1, ids[n]])]),
    Variant("no_space", "label scored without its leading space",
            "after 'Sentiment:' the model writes ' ' + label (a different token sequence): "
            "score ' ' + label", fns=[lambda lm, prompt, label: _reference(lm, prompt, label,
                                                                             space="")]),
    Variant("probability", "a probability returned",
            "return the log-probability (in nats), not p itself",
            fns=[lambda *a: math.exp(_reference(*a))]),
    Variant("mean", "averaged over the label's tokens",
            "sum the tokens' log-probabilities (log p of the whole label), do not average them",
            fns=[_reading(lambda ids, n, z: _label(ids, n, z) / (len(ids) - n))]),
    Variant("misaligned", "logits misaligned by one",
            "the logits at position t predict token t+1: score label token j with logits[n-1+j] "
            "(logits[n-1:-1] for ids[n:], n = the prompt's length)",
            fns=[_reading(lambda ids, n, z: _picked(z.log_softmax(-1), slice(n, None), ids[n:])),
                 _reading(lambda ids, n, z: _picked(z.log_softmax(-1), slice(n - 1, -1),
                                                    ids[n - 1:-1]))]),
    Variant("last_position", "every token scored from the prompt's last position",
            "token j of the label is predicted by the position just before it, not by the "
            "prompt's last position: run the model on prompt + label and read one position "
            "per token (logits[n-1:-1])",
            fns=[_reading(lambda ids, n, z: z.log_softmax(-1)[n - 1, ids[n:]].sum())]),
    Variant("includes_prompt", "the prompt's tokens scored too",
            "score only the label's tokens: log p(label | prompt), not log p(prompt + label)",
            fns=[_reading(lambda ids, n, z: _picked(z.log_softmax(-1), slice(0, -1), ids[1:]))]),
    Variant("raw_logits", "logits summed, not log-probabilities",
            "turn the logits into log-probabilities first: log_softmax over the vocabulary",
            fns=[_reading(lambda ids, n, z: _picked(z, slice(n - 1, -1), ids[n:]))]),
    Variant("softmax_dim", "normalised over positions",
            "log_softmax over the vocabulary (dim=-1), not over the positions",
            fns=[_reading(lambda ids, n, z: _picked(z.log_softmax(0), slice(n - 1, -1),
                                                    ids[n:]))]),
    Variant("nll", "negative log-likelihood returned",
            "you returned -log p (a loss, ≥ 0): return log p, which is ≤ 0",
            fns=[lambda *a: -_reference(*a)]),
    Variant("cross_entropy_mean", "cross-entropy loss returned",
            "F.cross_entropy is -log p *averaged* over the tokens: return the sum of log p "
            "(not negated, not averaged)",
            fns=[_reading(lambda ids, n, z: -_label(ids, n, z) / (len(ids) - n))]),
]


def _read_number(out, lm, prompt, label):
    read_none(out)
    if isinstance(out, torch.Tensor):
        if out.numel() != 1:
            raise Mistake(f"return one number, the sum over the label's tokens -- you returned "
                          f"a tensor of shape {tuple(out.shape)} (one value per token? sum them)",
                          "not_summed")
        out = out.detach().cpu().item()
    if isinstance(out, (str, bytes, bool)):
        raise Mistake(f"return one number (a float), not {type(out).__name__}", "type")
    if not hasattr(out, "__float__"):
        try:
            many = len(out) > 1
        except TypeError:
            many = False
        if many:
            raise Mistake(f"return one number, the sum over the label's tokens -- you returned "
                          f"{len(out)} values (one per token? sum them)", "not_summed")
        raise Mistake(f"return one number (a float), not {type(out).__name__}", "type")
    if getattr(out, "size", 1) != 1:             # a numpy array of several values
        raise Mistake(f"return one number, the sum over the label's tokens -- you returned "
                      f"{out.size} values (one per token? sum them)", "not_summed")
    return float(out)


def _label_facts(got, want, lm, prompt, label):
    return ["a log-probability is ≤ 0"] if got > 0 else []


def _label_cases(lm) -> list[Case]:
    _SCORED.clear()                              # a new verdict: the model may have changed
    return [
        Case("prompt 'Review: The food was great.\\nSentiment:', label 'positive' (one token)",
             (lm, "Review: The food was great.\nSentiment:", "positive")),
        Case("prompt 'Country: Argentina\\nCapital:', label 'Buenos Aires' (two tokens)",
             (lm, "Country: Argentina\nCapital:", "Buenos Aires")),
        Case("prompt 'Country: Malaysia\\nCapital:', label 'Kuala Lumpur' (six tokens)",
             (lm, "Country: Malaysia\nCapital:", "Kuala Lumpur")),
    ]


LABEL_LOGPROB = Check(
    "check_label_logprob", reference=lambda lm, prompt, label: logprob(lm, prompt, " " + label),
    cases=_label_cases, read=_read_number,
    same=lambda got, want: abs(got - want) <= 1e-3 or (got != got and want != want),
    variants=LABEL_VARIANTS, facts=_label_facts,
    show=lambda want, got, *a: (f"{want:.4f}", f"{got:.4f}" if isinstance(got, float)
                                else short(got)))


def check_label_logprob(fn, lm=None) -> bool:
    """Check `fn(lm, prompt, label) -> float`: log p(" " + label | prompt), summed over every
    token of the label (reference: `labkit.prompting.label_logprob`). `lm` defaults to lk.load()."""
    if lm is None:
        from ..models import load
        lm = load()
    return LABEL_LOGPROB.check(fn, lm=lm)
