"""Pairs (prompt, response) as token ids and right-padded batches: what a trainer on pairs
needs (supervised fine-tuning, `labkit.sft`; the reward model and DPO of notebook 04 score
the same pairs).

* `encode(lm, pairs)` -> [(ids, prompt_length)] by the one BOS rule: the prompt (in the chat
  template with `chat`) as `lm.ids(..., start=not chat)`, the response + the end token; a
  pair longer than `max_length` is refused, not truncated;
* `padded(rows, pad_id, device, left=)` -> (ids, attention_mask): rows of ids padded on the
  right (training: positions stay those of each row alone) or on the left (batched
  generation, which continues every row from its last column);
* `masked_labels`: the response-only labels (-100 on the prompt and the padding), and
  `collate`, a right-padded batch with them; `batch_order`: a seeded shuffle per epoch;
* `response_logprobs(model, batch)` -> log π(x_t | x_<t) of each response token of a collated
  batch (the log-likelihood that RL, DPO and the reward model's features read).
"""
from __future__ import annotations

import torch

from .dist import _accepts, forward as run_model

IGNORE = -100          # the label torch's cross_entropy(ignore_index=-100) and transformers skip


def padded(rows, pad_id: int, device, *, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both [batch, seq]: `rows` (lists of token ids) padded with
    `pad_id` to the longest, on the right (default) or the left; the mask is 1 on real tokens."""
    rows = [list(r) for r in rows]
    width = max(map(len, rows))
    fill = [[pad_id] * (width - len(r)) for r in rows]
    ones = [[1] * len(r) for r in rows]
    zeros = [[0] * (width - len(r)) for r in rows]
    if left:
        ids = [f + r for f, r in zip(fill, rows)]
        mask = [z + o for z, o in zip(zeros, ones)]
    else:
        ids = [r + f for f, r in zip(fill, rows)]
        mask = [o + z for z, o in zip(zeros, ones)]
    return torch.tensor(ids, device=device), torch.tensor(mask, device=device)


def pad_id(lm) -> int:
    """The token id a batch of `lm` is padded with: its tokenizer's pad, else the end token."""
    pad = lm.tokenizer.pad_token_id
    return pad if pad is not None else (lm.eos_token_id or 0)



def masked_labels(ids: torch.Tensor, prompt_lengths, lengths) -> torch.Tensor:
    """Labels for the response-only loss: a LongTensor like `ids` [batch, seq] (right-padded
    rows: row i's real tokens are ids[i, :lengths[i]], of which the first prompt_lengths[i] are
    the prompt) holding ids[i, t] where t is a response token (prompt_lengths[i] <= t <
    lengths[i]) and -100 everywhere else (the prompt and the padding). -100 is what
    torch.nn.functional.cross_entropy(ignore_index=-100) and transformers skip.

    Naive version: labels = ids.clone(); for each row i: labels[i, :prompt_lengths[i]] = -100
    and labels[i, lengths[i]:] = -100."""
    t = torch.arange(ids.shape[1], device=ids.device)[None]                 # 1 seq
    start = torch.as_tensor(prompt_lengths, device=ids.device)[:, None]     # batch 1
    end = torch.as_tensor(lengths, device=ids.device)[:, None]              # batch 1
    response = (t >= start) & (t < end)                                     # batch seq
    return torch.where(response, ids, torch.full_like(ids, IGNORE)).long()


def encode(lm, examples, *, chat: bool = True, max_length: int = 512) -> list[tuple[list, int]]:
    """[(ids, prompt_length)] of (prompt, response) pairs, by the one BOS rule: the prompt
    (chat-templated with `chat`) as `lm.ids(..., start=not chat)`, the response as
    `lm.ids(response, start=False)` + the end token. Bad pairs get a ValueError naming them."""
    if isinstance(examples, (str, bytes)) or not hasattr(examples, "__iter__"):
        raise TypeError("examples must be a list of (prompt, response) pairs")
    examples = list(examples)
    if not examples:
        raise ValueError("no examples: fine-tuning needs at least one (prompt, response) pair")
    limit = min(max_length, lm.context_length)
    rows = []
    for i, ex in enumerate(examples):
        if not isinstance(ex, (tuple, list)) or len(ex) != 2 or not all(isinstance(s, str)
                                                                        for s in ex):
            raise TypeError(f"example {i} must be a (prompt, response) pair of strings, got "
                            f"{ex!r:.80}")
        prompt, response = ex
        if not response.strip():
            raise ValueError(f"example {i} has an empty response: there is nothing to learn "
                             f"from it -- drop it or write the response")
        p = lm.ids(lm.chat_prompt(prompt) if chat else prompt, start=not chat)
        r = lm.ids(response, start=False) + ([lm.eos_token_id] if lm.eos_token_id is not None
                                             else [])
        if not p:
            raise ValueError(f"example {i} has an empty prompt and this tokenizer adds no start "
                             f"token, so nothing predicts the response's first token: give a "
                             f"prompt (or chat=True)")
        if len(p) + len(r) > limit:
            what = (f"max_length={max_length}: shorten it or raise max_length" if
                    limit == max_length else f"the model's context ({limit} tokens): shorten it")
            raise ValueError(f"example {i} is {len(p) + len(r)} tokens long ({len(p)} prompt + "
                             f"{len(r)} response), more than {what} (it is refused, not truncated)")
        rows.append((p + r, len(p)))
    return rows


def collate(rows, pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded (ids, attention_mask, labels), each [batch, seq], of rows (ids, prompt_len)."""
    ids, mask = padded([r for r, _ in rows], pad_id, device)
    return ids, mask, masked_labels(ids, [p for _, p in rows], [len(r) for r, _ in rows])


def batch_order(n: int, batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """`steps` batches of example indices: a fresh shuffle each epoch, the last batch of an
    epoch smaller when batch_size does not divide n."""
    gen, batches = torch.Generator().manual_seed(seed), []
    while len(batches) < steps:
        perm = torch.randperm(n, generator=gen).tolist()
        batches += [perm[i:i + batch_size] for i in range(0, n, batch_size)]
    return batches[:steps]


def response_logprobs(model, batch, *, entropy: bool = False):
    """log π(x_t | x_<t) of every response token of a collated batch (ids, mask, labels) ->
    (logp [batch, k], valid [batch, k] bool), over the last k positions (from the earliest
    response token on: only their logits are computed, `logits_to_keep`); 0 where not valid.
    Sum over t for a sequence's log π(response | prompt). With `entropy`, also the entropy of
    each position's next-token distribution [batch, k] (detached). Gradients flow if enabled."""
    ids, mask, labels = batch
    keep = ids.shape[1] - int((labels != IGNORE).int().argmax(1).min()) + 1
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    kw = {"logits_to_keep": keep} if _accepts(type(inner), "logits_to_keep") else {}
    logits = run_model(model, ids, attention_mask=mask, use_cache=False, **kw).logits
    pred = logits[:, -keep:-1].float()                                   # batch k vocab
    target = labels[:, -keep + 1:]                                       # batch k
    valid = target != IGNORE
    norm = pred.logsumexp(-1)                                            # batch k
    logp = pred.gather(-1, target.clamp(min=0)[..., None])[..., 0] - norm
    logp = torch.where(valid, logp, torch.zeros_like(logp))
    if not entropy:
        return logp, valid
    with torch.no_grad():
        probs = torch.softmax(pred, -1)
        plogz = torch.where(probs > 0, probs * pred, torch.zeros_like(pred))  # 0·(-inf) = 0
        ent = (norm - plogz.sum(-1)) * valid                              # batch k
    return logp, valid, ent
