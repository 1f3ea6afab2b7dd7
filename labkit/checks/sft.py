"""Notebook 03's first check: the response-only loss mask.

Reference: `labkit.sft.masked_labels` (defined in `labkit.pairs`): the labels of supervised
fine-tuning's loss on response tokens only: the prompt and the padding get -100, the index that
`torch.nn.functional.cross_entropy(ignore_index=-100)` and transformers skip -- TRL's
completion-only loss. The check calls every function through an adapter (`_runner.Adapting`)
that notices a function editing `ids` in place (`labels = ids` then `labels[...] = -100`):
the runner hands it a copy, so its output alone would look right, but in the trainer the
model's input would be spoiled. The schedule's check is `labkit.checks.schedule`.
"""
from __future__ import annotations

import torch

from ..sft import masked_labels
from ._runner import Adapting, Case, Mistake, Variant, read_none



# --- the response-only loss mask --------------------------------------------------------------

IGNORE = -100


class _EditedInPlace:
    """What the guard returns when the function changed `ids` itself."""


def _guard(fn, ids, prompt_lengths, lengths):
    before = ids.clone()
    out = fn(ids, prompt_lengths, lengths)
    same = ids.shape == before.shape and ids.dtype == before.dtype and torch.equal(ids, before)
    return out if same else _EditedInPlace()


def _labels(ids, prompt_lengths, lengths, *, start=lambda p, n, seq: p,
            end=lambda p, n, seq: n, fill=IGNORE, keep="response"):
    """masked_labels with its parts replaceable: row i keeps its tokens start <= t < end
    (keep="response"), or everywhere else (keep="outside"); the rest gets `fill`."""
    out = torch.full_like(ids, fill)
    for i, (p, n) in enumerate(zip(list(prompt_lengths), list(lengths))):
        a, b = start(p, n, ids.shape[1]), end(p, n, ids.shape[1])
        if keep == "response":
            out[i, a:b] = ids[i, a:b]
        else:
            out[i] = ids[i]
            out[i, a:b] = fill
    return out


def _one_prompt_length(pick):
    def variant(ids, prompt_lengths, lengths):
        p = pick(list(prompt_lengths))
        return _labels(ids, [p] * len(ids), lengths)
    return variant


def _shifted_in_labels(ids, prompt_lengths, lengths):
    """labels[t] = ids[t + 1] on the response (the loss shifts them again)."""
    nxt = torch.cat([ids[:, 1:], torch.full_like(ids[:, :1], IGNORE)], 1)
    return _labels(nxt, prompt_lengths, lengths)


def _fill_is_wrong(got, want, *args) -> bool:
    """Every kept label right, every masked one the same other value than -100."""
    masked = want == IGNORE
    if not masked.any() or not torch.equal(got[~masked], want[~masked]):
        return False
    values = got[masked].unique()
    return len(values) == 1 and int(values[0]) != IGNORE


MASK_VARIANTS = [
    Variant("last_prompt_token", "the last prompt token counted",
            "the prompt is ids[i, :prompt_lengths[i]], so every t < prompt_lengths[i] gets -100, "
            "its last token included: mask [:prompt_lengths[i]], not one less",
            fns=[lambda ids, p, n: _labels(ids, p, n, start=lambda p, n, s: max(p - 1, 0))]),
    Variant("first_response_masked", "the first response token masked",
            "the response starts at t = prompt_lengths[i]: keep that token's label (mask "
            "[:prompt_lengths[i]], not [:prompt_lengths[i] + 1]) -- it is the first word the "
            "model must learn to write",
            fns=[lambda ids, p, n: _labels(ids, p, n, start=lambda p, n, s: p + 1)]),
    Variant("last_response_masked", "the last response token masked",
            "the real tokens are ids[i, :lengths[i]]: the last one (t = lengths[i] - 1) is the "
            "end-of-text token the model must learn to stop with; mask from lengths[i] on",
            fns=[lambda ids, p, n: _labels(ids, p, n, end=lambda p, n, s: n - 1)]),
    Variant("one_padding_counted", "one padding token counted",
            "padding starts at t = lengths[i]: mask from there (ids[i, lengths[i]:] = -100), not "
            "from lengths[i] + 1",
            fns=[lambda ids, p, n: _labels(ids, p, n, end=lambda p, n, s: n + 1)]),
    Variant("padding_counted", "padding counted",
            "the padding after lengths[i] is not text: give it -100 too "
            "(labels[i, lengths[i]:] = -100), or the model learns to write padding",
            fns=[lambda ids, p, n: _labels(ids, p, n, end=lambda p, n, s: s)]),
    Variant("prompt_counted", "prompt not masked",
            "the loss is on the response only: give the prompt's positions "
            "(t < prompt_lengths[i]) -100 as well",
            fns=[lambda ids, p, n: _labels(ids, p, n, start=lambda p, n, s: 0)]),
    Variant("nothing_masked", "nothing masked",
            "labels are ids with the prompt and the padding replaced by -100 in each row",
            fns=[lambda ids, p, n: ids.clone()]),
    Variant("inverted", "prompt kept, response masked",
            "the other way round: keep the response's tokens (prompt_lengths[i] <= t < "
            "lengths[i]) and give -100 to the prompt and the padding",
            fns=[lambda ids, p, n: _labels(ids, p, n, keep="outside"),
                 lambda ids, p, n: _labels(ids, p, n, start=lambda p, n, s: 0,
                                           end=lambda p, n, s: p)]),
    Variant("zero_fill", "masked with 0, not -100",
            "0 is a real token id (the loss would train the model to write it): use -100, the "
            "ignore_index that cross_entropy and transformers skip",
            fns=[lambda ids, p, n: _labels(ids, p, n, fill=0)]),
    Variant("shifted", "labels shifted by one",
            "labels[i, t] is ids[i, t] itself: the shift (logits at t predict the token at "
            "t + 1) happens once, in the loss (logits[:, :-1] against labels[:, 1:])",
            fns=[_shifted_in_labels,
                 lambda ids, p, n: _labels(torch.cat([ids[:, 1:], torch.full_like(
                     ids[:, :1], IGNORE)], 1), [x - 1 for x in p], [x - 1 for x in n])]),
    Variant("left_padding", "left padding assumed",
            "the rows are padded on the right: row i's real tokens are ids[i, :lengths[i]], the "
            "prompt first, then the response",
            fns=[lambda ids, p, n: _labels(ids, p, n, start=lambda p, n, s: s - n + p,
                                           end=lambda p, n, s: s)]),
    Variant("response_lengths", "lengths read as response lengths",
            "lengths[i] counts the whole row's real tokens, prompt included: the response is "
            "prompt_lengths[i] <= t < lengths[i]",
            fns=[lambda ids, p, n: _labels(ids, p, n, end=lambda p, n, s: p + n)]),
    Variant("one_prompt_length", "one prompt length for every row",
            "each row has its own prompt length: mask row i's first prompt_lengths[i] tokens",
            fns=[_one_prompt_length(max), _one_prompt_length(min),
                 _one_prompt_length(lambda p: p[0])]),
    Variant("fill_value", "masked with another value than -100",
            "the masked positions need exactly -100 (cross_entropy's and transformers' "
            "ignore_index); any other number is read as a token id",
            test=_fill_is_wrong),
    Variant("in_place", "ids edited in place",   # named by the guard, never by comparing outputs
            "your function changed `ids` itself (labels = ids makes no copy): in the trainer "
            "the model's input would hold -100 too. Start from labels = ids.clone() (or "
            "torch.full_like(ids, -100)), then edit and return labels"),
]


def _read_labels(out, ids, prompt_lengths, lengths):
    if isinstance(out, _EditedInPlace):
        v = next(v for v in MASK_VARIANTS if v.key == "in_place")
        raise Mistake(f"{v.title} -- {v.hint}", "in_place")
    read_none(out)
    if not isinstance(out, torch.Tensor):
        raise Mistake(f"return a tensor like ids, not {type(out).__name__} (start from "
                      "ids.clone() or torch.full_like(ids, -100))", "type")
    if tuple(out.shape) != tuple(ids.shape):
        extra = (" -- one label per position of ids: the shift happens in the loss, not here"
                 if out.dim() == 2 and out.shape[0] == ids.shape[0]
                 and out.shape[1] == ids.shape[1] - 1 else "")
        raise Mistake(f"return labels shaped like ids {tuple(ids.shape)}, got "
                      f"{tuple(out.shape)}{extra}", "shape")
    if out.dtype == torch.bool:
        raise Mistake("you returned True/False per position (the mask): use it to choose "
                      "between the token and -100, torch.where(mask, ids, -100)", "dtype")
    if out.dtype != torch.long:
        raise Mistake(f"return whole-number labels of ids' dtype (torch.long), not {out.dtype}: "
                      "cross_entropy reads a float target as probabilities", "dtype")
    return out.detach().cpu()


def _regions(ids, prompt_lengths, lengths):
    """(prompt, response, padding) masks, each [batch, seq]."""
    t = torch.arange(ids.shape[1])[None]
    p, n = torch.tensor(list(prompt_lengths))[:, None], torch.tensor(list(lengths))[:, None]
    return t < p, (t >= p) & (t < n), t >= n


def _mask_facts(got, want, ids, prompt_lengths, lengths) -> list[str]:
    prompt, response, padding = _regions(ids, prompt_lengths, lengths)
    facts = []
    for name, where in (("prompt", prompt), ("padding", padding)):
        wrong = int((where & (got != IGNORE)).sum())
        if wrong:
            facts.append(f"{wrong} {name} position(s) are not -100")
    wrong = int((response & (got != ids.cpu())).sum())
    if wrong:
        facts.append(f"{wrong} response position(s) do not hold their token")
    return facts


def _show_labels(want, got, *args):
    if want.numel() <= 24:
        return str(want.tolist()), str(got.tolist())
    bad = [i for i in range(len(want)) if not torch.equal(want[i], got[i])] or [0]
    more = f" (rows {bad} differ)" if len(bad) > 1 else ""
    return f"row {bad[0]} {want[bad[0]].tolist()}", f"row {bad[0]} {got[bad[0]].tolist()}{more}"


def _mask_cases() -> list[Case]:
    def t(rows):
        return torch.tensor(rows, dtype=torch.long)

    gen = torch.Generator().manual_seed(0)
    big = torch.randint(100, 49152, (4, 12), generator=gen)                      # batch seq
    p4, n4 = [6, 4, 9, 5], [9, 12, 11, 7]
    for i, n in enumerate(n4):                 # each row ends with its end token (id 2), then
        big[i, n - 1] = 2                      # is padded with SmolLM2's pad id, also 2
        big[i, n:] = 2
    return [
        Case("one row, no padding: ids=[[11, 12, 13, 14, 15]], prompt_lengths=[2], lengths=[5]",
             (t([[11, 12, 13, 14, 15]]), [2], [5])),
        Case("two rows, the first padded with 0: ids=[[21, 22, 23, 24, 0, 0], [31, 32, 33, 34, "
             "35, 36]], prompt_lengths=[1, 3], lengths=[4, 6]",
             (t([[21, 22, 23, 24, 0, 0], [31, 32, 33, 34, 35, 36]]), [1, 3], [4, 6])),
        Case("three rows: ids=[[41, 42, 43, 44, 45, 0, 0, 0], [51, 52, 53, 54, 55, 56, 57, 58], "
             "[61, 62, 63, 64, 65, 66, 67, 0]], prompt_lengths=[3, 1, 2], lengths=[5, 8, 7]",
             (t([[41, 42, 43, 44, 45, 0, 0, 0], [51, 52, 53, 54, 55, 56, 57, 58],
                 [61, 62, 63, 64, 65, 66, 67, 0]]), [3, 1, 2], [5, 8, 7])),
        Case(f"a batch like the trainer's: 4 rows of 12 ids, each ending with the end token 2 and "
             f"padded with 2, prompt_lengths={p4}, lengths={n4}", (big, p4, n4)),
    ]


MASKED_LABELS = Adapting("check_masked_labels", reference=masked_labels, cases=_mask_cases,
                          read=_read_labels, same=lambda got, want: torch.equal(got, want),
                          variants=MASK_VARIANTS, show=_show_labels, facts=_mask_facts,
                          adapt=_guard)


def check_masked_labels(fn) -> bool:
    """Check `fn(ids, prompt_lengths, lengths) -> labels`: the response-only labels, -100 on
    the prompt and the padding of right-padded rows (reference: `labkit.sft.masked_labels`)."""
    return MASKED_LABELS.check(fn)
