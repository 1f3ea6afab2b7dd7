"""Learner checks: run an exercise's function on a few cases and name the mistake it makes.

    def my_top_p(probs, p):
        ...
    lk.checks.check_top_p(my_top_p)     # prints "✅ check_top_p: passed (6 cases)", returns True

Every check prints a short verdict -- ✅ passed; ❌ with the mistake named (the reference
solution with that mistake made on purpose gave exactly the learner's output) and the case
that shows it; ❌ with the smallest failing case (input, expected, got) when the mistake is
not one the check knows; or ⏳ "not attempted yet" while the function still raises
`NotImplementedError` -- and returns a bool. It never raises: a top-to-bottom run of a
notebook never breaks on an exercise.

One module per notebook (two for 03) holds its checks, their reference solutions and their
tables of known mistakes: `knobs` (00), `bayes` (01), `prompting` (02), `sft` and `schedule`
(03), `rlhf` (04), `pool` (05), `steer` (06), `scoreboard` (07).
`_runner` is the machinery they share (`Check`, `Variant`, `Case`, `Mistake`); how a verdict
is reached is in its docstring. CI runs every check against its reference, and against a
corpus of plausible wrong answers (tests/checks/; benchmarks/checks_report.py prints the
table).

Left out on purpose: scoring, hidden tests and randomised property testing -- a check is a
teaching aid: a few hand-picked cases, chosen so that the known mistakes tell themselves apart.
"""
from ._runner import Case, Check, Mistake, Variant, Verdict
from .bayes import check_kl_reward, check_tilt
from .knobs import check_top_p, reference_top_p
from .pool import (check_pool_renormalise, check_trie_step, reference_pool_renormalise,
                   reference_trie_step)
from .prompting import check_few_shot_prompt, check_label_logprob
from .rlhf import check_bradley_terry_loss, check_dpo_loss, check_rloo_advantage
from .schedule import check_lr_schedule
from .scoreboard import check_mc_kl, reference_mc_kl
from .sft import check_masked_labels
from .steer import check_bag_of_words, reference_bag_of_words

__all__ = ["Case", "Check", "Mistake", "Variant", "Verdict", "check_bag_of_words",
           "check_bradley_terry_loss", "check_dpo_loss", "check_few_shot_prompt",
           "check_kl_reward", "check_label_logprob", "check_lr_schedule", "check_masked_labels",
           "check_mc_kl", "check_pool_renormalise", "check_rloo_advantage", "check_top_p",
           "check_tilt", "check_trie_step", "reference_bag_of_words", "reference_mc_kl",
           "reference_pool_renormalise", "reference_top_p", "reference_trie_step"]
