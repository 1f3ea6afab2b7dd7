"""Learner checks: run an exercise's function on a few cases and name the likely mistake.

    def my_top_p(probs, p):
        ...
    lk.checks.check_top_p(my_top_p)     # prints "✅ check_top_p: passed (6 cases)" and returns True

Every check prints one short line -- ✅ passed, ❌ with a hint naming the likely mistake,
or ⏳ "not attempted yet" when the function still raises `NotImplementedError` -- and
returns a bool, so a notebook run top to bottom never breaks on an unsolved exercise.
The reference solutions live here too (`reference_*`), and CI runs every check against
them (tests/test_checks.py), so the checkers are tested as well.

Writing a new check (one section per notebook, appended above the end-of-file marker):

    def check_tilt(fn) -> bool:
        def judge(out, logits, beta):            # raise Mistake("hint") when `out` is wrong
            ...
        return _run("check_tilt", fn, [Case("a small case", (logits, 1.0), judge), ...])

`_run` clones tensor arguments before each call (a function that edits its input in
place cannot spoil the next case), stops at the first failing case and reports it.

Left out on purpose: scoring, hidden tests and randomised property testing -- a check
is a teaching aid, a few hand-picked cases chosen so that each classic mistake fails one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

# --- the reporting machinery, shared by every check ----------------------------------------


class Mistake(AssertionError):
    """Raised by a case's judge; its message is the hint shown to the learner."""


@dataclass
class Case:
    """One call of the learner's function: `fn(*args)`, judged by `judge(output, *args)`,
    which raises `Mistake("hint")` when the output is wrong."""

    label: str                          # shown in the hint, e.g. "a tie at the boundary"
    args: tuple
    judge: Callable


def _clone(x):
    return x.clone() if isinstance(x, torch.Tensor) else x


def _report(name: str, passed: bool, message: str = "") -> bool:
    """Print the one-line verdict and return `passed`."""
    mark = "✅" if passed else "❌"
    print(f"{mark} {name}: {message}" if message else f"{mark} {name}")
    return passed


def _run(name: str, fn: Callable, cases: list[Case]) -> bool:
    """Run `fn` on every case; report ✅, ❌ + the first hint, or ⏳ not attempted yet."""
    if not callable(fn):
        return _report(name, False, f"expected a function, got {type(fn).__name__}")
    for case in cases:
        try:
            out = fn(*(_clone(a) for a in case.args))
        except NotImplementedError:
            print(f"⏳ {name}: not attempted yet -- replace `raise NotImplementedError` with your "
                  "code and run this cell again")
            return False
        except Exception as e:  # the learner's bug: report it, never raise it
            return _report(name, False, f"on {case.label}, your function raised "
                                        f"{type(e).__name__}: {e}")
        try:
            case.judge(out, *case.args)
        except Mistake as m:
            return _report(name, False, f"on {case.label}: {m}")
    return _report(name, True, f"passed ({len(cases)} cases)")


def _as_tensor(out, like: torch.Tensor, what: str, hint: str = "") -> torch.Tensor:
    """`out` as a float64 tensor shaped like `like` (one `what` per entry), or a Mistake
    saying what is wrong with it."""
    if not isinstance(out, torch.Tensor):
        raise Mistake(f"return a torch tensor, not {type(out).__name__}")
    if out.shape != like.shape:
        raise Mistake(f"return one {what}: expected shape {tuple(like.shape)}, "
                      f"got {tuple(out.shape)}{hint}")
    if not out.is_floating_point():
        raise Mistake(f"return floating-point numbers, not {out.dtype}")
    return out.detach().double().cpu()


def _as_probs(out, like: torch.Tensor) -> torch.Tensor:
    """`out` as probabilities shaped like `like`, or a Mistake saying what is wrong with it."""
    out = _as_tensor(out, like, "probability per token")
    if torch.isnan(out).any():
        raise Mistake("the result contains NaN -- did you divide by a sum of zero "
                      "(no token kept)?")
    if (out < 0).any():
        raise Mistake("the result has negative probabilities")
    return out


# --- notebook 00: the knobs ------------------------------------------------------------------


def reference_top_p(probs: torch.Tensor, p: float) -> torch.Tensor:
    """The nucleus distribution: keep the smallest set of most likely tokens whose mass
    reaches p, zero the rest, renormalise. Built on `labkit.controls.top_p_mask`."""
    from .controls import top_p_mask

    if p >= 1:
        return probs / probs.sum()
    removed = top_p_mask(probs.log()[None], p)[0]                      # vocab
    kept = probs.masked_fill(removed, 0.0)
    return kept / kept.sum()


def _judge_top_p(out, probs: torch.Tensor, p: float) -> None:
    out = _as_probs(out, probs)
    probs = probs.double()
    kept = out > 0
    if not kept.any():
        raise Mistake("you kept no token at all -- the most likely token is always kept, "
                      "even when its probability alone exceeds p")
    if (probs[kept] == 0).any():
        raise Mistake("a token with probability 0 got a positive probability")
    dropped = ~kept & (probs > 0)
    if dropped.any() and probs[dropped].max() > probs[kept].min():
        raise Mistake("you dropped a token that is more likely than one you kept -- sort the "
                      "probabilities in descending order before accumulating them")
    mass = float(probs[kept].sum())
    if mass < p - 1e-6:
        raise Mistake(f"the kept tokens hold only {mass:.3f} < p = {p} of the mass -- you "
                      "dropped the token that crosses p; keep it (the nucleus is the smallest "
                      "set whose mass *reaches* p)")
    if mass - float(probs[kept].min()) >= p - 1e-9:
        raise Mistake(f"you kept one token too many: the kept tokens hold {mass:.3f} of the "
                      f"mass, and without the least likely of them they would still reach p = "
                      f"{p} -- check the comparison in your cumulative sum (off by one?)")
    total = float(out.sum())
    if abs(total - 1) > 1e-4:
        hint = (" -- did you renormalise after masking (divide by the kept mass)?"
                if abs(total - mass) < 1e-4 else "")
        raise Mistake(f"the result sums to {total:.4f}, not 1{hint}")
    expected = probs * kept / mass
    if not torch.allclose(out, expected, atol=1e-5):
        raise Mistake("the kept tokens must keep their relative probabilities: divide them all "
                      "by the same kept mass")


def _top_p_cases() -> list[Case]:
    def t(*xs):
        return torch.tensor(xs, dtype=torch.float32)

    gen = torch.Generator().manual_seed(0)
    rand = torch.softmax(torch.randn(50, generator=gen) * 2, dim=0)    # vocab = 50, unsorted
    cum = rand.sort(descending=True).values.cumsum(0)
    p_mid = float(cum[6] + cum[7]) / 2       # far from any boundary: keep exactly 8 tokens
    # dyadic probabilities add up exactly in float, so "mass reaches p exactly" is exact
    return [
        Case("probs=[0.1, 0.5, 0.15, 0.25], p=0.7", (t(0.1, 0.5, 0.15, 0.25), 0.7), _judge_top_p),
        Case("a boundary where the mass reaches p exactly: probs=[0.125, 0.5, 0.125, 0.25], "
             "p=0.75", (t(0.125, 0.5, 0.125, 0.25), 0.75), _judge_top_p),
        Case("a tie at the boundary: probs=[0.25, 0.375, 0.125, 0.25], p=0.5",
             (t(0.25, 0.375, 0.125, 0.25), 0.5), _judge_top_p),
        Case("a small p: probs=[0.25, 0.6, 0.15], p=0.1 (only the top token)",
             (t(0.25, 0.6, 0.15), 0.1), _judge_top_p),
        Case("p=1 (keep every token)", (t(0.125, 0.5, 0.0, 0.375), 1.0), _judge_top_p),
        Case(f"a 50-token distribution, p={p_mid:.3f}", (rand, p_mid), _judge_top_p),
    ]


def check_top_p(fn) -> bool:
    """Check `fn(probs, p) -> probs'`: the nucleus (top-p) distribution, renormalised.

    Ties at the boundary may be broken either way, as long as the kept tokens are a
    smallest set of most likely tokens whose mass reaches p.
    """
    return _run("check_top_p", fn, _top_p_cases())


# --- notebook 01: conditioning as Bayes (tilt, KL-penalised reward) --------------------------
# Reference solutions: labkit.bayes.tilt and labkit.bayes.kl_penalised_reward.


def _as_logprobs(out, like: torch.Tensor) -> torch.Tensor:
    """`out` as a float64 tensor shaped like `like`, or a Mistake saying what is wrong."""
    return _as_tensor(out, like, "value per sequence",
                      " -- don't sum or average over sequences")


def _judge_tilt(out, logp: torch.Tensor, reward: torch.Tensor, beta: float) -> None:
    from .bayes import tilt

    out = _as_logprobs(out, logp)
    if torch.isnan(out).any() or torch.isposinf(out).any():
        raise Mistake("the result contains NaN or +inf -- with large rewards e^{r/β} overflows: "
                      "stay in log space (log π + r/β - logsumexp(log π + r/β))")
    expected = tilt(logp.double(), reward.double(), beta)
    if torch.allclose(out, expected, atol=1e-5):
        return
    total = float(torch.logsumexp(out, 0).exp())
    if abs(float(out.sum()) - 1) < 1e-4 and (out >= 0).all():
        raise Mistake("your result looks like probabilities (it sums to 1): return "
                      "log-probabilities (log π_β(x), not π_β(x))")
    if abs(total - 1) > 1e-4:
        raise Mistake(f"exp of your result sums to {total:.4f}, not 1 -- did you subtract "
                      "log Z = logsumexp(log π + r/β)?")
    d = logp.double()
    if torch.allclose(out, tilt(d, reward.double() * beta * beta, beta), atol=1e-5):
        raise Mistake("you multiplied the reward by β: the tilt is e^{r/β}, divide by β")
    if torch.allclose(out, tilt(d, -reward.double(), beta), atol=1e-5):
        raise Mistake("the sign of the reward is flipped: higher reward must mean higher "
                      "probability, e^{+r/β}")
    if torch.allclose(out, torch.log_softmax(reward.double() / beta, 0), atol=1e-5):
        raise Mistake("you dropped the prior: the tilt is π(x)·e^{r/β}/Z, add log π(x)")
    raise Mistake("the values differ from log π(x) + r(x)/β - log Z")


def check_tilt(fn) -> bool:
    """Check `fn(logp, reward, beta) -> log π_β`: log-probs of π(x)·e^{r(x)/β}/Z, normalised,
    computed in log space (Korbak, Perez & Buckley 2022, eq. 5)."""
    logp = torch.log(torch.tensor([0.5, 0.25, 0.125, 0.125], dtype=torch.float64))
    gen = torch.Generator().manual_seed(0)
    logp_rand = torch.log_softmax(torch.randn(20, generator=gen, dtype=torch.float64), 0)
    r_rand = torch.randn(20, generator=gen, dtype=torch.float64)
    return _run("check_tilt", fn, [
        Case("logp=log[0.5, 0.25, 0.125, 0.125], reward=[0, 1, 2, 0], beta=1",
             (logp, torch.tensor([0.0, 1.0, 2.0, 0.0], dtype=torch.float64), 1.0), _judge_tilt),
        Case("the same with beta=0.5 (a stronger tilt)",
             (logp, torch.tensor([0.0, 1.0, 2.0, 0.0], dtype=torch.float64), 0.5), _judge_tilt),
        Case("20 sequences, random rewards, beta=2",
             (logp_rand, r_rand, 2.0), _judge_tilt),
        Case("large rewards (r=1000, beta=1): e^{r/β} overflows outside log space",
             (logp, torch.tensor([0.0, 1000.0, 999.0, 0.0], dtype=torch.float64), 1.0),
             _judge_tilt),
    ])


def _judge_kl_reward(out, reward, logp, logp_ref, beta) -> None:
    from .bayes import kl_penalised_reward

    out = _as_logprobs(out, reward)
    if not torch.isfinite(out).all():
        raise Mistake("the result contains NaN or inf -- use the log-probabilities as given "
                      "(no exp, no division by a probability)")
    r, lp, lq = reward.double(), logp.double(), logp_ref.double()
    if torch.allclose(out, kl_penalised_reward(r, lp, lq, beta), atol=1e-6):
        return
    if torch.allclose(out, r + beta * (lp - lq), atol=1e-6):
        raise Mistake("the penalty has the wrong sign: R = r - β·(log π_θ - log π_ref), so "
                      "moving away from the reference costs reward")
    if torch.allclose(out, r - (lp - lq), atol=1e-6):
        raise Mistake("you forgot β: the log-ratio is multiplied by β")
    if torch.allclose(out, r / beta - (lp - lq), atol=1e-6):
        raise Mistake("you divided the reward by β: R = r - β·log(π_θ/π_ref) (dividing the "
                      "whole of R by β gives r/β - log ratio, a different scale)")
    if torch.allclose(out, r - beta * (lp.exp() - lq.exp()), atol=1e-6) or \
            torch.allclose(out, r - beta * (lp.exp() / lq.exp()), atol=1e-6):
        raise Mistake("use the log-ratio log π_θ(x) - log π_ref(x), not a difference or ratio "
                      "of probabilities")
    raise Mistake("the values differ from r(x) - β·(log π_θ(x) - log π_ref(x))")


def check_kl_reward(fn) -> bool:
    """Check `fn(reward, logp, logp_ref, beta) -> R`: the KL-penalised per-sequence reward
    R(x) = r(x) - β·(log π_θ(x) - log π_ref(x)) (Ziegler et al. 2019, eq. 2)."""
    f = lambda *xs: torch.tensor(xs, dtype=torch.float64)   # noqa: E731
    lp = torch.log(f(0.5, 0.25, 0.125, 0.125))
    lq = torch.log(f(0.25, 0.25, 0.25, 0.25))
    return _run("check_kl_reward", fn, [
        Case("reward=[1, 0, 2, 0], π_θ=[0.5, 0.25, 0.125, 0.125], π_ref uniform, beta=0.5",
             (f(1.0, 0.0, 2.0, 0.0), lp, lq, 0.5), _judge_kl_reward),
        Case("the same with beta=2", (f(1.0, 0.0, 2.0, 0.0), lp, lq, 2.0), _judge_kl_reward),
        Case("π_θ = π_ref (no penalty): R = r", (f(3.0, -1.0, 0.5, 0.0), lq, lq, 0.5),
             _judge_kl_reward),
    ])


# --- notebook 02: prompting (few-shot prompt builder, multi-token label scorer) --------------


def _judge_prompt(out, shots, query, instruction="") -> None:
    from .prompting import build_prompt

    want = build_prompt(shots, query, instruction)
    if not isinstance(out, str):
        raise Mistake(f"return the prompt as a string, not {type(out).__name__}")
    if out == want:
        return
    if out.rstrip(" ") == want and out.endswith(" "):
        raise Mistake("the prompt ends with a space after 'Sentiment:' -- leave it out: the "
                      "tokenizer attaches a space to the word after it, so the label token is "
                      "' positive' (space included) and the prompt must stop right at the colon")
    if out.replace(": ", ":") == want.replace(": ", ":"):
        raise Mistake("a space is missing (or extra) after a colon -- each shot reads "
                      "'Sentiment: positive', with one space before the label")
    if not out.rstrip().endswith(want.rsplit("\n\n", 1)[-1]):
        raise Mistake("the prompt must end with the query: 'Review: <query>\\nSentiment:'")
    texts = [t for t, _ in shots]
    if texts and all(t in out for t in texts) and \
            [out.index(t) for t in texts] != sorted(out.index(t) for t in texts):
        raise Mistake("keep the shots in the order given: order changes the answer, and the "
                      "notebook measures exactly that")
    if any(f"{label}" not in out for _, label in shots):
        raise Mistake("each shot needs its label after 'Sentiment: ' -- the model learns the "
                      "task from these answers")
    raise Mistake(f"expected exactly {want!r}, got {out!r} -- shots are 'Review: <text>\\n"
                  "Sentiment: <label>' blocks separated by a blank line ('\\n\\n')")


def check_few_shot_prompt(fn) -> bool:
    """Check `fn(shots, query, instruction="") -> str`: a raw few-shot sentiment prompt
    (reference: `labkit.prompting.build_prompt`)."""
    two = [("The food was great.", "positive"), ("The staff was rude.", "negative")]
    return _run("check_few_shot_prompt", fn, [
        Case("zero shots", ([], "The movie was superb."), _judge_prompt),
        Case("two shots", (two, "The movie was superb."), _judge_prompt),
        Case("the same two shots in the other order", (two[::-1], "It was fine."), _judge_prompt),
        Case("two shots and an instruction", (two, "Bad coffee.", "Classify the sentiment."),
             _judge_prompt),
    ])


def _judge_label_logprob(out, lm, prompt, label) -> None:
    from .dist import logprob

    if isinstance(out, torch.Tensor) and out.numel() == 1:
        out = out.item()
    if not isinstance(out, (int, float)):
        raise Mistake(f"return one number (a float), not {type(out).__name__}")
    want = logprob(lm, prompt, " " + label)
    if math.isclose(out, want, abs_tol=1e-3):
        return
    ids = lm.tokenizer(" " + label, add_special_tokens=False).input_ids
    first = logprob(lm, prompt, lm.tokenizer.decode(ids[:1]))
    no_space = logprob(lm, prompt, label)
    if len(ids) > 1 and math.isclose(out, first, abs_tol=1e-3):
        raise Mistake(f"you scored only the first token of {label!r} ({len(ids)} tokens) -- sum "
                      "log p over every token of the label, each given the ones before it")
    if math.isclose(out, no_space, abs_tol=1e-3):
        raise Mistake(f"you scored {label!r} without its leading space -- after 'Sentiment:' the "
                      f"model writes ' {label}', a different token sequence: score ' ' + label")
    if out > 0 and math.isclose(out, math.exp(want), rel_tol=1e-3):
        raise Mistake("you returned a probability; return the log-probability (in nats)")
    if math.isclose(out, want / len(ids), abs_tol=1e-3):
        raise Mistake("you averaged over the label's tokens; sum them (log p of the whole label)")
    if out > 0:
        raise Mistake(f"a log-probability is ≤ 0, got {out:.3f}")
    raise Mistake(f"expected log p(' {label}' | prompt) = {want:.4f}, got {out:.4f}")


def check_label_logprob(fn, lm=None) -> bool:
    """Check `fn(lm, prompt, label) -> float`: log p(" " + label | prompt), summed over every
    token of the label (reference: `labkit.prompting.label_logprob`). `lm` defaults to lk.load()."""
    if lm is None:
        from .models import load
        lm = load()
    return _run("check_label_logprob", fn, [
        Case("a one-token label", (lm, "Review: The food was great.\nSentiment:", "positive"),
             _judge_label_logprob),
        Case("a two-token label", (lm, "Country: Argentina\nCapital:", "Buenos Aires"),
             _judge_label_logprob),
        Case("a label of several tokens", (lm, "Country: Mexico\nCapital:", "Mexico City"),
             _judge_label_logprob),
    ])


# --- notebook 05: the token pool ---------------------------------------------------------------


def reference_pool_renormalise(probs: torch.Tensor, allowed) -> torch.Tensor:
    """The token pool on one step: keep the probabilities of the `allowed` token ids, set every
    other token to 0, renormalise so the result sums to 1."""
    keep = torch.zeros_like(probs, dtype=torch.bool)
    keep[torch.as_tensor(sorted(set(allowed)), dtype=torch.long)] = True
    kept = probs.masked_fill(~keep, 0.0)
    return kept / kept.sum()


def _judge_pool_renormalise(out, probs: torch.Tensor, allowed) -> None:
    out = _as_probs(out, probs)
    expected = reference_pool_renormalise(probs.double(), allowed)
    keep = expected > 0
    if (out[~keep] != 0).any():
        raise Mistake("a token outside the pool has probability > 0: every token that is not "
                      "allowed must get exactly 0")
    if abs(float(out.sum()) - 1) > 1e-6:
        if torch.allclose(out[keep], probs.double()[keep], atol=1e-9):
            raise Mistake("did you renormalise after masking? divide the kept probabilities by "
                          "their sum so that they add up to 1")
        raise Mistake(f"the result sums to {float(out.sum()):.4f}, not 1")
    if not torch.allclose(out, expected, atol=1e-6):
        if torch.allclose(out[keep], out[keep].mean().expand(int(keep.sum())), atol=1e-9):
            raise Mistake("the kept tokens became uniform: they must keep their relative "
                          "probabilities (divide by their total, do not reset them)")
        raise Mistake("the kept probabilities are not proportional to the model's")


def check_pool_renormalise(fn) -> bool:
    """Check `fn(probs, allowed_ids) -> probs`: the distribution restricted to a token pool."""
    f = lambda *xs: torch.tensor(xs, dtype=torch.float64)   # noqa: E731
    return _run("check_pool_renormalise", fn, [
        Case("probs=[0.5, 0.2, 0.2, 0.1], allowed=[1, 3]", (f(0.5, 0.2, 0.2, 0.1), [1, 3]),
             _judge_pool_renormalise),
        Case("an allowed list with a repeat, [2, 2, 0]", (f(0.1, 0.3, 0.4, 0.2), [2, 2, 0]),
             _judge_pool_renormalise),
        Case("a pool of one token", (f(0.7, 0.1, 0.1, 0.1), [3]), _judge_pool_renormalise),
    ])


def reference_trie_step(prefix: str, options, texts) -> list[int]:
    """One step of `OneOf`: the ids of the tokens (`texts[i]` is token i's text) that keep
    `prefix + text` a prefix of some option (equal to it included), sorted."""
    return sorted(i for i, t in enumerate(texts)
                  if any(o.startswith(prefix + t) for o in options))


_TRIE_TEXTS = ["N", "New", "New York", " York", " Y", "Ne", "w", "Paris", " Paris", "New,",
               "York", " "]
_TRIE_OPTIONS = ["New", "New York", " Paris"]


def _judge_trie_step(out, prefix, options, texts) -> None:
    try:
        got = {int(i) for i in out}
    except (TypeError, ValueError):
        raise Mistake(f"return a list of token ids (ints), not {type(out).__name__}") from None
    want = set(reference_trie_step(prefix, options, texts))
    extra = sorted(got - want)
    missing = sorted(want - got)
    if extra:
        t = texts[extra[0]]
        if any((prefix + t).startswith(o) for o in options):
            raise Mistake(f"{t!r} would straddle the end of an option ({prefix + t!r} writes "
                          "past it): only allow texts that are still a prefix of an option")
        if any(o.startswith(t) for o in options) or any(t.strip() and t.strip() in o
                                                         for o in options):
            raise Mistake(f"{t!r} was allowed after {prefix!r}: test prefix + token (the text "
                          "written so far matters), and keep leading spaces -- ' Paris' and "
                          "'Paris' are different")
        raise Mistake(f"token {t!r} is not allowed after {prefix!r}")
    if missing:
        t = texts[missing[0]]
        raise Mistake(f"{t!r} should be allowed after {prefix!r}: a token may write just part "
                      "of an option -- allow it when prefix + token is a prefix of an option")


def check_trie_step(fn) -> bool:
    """Check `fn(prefix, options, texts) -> token ids`: the allowed tokens of one trie step."""
    return _run("check_trie_step", fn, [
        Case("nothing written yet", ("", _TRIE_OPTIONS, _TRIE_TEXTS), _judge_trie_step),
        Case("after 'New'", ("New", _TRIE_OPTIONS, _TRIE_TEXTS), _judge_trie_step),
        Case("after 'Ne'", ("Ne", _TRIE_OPTIONS, _TRIE_TEXTS), _judge_trie_step),
        Case("after ' Pa'", (" Pa", _TRIE_OPTIONS, _TRIE_TEXTS + ["ris", "r"]), _judge_trie_step),
    ])


# --- notebook 06: tweaking the distribution ---------------------------------------------------
# Reference solution: boost the first token of each word, spelled with and without a leading
# space (labkit.steer.BagOfWords does the same, plus capitalised spellings and completions).


def reference_bag_of_words(tokenizer, words, logits: torch.Tensor, strength: float) -> torch.Tensor:
    """logits [vocab] + strength on the first token of every word and of every ' ' + word."""
    ids = {tokenizer(v, add_special_tokens=False).input_ids[0]
           for w in words for v in (w, " " + w)}
    out = logits.clone()
    out[sorted(ids)] += strength
    return out


def _first_ids(tokenizer, words, variants):
    return sorted({tokenizer(v(w), add_special_tokens=False).input_ids[0]
                   for w in words for v in variants})


def _judge_bag(out, tokenizer, words, logits, strength) -> None:
    if not isinstance(out, torch.Tensor):
        raise Mistake(f"return the new logits as a torch tensor, not {type(out).__name__}")
    if out.shape != logits.shape:
        raise Mistake(f"return one logit per token: expected shape {tuple(logits.shape)}, got "
                      f"{tuple(out.shape)}")
    out = out.detach().float()
    want = reference_bag_of_words(tokenizer, words, logits, strength)
    if torch.allclose(out, want, atol=1e-5):
        return

    def boosted(variants):
        x = logits.clone()
        x[_first_ids(tokenizer, words, variants)] += strength
        return x

    if torch.allclose(out, boosted([lambda w: " " + w]), atol=1e-5):
        raise Mistake("you boosted only the leading-space spelling (' word'): a word at the start "
                      "of a line or after a quote or bracket is the token without the space -- "
                      "boost the first token of both `word` and `' ' + word`")
    if torch.allclose(out, boosted([lambda w: w]), atol=1e-5):
        raise Mistake("you boosted only the spelling without a space: inside a sentence words "
                      "come as ' word' (space included), a different token -- boost both")
    every = logits.clone()
    every[sorted({t for w in words for v in (w, " " + w)
                  for t in tokenizer(v, add_special_tokens=False).input_ids})] += strength
    if torch.allclose(out, every, atol=1e-5):
        raise Mistake("you boosted every token of the words: for a word of several tokens only "
                      "its *first* token starts the word (the others are pieces that also start "
                      "unrelated words)")
    if torch.allclose(out.softmax(-1), want.softmax(-1), atol=1e-6):
        return                                     # a constant shift changes nothing
    ids = _first_ids(tokenizer, words, [lambda w: w, lambda w: " " + w])
    if torch.allclose(out[ids], logits[ids] * strength, atol=1e-4):
        raise Mistake("you multiplied the logits by the strength: add it (a boost of s multiplies "
                      "the token's *probability* by e^s, which is adding s to its logit)")
    if (out - logits).abs().max() > 2 * abs(strength) + 1e-5:
        raise Mistake("some tokens moved by more than the strength -- did you add it twice to a "
                      "token shared by two spellings? add it once per token")
    raise Mistake("the logits differ from logits + strength on the first token of each word and "
                  "of each ' ' + word (every other token unchanged)")


def check_bag_of_words(fn, tokenizer=None) -> bool:
    """Check `fn(tokenizer, words, logits, strength) -> logits'`: bag-of-words boosting
    (reference: `reference_bag_of_words`). `tokenizer` defaults to lk.load()'s."""
    if tokenizer is None:
        from .models import load
        tokenizer = load().tokenizer
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(len(tokenizer), generator=gen)
    return _run("check_bag_of_words", fn, [
        Case("one word, ['happy'], strength 2", (tokenizer, ["happy"], logits, 2.0), _judge_bag),
        Case("three words, strength 5", (tokenizer, ["love", "joy", "great"], logits, 5.0),
             _judge_bag),
        Case("a word of several tokens, ['xylophone']", (tokenizer, ["xylophone"], logits, 3.0),
             _judge_bag),
        Case("strength 0 (nothing changes)", (tokenizer, ["happy"], logits, 0.0), _judge_bag),
    ])


# ==== end of checks.py: append new sections (one per notebook) above this line ====
