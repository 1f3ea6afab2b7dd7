"""Tasks generated in the repository: deterministic data sets with a train / test split.

Every data set of the lab is made here, from templates and fixed seeds, so that it is the
same on every machine and needs no download (DESIGN.md: data sets are generated in the
repository). A `Task` has an instruction, an item template, a label set (or per-item choices,
or free text) and two splits: `train` (where few-shot examples come from) and `test` (what
is measured).

* `sentiment()`: 120 templated reviews with unmistakable labels;
* `capitals()`: country -> capital as 4-way multiple choice (many capitals are several tokens);
* `arithmetic()`: two-step word problems with worked solutions (chain of thought);
* `instructions()`: requests with a checkable format constraint (`follows` checks it);
* `GENERAL_TEXT`: a dozen sentences of plain prose, whose perplexity measures what a
  fine-tune forgot (notebook 03);
* `sentiment_data(lm)`: sentences a model writes about everyday topics, labelled by the
  VADER lexicon (`labkit.lexicon`) -- the one data set made by a model, so it depends on
  the model and the seed (the same on one machine, every time); it trains notebook 06's
  attribute discriminator;
* `positive_continuations(lm)`: the model's own continuations of neutral prompts that the
  lexicon calls positive (rejection sampling), the shared steering task that notebook 03
  fine-tunes on and notebooks 06 and 07 score (`NEUTRAL_TEST`, never sampled from).

Left out on purpose: anything downloaded, and human-written data: the tasks are made to be
unambiguous, so that what is measured is the control, not label noise.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field


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


# Plain prose on everyday subjects, in no task's format: a fine-tune's *forgetting* is the rise
# of the model's perplexity on it (notebook 03). Written for the lab; no model wrote it.
GENERAL_TEXT = [
    "The river runs through the middle of the old town, and in summer children swim near the "
    "stone bridge while their parents sit in the shade.",
    "Bread is made from flour, water, salt and yeast. The dough is left to rise for a few "
    "hours before it is shaped and baked in a hot oven.",
    "Most birds build their nests in spring. They collect small sticks, grass and feathers, "
    "and some of them return to the same tree every year.",
    "The library opens at nine in the morning and closes at six. On Saturdays it holds a "
    "reading hour for young children.",
    "A bicycle is a simple machine. When you push the pedals, a chain turns the back wheel, "
    "and the bicycle moves forward.",
    "In the autumn the leaves of many trees turn yellow, orange and red, and then they fall "
    "to the ground before the first snow.",
    "The museum has a large collection of paintings, but most visitors come to see the old "
    "maps of the coast and the harbour.",
    "She learned to play the piano when she was seven. Now she practises every evening after "
    "dinner and plays in a small band.",
    "Farmers in the valley grow wheat, potatoes and apples. The apples are picked in "
    "September and sold at the market in town.",
    "The train leaves the station every hour. The journey to the coast takes about two hours, "
    "and the last part runs along the sea.",
    "Water boils at one hundred degrees Celsius at sea level. High in the mountains it boils "
    "at a lower temperature, so cooking takes longer.",
    "Our street has a bakery, a small shop and a park with tall trees. In the evening people "
    "walk their dogs there.",
]


TASKS = {"sentiment": sentiment, "capitals": capitals, "arithmetic": arithmetic,
         "instructions": instructions}


# --- model-written data: sentences labelled by a lexicon (notebook 06's discriminator) ---------

SENTENCE_TOPICS = ["a restaurant", "a movie", "the weather", "a holiday", "a new phone", "a book",
                   "a hotel", "a job", "a concert", "a neighbour", "a car", "a school"]


def sentiment_data(lm, n: int = 96, *, max_new_tokens: int = 24, batch_size: int = 24,
                   seed: int = 0, balance: bool = True):
    """(texts, labels): `n` sentences the model writes about everyday topics, asked half the
    time for a cheerful and half the time for a grumpy one, labelled 1/0 by the VADER lexicon
    -- *not* by what was asked, which a small model often ignores (sentences the lexicon finds
    neutral are dropped; with `balance` the larger class is cut to the size of the smaller).

    Sampling is batched (top-p 0.95) with transformers' `generate`, whose left-padded rows the
    lab's one-at-a-time loop does not do; each prompt is the chat template's text, tokenized
    by the one BOS rule (`lm.ids(text, start=False)`). `generate` draws from torch's global
    generator: `seed` seeds it inside a fork, so the caller's random state is left as it was."""
    import torch
    from tqdm.auto import tqdm

    from .pairs import padded

    from .lexicon import lexicon_label

    asks = [f"Write one {mood} sentence about {topic}."
            for topic in SENTENCE_TOPICS for mood in ("cheerful", "grumpy")]
    pad = lm.tokenizer.pad_token_id
    pad = lm.tokenizer.eos_token_id if pad is None else pad
    texts, labels = [], []
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))):
        torch.manual_seed(seed)
        for i in tqdm(range(0, n, batch_size), desc="writing sentences", unit="batch",
                      leave=False):
            rows = [lm.ids(lm.chat_prompt(asks[(i + j) % len(asks)]), start=False)
                    for j in range(min(batch_size, n - i))]
            ids, mask = padded(rows, pad, lm.device, left=True)       # batch seq, batch seq
            width = ids.shape[1]
            with torch.inference_mode():
                out = lm.model.generate(input_ids=ids, attention_mask=mask, do_sample=True,
                                        top_p=0.95, max_new_tokens=max_new_tokens,
                                        pad_token_id=pad)
            for row in lm.tokenizer.batch_decode(out[:, width:], skip_special_tokens=True):
                text = row.strip().split("\n")[0].strip('"')
                label = lexicon_label(text) if text else None
                if label is not None:
                    texts.append(text)
                    labels.append(label)
    if balance and len(set(labels)) == 2:          # as many of each class: drop the surplus
        n_min = min(labels.count(0), labels.count(1))
        keep, seen = [], {0: 0, 1: 0}
        for text, label in zip(texts, labels):
            if seen[label] < n_min:
                keep.append((text, label))
                seen[label] += 1
        texts, labels = [t for t, _ in keep], [y for _, y in keep]
    return texts, labels


# --- model-written data: positive continuations of neutral prompts (notebooks 03, 06, 07) ------

# notebook 06's six prompts are held out (notebook 07 scores every method on them); the model
# writes the training continuations for the others
NEUTRAL_TEST = ["The weather today is", "My neighbour said that", "The food at the new place",
                "I opened the letter and", "The meeting this morning", "Our trip to the city"]
NEUTRAL_TRAIN = ["The train to work was", "My new phone", "The film last night",
                 "Our teacher told us", "The hotel room was", "After lunch we",
                 "The book I am reading", "My first day at the job", "The concert on Friday",
                 "The garden behind the house", "When the bus arrived",
                 "The coffee shop on the corner",
                 "Our weekend at the lake", "The new road through town", "My brother called and",
                 "The shop was", "At the end of the match", "The museum downtown"]


@dataclass
class Continuations:
    """Rejection-sampled data: the model's own continuations that the lexicon calls positive."""

    pairs: list = field(repr=False)   # [(prompt, continuation)]: prompt + continuation is the text
    acceptance: float                 # accepted / sampled: what the condition costs in samples
    sampled: int                      # continuations drawn
    test_prompts: list = field(repr=False, default_factory=lambda: list(NEUTRAL_TEST))


def positive_continuations(lm, n: int = 64, *, prompts=None, max_new_tokens: int = 20,
                           batch_size: int = 24, max_samples: int | None = None,
                           top_p: float = 1.0, margin: float = 0.05, seed: int = 0,
                           progress: bool = True) -> Continuations:
    """Rejection sampling: continue each neutral prompt (`NEUTRAL_TRAIN` in turn) with the
    model's own samples, keep the continuations the VADER lexicon calls positive
    (`lexicon_label(text, margin) == 1`), until `n` are kept or `max_samples` (default 20·n)
    were drawn. Fine-tuning on the kept pairs is fitting π(x | prompt, positive): the
    continuations are exact samples of that conditional when `top_p` is 1 (plain sampling at
    temperature 1, no top-k), as in notebook 01's rejection sampling.

    A continuation is the sampled text up to its first newline, leading space included (so
    prompt + continuation is what the model wrote). Batches are left-padded for transformers'
    `generate`, raw prompts tokenized by the one BOS rule (`lm.ids(prompt, start=True)`);
    `seed` seeds torch's generator inside a fork, leaving the caller's random state as it was.
    The held-out prompts (`NEUTRAL_TEST`, notebook 06's) are never sampled from."""
    import torch
    from tqdm.auto import tqdm

    from .pairs import padded

    from .lexicon import lexicon_label
    from .validate import number, whole

    n, batch_size = whole("n", n, low=1), whole("batch_size", batch_size, low=1)
    max_new_tokens = whole("max_new_tokens", max_new_tokens, low=1)
    max_samples = whole("max_samples", 20 * n if max_samples is None else max_samples, low=1)
    top_p = number("top_p", top_p, low=0, low_open=True, high=1)
    prompts = list(NEUTRAL_TRAIN if prompts is None else prompts)
    if not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise ValueError("prompts must be a non-empty list of non-empty strings")
    pad = lm.tokenizer.pad_token_id
    pad = lm.tokenizer.eos_token_id if pad is None else pad
    kept, sampled = [], 0
    bar = tqdm(total=n, desc="sampling positive continuations", unit="kept", leave=False,
               disable=not progress)
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))):
        torch.manual_seed(seed)
        while len(kept) < n and sampled < max_samples:
            asked = [prompts[(sampled + j) % len(prompts)]
                     for j in range(min(batch_size, max_samples - sampled))]
            rows = [lm.ids(p, start=True) for p in asked]
            ids, mask = padded(rows, pad, lm.device, left=True)       # batch seq, batch seq
            width = ids.shape[1]
            with torch.inference_mode():
                out = lm.model.generate(input_ids=ids, attention_mask=mask, do_sample=True,
                                        temperature=1.0, top_k=0, top_p=top_p,
                                        max_new_tokens=max_new_tokens, pad_token_id=pad)
            sampled += len(rows)
            for prompt, text in zip(asked, lm.tokenizer.batch_decode(out[:, width:],
                                                                     skip_special_tokens=True)):
                text = text.split("\n")[0].rstrip()
                if text.strip() and lexicon_label(text, margin) == 1:
                    kept.append((prompt, text))
            bar.update(min(len(kept), n) - bar.n)
            bar.set_postfix(acceptance=f"{len(kept) / sampled:.0%}")
    bar.close()
    return Continuations(kept[:n], len(kept) / sampled, sampled)
