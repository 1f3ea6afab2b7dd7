"""The dashboard (notebook 07): switch controls on, set their strengths, see what each does.

1. `dashboard_step(lm, prompt, choices, settings, cache)` -> `Dashboarded`: for each control
   switched on, the next-token distribution it samples from at the prompt, beside the base
   model's, and its scoreboard row (`labkit.scoreboard.evaluate`: success, fluency, KL from
   the base, cost, a sample) -- every result cached by (prompt, control, strength), so only a
   new prompt or a new setting calls the model;
2. `labkit.viz.overlay`: the base's bars with each control's beside them;
3. `Dashboard`: a prompt box, one toggle and one strength slider per control (sliders send
   their value on release, `continuous_update=False`: dragging calls nothing), the figure,
   and the scoreboard rows with a sample each as the readout.

    choices = [Choice("bag of words", lambda s: Method(f"bag {s}", lm, controls=[...]), (0, 8, 1, 2)),
               Choice("SFT adapter", lambda s: Method("SFT", tuned))]
    panel = lk.widgets.Dashboard(lm, "The weather today is", choices)
    panel.toggles["bag of words"].value = True       # what a click does; panel.result follows
    panel.sliders["bag of words"].value = 4.0

A `Choice` makes a `scoreboard.Method` from a strength (any method: a prompt template, an
adapter, controls, PPLM or a pool as its generator), so the dashboard shows whatever the
scoreboard can score, combinations included (a Method with an adapter *and* controls). The
distribution shown is the one the method's first token is drawn from: its generator's own
first step (`trace=True`), so PPLM and pools show what they really sample from. A method that
fails shows its message in its row's error column; the others still show.

Left out on purpose: more than one prompt at a time (the scoreboard of the notebook does
that), and sampling more than a few texts per setting (each costs a generation).
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Callable

import ipywidgets as W

from .. import scoreboard, viz
from ..dist import Distribution, next_token
from .panel import STYLE, WIDE, Panel, text_box

SHOWN = ["success", "perplexity", "KL (MC)", "KL (exact)", "distinct-2", "time ×", "error"]


@dataclass
class Choice:
    """A control the dashboard can switch on: `make(strength)` -> a `scoreboard.Method`, and
    its strength slider (min, max, step, start), or None for a control without a strength."""

    name: str
    make: Callable
    strength: tuple | None = None

    def method(self, strength) -> scoreboard.Method:
        m = self.make(strength) if self.strength is not None else self.make(None)
        if not isinstance(m, scoreboard.Method):
            raise TypeError(f"Choice {self.name!r}: make() must return a scoreboard.Method, "
                            f"not {type(m).__name__}")
        return m


@dataclass
class Dashboarded:
    """What the dashboard shows for one setting."""

    prompt: str
    base: Distribution                          # the base model's next-token distribution
    dists: dict = field(default_factory=dict)   # control name -> its first-step distribution
    rows: object = None                         # a DataFrame: the scoreboard rows shown
    errors: dict = field(default_factory=dict)  # control name -> why it shows no bars

    def summary(self) -> str:
        if self.rows is None or not len(self.rows):
            return "switch a control on to see its scoreboard row"
        lines = [f"<b>{html.escape(n)}</b>: {html.escape(str(s))[:160]}"
                 for n, s in self.rows["sample"].items()]
        table = self.rows[[c for c in SHOWN if c in self.rows]].round(3).to_html(
            border=0, na_rep="—")
        judge = html.escape(self.rows.attrs.get("judge", ""))
        return (f"{table}<div>success judged by {judge}; samples:</div>"
                + "<br>".join(lines))


def dashboard_step(lm, prompt: str, choices, settings: dict, cache: dict, *, seeds=(0, 1),
                   max_new_tokens: int = 16) -> Dashboarded:
    """Layer 1: the controls of `settings` ({choice name: strength or None}) at `prompt`:
    their first-step distributions and scoreboard rows, each computed once per (prompt,
    name, strength) and kept in `cache` (a dict the caller owns)."""
    import pandas as pd

    by_name = {c.name: c for c in choices}
    unknown = [n for n in settings if n not in by_name]
    if unknown:
        raise ValueError(f"no control named {unknown[0]!r}: the dashboard has "
                         f"{sorted(by_name)}")
    if ("base", prompt) not in cache:
        base = next_token(lm, prompt)                               # a bad prompt raises here
        plain = scoreboard.evaluate([scoreboard.Method("plain", lm)], [prompt], base=lm,
                                    seeds=seeds, max_new_tokens=max_new_tokens,
                                    progress=False)
        cache[("base", prompt)] = base, plain
    base, plain = cache[("base", prompt)]
    out = Dashboarded(prompt, base)
    rows = [plain]
    for name, strength in settings.items():
        key = (prompt, name, strength)
        if key not in cache:
            cache[key] = _one(lm, prompt, by_name[name], strength, plain, seeds, max_new_tokens)
        dist, row = cache[key]
        if dist is None:
            out.errors[name] = row["error"].iloc[0]
        else:
            out.dists[name] = dist
        rows.append(row)
    out.rows = pd.concat(rows)
    out.rows.attrs = plain.attrs
    return out


def _one(lm, prompt, choice, strength, plain, seeds, max_new_tokens):
    """(first-step distribution or None, one scoreboard row) of one control at one setting."""
    import pandas as pd

    try:
        method = choice.method(strength)
        method = scoreboard.Method(**{**method.__dict__, "name": choice.name})
        _, steps = method.generate(prompt, seed=0, max_new_tokens=1, trace=True)
        dist = steps[0].after
    except Exception as e:                                      # noqa: BLE001 (shown in the row)
        row = pd.DataFrame({"error": [f"{type(e).__name__}: {e}"]}, index=[choice.name])
        return None, row.reindex(columns=scoreboard.COLUMNS)
    rate = float(plain["seconds/token"].iloc[0])
    row = scoreboard.evaluate([method], [prompt], base=lm, seeds=seeds,
                              max_new_tokens=max_new_tokens, progress=False, baseline_rate=rate)
    return (dist if row["error"].iloc[0] == "" else None), row


class Dashboard(Panel):
    """A prompt box, a toggle and a strength slider per `Choice`, above `viz.overlay` and the
    scoreboard rows; `result` is the last `Dashboarded`; `error` shows callback errors."""

    def __init__(self, lm, prompt: str, choices, *, on=(), k: int = 12, seeds=(0, 1),
                 max_new_tokens: int = 16):
        self.lm, self.k, self.seeds, self.max_new_tokens = lm, k, tuple(seeds), max_new_tokens
        self.choices = list(choices)
        if not self.choices or not all(isinstance(c, Choice) for c in self.choices):
            raise TypeError("the dashboard needs a list of lk.widgets.Choice")
        names = [c.name for c in self.choices]
        if len(set(names)) != len(names):
            raise ValueError(f"two choices share a name: {names}")
        self.cache: dict = {}
        self.prompt = text_box(prompt, "prompt")
        self.toggles = {c.name: W.ToggleButton(value=c.name in on, description=c.name,
                                               layout=W.Layout(width="auto"))
                        for c in self.choices}
        self.sliders = {c.name: W.FloatSlider(value=c.strength[3], min=c.strength[0],
                                              max=c.strength[1], step=c.strength[2],
                                              description=c.name, continuous_update=False,
                                              style=STYLE, layout=W.Layout(**WIDE))
                        for c in self.choices if c.strength is not None}
        super().__init__(self.prompt, W.HBox(list(self.toggles.values()),
                                             layout=W.Layout(flex_flow="row wrap")),
                         *self.sliders.values())
        self.watch(self.prompt, *self.toggles.values(), *self.sliders.values())

    def settings(self) -> dict:
        """{name: strength (None without a slider)} of the controls switched on."""
        return {c.name: (self.sliders[c.name].value if c.name in self.sliders else None)
                for c in self.choices if self.toggles[c.name].value}

    def compute(self):
        return dashboard_step(self.lm, self.prompt.value, self.choices, self.settings(),
                              self.cache, seeds=self.seeds, max_new_tokens=self.max_new_tokens)

    def figure(self, result):
        return viz.overlay(result.base, result.dists, self.k)

    def summary(self, result) -> str:
        return result.summary()
