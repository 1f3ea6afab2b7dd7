"""Prompting, measured: few-shot prompts, multi-token label scoring, chain of thought.

A prompt is conditioning on fixed tokens (notebook 01): the model's answer is a
draw from π(answer | prompt). To *measure* a prompt on a classification task we
read off, for every candidate label y, its log-probability as a continuation,

    log π(y | prompt) = Σ_t log π(y_t | prompt, y_<t)        (every token of the label)

and call the prompt's answer the argmax label (Brown et al. 2020, "Language Models
are Few-Shot Learners", §2: multiple choice scored by the completion's likelihood).
Scoring only a label's first token is the classic mistake: " Buenos Aires" and
" Buenos" would tie. When one label is a prefix of another (" New" / " New Delhi"),
full-sequence log-probabilities are not comparable events -- π(" New") includes
π(" New Delhi") -- so we score each label followed by what ends an answer in the
prompt (`end`: "\\n" in raw prompts, "<|im_end|>" in chat): disjoint events again.

* The tasks (`sentiment`, `capitals`, `arithmetic`, `instructions`) are generated in
  `labkit.tasks`, deterministically, with a train (shots) / test split.
* `split_prompt` builds a zero-/few-shot prompt (raw completion or chat template) as a
  shared prefix (instruction + shots) and a per-item query; `build_prompt` is the plain
  string version of the exercise.
* `label_logprobs` scores many (prompt, label) pairs and runs no token twice: the shared
  prefix once, then batches of right-padded prompts on its key-value cache, then all their
  labels on the prompts' cache; only the label positions go through the vocabulary
  projection. `label_logprobs_naive` is the obvious loop, one sequence at a time; tests
  check the two agree to 1e-4. `score_task` / `sweep` turn scores into accuracy and
  p(correct label); `labkit.viz.sweep` plots them.
* `greedy` (batched greedy decoding, left-padded) for chain of thought (Wei et al. 2022,
  "Chain-of-Thought Prompting Elicits Reasoning in Large Language Models") and
  instruction following. The shots/order widget is `labkit.widgets.LabelPanel`.

Left out on purpose: calibration (Zhao et al. 2021), automatic prompt search, and
sampling-based self-consistency: each is one loop around the pieces here. The fast scorer
applies the output embedding to the base model's last hidden state, as Llama- and GPT-style
models do; a model with extra logit post-processing (softcapping) needs the naive one.
"""
from __future__ import annotations

import copy
import random
import re
from dataclasses import dataclass

import torch

from .dist import cache_of, check_fits, forward
from .pairs import padded
from .tasks import Example, Task
from .validate import whole

# --- prompts: a shared prefix and a per-item query ------------------------------------------


def pick_shots(task: Task, k: int, order: int = 0) -> list[Example]:
    """The first k training examples, shuffled by `order` (0 keeps the given order)."""
    k = whole("the number of shots", k, low=0)
    if k > len(task.train):
        raise ValueError(f"{k} shots were asked for but the {task.name} task has only "
                         f"{len(task.train)} training examples to draw them from")
    shots = list(task.train[:k])
    if order:
        random.Random(order).shuffle(shots)
    return shots


def _answer(ex: Example, cot: bool) -> str:
    return f"{ex.steps} The answer is {ex.label}." if cot else ex.label


def split_prompt(task: Task, query: Example, shots=(), *, chat: bool = False, tokenizer=None,
                 cot: bool = False) -> tuple[str, str]:
    """(prefix, query): the instruction and the shots, then the item to answer.

    Raw: blocks "Review: ...\\nSentiment: positive" separated by blank lines, ending with the
    cue and no trailing space (the label's token carries its leading space). Chat: the
    instruction as system message, each shot a user/assistant turn. The split falls on a
    newline so that tokenizing the two parts apart gives the same tokens as the whole.
    """
    if chat:
        from .models import chat_prompt
        if tokenizer is None:
            raise ValueError("a chat prompt needs the tokenizer (its chat template)")
        msgs = [{"role": "system", "content": task.instruction}] if task.instruction else []
        for ex in shots:
            msgs += [{"role": "user", "content": task.template.format(text=ex.text)},
                     {"role": "assistant", "content": _answer(ex, cot)}]
        user = task.template.format(text=query.text)
        if not msgs:       # the template adds its own default system message, if it has one
            return "", chat_prompt(tokenizer, user)
        whole = tokenizer.apply_chat_template(msgs + [{"role": "user", "content": user}],
                                              tokenize=False, add_generation_prompt=True)
        prefix = tokenizer.apply_chat_template(msgs, tokenize=False)
        if not whole.startswith(prefix):
            raise ValueError("this chat template does not render turns incrementally")
        return prefix, whole[len(prefix):]
    blocks = [task.instruction] if task.instruction else []
    blocks += [f"{task.template.format(text=ex.text)} {_answer(ex, cot)}" for ex in shots]
    q = task.template.format(text=query.text)
    return ("\n\n".join(blocks) + "\n", "\n" + q) if blocks else ("", q)


def build_prompt(shots, query: str, instruction: str = "",
                 template: str = "Review: {text}\nSentiment:") -> str:
    """The exercise: a raw few-shot prompt from (text, label) pairs and a query text.

    >>> build_prompt([("Great!", "positive")], "Awful.")
    'Review: Great!\\nSentiment: positive\\n\\nReview: Awful.\\nSentiment:'
    """
    blocks = [instruction] if instruction else []
    blocks += [f"{template.format(text=t)} {label}" for t, label in shots]
    return "\n\n".join(blocks + [template.format(text=query)])


def answer_text(label: str, chat: bool) -> str:
    """What the model must write: " positive" after a raw cue, "positive" at a chat turn's start."""
    return label if chat else " " + label


def end_text(chat: bool, tokenizer=None) -> str:
    """What ends an answer: a newline in raw prompts, the end-of-turn token in chat
    (the tokenizer's end-of-sequence token; SmolLM2's is "<|im_end|>")."""
    if not chat:
        return "\n"
    return getattr(tokenizer, "eos_token", None) or "<|im_end|>"


# --- scoring labels: every token of every label ---------------------------------------------


def _rows(lm, prompts, labels, prefix, end, chat):
    """Validate the inputs -> (prefix ids, [(i, j, prompt ids, label+end ids)], set sizes)."""
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of strings (wrap a single prompt in [ ])")
    if len(prompts) == 0:
        raise ValueError("no prompts to score")
    per_prompt = len(labels) > 0 and not isinstance(labels[0], str)
    label_sets = [list(ls) for ls in labels] if per_prompt else [list(labels)] * len(prompts)
    if len(label_sets) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(label_sets)} label sets")
    # LM.ids is the one BOS rule: the raw text that starts the sequence gets the tokenizer's
    # start tokens, a chat-rendered one (its template writes them) and every later piece none
    pre = lm.ids(prefix, start=not chat)
    end_ids = lm.ids(end, start=False)
    rows, longest = [], 0
    for i, (prompt, ls) in enumerate(zip(prompts, label_sets)):
        if not ls:
            raise ValueError("the label set is empty: give at least one candidate label "
                             "(e.g. ['positive', 'negative'])")
        if len(set(ls)) < len(ls):
            raise ValueError(f"the label set {ls} has duplicates")
        q = lm.ids(prompt, start=not chat and not pre)
        if not pre and not q:
            raise ValueError("the prompt is empty: a label needs at least one token of context")
        lab = [lm.ids(y, start=False) for y in ls]
        if any(not x for x in lab):
            raise ValueError(f"an empty label in {ls}: there is nothing to score")
        if not end_ids:
            for a, ya in zip(lab, ls):
                for b, yb in zip(lab, ls):
                    if a != b and b[:len(a)] == a:
                        raise ValueError(
                            f"the label {ya!r} is a prefix of {yb!r}: log p({ya!r}) counts every "
                            f"continuation of it, {yb!r} included, so the two are not comparable. "
                            "Pass end= what follows an answer in your prompt (e.g. end='\\n'), "
                            "so each label is scored as a complete answer")
        rows += [(i, j, q, x + end_ids) for j, x in enumerate(lab)]
        longest = max(longest, len(q) + max(map(len, lab)) + len(end_ids))
    check_fits(len(pre) + longest, 0, lm.context_length)
    return pre, rows, [len(ls) for ls in label_sets]


def label_logprobs_naive(lm, prompts, labels, *, prefix: str = "", end: str = "",
                         chat: bool = False) -> torch.Tensor:
    """log p(label + end | prefix + prompt), one sequence at a time -> [n_prompts, n_labels].

    The obvious implementation that `label_logprobs` must agree with:
    for each prompt, for each label: ids = prefix + prompt + label tokens; seq_logprob(ids).
    """
    from .dist import seq_logprob

    pre, rows, sizes = _rows(lm, prompts, labels, prefix, end, chat)
    out = torch.full((len(prompts), max(sizes)), float("nan"))
    for i, j, q, c in rows:
        ids = torch.tensor([pre + q + c], device=lm.device)                    # 1 seq
        out[i, j] = float(seq_logprob(lm.model, ids, len(pre) + len(q)))
    return out


def label_logprobs(lm, prompts, labels, *, prefix: str = "", end: str = "",
                   chat: bool = False, batch_size: int = 8) -> torch.Tensor:
    """log p(label + end | prefix + prompt), summed over every token -> [n_prompts, n_labels].

    `labels` is one label set for all prompts, or one set per prompt (all the same size).
    Three passes, so that no token is run twice: the `prefix` (instruction + shots) once;
    then a batch of prompts, right-padded, on a copy of the prefix's key-value cache; then
    every label of every prompt in the batch on that cache, repeated once per label. The
    attention mask hides the padding (holes in the middle of a row included) and the
    position ids skip it, so each label sees exactly prefix + prompt, as one by one.
    `chat=True`: the prefix and prompts were rendered by the chat template.
    """
    pre, rows, sizes = _rows(lm, prompts, labels, prefix, end, chat)
    if len(set(sizes)) > 1:
        raise ValueError(f"every prompt needs the same number of labels, got {sorted(set(sizes))}")
    n_lab = sizes[0]
    model, dev = lm.model, lm.device
    proj = model.get_output_embeddings()              # hidden -> vocab, only where needed
    pad = lm.tokenizer.pad_token_id or 0
    queries = {i: q for i, _, q, _ in rows}
    conts = [[c for i2, _, _, c in rows if i2 == i] for i in range(len(prompts))]
    head = pre[-1:]          # the prefix's last token starts each row: it predicts a label's
    n_past, past = max(len(pre) - 1, 0), None           # first token when a prompt is ""
    out = torch.full((len(prompts), n_lab), float("nan"))
    with torch.inference_mode():
        if n_past:
            past = cache_of(forward(model.base_model, torch.tensor([pre[:-1]], device=dev),
                                    use_cache=True))                    # no logits needed
        order = sorted(range(len(prompts)), key=lambda i: len(queries[i]))  # less padding
        for b in range(0, len(order), batch_size):
            idx = order[b:b + batch_size]
            n = len(idx)
            # pass 2: the prompts                                   ids, mask1: batch seq
            ids, mask1 = padded([head + queries[i] for i in idx], pad, "cpu")
            mask1 = torch.cat([torch.ones(n, n_past, dtype=torch.long), mask1], 1)
            cache = None
            if past is not None:
                cache = copy.deepcopy(past)
                cache.batch_repeat_interleave(n)
            pos = torch.arange(n_past, n_past + ids.shape[1]).expand(n, -1)
            o1 = forward(model.base_model, ids.to(dev), attention_mask=mask1.to(dev),
                         position_ids=pos.to(dev), cache=cache, use_cache=True)
            last = torch.tensor([len(head) + len(queries[i]) - 1 for i in idx])
            first = o1.last_hidden_state[torch.arange(n), last.to(dev)]           # batch hidden
            # pass 3: every label but its last token, on the prompts' cache repeated per label
            rest = [c[:-1] for i in idx for c in conts[i]]                          # batch*label
            hid2 = None
            if max(map(len, rest)):
                ids2, m2 = padded(rest, pad, "cpu")
                cache2 = cache_of(o1)
                cache2.batch_repeat_interleave(n_lab)
                mask2 = torch.cat([mask1.repeat_interleave(n_lab, 0), m2], 1)
                pos2 = ((n_past + last + 1).repeat_interleave(n_lab)[:, None]
                        + torch.arange(ids2.shape[1]))                        # batch*label seq
                hid2 = forward(model.base_model, ids2.to(dev), attention_mask=mask2.to(dev),
                               position_ids=pos2.to(dev), cache=cache2,
                               use_cache=True).last_hidden_state      # batch*label seq hidden
            for r, i in enumerate(idx):
                for j, c in enumerate(conts[i]):
                    h = first[r:r + 1]
                    if len(c) > 1:
                        h = torch.cat([h, hid2[r * n_lab + j, :len(c) - 1]])        # label hidden
                    logp = torch.log_softmax(proj(h).float(), -1)                   # label vocab
                    out[i, j] = float(logp.gather(-1, torch.tensor(c, device=dev)[:, None]).sum())
    return out


def label_logprob(lm, prompt: str, label: str) -> float:
    """The exercise's reference: log p(" " + label | prompt), summed over all the label's tokens."""
    return float(label_logprobs(lm, [prompt], [" " + label])[0, 0])


@dataclass
class Scores:
    """A prompt format scored on task items: log-probabilities and what they imply."""

    logprobs: torch.Tensor           # [items, labels]: log p(label + end | prompt)
    gold: torch.Tensor               # [items]: index of the correct label
    choices: list                    # the candidate labels of each item

    @property
    def probs(self) -> torch.Tensor:
        """[items, labels]: the distribution over the label set (renormalised)."""
        return torch.softmax(self.logprobs, dim=-1)

    @property
    def mass(self) -> torch.Tensor:
        """[items]: the probability the model puts on the label set at all."""
        return self.logprobs.exp().sum(-1)

    @property
    def accuracy(self) -> float:
        return float((self.logprobs.argmax(-1) == self.gold).float().mean())

    @property
    def p_correct(self) -> float:
        """Mean renormalised probability of the correct label."""
        return float(self.probs.gather(-1, self.gold[:, None]).mean())


def score_task(lm, task: Task, items=None, *, shots: int = 0, order: int = 0,
               chat: bool = False, batch_size: int = 8) -> Scores:
    """Score `items` (default: the test split) with a k-shot prompt; labels end with `end_text`."""
    items = task.test if items is None else items
    if not task.labels and not items[0].choices:
        raise ValueError(f"the {task.name} task has no label set: measure it by generation")
    ex = pick_shots(task, shots, order)
    parts = [split_prompt(task, it, ex, chat=chat, tokenizer=lm.tokenizer) for it in items]
    prefix = parts[0][0]
    choices = [[answer_text(y, chat) for y in task.choices(it)] for it in items]
    lp = label_logprobs(lm, [q for _, q in parts], choices, prefix=prefix,
                        end=end_text(chat, lm.tokenizer), chat=chat, batch_size=batch_size)
    gold = torch.tensor([list(task.choices(it)).index(it.label) for it in items])
    return Scores(lp, gold, [list(task.choices(it)) for it in items])


def sweep(lm, task: Task, items=None, *, shots=(0, 1, 2, 4, 8), orders: int = 3,
          chats=(False, True), progress: bool = True) -> list[dict]:
    """Accuracy and p(correct) for every (format, shots, order): a plain list of dicts.
    0 shots has one order only. `progress` shows a progress bar over the settings."""
    from tqdm.auto import tqdm

    settings = [(chat, k, order) for chat in chats for k in shots
                for order in range(orders if k > 1 else 1)]
    history = []
    for chat, k, order in tqdm(settings, desc=f"scoring {task.name} prompts", leave=False,
                               disable=not progress):
        s = score_task(lm, task, items, shots=k, order=order, chat=chat)
        history.append(dict(format="chat" if chat else "raw", shots=k, order=order,
                            accuracy=s.accuracy, p_correct=s.p_correct,
                            mass=float(s.mass.mean())))
    return history


def summarize(history: list[dict], key: str = "accuracy") -> dict:
    """{format: (shots, mean, std over orders)} from a `sweep` history."""
    out = {}
    for fmt in dict.fromkeys(h["format"] for h in history):
        ks = sorted({h["shots"] for h in history if h["format"] == fmt})
        vals = [torch.tensor([h[key] for h in history if h["format"] == fmt and h["shots"] == k])
                for k in ks]
        out[fmt] = (ks, [float(v.mean()) for v in vals],
                    [float(v.std(unbiased=False)) for v in vals])
    return out


# --- generation: chain of thought and instruction following ---------------------------------


def greedy(lm, prompts, max_new_tokens: int = 32, batch_size: int = 8,
           stop: str | None = "\n\n", chat: bool = False) -> list[str]:
    """Greedy continuations of `prompts` (left-padded batches), stripped, each ending at the
    end-of-turn token or before `stop` (a blank line: the end of a few-shot answer).
    `chat=True`: the prompts were rendered by the chat template (`lm.chat_prompt`).
    Evaluation only: sampling lives in `labkit.decoding.generate`."""
    tok, out = lm.tokenizer, []
    pad = tok.pad_token_id or 0
    for b in range(0, len(prompts), batch_size):
        enc = [lm.ids(p, start=not chat) for p in prompts[b:b + batch_size]]
        ids, mask = padded(enc, pad, lm.device, left=True)               # batch seq
        width = ids.shape[1]
        check_fits(width, max_new_tokens, lm.context_length)
        kw = dict(stop_strings=[stop], tokenizer=tok) if stop else {}
        with torch.inference_mode():
            gen = lm.model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                                    max_new_tokens=max_new_tokens, pad_token_id=pad,
                                    eos_token_id=sorted(lm.eos_token_ids), temperature=None, top_p=None,
                                    top_k=None, **kw)
        for row in gen[:, width:]:
            text = tok.decode(row, skip_special_tokens=True).strip()
            out.append(text.split(stop)[0].strip() if stop else text)
    return out


def parse_number(text: str) -> str | None:
    """The answer of a reply: the number after "answer is", else the last number in it."""
    m = re.search(r"answer is\s*(-?\d+)", text)
    nums = re.findall(r"-?\d+", text)
    return m.group(1) if m else (nums[-1] if nums else None)
