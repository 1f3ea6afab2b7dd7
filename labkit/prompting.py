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

* Tasks are generated here, deterministically, with a train (shots) / test split:
  `sentiment`, `capitals`, `arithmetic`, `instructions`.
* `split_prompt` builds a zero-/few-shot prompt (raw completion or chat template) as a
  shared prefix (instruction + shots) and a per-item query; `build_prompt` is the plain
  string version of the exercise.
* `label_logprobs` scores many (prompt, label) pairs and runs no token twice: the shared
  prefix once, then batches of right-padded prompts on its key-value cache, then all their
  labels on the prompts' cache; only the label positions go through the vocabulary
  projection. `label_logprobs_naive` is the obvious loop, one sequence at a time; tests
  check the two agree to 1e-4. `score_task` / `sweep` turn scores into accuracy and
  p(correct label); `sweep_figure` plots them.
* `greedy` (batched greedy decoding, left-padded) for chain of thought (Wei et al. 2022,
  "Chain-of-Thought Prompting Elicits Reasoning in Large Language Models") and
  instruction following; `LabelPanel`, the shots/order widget.

Left out on purpose: calibration (Zhao et al. 2021), automatic prompt search, and
sampling-based self-consistency: each is one loop around the pieces here. The fast scorer
applies the output embedding to the base model's last hidden state, as Llama- and GPT-style
models do; a model with extra logit post-processing (softcapping) needs the naive one.
"""
from __future__ import annotations

import copy
import html
import random
import re
from dataclasses import dataclass, field

import torch

from .models import check_fits

# --- tasks, generated in the repo --------------------------------------------------------


@dataclass(frozen=True)
class Example:
    text: str                       # the question part, e.g. a review
    label: str                      # the answer, without its leading space
    choices: tuple[str, ...] = ()   # candidate labels for this item ((): the task's labels)
    steps: str = ""                 # a worked solution (arithmetic), for chain of thought


@dataclass
class Task:
    name: str
    instruction: str                # the first line of every prompt (the system message in chat)
    template: str                   # how one item is asked, "Review: {text}\nSentiment:"
    labels: tuple[str, ...]         # the label set ((): per-item `choices`, or free text)
    train: list[Example] = field(repr=False)   # where shots come from
    test: list[Example] = field(repr=False)    # held out: what we measure on

    def choices(self, ex: Example) -> tuple[str, ...]:
        return ex.choices or self.labels


def _split(items, n_train, seed):
    items = list(items)
    random.Random(seed).shuffle(items)
    return items[:n_train], items[n_train:]


def sentiment() -> Task:
    """120 templated reviews with unmistakable labels; the train split alternates labels."""
    things = ["The food", "The movie", "This phone", "The hotel room", "The service",
              "This book", "The concert", "The coffee", "This laptop", "The staff"]
    good = ["wonderful", "excellent", "great", "delightful", "fantastic", "superb"]
    bad = ["terrible", "awful", "horrible", "disappointing", "dreadful", "rude and slow"]
    pos = [Example(f"{t} was {a}.", "positive") for t in things for a in good]
    neg = [Example(f"{t} was {a}.", "negative") for t in things for a in bad]
    pos_tr, pos_te = _split(pos, 12, 1)
    neg_tr, neg_te = _split(neg, 12, 2)
    train = [x for pair in zip(pos_tr, neg_tr) for x in pair]          # +, -, +, -, ...
    test = pos_te + neg_te
    random.Random(3).shuffle(test)
    return Task("sentiment", "Classify the sentiment of each review as positive or negative.",
                "Review: {text}\nSentiment:", ("positive", "negative"), train, test)


CAPITALS = dict(
    France="Paris", Germany="Berlin", Italy="Rome", Spain="Madrid", Portugal="Lisbon",
    Japan="Tokyo", China="Beijing", India="New Delhi", Russia="Moscow", Egypt="Cairo",
    Argentina="Buenos Aires", Brazil="Brasília", Canada="Ottawa", Australia="Canberra",
    Mexico="Mexico City", Peru="Lima", Chile="Santiago", Kenya="Nairobi", Greece="Athens",
    Norway="Oslo", Sweden="Stockholm", Finland="Helsinki", Poland="Warsaw", Austria="Vienna",
    Ireland="Dublin", Hungary="Budapest", Turkey="Ankara", Thailand="Bangkok",
    Vietnam="Hanoi", Indonesia="Jakarta", Malaysia="Kuala Lumpur", Philippines="Manila",
    Colombia="Bogotá", Venezuela="Caracas", Cuba="Havana", Morocco="Rabat",
    Nigeria="Abuja", Ethiopia="Addis Ababa", Iran="Tehran", Iraq="Baghdad",
    Belgium="Brussels", Netherlands="Amsterdam", Denmark="Copenhagen", Switzerland="Bern",
    Ukraine="Kyiv", Romania="Bucharest", Bulgaria="Sofia", Serbia="Belgrade",
    Croatia="Zagreb", Czechia="Prague", Pakistan="Islamabad", Bangladesh="Dhaka",
    Nepal="Kathmandu", Mongolia="Ulaanbaatar", Uruguay="Montevideo", Paraguay="Asunción",
    Bolivia="Sucre", Ecuador="Quito", Ghana="Accra", Senegal="Dakar", Tanzania="Dodoma",
    Iceland="Reykjavik", Lebanon="Beirut", Syria="Damascus", Israel="Jerusalem",
    Qatar="Doha")


def capitals(n_choices: int = 4) -> Task:
    """Country -> capital as multiple choice: the capital and 3 others (many multi-token)."""
    rng = random.Random(4)
    names = list(CAPITALS.values())
    items = []
    for country, capital in CAPITALS.items():
        others = rng.sample([c for c in names if c != capital], n_choices - 1)
        choices = sorted([capital, *others])
        items.append(Example(country, capital, tuple(choices)))
    train, test = _split(items, 16, 5)
    return Task("capitals", "Give the capital city of each country.",
                "Country: {text}\nCapital:", (), train, test)


def arithmetic(n: int = 80) -> Task:
    """Two-step word problems (add, then take away), each with a worked solution."""
    rng = random.Random(6)
    names = ["Ann", "Ben", "Cleo", "Dan", "Eva", "Finn", "Gia", "Hugo"]
    things = ["apples", "marbles", "stickers", "coins", "books", "pencils"]
    items = []
    for _ in range(n):
        who, what = rng.choice(names), rng.choice(things)
        a, b = rng.randint(3, 19), rng.randint(2, 19)
        c = rng.randint(1, a + b - 1)
        text = (f"{who} has {a} {what}. {who} gets {b} more, then gives {c} away. "
                f"How many {what} does {who} have now?")
        steps = f"{who} starts with {a}. {a} + {b} = {a + b}. {a + b} - {c} = {a + b - c}."
        items.append(Example(text, str(a + b - c), steps=steps))
    train, test = _split(items, 8, 7)
    return Task("arithmetic", "Solve each problem.", "Question: {text}\nAnswer:", (),
                train, test)


_GENERAL = ["What is the opposite of hot?", "Which animal says moo?", "What colour is grass?",
            "Name a fruit that is yellow.", "What do bees make?", "Which planet do we live on?",
            "What do you use to write on paper?", "What is frozen water called?",
            "Which season comes after winter?", "What do cows drink?",
            "Name a large grey animal with a trunk.", "What falls from clouds when it rains?",
            "What is the colour of the sky on a clear day?",
            "Which meal do people eat in the morning?",
            "What do you call a baby cat?", "Which body part do you use to hear?"]
_NUMERIC = ["How many legs does a spider have?", "How many days are in a week?",
            "How many wheels does a bicycle have?", "What is two plus three?",
            "How many months are in a year?", "How many sides does a triangle have?",
            "How many hours are in a day?", "What is ten minus four?"]
_YES_NO = ["Is the sun hot?", "Can fish fly?", "Is ice cold?", "Do birds have feathers?",
           "Is the moon made of cheese?", "Can dogs bark?", "Is water wet?", "Do cars eat grass?"]
CONSTRAINTS = {"one word": "Answer in one word.", "uppercase": "Answer in uppercase letters only.",
               "lowercase": "Answer in lowercase letters only.",
               "number": "Answer with a number only.", "yes/no": "Answer with yes or no only."}


def follows(constraint: str, answer: str) -> bool:
    """Does `answer` (the model's reply, stripped) satisfy the `constraint`?"""
    a = answer.strip().rstrip(".!")
    if constraint == "one word":
        return bool(re.fullmatch(r"[A-Za-z'-]+", a))
    if constraint == "uppercase":
        return bool(re.search(r"[A-Z]", a)) and a == a.upper()
    if constraint == "lowercase":
        return bool(re.search(r"[a-z]", a)) and a == a.lower()
    if constraint == "number":
        return bool(re.fullmatch(r"\d+", a))
    if constraint == "yes/no":
        return a.lower() in ("yes", "no")
    raise ValueError(f"unknown constraint {constraint!r}; known: {sorted(CONSTRAINTS)}")


def instructions() -> Task:
    """72 requests with a checkable format constraint; the label is the constraint's name."""
    items = [Example(f"{q} {CONSTRAINTS[c]}", c)
             for q in _GENERAL for c in ("one word", "uppercase", "lowercase")]
    items += [Example(f"{q} {CONSTRAINTS['number']}", "number") for q in _NUMERIC]
    items += [Example(f"{q} {CONSTRAINTS['yes/no']}", "yes/no") for q in _YES_NO]
    train, test = _split(items, 8, 8)
    return Task("instructions", "", "{text}", (), train, test)


TASKS = {"sentiment": sentiment, "capitals": capitals, "arithmetic": arithmetic,
         "instructions": instructions}


# --- prompts: a shared prefix and a per-item query ------------------------------------------


def pick_shots(task: Task, k: int, order: int = 0) -> list[Example]:
    """The first k training examples, shuffled by `order` (0 keeps the given order)."""
    if not isinstance(k, int) or k < 0:
        raise ValueError(f"the number of shots must be a whole number ≥ 0, got {k!r}")
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


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False).input_ids if text else []


def _rows(lm, prompts, labels, prefix, end):
    """Validate the inputs -> (prefix ids, [(i, j, prompt ids, label+end ids)], set sizes)."""
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of strings (wrap a single prompt in [ ])")
    if len(prompts) == 0:
        raise ValueError("no prompts to score")
    per_prompt = len(labels) > 0 and not isinstance(labels[0], str)
    label_sets = [list(ls) for ls in labels] if per_prompt else [list(labels)] * len(prompts)
    if len(label_sets) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(label_sets)} label sets")
    tok = lm.tokenizer
    pre, end_ids = _ids(tok, prefix), _ids(tok, end)
    rows, longest = [], 0
    for i, (prompt, ls) in enumerate(zip(prompts, label_sets)):
        if not ls:
            raise ValueError("the label set is empty: give at least one candidate label "
                             "(e.g. ['positive', 'negative'])")
        if len(set(ls)) < len(ls):
            raise ValueError(f"the label set {ls} has duplicates")
        q = _ids(tok, prompt)
        if not pre and not q:
            raise ValueError("the prompt is empty: a label needs at least one token of context")
        lab = [_ids(tok, y) for y in ls]
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


def label_logprobs_naive(lm, prompts, labels, *, prefix: str = "", end: str = "") -> torch.Tensor:
    """log p(label + end | prefix + prompt), one sequence at a time -> [n_prompts, n_labels].

    The obvious implementation that `label_logprobs` must agree with:
    for each prompt, for each label: ids = prefix + prompt + label tokens; seq_logprob(ids).
    """
    from .dist import seq_logprob

    pre, rows, sizes = _rows(lm, prompts, labels, prefix, end)
    out = torch.full((len(prompts), max(sizes)), float("nan"))
    for i, j, q, c in rows:
        ids = torch.tensor([pre + q + c], device=lm.device)                    # 1 seq
        out[i, j] = float(seq_logprob(lm.model, ids, len(pre) + len(q)))
    return out


def _pad(seqs, pad, width=None):
    """Right-pad lists of ids -> (ids [batch, width], mask [batch, width])."""
    width = width or max(map(len, seqs))
    ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
    return ids, mask


def label_logprobs(lm, prompts, labels, *, prefix: str = "", end: str = "",
                   batch_size: int = 8) -> torch.Tensor:
    """log p(label + end | prefix + prompt), summed over every token -> [n_prompts, n_labels].

    `labels` is one label set for all prompts, or one set per prompt (all the same size).
    Three passes, so that no token is run twice: the `prefix` (instruction + shots) once;
    then a batch of prompts, right-padded, on a copy of the prefix's key-value cache; then
    every label of every prompt in the batch on that cache, repeated once per label. The
    attention mask hides the padding (holes in the middle of a row included) and the
    position ids skip it, so each label sees exactly prefix + prompt, as one by one.
    """
    pre, rows, sizes = _rows(lm, prompts, labels, prefix, end)
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
            past = model.base_model(input_ids=torch.tensor([pre[:-1]], device=dev),
                                    use_cache=True).past_key_values     # no logits needed
        order = sorted(range(len(prompts)), key=lambda i: len(queries[i]))  # less padding
        for b in range(0, len(order), batch_size):
            idx = order[b:b + batch_size]
            n = len(idx)
            # pass 2: the prompts                                   ids, mask1: batch seq
            ids, mask1 = _pad([head + queries[i] for i in idx], pad)
            mask1 = torch.cat([torch.ones(n, n_past, dtype=torch.long), mask1], 1)
            cache = None
            if past is not None:
                cache = copy.deepcopy(past)
                cache.batch_repeat_interleave(n)
            pos = torch.arange(n_past, n_past + ids.shape[1]).expand(n, -1)
            o1 = model.base_model(input_ids=ids.to(dev), attention_mask=mask1.to(dev),
                                  position_ids=pos.to(dev), past_key_values=cache, use_cache=True)
            last = torch.tensor([len(head) + len(queries[i]) - 1 for i in idx])
            first = o1.last_hidden_state[torch.arange(n), last.to(dev)]           # batch hidden
            # pass 3: every label but its last token, on the prompts' cache repeated per label
            rest = [c[:-1] for i in idx for c in conts[i]]                          # batch*label
            hid2 = None
            if max(map(len, rest)):
                ids2, m2 = _pad(rest, pad)
                cache2 = o1.past_key_values
                cache2.batch_repeat_interleave(n_lab)
                mask2 = torch.cat([mask1.repeat_interleave(n_lab, 0), m2], 1)
                pos2 = ((n_past + last + 1).repeat_interleave(n_lab)[:, None]
                        + torch.arange(ids2.shape[1]))                        # batch*label seq
                hid2 = model.base_model(input_ids=ids2.to(dev), attention_mask=mask2.to(dev),
                                        position_ids=pos2.to(dev), past_key_values=cache2,
                                        use_cache=True).last_hidden_state  # batch*label seq hidden
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
                        end=end_text(chat, lm.tokenizer),
                        batch_size=batch_size)
    gold = torch.tensor([list(task.choices(it)).index(it.label) for it in items])
    return Scores(lp, gold, [list(task.choices(it)) for it in items])


def sweep(lm, task: Task, items=None, *, shots=(0, 1, 2, 4, 8), orders: int = 3,
          chats=(False, True)) -> list[dict]:
    """Accuracy and p(correct) for every (format, shots, order): a plain list of dicts.
    0 shots has one order only."""
    history = []
    for chat in chats:
        for k in shots:
            for order in range(orders if k > 1 else 1):
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


def sweep_figure(history: list[dict], key: str = "accuracy", title: str | None = None):
    """`key` vs number of shots, one line per format, error bars = std over example orders."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for fmt, (ks, mean, std) in summarize(history, key).items():
        fig.add_trace(go.Scatter(x=ks, y=mean, error_y=dict(type="data", array=std),
                                 mode="lines+markers", name=fmt))
    fig.update_layout(title=title, xaxis_title="shots", yaxis_title=key.replace("_", " "),
                      yaxis_range=[0, 1.05], height=350)
    return fig


# --- generation: chain of thought and instruction following ---------------------------------


def greedy(lm, prompts, max_new_tokens: int = 32, batch_size: int = 8,
           stop: str | None = "\n\n") -> list[str]:
    """Greedy continuations of `prompts` (left-padded batches), stripped, each ending at the
    end-of-turn token or before `stop` (a blank line: the end of a few-shot answer).
    Evaluation only: sampling lives in `labkit.decoding.generate`."""
    tok, out = lm.tokenizer, []
    pad = tok.pad_token_id or 0
    for b in range(0, len(prompts), batch_size):
        enc = [_ids(tok, p) for p in prompts[b:b + batch_size]]
        width = max(map(len, enc))
        check_fits(width, max_new_tokens, lm.context_length)
        ids = torch.tensor([[pad] * (width - len(e)) + e for e in enc], device=lm.device)
        mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in enc], device=lm.device)
        kw = dict(stop_strings=[stop], tokenizer=tok) if stop else {}
        with torch.inference_mode():
            gen = lm.model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                                    max_new_tokens=max_new_tokens, pad_token_id=pad,
                                    eos_token_id=lm.eos_token_id, temperature=None, top_p=None,
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


# --- the widget: shots and order -> distribution over labels ---------------------------------


def label_bars(choices, probs, gold: int | None = None, title: str | None = None):
    """Figure factory: a bar per label, the correct one highlighted."""
    import plotly.graph_objects as go

    colors = ["#d9480f" if j == gold else "#9aa5b1" for j in range(len(choices))]
    fig = go.Figure(go.Bar(x=list(choices), y=[float(p) for p in probs], marker_color=colors))
    fig.update_layout(title=title, yaxis_range=[0, 1], yaxis_title="p(label | prompt)",
                      height=300)
    return fig


class LabelPanel:
    """Sliders for the number of shots and their order, a test item, raw vs chat: the bar
    chart shows the distribution over labels. The three layers of DESIGN.md: `score_task`
    (pure), `label_bars` (figure factory), and this thin panel, whose callback updates the
    trace inside `fig.batch_update()`. Scores are cached per setting, so going back to a
    setting costs no model call; sliders have `continuous_update=False`. `result` is the
    last `Scores` (one item); `error` shows a callback's error inside the panel."""

    def __init__(self, lm, task: Task, *, max_shots: int = 8, orders: int = 5, item: int = 0):
        import ipywidgets as W
        import plotly.graph_objects as go

        self.lm, self.task, self.cache = lm, task, {}
        self.shots = W.IntSlider(0, min=0, max=min(max_shots, len(task.train)),
                                 description="shots", continuous_update=False)
        self.order = W.IntSlider(0, min=0, max=orders - 1, description="order",
                                 continuous_update=False)
        self.item = W.Dropdown(options=[(ex.text[:60], i) for i, ex in enumerate(task.test)],
                               value=item, description="item")
        self.chat = W.ToggleButtons(options=[("raw", False), ("chat", True)], value=False)
        self.error, self.readout = W.HTML(), W.HTML()
        self.result = self.compute()
        self.fig = go.FigureWidget(label_bars(self.result.choices[0], self.result.probs[0],
                                              int(self.result.gold[0])))
        for w in (self.shots, self.order, self.item, self.chat):
            w.observe(self._on_change, names="value")
        self.widget = W.VBox([self.item, W.HBox([self.shots, self.order, self.chat]),
                              self.error, self.fig, self.readout])
        self._draw()

    def compute(self) -> Scores:
        """Layer 1: the scores of the current setting (cached)."""
        order = self.order.value if self.shots.value > 1 else 0     # 0 or 1 shot: one order
        key = (self.item.value, self.shots.value, order, self.chat.value)
        if key not in self.cache:
            self.cache[key] = score_task(self.lm, self.task, [self.task.test[key[0]]],
                                         shots=key[1], order=key[2], chat=key[3])
        return self.cache[key]

    def _on_change(self, change=None):
        from .widgets import guarded

        def update():
            self.result = self.compute()
            self._draw()
        guarded(update, self.error)

    def _draw(self):
        r = self.result
        gold = int(r.gold[0])
        with self.fig.batch_update():
            self.fig.data[0].x = r.choices[0]
            self.fig.data[0].y = r.probs[0].tolist()
            self.fig.data[0].marker.color = ["#d9480f" if j == gold else "#9aa5b1"
                                             for j in range(len(r.choices[0]))]
        self.readout.value = (f"correct label <b>{html.escape(r.choices[0][gold])}</b>: "
                              f"p = {float(r.probs[0, gold]):.3f}; mass on the label set "
                              f"{float(r.mass[0]):.3f}; {len(self.cache)} settings cached")

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)
