"""Scoring controlled generations: attribute success, fluency, diversity, distance, cost.

The scoreboard of PPLM's tables (Dathathri et al. 2020, Table 3-4), reused by notebook 07:

* attribute success -- `bag_rate` (share of texts using a bag word), `lexicon_positive`
  (share judged positive by the VADER lexicon, Hutto & Gilbert 2014; an outside judge that
  no control optimises directly), or a discriminator's mean probability (`disc_score`);
* fluency -- `fluency`: mean perplexity of the continuations under the *base* model
  (exp of the mean negative log-likelihood per token; lower is more fluent);
* diversity -- `distinct_n`: distinct n-grams / all n-grams over a set of texts (Li et al.
  2016, "A Diversity-Promoting Objective Function for Neural Conversation Models", §4.1);
* distance from the base model -- `mean_kl`: KL(controlled ‖ base) of the next-token
  distributions at each generated step, averaged (nats);
* cost -- `seconds_per_token` and `cost_ratio`: seconds per generated token, as a ratio to
  plain generation, timed interleaved so that machine load hits both sides alike.
* the attribute model -- `Discriminator`, a linear head on the frozen LM's mean last hidden
  state (PPLM's, Dathathri et al. 2020, §3.3), `train_discriminator`, and `sentiment_data`:
  sentences the model writes, labelled by the lexicon (not by what was asked).

Left out on purpose: MAUVE, human ratings, and external fluency judges (a bigger LM): the
base model is the only judge the lab ships.
"""
from __future__ import annotations

import copy
import re
import statistics
import time

import torch

from .dist import perplexity

# --- attribute success ------------------------------------------------------------------------


def words(text: str) -> list[str]:
    """Lower-cased words of `text` (letters, digits and apostrophes)."""
    return re.findall(r"[a-z0-9']+", text.lower())


def bag_rate(texts, bag_words) -> float:
    """Share of texts containing at least one word of the bag (whole words, any case)."""
    bag = {w.lower().strip() for w in bag_words}
    return sum(bool(bag & set(words(t))) for t in texts) / max(len(texts), 1)


def bag_frequency(text: str, bag_words) -> float:
    """Share of the words of `text` that are bag words (1.0 is pure regurgitation)."""
    bag = {w.lower().strip() for w in bag_words}
    ws = words(text)
    return sum(w in bag for w in ws) / max(len(ws), 1)


_VADER = None


def sentiment(text: str) -> float:
    """VADER's compound sentiment score of `text`, in [-1, 1] (needs `vaderSentiment`)."""
    global _VADER
    if _VADER is None:
        try:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError as e:
            raise ImportError("the sentiment lexicon needs `pip install vaderSentiment`") from e
        _VADER = SentimentIntensityAnalyzer()
    return float(_VADER.polarity_scores(text)["compound"])


def lexicon_label(text: str, margin: float = 0.05) -> int | None:
    """1 positive, 0 negative, None neutral (|compound| < margin), by the VADER lexicon."""
    s = sentiment(text)
    return 1 if s >= margin else 0 if s <= -margin else None


def lexicon_positive(texts, margin: float = 0.05) -> float:
    """Share of texts the lexicon judges positive."""
    return sum(lexicon_label(t, margin) == 1 for t in texts) / max(len(texts), 1)


def disc_score(lm, disc, texts, target=1) -> float:
    """Mean probability of class `target` under a `labkit.steer.Discriminator`."""
    texts = [t for t in texts if t.strip()]
    if not texts:
        return 0.0
    return float(discriminator_probs(lm, disc, texts)[:, disc.target_index(target)].mean())


# --- fluency and diversity ----------------------------------------------------------------------


def fluency(lm, prompts, texts) -> float:
    """Mean perplexity of each continuation given its prompt, under the base model `lm`
    (empty continuations are skipped). `prompts` is one prompt or one per text."""
    if isinstance(prompts, str):
        prompts = [prompts] * len(texts)
    ppl = [perplexity(lm, p, t) for p, t in zip(prompts, texts) if t.strip()]
    return statistics.fmean(ppl) if ppl else float("nan")


def distinct_n(texts, n: int) -> float:
    """Distinct n-grams / all n-grams, over the words of all `texts` (1.0: no repetition).

    Naive definition: collect every n-gram of every text in a list; len(set(list)) / len(list).
    """
    if n < 1:
        raise ValueError(f"n must be ≥ 1, got {n}")
    grams = [tuple(ws[i:i + n]) for t in texts for ws in [words(t)] for i in range(len(ws) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


# --- distance from the base model -----------------------------------------------------------------


def mean_kl(steps) -> float:
    """Mean over generated steps of KL(after ‖ before) in nats, from `generate(..., trace=True)`
    steps: how far the controlled next-token distribution is from the base model's."""
    kls = [s.after.kl(s.before) for s in steps]
    return statistics.fmean(kls) if kls else 0.0


# --- cost ---------------------------------------------------------------------------------------


def seconds_per_token(fn, n_tokens: int, repeats: int = 3) -> float:
    """Median seconds per token of `fn()`, which generates `n_tokens` tokens."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) / n_tokens)
    return statistics.median(times)


def cost_ratio(fn, baseline, repeats: int = 3) -> float:
    """Median over interleaved rounds of time(fn) / time(baseline): both must generate the same
    number of tokens (use stop_at_eos=False). One warm-up call of each is not timed."""
    fn(), baseline()
    ratios = []
    for r in range(repeats):
        order = (fn, baseline) if r % 2 == 0 else (baseline, fn)
        t = {}
        for f in order:
            t0 = time.perf_counter()
            f()
            t[f] = time.perf_counter() - t0
        ratios.append(t[fn] / t[baseline])
    return statistics.median(ratios)


def scoreboard(lm, prompts, texts, *, bag_words=None, steps=None, disc=None, target=1) -> dict:
    """One row of the scoreboard for `texts` (continuations of `prompts`): the figures above."""
    row = {"positive (lexicon)": lexicon_positive(texts),
           "perplexity": fluency(lm, prompts, texts),
           "distinct-1": distinct_n(texts, 1), "distinct-2": distinct_n(texts, 2),
           "distinct-3": distinct_n(texts, 3)}
    if bag_words is not None:
        row["bag rate"] = bag_rate(texts, bag_words)
    if disc is not None:
        row["discriminator"] = disc_score(lm, disc, texts, target)
    if steps is not None:
        row["KL from base"] = mean_kl(steps)
    return row


# --- a method over a set of prompts --------------------------------------------------------------


def evaluate(lm, prompts, generate_fn, *, seeds=(0,), bag_words=None, disc=None, target=1) -> dict:
    """Run `generate_fn(prompt, seed) -> (text, steps)` on every prompt and seed, and score the
    texts with `scoreboard`; the row also holds the texts and seconds per token."""
    texts, ps, steps, t0, n_tok = [], [], [], time.perf_counter(), 0
    for prompt in prompts:
        for seed in seeds:
            text, s = generate_fn(prompt, seed)
            texts.append(text)
            ps.append(prompt)
            steps.extend(s)
            n_tok += max(len(s), 1)
    seconds = (time.perf_counter() - t0) / n_tok
    row = scoreboard(lm, ps, texts, bag_words=bag_words, steps=steps, disc=disc, target=target)
    return {**row, "seconds/token": seconds, "texts": texts}


def tradeoff_figure(curves: dict, x: str, y: str, *, title: str | None = None):
    """One line per method: {method: [row, ...]} (rows from `evaluate`, in order of strength),
    `y` against `x` (two keys of the rows). Returns a plotly figure."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for method, rows in curves.items():
        fig.add_scatter(x=[r[x] for r in rows], y=[r[y] for r in rows], mode="lines+markers",
                        name=method, text=[str(r.get("strength", "")) for r in rows],
                        hovertemplate=f"{method}<br>strength %{{text}}<br>{x} %{{x:.3g}}"
                                      f"<br>{y} %{{y:.3g}}<extra></extra>")
    fig.update_layout(title=title or f"{y} vs {x}", xaxis=dict(title=x), yaxis=dict(title=y),
                      height=360, template="plotly_white", margin=dict(l=50, r=20, t=50, b=50))
    return fig


# --- the attribute discriminator ----------------------------------------------------------------


class Discriminator(torch.nn.Module):
    """p(a | x) = softmax(W · mean_t h_t(x) + b): a linear head on the frozen LM's mean last
    hidden state (PPLM-Discrim, Dathathri et al. 2020, §3.3)."""

    def __init__(self, hidden_size: int, classes=("negative", "positive")):
        super().__init__()
        self.hidden_size, self.classes = int(hidden_size), list(classes)
        self.head = torch.nn.Linear(self.hidden_size, len(self.classes))

    def forward(self, mean_hidden: torch.Tensor) -> torch.Tensor:
        """mean_hidden [batch, hidden] -> class logits [batch, classes]."""
        if mean_hidden.shape[-1] != self.hidden_size:
            raise ValueError(f"this discriminator reads hidden states of size {self.hidden_size}, "
                             f"got {mean_hidden.shape[-1]}: it was trained on another model")
        return self.head(mean_hidden)

    def check(self, lm) -> None:
        """Raise a ValueError if `lm`'s hidden size is not the one this head was trained on."""
        size = int(lm.model.config.hidden_size)
        if size != self.hidden_size:
            raise ValueError(f"the discriminator was trained on a model with hidden size "
                             f"{self.hidden_size}, but {lm.name!r} has {size}: train one on "
                             "this model (lk.steer.train_discriminator)")

    def on(self, device) -> "Discriminator":
        """This head on `device`: itself if it is there already, else a copy moved there. It is
        trained on the CPU (`train_discriminator`); guidance and PPLM feed it the LM's hidden
        states, so they use it on the LM's device -- without moving the caller's head."""
        if self.head.weight.device == torch.device(device):
            return self
        return copy.deepcopy(self).to(device)

    def target_index(self, target) -> int:
        if isinstance(target, str):
            if target not in self.classes:
                raise ValueError(f"unknown class {target!r}; the classes are {self.classes}")
            return self.classes.index(target)
        if not 0 <= int(target) < len(self.classes):
            raise ValueError(f"target must be one of 0..{len(self.classes) - 1}, got {target}")
        return int(target)


def mean_hidden(lm, texts, batch_size: int = 16) -> torch.Tensor:
    """The mean last hidden state of each text under `lm` (padding excluded) -> [n, hidden]."""
    tok = lm.tokenizer
    feats = []
    for i in range(0, len(texts), batch_size):
        enc = tok(list(texts[i:i + batch_size]), return_tensors="pt", padding=True,
                  add_special_tokens=False).to(lm.device)
        with torch.inference_mode():
            h = lm.model.base_model(**enc).last_hidden_state.float()    # batch seq hidden
        mask = enc.attention_mask[..., None].float()                    # batch seq 1
        feats.append(((h * mask).sum(1) / mask.sum(1).clamp(min=1)).cpu())
    return torch.cat(feats)


def train_discriminator(lm, texts, labels, *, classes=("negative", "positive"), epochs: int = 100,
                        lr: float = 1e-2, weight_decay: float = 1e-3, seed: int = 0):
    """Fit a `Discriminator` on (texts, labels): features once (the LM is frozen), then full-batch
    Adam on the cross-entropy. Returns (discriminator, history) with history a list of
    {"epoch", "loss", "accuracy", "seconds"} (training-set figures)."""
    if len(texts) != len(labels) or not texts:
        raise ValueError(f"need as many labels as texts (and at least one), got {len(texts)} "
                         f"texts and {len(labels)} labels")
    y = torch.as_tensor(labels, dtype=torch.long)
    if y.min() < 0 or y.max() >= len(classes):
        raise ValueError(f"labels must be in 0..{len(classes) - 1}")
    t0 = time.perf_counter()
    x = mean_hidden(lm, texts)                                          # n hidden
    mu, sd = x.mean(0), x.std().clamp(min=1e-6)     # one scale for every dimension: a
    # per-dimension one gives huge weights to quiet dimensions, and PPLM's gradient then
    # pushes the hidden state where the LM never goes (the text turns to garbage)
    with torch.random.fork_rng(devices=[]):         # seed the head's init, not the caller's RNG
        torch.manual_seed(seed)
        disc = Discriminator(x.shape[1], classes)
    opt = torch.optim.Adam(disc.head.parameters(), lr=lr, weight_decay=weight_decay)
    history = []
    for epoch in range(epochs):
        logits = disc.head((x - mu) / sd)
        loss = torch.nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append({"epoch": epoch, "loss": float(loss.detach()),
                        "accuracy": float((logits.argmax(-1) == y).float().mean()),
                        "seconds": time.perf_counter() - t0})
    with torch.no_grad():       # fold the standardisation into the head: it reads raw h
        disc.head.weight.div_(sd)
        disc.head.bias.sub_(disc.head.weight @ mu)
    return disc.eval().requires_grad_(False), history


def discriminator_probs(lm, disc: Discriminator, texts) -> torch.Tensor:
    """p(class | text) for each text -> [n, classes]."""
    disc.check(lm)
    return torch.softmax(disc(mean_hidden(lm, texts).to(disc.head.weight.device)), dim=-1)


# --- training data for the discriminator: generated sentences, labelled by a lexicon --------------

SENTENCE_TOPICS = ["a restaurant", "a movie", "the weather", "a holiday", "a new phone", "a book",
                   "a hotel", "a job", "a concert", "a neighbour", "a car", "a school"]


def sentiment_data(lm, n: int = 96, *, max_new_tokens: int = 24, batch_size: int = 24,
                   seed: int = 0, balance: bool = True):
    """(texts, labels): sentences the model writes about everyday topics, asked half the time
    for a cheerful and half the time for a grumpy one, labelled 1/0 by the VADER lexicon --
    *not* by what was asked (sentences the lexicon finds neutral are dropped; with `balance`
    the larger class is cut to the size of the smaller). Batched sampling with transformers'
    `generate`, which draws from torch's global generator: `seed` seeds it inside a fork, so
    the caller's random state is left as it was."""
    tok = lm.tokenizer
    asks = [f"Write one {mood} sentence about {topic}."
            for topic in SENTENCE_TOPICS for mood in ("cheerful", "grumpy")]
    side, tok.padding_side = tok.padding_side, "left"
    texts, labels = [], []
    rng = torch.random.fork_rng(devices=list(range(torch.cuda.device_count())))
    try:
        rng.__enter__()                             # the caller's RNG state is restored after
        torch.manual_seed(seed)
        for i in range(0, n, batch_size):
            prompts = [lm.chat_prompt(asks[(i + j) % len(asks)])
                       for j in range(min(batch_size, n - i))]
            enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.inference_mode():
                out = lm.model.generate(**enc.to(lm.device), do_sample=True, top_p=0.95,
                                        max_new_tokens=max_new_tokens,
                                        pad_token_id=tok.pad_token_id)
            for row in tok.batch_decode(out[:, enc.input_ids.shape[1]:], skip_special_tokens=True):
                text = row.strip().split("\n")[0].strip('"')
                label = lexicon_label(text) if text else None
                if label is not None:
                    texts.append(text)
                    labels.append(label)
    finally:
        tok.padding_side = side
        rng.__exit__(None, None, None)
    if balance and len(set(labels)) == 2:          # as many of each class: drop the surplus
        n_min = min(labels.count(0), labels.count(1))
        keep, seen = [], {0: 0, 1: 0}
        for text, label in zip(texts, labels):
            if seen[label] < n_min:
                keep.append((text, label))
                seen[label] += 1
        texts, labels = [t for t, _ in keep], [y for _, y in keep]
    return texts, labels
