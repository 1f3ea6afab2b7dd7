"""Every technique on the toy world against the exact target it aims at, in one table.

On the toy world (`labkit.toy`) each technique's result is a distribution over all N sequences,
known exactly: a trained policy through `world.log_prob(model)`, a per-step control through
`labkit.stepwise`, a sampler through its closed form (`labkit.bayes.best_of_n`; rejection
sampling *is* the conditional). The target is exact too: the conditional π(x | c)
(`bayes.condition`) or the tilt π(x)·e^{r(x)/β}/Z (`bayes.tilt`). So the question "how close
does this technique get?" has a number for an answer, with no sampling noise:

    table = exact_table(world.log_prob(), target, {
        "rejection sampling": Exact(target, samples=round(n / p_c)),
        "token pool": Exact(stepwise.pool(logp, valid, V, L)),
        "SFT on filtered samples": Exact(world.log_prob(tuned.model), samples=..., labels=n),
        ...}, valid=valid)

Columns: **KL(target ‖ method)**, finite unless the method gives zero probability to part of
the target, and **KL(method ‖ target)**, infinite when the method puts mass where the target
has none (outside a hard condition: anything that only *nudges*, such as RL with a finite
reward or a prompt-free SFT, does); **KL from base**, KL(method ‖ π), what the method moved;
**success**, its probability of the condition (or **expected reward**); and the cost --
sequences drawn from the model, labels (examples or preferences), seconds.

Left out on purpose: sampling noise (every row is the exact distribution, not an estimate from
samples: the real model's scoreboard, `labkit.scoreboard.evaluate`, has that), and choosing
each technique's settings (the notebook does, in the open).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .bayes import kl


@dataclass
class Exact:
    """One technique on the toy world: its exact log-probabilities [N] over
    `world.sequences()` and what it cost (model draws, labels, seconds)."""

    logp: object                                # torch.Tensor [N], float64
    samples: int = 0                            # sequences drawn from the model to build it
    labels: int = 0                             # labels or preferences it needed
    seconds: float = 0.0                        # wall time to build it


def exact_table(base_logp, target, techniques: dict, *, valid=None, reward=None):
    """One row per technique (a name -> `Exact`, or bare log-probs [N]) -> a pandas DataFrame
    indexed by technique, with the columns of the module docstring. `valid` [N] bool adds
    "success" (the method's probability of the condition), `reward` [N] "expected reward"."""
    import pandas as pd

    rows = {}
    for name, t in techniques.items():
        t = t if isinstance(t, Exact) else Exact(t)
        logp = torch.as_tensor(t.logp, dtype=torch.float64)
        if logp.shape != target.shape:
            raise ValueError(f"technique {name!r}: {tuple(logp.shape)} log-probabilities, but "
                             f"the target has {tuple(target.shape)}: one per sequence")
        if abs(float(torch.logsumexp(logp, 0))) > 1e-6:
            raise ValueError(f"technique {name!r}: its probabilities sum to "
                             f"{float(torch.logsumexp(logp, 0).exp()):.6f}, not 1")
        p = logp.exp()
        row = {"KL(target ‖ method)": float(kl(target, logp)),
               "KL(method ‖ target)": float(kl(logp, target)),
               "KL from base": float(kl(logp, base_logp))}
        if valid is not None:
            row["success"] = float(p[torch.as_tensor(valid, dtype=torch.bool)].sum())
        if reward is not None:
            row["expected reward"] = float((p * torch.as_tensor(reward, dtype=p.dtype)).sum())
        rows[name] = {**row, "model samples": t.samples, "labels": t.labels,
                      "seconds": t.seconds}
    df = pd.DataFrame.from_dict(rows, orient="index")
    df.index.name = "technique"
    return df


__all__ = ["Exact", "exact_table"]
