"""The toy world: a language model small enough to enumerate, the lab's ground truth.

A language model is a distribution π(x) over sequences x = (x_1 .. x_L). On a real model
the set of sequences is astronomically large, so π(x | c), π(x)·e^{r(x)/β}/Z and every
other quantity of notebook 01 can only be estimated. Here the world is tiny -- a few
weather words over a few days, N = len(vocab)**length sequences (1,296 by default) -- so
each of them is computed *exactly*, by one batched forward pass over all N sequences.

The world is made in three steps, deterministically from `seed`:

1. a small hidden grammar: a hidden season (summer / winter) drawn once per sequence, then
   a "sticky" Markov chain over the words whose rates depend on the season (a two-state
   mixture of Markov chains, i.e. a tiny HMM with a constant hidden state). The season is
   never written down, so conditioning on the *last* day changes the *first* (Bayes);
2. a corpus of `corpus_size` sequences sampled from it;
3. `.base`: a 2-layer transformer (transformers' `LlamaForCausalLM`) trained on that corpus
   to convergence. Training is full-batch on the distinct sequences weighted by their
   counts -- the same gradient as looping over the corpus, in a fraction of the time.

    world = make_world()
    world.vocab, world.length      # ['sun', 'cloud', ...], 5
    seqs = world.sequences()       # LongTensor [N, length], every sequence once
    logp = world.log_prob()        # exact log π(x) [N]; logp.exp().sum() == 1
    world.text(seqs[logp.argmax()])
    lm = world.as_lm()             # the same model through the LM interface (lk.next_token...)

Token ids: the words are ids 0 .. V-1 (so a row of `sequences()` *is* its token ids), then
<s> (BOS), </s> (EOS) and <unk>. π(x_1) is the next-token distribution after <s> alone.
The model's forward (`ToyLlama`) masks what the world forbids: inside a sequence only the
V words (no </s>, no <unk>, no <s>), after the last word only </s>. So the model's two views
are one distribution however it is trained -- Σ_x π(x) = 1 exactly over the enumerated
sequences, and sampling it token by token (`lk.generate` on `as_lm()`) draws from exactly
the `log_prob` it reports, even after a fine-tune has pushed the specials' raw logits up.

References: the tiny transformer is Llama's architecture (Touvron et al. 2023); the
enumerable world follows Korbak, Perez & Buckley 2022 ("RL with KL penalties is better
viewed as Bayesian inference"), whose point the notebook makes exact.

Left out on purpose: variable-length sequences (every sequence has exactly `length`
words; the model emits </s> after them), worlds above 100,000 sequences (refused), and
GPU-specific code: a world of this size trains fastest on the CPU.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import time
from dataclasses import dataclass, field

import torch

from .dist import Distribution, seq_logprob
from .models import LM, freeze
from .validate import whole

WEATHER = ("sun", "cloud", "rain", "wind", "snow", "fog")
MAX_SEQUENCES = 100_000      # beyond this one forward pass over every sequence gets slow

# The hidden grammar of the default world, per season: how likely each word is on a day
# (the Markov chain's "fresh draw") -- the chain repeats yesterday's word with prob. STICK.
SEASONS = {  # name: (prior, word weights in WEATHER order)
    "summer": (0.6, (0.50, 0.25, 0.12, 0.08, 0.005, 0.045)),
    "winter": (0.4, (0.08, 0.25, 0.12, 0.15, 0.30, 0.10)),
}
STICK = 0.45


@dataclass
class Grammar:
    """A mixture of sticky Markov chains: season s ~ prior, x_1 ~ w_s, and
    x_t = x_{t-1} with prob. `stick`, else x_t ~ w_s."""

    prior: torch.Tensor            # [season]
    weights: torch.Tensor          # [season, vocab], rows sum to 1
    stick: float

    def log_prob(self, seqs: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) of each row of seqs [n, length] under the grammar -> [n] (float64)."""
        w = self.weights.double()                                     # season vocab
        logp = w[:, seqs[:, 0]].log()                                 # season n
        for t in range(1, seqs.shape[1]):
            same = (seqs[:, t] == seqs[:, t - 1]).double()            # n
            step = (1 - self.stick) * w[:, seqs[:, t]] + self.stick * same
            logp = logp + step.log()
        return torch.logsumexp(logp + self.prior.double().log()[:, None], dim=0)


def default_grammar(vocab: tuple, seed: int) -> Grammar:
    """The weather grammar for the default words; for other words, random season tables
    (drawn from `seed`) with the same structure."""
    if tuple(vocab) == WEATHER:
        prior = torch.tensor([p for p, _ in SEASONS.values()], dtype=torch.float64)
        weights = torch.tensor([w for _, w in SEASONS.values()], dtype=torch.float64)
    else:
        gen = torch.Generator().manual_seed(seed)
        prior = torch.tensor([0.6, 0.4], dtype=torch.float64)
        u = torch.rand(2, len(vocab), generator=gen, dtype=torch.float64)
        weights = (-u.log()) ** 2                        # heavy-tailed: a few favourite words
    weights = weights / weights.sum(-1, keepdim=True)
    return Grammar(prior.double(), weights.double(), STICK)


@dataclass
class ToyWorld:
    """An enumerable world: `vocab` words, sequences of `length` words, a trained `.base`."""

    vocab: list[str]
    length: int
    base: torch.nn.Module                      # LlamaForCausalLM over V words + 3 specials
    tokenizer: object                          # PreTrainedTokenizerFast
    grammar: Grammar
    corpus: torch.Tensor                       # [corpus_size, length] the training data
    history: list[dict] = field(default_factory=list)   # base training: step, loss, seconds
    _base_logp: torch.Tensor | None = field(default=None, repr=False)

    @property
    def bos_id(self) -> int:
        return len(self.vocab)

    @property
    def n_sequences(self) -> int:
        return len(self.vocab) ** self.length

    def sequences(self) -> torch.Tensor:
        """Every sequence once, LongTensor [N, length], in lexicographic order of token ids
        (so sequence x sits at row `index(x)`)."""
        return enumerate_sequences(len(self.vocab), self.length)

    def index(self, seqs: torch.Tensor) -> torch.Tensor:
        """Row of each sequence [n, length] in `sequences()` -> [n]."""
        powers = len(self.vocab) ** torch.arange(self.length - 1, -1, -1)
        return (torch.as_tensor(seqs).long() * powers).sum(-1)

    def log_prob(self, model=None, *, grad: bool = False) -> torch.Tensor:
        """Exact log π(x) of every sequence under `model` (default `.base`) -> [N] float64,
        with logsumexp = 0. One batched forward pass; `grad=True` keeps the graph."""
        if model is None and not grad:      # the base never changes: compute it once
            if self._base_logp is None:
                self._base_logp = self.log_prob(self.base, grad=False)
            return self._base_logp.clone()
        model = self.base if model is None else model
        seqs = self.sequences().to(_device(model))
        ids = torch.cat([seqs.new_full((seqs.shape[0], 1), self.bos_id), seqs], dim=1)  # N L+1
        with one_thread():
            return seq_logprob(model, ids, 1, grad=grad, dtype=torch.float64).cpu()

    def sample(self, n: int, model=None, seed: int | None = None) -> torch.Tensor:
        """n sequences drawn from π (exactly: from the enumerated distribution) -> [n, length]."""
        n = whole("n", n, low=1)
        gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        probs = self.log_prob(model).exp()
        rows = torch.multinomial(probs, n, replacement=True, generator=gen)
        return self.sequences()[rows]

    def encode(self, text: str) -> torch.Tensor:
        """'sun rain' -> LongTensor [2] of word ids; an unknown word is a ValueError."""
        words = text.split()
        unknown = [w for w in words if w not in self.vocab]
        if unknown:
            raise ValueError(f"unknown word(s) {unknown}: the toy world's words are {self.vocab}")
        return torch.tensor([self.vocab.index(w) for w in words], dtype=torch.long)

    def text(self, seq) -> str:
        """Word ids -> 'sun sun rain ...'."""
        return " ".join(self.vocab[int(i)] for i in seq)

    def top(self, logp: torch.Tensor, k: int = 10) -> list[tuple[str, float]]:
        """The k most likely sequences under log-probabilities logp [N]: [(text, prob)]."""
        probs, rows = logp.exp().topk(min(k, logp.numel()))
        seqs = self.sequences()
        return [(self.text(seqs[r]), float(p)) for r, p in zip(rows, probs)]

    def next_token(self, prefix: str = "", model=None):
        """π(x_{t+1} | prefix) over the words as a `labkit.dist.Distribution`; unlike
        `lk.next_token`, an empty prefix is allowed (the distribution of the first word)."""
        ids = self.encode(prefix)
        if len(ids) >= self.length:
            raise ValueError(f"the prefix has {len(ids)} words; a sequence has only "
                             f"{self.length}, so there is no next word to predict")
        model = self.base if model is None else model
        inp = torch.cat([torch.tensor([self.bos_id]), ids])[None]       # 1 seq
        with torch.no_grad():
            logits = model(input_ids=inp.to(_device(model))).logits[0, -1, :len(self.vocab)]
        # (the forward masks the specials inside a sequence: these are the words' logits)
        return Distribution.from_logits(logits.cpu(), self.tokenizer, context=inp)

    def as_lm(self, device=None, model=None):
        """The world's model (default a copy of `.base`, so fine-tuning it never changes the
        world) as a `labkit.models.LM`, for `lk.next_token`, `lk.generate`, the widgets."""
        model = copy.deepcopy(self.base if model is None else model)
        model = model.to(device or "cpu").eval()
        return LM(model=model, tokenizer=self.tokenizer, name="toy")

    def __repr__(self) -> str:
        return (f"ToyWorld({len(self.vocab)} words × {self.length} = {self.n_sequences:,} "
                f"sequences, vocab={self.vocab})")


# --- small pure pieces ------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _enumerate(n_words: int, length: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product(range(n_words), repeat=length)), dtype=torch.long)


def enumerate_sequences(n_words: int, length: int) -> torch.Tensor:
    """All n_words**length sequences, lexicographic -> LongTensor [N, length]."""
    return _enumerate(n_words, length).clone()


def _device(model) -> torch.device:
    return next(model.parameters()).device


def make_tokenizer(vocab: list[str]):
    """A real `PreTrainedTokenizerFast`: one word = one token, '<s>' prepended,
    ids 0..V-1 for the words, then <s>, </s>, <unk>."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    V = len(vocab)
    ids = {w: i for i, w in enumerate(vocab)} | {"<s>": V, "</s>": V + 1, "<unk>": V + 2}
    tok = Tokenizer(models.WordLevel(ids, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", V)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="</s>")


@dataclass
class ToyConfig:
    """How the base model is made; each default keeps the build under ~10 s on 2 CPU cores."""

    corpus_size: int = 20_000   # enough that rare sequences appear; π is the corpus' model
    hidden: int = 32            # 2 layers × 32 dims fit the grammar to ~0.01 nats
    layers: int = 2
    steps: int = 120            # full-batch Adam steps: the loss is flat by ~100
    lr: float = 1e-2            # full batch, tiny model: a large step is stable


def build_model(n_words: int, cfg: ToyConfig, seed: int, length: int = 64):
    """A fresh tiny Llama (`ToyLlama`) over n_words + 3 specials for sequences of `length`
    words, initialised from `seed`."""
    from transformers import LlamaConfig

    config = LlamaConfig(vocab_size=n_words + 3, hidden_size=cfg.hidden,
                         intermediate_size=2 * cfg.hidden, num_hidden_layers=cfg.layers,
                         num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=64, tie_word_embeddings=False,
                         bos_token_id=n_words, eos_token_id=n_words + 1,
                         pad_token_id=n_words + 1)
    config.toy_words, config.toy_length = n_words, length
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _toy_llama_class()(config)


@functools.lru_cache(maxsize=1)
def _toy_llama_class():
    """`ToyLlama`, defined on first use so that importing labkit.toy stays light."""
    from transformers import LlamaForCausalLM

    class ToyLlama(LlamaForCausalLM):
        """transformers' Llama whose logits obey the world: position p of the input (p = 0
        is <s>) predicts token p + 1, which must be a word while p < length and </s> after
        the last word. Everything else gets -inf, so no training can make the model leave
        the world (its losses never see the specials, so nothing else would hold them down).
        Positions come from `cache_position`, else `position_ids`, else the cache's length;
        inputs start with <s> and are not left-padded (the toy world never pads)."""

        def forward(self, input_ids=None, **kwargs):
            pos = _positions(input_ids, kwargs)         # before the cache grows: batch seq
            out = super().forward(input_ids=input_ids, **kwargs)
            pos = pos[..., -out.logits.shape[1]:]                         # batch kept
            out.logits = out.logits + world_mask(pos, self.config.toy_words,
                                                 self.config.toy_length,
                                                 out.logits.shape[-1]).to(out.logits.dtype)
            return out

    ToyLlama.__qualname__ = ToyLlama.__name__ = "ToyLlama"
    return ToyLlama


def _positions(input_ids, kwargs) -> torch.Tensor:
    """Absolute positions [batch or 1, seq] of the input tokens."""
    if kwargs.get("cache_position") is not None:
        return kwargs["cache_position"][None]
    if kwargs.get("position_ids") is not None:
        return kwargs["position_ids"]
    cache = kwargs.get("cache", kwargs.get("past_key_values"))
    start = cache.get_seq_length() if cache is not None else 0
    return torch.arange(start, start + input_ids.shape[1], device=input_ids.device)[None]


def world_mask(pos: torch.Tensor, n_words: int, length: int, vocab: int) -> torch.Tensor:
    """0 where the toy world allows a token after the input at position `pos` [..., seq], -inf
    elsewhere -> [..., seq, vocab]: a word while pos < length, else only </s> (id n_words + 1)."""
    ids = torch.arange(vocab, device=pos.device)                          # vocab
    inside = pos[..., None] < length                                      # ... seq 1
    allowed = torch.where(inside, ids < n_words, ids == n_words + 1)      # ... seq vocab
    return torch.zeros(allowed.shape, device=pos.device).masked_fill(~allowed, float("-inf"))


@contextlib.contextmanager
def one_thread():
    """Run the enclosed block on one CPU thread, then restore the setting. A model this small
    gains nothing from a second thread, and on a busy or shared machine two threads make each
    step ~10× slower (they spin waiting for each other)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_base(model, corpus: torch.Tensor, n_words: int, cfg: ToyConfig) -> list[dict]:
    """Maximum likelihood on the corpus, full batch: the distinct sequences weighted by their
    counts, each followed by </s>. Returns the history [{step, loss, seconds}]."""
    seqs, counts = corpus.unique(dim=0, return_counts=True)            # distinct length
    weights = counts.double() / counts.sum()                           # distinct
    n, bos, eos = seqs.shape[0], n_words, n_words + 1
    inp = torch.cat([seqs.new_full((n, 1), bos), seqs], dim=1)          # distinct length+1
    target = torch.cat([seqs, seqs.new_full((n, 1), eos)], dim=1)       # distinct length+1
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    from tqdm.auto import tqdm

    history, t0 = [], time.perf_counter()
    model.train()
    for step in tqdm(range(cfg.steps), desc="training the toy world's model", unit="step",
                     leave=False, disable=cfg.steps < 50):
        logits = model(input_ids=inp).logits                           # distinct length+1 vocab
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target,
                                                reduction="none").sum(-1)   # distinct
        loss = (weights * nll).sum()                                   # nats per sequence
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        history.append({"step": step, "loss": loss.item(), "seconds": time.perf_counter() - t0})
    freeze(model)
    return history


# --- the world ----------------------------------------------------------------------------


def make_world(seed: int = 0, *, vocab=WEATHER, length: int = 4, **config) -> ToyWorld:
    """Build (or fetch from the in-process cache) the toy world: grammar, corpus, trained base.

    `vocab` a list of distinct words (default the six weather words), `length` words per
    sequence; `config` overrides `ToyConfig` fields (corpus_size, hidden, layers, steps, lr).
    Deterministic in `seed`; a second call with the same arguments returns the same object
    in no time, so several notebook cells share one world.
    """
    vocab = tuple(vocab)
    if len(vocab) < 2 or len(set(vocab)) != len(vocab):
        raise ValueError(f"vocab must hold at least 2 distinct words, got {list(vocab)}")
    bad = [w for w in vocab if not isinstance(w, str) or not w or any(c.isspace() for c in w)
           or w.startswith("<")]
    if bad:
        raise ValueError(f"each word must be a non-empty string without spaces or '<', got {bad}")
    length = whole("length", length, low=1)
    if len(vocab) ** length > MAX_SEQUENCES:
        raise ValueError(
            f"a world of {len(vocab)} words × length {length} has {len(vocab) ** length:,} "
            f"sequences, too many to enumerate (the limit is {MAX_SEQUENCES:,}): use fewer "
            f"words or a shorter length (e.g. length={_max_length(len(vocab))})")
    unknown = set(config) - set(ToyConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)}; ToyConfig has "
                         f"{list(ToyConfig.__dataclass_fields__)}")
    return _make_world(int(seed), vocab, length, tuple(sorted(config.items())))


def _max_length(n_words: int) -> int:
    length = 1
    while n_words ** (length + 1) <= MAX_SEQUENCES:
        length += 1
    return length


@functools.lru_cache(maxsize=4)
def _make_world(seed: int, vocab: tuple, length: int, config: tuple) -> ToyWorld:
    cfg = ToyConfig(**dict(config))
    grammar = default_grammar(vocab, seed)
    seqs = enumerate_sequences(len(vocab), length)
    p = grammar.log_prob(seqs).exp()                                    # N
    gen = torch.Generator().manual_seed(seed)
    corpus = seqs[torch.multinomial(p.float(), cfg.corpus_size, replacement=True, generator=gen)]
    model = build_model(len(vocab), cfg, seed, length)
    with one_thread():
        history = train_base(model, corpus, len(vocab), cfg)
    return ToyWorld(list(vocab), length, model, make_tokenizer(list(vocab)), grammar, corpus,
                    history)
