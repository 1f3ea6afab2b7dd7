"""Tweaking the next-token distribution at inference: logit bias, bag-of-words, classifier guidance.

Each control is a transformers `LogitsProcessor` (input_ids [batch, seq], scores [batch, vocab]
-> scores), so it composes with the knobs, with `Distribution.apply` and with `lk.generate`.

* `LogitBias({token_id: b})`: z_i + b_i. The same as transformers' `SequenceBiasLogitsProcessor`
  for one-token sequences (a test checks it).
* `BagOfWords(tokenizer, words, strength)`: z_i + s for every token that *is* a word of the
  bag -- its one-token spellings among ``word``, ``␣word``, ``Word`` and ``␣Word`` -- so p_i
  is multiplied by e^s before renormalising (PPLM's bag, Dathathri et al. 2020, §3.2, keeps
  only one-token words too). A spelling of several tokens is never *started* by the boost
  (its first piece -- ``w`` of ``wonderful``, ``ĠFant`` of `` Fantastic`` -- starts countless
  other words); once the model itself has written its first j tokens, token j+1 is boosted,
  so the word is completed rather than dropped.
* `ClassifierGuidance(lm, disc, target, gamma, top_k)`: FUDGE-style guidance (Yang & Klein
  2021, "FUDGE: Controlled Text Generation With Future Discriminators", eq. 2): among the
  top-k candidates, score log p(x_t | x_<t) + γ · log p(a | x_≤t); everything else is masked.
  The attribute model is `labkit.discriminator.Discriminator` (re-exported here with
  `train_discriminator`, `mean_hidden` and `discriminator_probs`).

The strength panel of notebook 06 comes in the three layers of DESIGN.md: `boost` (pure:
the distribution before and after, bag mass, KL, here) -> `labkit.viz.boosted` (the figure)
-> `labkit.widgets.StrengthPanel` (the panel).

Cost: the bias and the bag are one indexed add (≈ free). Guidance runs the model body on
the k candidates at every step (one batched forward of k single tokens); the chosen token is
always one of them, so their key-value cache is reused at the next step instead of running
the context again (`reset()`, which `lk.generate` calls at the start of every generation,
forgets it).

Left out on purpose: FUDGE's separately trained LSTM (we reuse the LM's own hidden states,
as PPLM does), GeDi's class-conditional LM, and batches of several prompts in guidance.
"""
from __future__ import annotations

import math

import torch
from transformers import LogitsProcessor

from .discriminator import (Discriminator, discriminator_probs, mean_hidden,  # noqa: F401
                            train_discriminator)                          # (re-exported)
from .dist import cache_of
from .dist import forward as run_model
from .validate import number, whole

# A small bag for "positive sentiment", used by notebook 06 (PPLM's own bags are larger).
POSITIVE_WORDS = ["happy", "love", "wonderful", "great", "beautiful", "joy", "delightful",
                  "amazing", "excellent", "lovely", "perfect", "fantastic", "glad", "best",
                  "good", "nice", "smile", "kind", "brilliant", "enjoy"]


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
    """The spellings of a word in running text: word, ␣word, Word, ␣Word (no repeats)."""
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
    """Boost every one-token spelling of a word of the bag by `strength` (a log-odds boost:
    each such token's probability is multiplied by e^strength before renormalising).

    `token_ids` are those one-token spellings (of word, ␣word, Word, ␣Word): the bag as PPLM
    keeps it, and what the bag mass, the plots and PPLM's bag loss count. A spelling of
    several tokens (``wonderful`` = ``w`` + ``onder`` + ``ful``) is never started by the boost
    -- its first piece starts countless other words, and boosting ``w`` at every step writes
    ``w w w``. Once the text ends with its first j tokens (the model wrote them itself), its
    token j+1 is boosted, so a word the model starts is completed. Words with no one-token
    spelling at all (' xylophone' = ' xyl' + 'ophone') are only ever completed; they are
    listed in `multi_token`, and `multi_token="error"` refuses them instead.
    """

    def __init__(self, tokenizer, words, strength: float = 2.0, *, multi_token: str = "continue"):
        if multi_token not in ("continue", "error"):
            raise ValueError(f"multi_token must be 'continue' or 'error', got {multi_token!r}")
        self.strength = number("the bag-of-words strength", strength, low=0, hint=(
            ": it is a boost; to steer *away* from words use lk.controls.LogitBias with "
            "negative biases"))
        self.sequences = bag_sequences(tokenizer, words)
        self.words = list(self.sequences)
        self.multi_token = [w for w, seqs in self.sequences.items()
                            if not any(len(s) == 1 for s in seqs)]
        if multi_token == "error" and self.multi_token:
            raise ValueError(f"no spelling of {self.multi_token} is a single token, so these "
                             "words cannot be boosted as a whole; use multi_token='continue' "
                             "to complete them token by token once the model starts them")
        one = {s[0] for seqs in self.sequences.values() for s in seqs if len(s) == 1}
        self.token_ids = torch.tensor(sorted(one), dtype=torch.long)
        self._long = [s for seqs in self.sequences.values() for s in seqs if len(s) > 1]
        self._window = max((len(s) for s in self._long), default=1)

    def explain(self) -> str:
        """What is boosted, in words (which spellings are only completed)."""
        text = (f"{len(self.words)} words -> {len(self.token_ids)} one-token spellings boosted "
                f"by {self.strength:g}")
        if self._long:
            text += (f"; {len(self._long)} spellings of several tokens are not started by the "
                     "boost, only completed once the model writes their first token")
        if self.multi_token:
            text += f" (no one-token spelling at all: {self.multi_token})"
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
            for row, ids in enumerate(input_ids[:, -self._window:].tolist()):
                more = self.continuation_ids(ids)
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
    Batch size 1 only (the lab generates one text at a time). It keeps the candidates'
    key-value cache from one step to the next (the chosen token is one of them); `reset()`
    forgets it, and `lk.generate` calls it at the start of every generation.
    """

    def __init__(self, lm, discriminator: Discriminator, target=1, gamma: float = 1.0,
                 top_k: int = 5):
        discriminator.check(lm)
        self.gamma = number("gamma", gamma, low=0, hint=": γ weighs log p(a | prefix); to steer "
                            "towards the other class, change `target`")
        self.top_k = whole("top_k", top_k, low=1)
        self.lm, self.disc = lm, discriminator.on(lm.device)
        self.target = discriminator.target_index(target)
        self.reset()

    def reset(self) -> None:
        """Forget the cache of the last step (a new generation starts)."""
        self._state = None      # (ids covered by the candidate cache, candidates, cache, h, hsum)

    def _body(self, ids, cache=None):
        return run_model(self.lm.model.base_model, ids, cache=cache, use_cache=True)

    def _reusable(self, ids) -> int | None:
        """The row of the stored candidate cache that `ids` extends by one token, or None."""
        st = self._state
        if st is None or ids.shape[1] != st[0].shape[1] + 1 or not torch.equal(ids[:, :-1], st[0]):
            return None
        hit = (st[1] == ids[0, -1]).nonzero()
        return int(hit[0]) if len(hit) else None

    def attribute_logprob(self, input_ids: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """log p(a | x_<t, x_t = c) for each candidate c [k] -> [k]."""
        ids = input_ids.to(self.lm.device)                              # 1 seq
        n = ids.shape[1]
        with torch.inference_mode():
            j = self._reusable(ids)
            if j is not None:                                           # reuse the chosen row
                _, _, cache, h, hsum = self._state
                hsum = hsum + h[j]
                cache.batch_select_indices(torch.tensor([j], device=ids.device))
            else:                                                       # run the context
                out = self._body(ids)
                cache, hsum = cache_of(out), out.last_hidden_state[0].float().sum(0)
            k = candidates.numel()
            cache.batch_repeat_interleave(k)
            out = self._body(candidates.to(ids.device)[:, None], cache)
            h = out.last_hidden_state[:, -1].float()                    # k hidden
            self._state = (ids, candidates.to(ids.device), cache_of(out), h, hsum)
            logp = torch.log_softmax(self.disc((hsum + h) / (n + 1)), dim=-1)
        return logp[:, self.target].to(torch.float32)                   # k

    def __call__(self, input_ids, scores):
        if scores.shape[0] != 1:
            raise ValueError("ClassifierGuidance handles one sequence at a time (batch size 1)")
        if input_ids is None or input_ids.shape[-1] == 0:
            raise ValueError("ClassifierGuidance needs the context tokens (a prompt)")
        k = min(self.top_k, scores.shape[-1])
        cand_scores, cand = scores[0].topk(k)                           # k
        keep = torch.isfinite(cand_scores)
        cand, cand_scores = cand[keep], cand_scores[keep]
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
        self.mass_before = before.mass(bag.token_ids)       # its one-token spellings
        self.mass_after = self.after.mass(bag.token_ids)
        self.kl = self.after.kl(before)                      # KL(after ‖ model), nats

    def summary(self) -> str:
        return (f"strength {self.bag.strength:g} · bag mass {self.mass_before:.3f} → "
                f"{self.mass_after:.3f} · KL(after ‖ model) {self.kl:.3f} nats")


def boost(dist, tokenizer, words, strength: float) -> Boosted:
    """Layer 1 (no widgets): `dist` boosted by BagOfWords(tokenizer, words, strength)."""
    return Boosted(dist, BagOfWords(tokenizer, words, strength))
