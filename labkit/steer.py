"""Tweaking the next-token distribution at inference: logit bias, bag-of-words, classifier guidance.

Each control is a transformers `LogitsProcessor` (input_ids [batch, seq], scores [batch, vocab]
-> scores), so it composes with the knobs, with `Distribution.apply` and with `lk.generate`.

* `LogitBias({token_id: b})`: z_i + b_i. The same as transformers' `SequenceBiasLogitsProcessor`
  for one-token sequences (a test checks it).
* `BagOfWords(tokenizer, words, strength)`: z_i + s for every token that *starts* a word of the
  bag -- ``word``, ``␣word``, ``Word`` and ``␣Word`` -- so p_i is multiplied by e^s before
  renormalising. A word of several tokens gets its first token boosted, and once the text
  ends inside the word (its first j tokens), its token j+1 is boosted too: multi-token words
  are completed, not dropped (the original PPLM code keeps only one-token words).
* `Discriminator` (defined in `labkit.metrics`, re-exported here): a linear head on the frozen
  model's mean last hidden state, p(a | x) = softmax(W · mean_t h_t + b) -- PPLM's attribute
  model (Dathathri et al. 2020, §3.3). `train_discriminator` fits it in seconds.
* `ClassifierGuidance(lm, disc, target, gamma, top_k)`: FUDGE-style guidance (Yang & Klein
  2021, "FUDGE: Controlled Text Generation With Future Discriminators", eq. 2): among the
  top-k candidates, score log p(x_t | x_<t) + γ · log p(a | x_≤t); everything else is masked.

The strength panel of notebook 06 comes in the three layers of DESIGN.md: `boost` (pure:
the distribution before and after, bag mass, KL) -> `boost_figure` (plotly) -> `strength_panel`
(ipywidgets; errors shown in the panel, last result in `.result`).

Cost: the bias and the bag are one indexed add (≈ free). Guidance runs the model body on
the k candidates at every step (one batched forward of k single tokens); the chosen token is
always one of them, so their key-value cache is reused at the next step instead of running
the context again.

Left out on purpose: FUDGE's separately trained LSTM (we reuse the LM's own hidden states,
as PPLM does), GeDi's class-conditional LM, and batches of several prompts in guidance.
"""
from __future__ import annotations

import math

import torch
from transformers import LogitsProcessor

from .metrics import (Discriminator, discriminator_probs, mean_hidden,  # noqa: F401
                      sentiment_data, train_discriminator)          # (re-exported)

# A small bag for "positive sentiment", used by notebook 06 (PPLM's own bags are larger).
POSITIVE_WORDS = ["happy", "love", "wonderful", "great", "beautiful", "joy", "delightful",
                  "amazing", "excellent", "lovely", "perfect", "fantastic", "glad", "best",
                  "good", "nice", "smile", "kind", "brilliant", "enjoy"]


def _strength(name: str, value, *, allow_negative: bool = False, hint: str = "") -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if value < 0 and not allow_negative:
        raise ValueError(f"{name} must be ≥ 0, got {value}{hint}")
    return value


# --- logit bias --------------------------------------------------------------------------------


class LogitBias(LogitsProcessor):
    """Add a fixed bias to the logits of some tokens: z_i + b_i. A bias of -inf bans a token;
    +inf and NaN are refused (use `lk.controls.Greedy` or a token pool to force a token)."""

    def __init__(self, bias: dict):
        if not isinstance(bias, dict) or not bias:
            raise ValueError("LogitBias needs a non-empty {token_id: bias} dict")
        ids, values = [], []
        for token_id, b in bias.items():
            if isinstance(token_id, bool) or not isinstance(token_id, int) or token_id < 0:
                raise ValueError(f"token ids must be whole numbers ≥ 0, got {token_id!r} "
                                 "(turn a word into ids with tokenizer.encode)")
            b = float(b)
            if math.isnan(b) or b == math.inf:
                raise ValueError(f"the bias of token {token_id} is {b}: use a finite number "
                                 "(or -inf to ban the token)")
            ids.append(token_id)
            values.append(b)
        self.ids = torch.tensor(ids, dtype=torch.long)
        self.values = torch.tensor(values, dtype=torch.float32)

    def __call__(self, input_ids, scores):
        if int(self.ids.max()) >= scores.shape[-1]:
            raise ValueError(f"token id {int(self.ids.max())} is outside the vocabulary "
                             f"({scores.shape[-1]} tokens)")
        bias = torch.zeros(scores.shape[-1], dtype=scores.dtype, device=scores.device)
        bias[self.ids.to(scores.device)] = self.values.to(scores.device, scores.dtype)
        return scores + bias                                            # batch vocab

    def __repr__(self):
        return f"LogitBias({len(self.ids)} tokens)"


# --- bag of words -----------------------------------------------------------------------------


def word_variants(word: str) -> list[str]:
    """The spellings that start a word in running text: word, ␣word, Word, ␣Word (no repeats)."""
    forms = [word, word[:1].upper() + word[1:]]
    return list(dict.fromkeys(f for w in forms for f in (w, " " + w)))


def bag_sequences(tokenizer, words) -> dict[str, list[list[int]]]:
    """{word: [token ids of each variant]} -- the token sequences BagOfWords watches for."""
    if isinstance(words, str):
        words = [words]
    words = [w.strip() for w in words] if words is not None else []
    if not words or not any(words):
        raise ValueError("the bag of words is empty: give at least one word, e.g. ['happy']")
    if not all(words):
        raise ValueError("the bag contains an empty (or whitespace-only) word")
    unk = getattr(tokenizer, "unk_token_id", None)
    out = {}
    for word in dict.fromkeys(words):
        seqs = [tokenizer(v, add_special_tokens=False).input_ids for v in word_variants(word)]
        if any(not s or (unk is not None and unk in s) for s in seqs):
            raise ValueError(f"the tokenizer cannot encode {word!r} (it maps to no token or to "
                             "the unknown token), so it cannot be boosted")
        out[word] = seqs
    return out


class BagOfWords(LogitsProcessor):
    """Boost every token that starts a word of the bag by `strength` (a log-odds boost: each
    such token's probability is multiplied by e^strength before renormalising).

    Words with no one-token spelling (e.g. ' xylophone' = ' xyl' + 'ophone') cannot be boosted
    as a whole: their first token is boosted, and when the text ends with the first j tokens
    of the word, token j+1 is boosted too, so the word is completed. They are listed in
    `multi_token`; `multi_token="error"` refuses them instead.
    """

    def __init__(self, tokenizer, words, strength: float = 2.0, *, multi_token: str = "continue"):
        if multi_token not in ("continue", "error"):
            raise ValueError(f"multi_token must be 'continue' or 'error', got {multi_token!r}")
        self.strength = _strength("the bag-of-words strength", strength, hint=(
            ": it is a boost; to steer *away* from words use lk.controls.LogitBias with "
            "negative biases"))
        self.sequences = bag_sequences(tokenizer, words)
        self.words = list(self.sequences)
        self.multi_token = [w for w, seqs in self.sequences.items()
                            if not any(len(s) == 1 for s in seqs)]
        if multi_token == "error" and self.multi_token:
            raise ValueError(f"no spelling of {self.multi_token} is a single token, so these "
                             "words cannot be boosted as a whole; use multi_token='continue' "
                             "to boost their first token and complete them token by token")
        first = {s[0] for seqs in self.sequences.values() for s in seqs}
        self.token_ids = torch.tensor(sorted(first), dtype=torch.long)
        self._long = [s for seqs in self.sequences.values() for s in seqs if len(s) > 1]

    def explain(self) -> str:
        """What is boosted, in words (which words are completed token by token)."""
        text = f"{len(self.words)} words -> {len(self.token_ids)} first tokens boosted by " \
               f"{self.strength:g}"
        if self.multi_token:
            text += (f"; no single-token spelling for {self.multi_token}: their first token is "
                     "boosted, then the rest is completed token by token")
        return text

    def continuation_ids(self, context: list[int]) -> list[int]:
        """Tokens that would continue a bag word that `context` (token ids) ends inside."""
        out = []
        for seq in self._long:
            for j in range(1, len(seq)):
                if len(context) >= j and context[-j:] == seq[:j]:
                    out.append(seq[j])
        return out

    def __call__(self, input_ids, scores):
        boost = torch.zeros_like(scores)                                # batch vocab
        boost[:, self.token_ids.to(scores.device)] = self.strength
        if self._long and input_ids is not None and input_ids.shape[-1]:
            for row, ids in enumerate(input_ids.tolist()):
                more = self.continuation_ids(ids[-8:])
                if more:
                    boost[row, more] = self.strength
        return scores + boost

    def __repr__(self):
        return f"BagOfWords({len(self.words)} words, strength={self.strength:g})"


# --- classifier guidance (FUDGE) ----------------------------------------------------------------


class ClassifierGuidance(LogitsProcessor):
    """FUDGE-style guidance: among the top-k candidates x_t, score
    log p(x_t | x_<t) + γ · log p(a | x_≤t) with p(a | ·) the discriminator on the mean hidden
    state of the prefix with the candidate appended; tokens outside the top-k are masked.

    γ = 0 is top-k sampling; γ → ∞ picks the candidate the discriminator likes best.
    Batch size 1 only (the lab generates one text at a time).
    """

    def __init__(self, lm, discriminator: Discriminator, target=1, gamma: float = 1.0,
                 top_k: int = 5):
        discriminator.check(lm)
        self.gamma = _strength("gamma", gamma, hint=": γ weighs log p(a | prefix); to steer "
                               "towards the other class, change `target`")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a whole number ≥ 1, got {top_k!r}")
        self.lm, self.disc, self.top_k = lm, discriminator.on(lm.device), top_k
        self.target = discriminator.target_index(target)
        self._state = None      # (ids covered by the candidate cache, candidates, cache, h, hsum)

    def _body(self, **kw):
        return self.lm.model.base_model(use_cache=True, **kw)

    def attribute_logprob(self, input_ids: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """log p(a | x_<t, x_t = c) for each candidate c [k] -> [k]."""
        ids = input_ids.to(self.lm.device)                              # 1 seq
        n = ids.shape[1]
        st = self._state
        with torch.inference_mode():
            if (st is not None and n == st[0].shape[1] + 1 and torch.equal(ids[:, :-1], st[0])
                    and bool((st[1] == ids[0, -1]).any())):
                j = int((st[1] == ids[0, -1]).nonzero()[0])             # reuse the chosen row
                cache, hsum = st[2], st[4] + st[3][j]
                cache.batch_select_indices(torch.tensor([j], device=ids.device))
            else:                                                       # run the context
                out = self._body(input_ids=ids)
                cache, hsum = out.past_key_values, out.last_hidden_state[0].float().sum(0)
            k = candidates.numel()
            cache.batch_repeat_interleave(k)
            out = self._body(input_ids=candidates.to(ids.device)[:, None], past_key_values=cache)
            h = out.last_hidden_state[:, -1].float()                    # k hidden
            self._state = (ids, candidates.to(ids.device), out.past_key_values, h, hsum)
            logp = torch.log_softmax(self.disc((hsum + h) / (n + 1)), dim=-1)
        return logp[:, self.target].to(torch.float32)                   # k

    def __call__(self, input_ids, scores):
        if scores.shape[0] != 1:
            raise ValueError("ClassifierGuidance handles one sequence at a time (batch size 1)")
        k = min(self.top_k, scores.shape[-1])
        cand_scores, cand = scores[0].topk(k)                           # k
        keep = torch.isfinite(cand_scores)
        cand, cand_scores = cand[keep], cand_scores[keep]
        if input_ids is None or input_ids.shape[-1] == 0:
            raise ValueError("ClassifierGuidance needs the context tokens (a prompt)")
        logp_a = self.attribute_logprob(input_ids[:1], cand).to(scores.device)
        out = torch.full_like(scores, -math.inf)
        out[0, cand] = cand_scores + self.gamma * logp_a.to(scores.dtype)
        return out

    def __repr__(self):
        return (f"ClassifierGuidance(target={self.disc.classes[self.target]!r}, "
                f"gamma={self.gamma:g}, top_k={self.top_k})")


# --- the strength panel: pure function -> figure -> thin widget (DESIGN.md, example 9) ----------


class Boosted:
    """A next-token distribution before and after a bag-of-words boost, with its numbers."""

    def __init__(self, before, bag: BagOfWords):
        self.before, self.bag = before, bag
        self.after = before.apply(bag)
        self.mass_before = before.mass(bag.token_ids)       # the bag's first tokens
        self.mass_after = self.after.mass(bag.token_ids)
        self.kl = self.after.kl(before)                      # KL(after ‖ model), nats

    def summary(self) -> str:
        return (f"strength {self.bag.strength:g} · bag mass {self.mass_before:.3f} → "
                f"{self.mass_after:.3f} · KL(after ‖ model) {self.kl:.3f} nats")


def boost(dist, tokenizer, words, strength: float) -> Boosted:
    """Layer 1 (no widgets): `dist` boosted by BagOfWords(tokenizer, words, strength)."""
    return Boosted(dist, BagOfWords(tokenizer, words, strength))


def boost_figure(result: Boosted, k: int = 15):
    """Layer 2: bars of the top-k tokens *after* the boost (so boosted tokens show), the model's
    probability in grey beside each (trace 0 model, trace 1 after)."""
    from . import viz

    return viz.bars(result.before, result.after, k, rank_by="after",
                    names=("model", "after the boost"),
                    title="top next tokens after the boost, and the model's own probability")


def strength_panel(lm, prompt: str, words, strength: float = 2.0, k: int = 15):
    """Layer 3: a prompt box (calls the model on Enter) and a strength slider (re-applies the
    boost to the cached logits); errors show in red in the panel; `.result` is the last Boosted."""
    import html

    import ipywidgets as W
    import plotly.graph_objects as go

    from . import viz
    from .dist import next_token
    from .widgets import guarded

    dist = next_token(lm, prompt)
    panel = W.VBox()
    panel.result = boost(dist, lm.tokenizer, words, strength)
    panel.prompt = W.Text(value=prompt, description="prompt", continuous_update=False)
    panel.strength = W.FloatSlider(value=strength, min=0.0, max=15.0, step=0.5,
                                   description="strength", continuous_update=False)
    panel.error, panel.readout = W.HTML(), W.HTML()
    panel.fig = go.FigureWidget(boost_figure(panel.result, k))
    state = {"dist": dist}

    def redraw():
        panel.result = boost(state["dist"], lm.tokenizer, words, panel.strength.value)
        labels, p_before, p_after = viz.bars_data(panel.result.before, panel.result.after, k,
                                                  rank_by="after")
        with panel.fig.batch_update():
            panel.fig.data[0].x, panel.fig.data[0].y = labels, p_before
            panel.fig.data[1].x, panel.fig.data[1].y = labels, p_after
        panel.readout.value = html.escape(panel.result.summary())

    def guard(fn):
        guarded(fn, panel.error)

    def on_prompt(change):
        def update():
            state["dist"] = next_token(lm, panel.prompt.value)
            redraw()
        guard(update)

    panel.prompt.observe(on_prompt, names="value")
    panel.strength.observe(lambda change: guard(redraw), names="value")
    panel.children = [panel.prompt, panel.strength, panel.error, panel.fig, panel.readout]
    redraw()
    return panel
