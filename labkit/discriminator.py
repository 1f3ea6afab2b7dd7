"""An attribute model: a linear head on the frozen language model's mean last hidden state.

    p(a | x) = softmax(W · h̄(x) + b),   h̄(x) = 1/T Σ_t h_t(x)   (the last layer's states)

PPLM's discriminator (Dathathri et al. 2020, "Plug and Play Language Models", §3.3 and
its code's `ClassificationHead`): the language model stays frozen, so the features are
computed once and the head trains in seconds. Classifier guidance (`labkit.steer`) and
PPLM (`labkit.pplm`) read the same mean hidden state as they generate, so the head they
steer by is the head trained here.

* `Discriminator(hidden_size, classes)` -- the head (`check(lm)`, `on(device)`, `target_index`);
* `mean_hidden(lm, texts)` -- the features h̄(x) [n, hidden], padding excluded;
* `train_discriminator(lm, texts, labels)` -- full-batch Adam on the cross-entropy;
* `discriminator_probs(lm, disc, texts)` -- p(class | text) [n, classes].

A text is tokenized by the one BOS rule (`LM.ids(text, start=True)`): it starts a sequence,
as a prompt does in `lk.generate`, so the head sees at training time the positions it sees
when it steers.

Left out on purpose: PPLM's hidden-layer variant and fine-tuning the LM with the head
(the LM stays frozen, so one set of weights serves generation and judging).
"""
from __future__ import annotations

import copy
import time

import torch

from .dist import forward as run_model
from .models import freeze
from .pairs import padded


class Discriminator(torch.nn.Module):
    """p(a | x) = softmax(W · mean_t h_t(x) + b): a linear head on the frozen LM's mean last
    hidden state (PPLM-Discrim, Dathathri et al. 2020, §3.3)."""

    def __init__(self, hidden_size: int, classes=("negative", "positive")):
        super().__init__()
        self.hidden_size, self.classes = int(hidden_size), list(classes)
        if len(self.classes) < 2:
            raise ValueError(f"a discriminator needs at least two classes, got {self.classes}")
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
                             "this model (lk.discriminator.train_discriminator)")

    def on(self, device) -> "Discriminator":
        """This head on `device`: itself if it is there already, else a copy moved there. It is
        trained on the CPU (`train_discriminator`); guidance and PPLM feed it the LM's hidden
        states, so they use it on the LM's device -- without moving the caller's head."""
        if self.head.weight.device == torch.device(device):
            return self
        return copy.deepcopy(self).to(device)

    def target_index(self, target) -> int:
        """The index of class `target` (its name, or its index)."""
        if isinstance(target, str):
            if target not in self.classes:
                raise ValueError(f"unknown class {target!r}; the classes are {self.classes}")
            return self.classes.index(target)
        if isinstance(target, bool) or not isinstance(target, int) \
                or not 0 <= target < len(self.classes):
            raise ValueError(f"target must be a class name {self.classes} or one of "
                             f"0..{len(self.classes) - 1}, got {target!r}")
        return target


def padded_batch(lm, texts):
    """(input_ids, attention_mask), both [batch, seq] on the model's device: each text by the
    one BOS rule (`lm.ids(text, start=True)`), padded on the right (positions 0.. stay those
    of the text alone; the mask hides the padding)."""
    rows = [lm.ids(t, start=True) for t in texts]
    for i, row in enumerate(rows):
        if not row:
            raise ValueError(f"text {i} ({texts[i]!r}) is empty: it has no hidden states to "
                             "average -- drop empty texts first")
    pad = lm.tokenizer.pad_token_id
    pad = 0 if pad is None else pad
    return padded(rows, pad, lm.device)                                 # batch seq, batch seq


def mean_hidden(lm, texts, batch_size: int = 16) -> torch.Tensor:
    """The mean last hidden state of each text under `lm` (padding excluded) -> [n, hidden],
    on the CPU. Naive version: one text at a time, `body(ids).last_hidden_state[0].mean(0)`
    (a test checks the batched one against it)."""
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise ValueError("no texts: give at least one")
    feats = []
    for i in range(0, len(texts), batch_size):
        ids, mask = padded_batch(lm, texts[i:i + batch_size])
        with torch.inference_mode():
            h = run_model(lm.model.base_model, ids, attention_mask=mask).last_hidden_state
        h, m = h.float(), mask[..., None].float()                       # batch seq hidden, batch seq 1
        feats.append(((h * m).sum(1) / m.sum(1)).cpu())                 # batch hidden
    return torch.cat(feats)


def train_discriminator(lm, texts, labels, *, classes=("negative", "positive"), epochs: int = 100,
                        lr: float = 1e-2, weight_decay: float = 1e-3, seed: int = 0):
    """Fit a `Discriminator` on (texts, labels): features once (the LM is frozen), then full-batch
    Adam on the cross-entropy. Returns (discriminator, history) with history a list of
    {"epoch", "loss", "accuracy", "seconds"} (training-set figures); the head comes back
    frozen (`labkit.models.freeze`), on the CPU."""
    texts, labels = list(texts), list(labels)
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
        logits = disc.head((x - mu) / sd)                               # n classes
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
    return freeze(disc), history


def discriminator_probs(lm, disc: Discriminator, texts) -> torch.Tensor:
    """p(class | text) for each text -> [n, classes]."""
    disc.check(lm)
    with torch.no_grad():
        return torch.softmax(disc(mean_hidden(lm, texts).to(disc.head.weight.device)), dim=-1)


__all__ = ["Discriminator", "discriminator_probs", "mean_hidden", "padded_batch",
           "train_discriminator"]
