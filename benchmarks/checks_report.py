"""How well the learner checks name the mistake: the corpus of tests/checks/ run through them.

    .venv/bin/python benchmarks/checks_report.py             # the embedded model, as a learner has
    .venv/bin/python benchmarks/checks_report.py --tiny      # a tiny random model (what CI uses)
    .venv/bin/python benchmarks/checks_report.py --verbose   # and every verdict, entry by entry

The corpus (tests/checks/corpus_*.py) holds, per check, plausible answers written from each
exercise's text, each paired with the verdict key it must get. Per check the table prints:

* wrong -- the corpus's wrong answers (everything but the correct ones);
* caught -- wrong answers the check fails;
* named -- failed with exactly the mistake they make (a known mistake, or what is wrong with
  the output: None, its type or shape, the exception raised);
* fallback -- shown as the smallest failing case (input, expected, got), because the check
  does not know the mistake (two mistakes at once, say) and names none;
* misleading -- verdicts that name a mistake the answer does not make;
* crash -- checks that raised instead of giving a verdict;
* correct ok -- correct answers that pass.

Targets (the script exits with status 1 if one is missed): every wrong answer caught, at
least 80% named exactly, none misleading, no crash, every correct answer passing.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
CORPUS_DIR = HERE.parent / "tests" / "checks"


def load_corpus() -> dict:
    corpus = {}
    for path in sorted(CORPUS_DIR.glob("corpus_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        corpus.update(module.CORPUS)
    return corpus


def tiny_lm():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    import labkit as lk

    tok = lk.load().tokenizer
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=128, tie_word_embeddings=True,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    return lk.LM(model=LlamaForCausalLM(config).eval(), tokenizer=tok, name="tiny-random-llama")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="a tiny random model, not lk.load()")
    ap.add_argument("--verbose", action="store_true", help="print every entry's verdict")
    ap.add_argument("--json", help="write the outcomes to this file")
    args = ap.parse_args()

    import contextlib
    import io

    from tqdm.auto import tqdm

    import labkit as lk
    from labkit.checks import (bayes, knobs, pool, prompting, rlhf, schedule, scoreboard, sft,
                               steer)
    from labkit.checks._corpus import score, table

    lm = tiny_lm() if args.tiny else lk.load()
    checks = [knobs.TOP_P, bayes.TILT, bayes.KL_REWARD, prompting.FEW_SHOT_PROMPT,
              prompting.LABEL_LOGPROB, pool.POOL_RENORMALISE, pool.TRIE_STEP,
              steer.BAG_OF_WORDS, sft.MASKED_LABELS, schedule.LR_SCHEDULE,
              rlhf.RLOO_ADVANTAGE, rlhf.BRADLEY_TERRY, rlhf.DPO_LOSS, scoreboard.MC_KL]
    context = {"check_label_logprob": {"lm": lm}, "check_bag_of_words": {"tokenizer": lm.tokenizer},
               "check_mc_kl": {"lm": lm}}
    corpus = load_corpus()
    rows = {}
    todo = [(c, e) for c in checks for e in corpus.get(c.name, [])]
    for check, entry in tqdm(todo, desc="corpus", leave=False):
        with contextlib.redirect_stdout(io.StringIO()):       # learners' prints stay quiet
            out = score(check, entry, **context.get(check.name, {}))
        rows.setdefault(check.name, []).append(out)
        if args.verbose:
            mark = "ok " if out.ok else "BAD"
            print(f"{mark} {check.name}/{entry.name} ({entry.mistake}) -> {out.key}"
                  + ("" if out.ok else f", expected {entry.expect}:\n    {out.message}"))

    print(f"model: {lm.name}; corpus: tests/checks/corpus_*.py\n")
    print(table(rows))
    outs = [o for outs in rows.values() for o in outs]
    wrong = [o for o in outs if o.wrong]
    named = sum(o.named for o in wrong)
    failures = [
        *(["a wrong answer passed"] if not all(o.caught for o in wrong) else []),
        *([f"only {named}/{len(wrong)} named exactly (< 80%)"] if named < 0.8 * len(wrong) else []),
        *(["a verdict names a mistake the answer does not make"]
          if any(o.misleading for o in outs) else []),
        *(["a check raised"] if any(o.crashed for o in outs) else []),
        *(["a correct answer failed"] if any(not o.wrong and o.key != "passed" for o in outs)
          else []),
        *([f"{sum(not o.ok for o in outs)} entries got another verdict than theirs"]
          if not all(o.ok for o in outs) else []),
    ]
    print(f"\nnamed exactly: {named}/{len(wrong)} = {named / max(len(wrong), 1):.0%} "
          f"(target 80%); targets {'met' if not failures else 'MISSED: ' + '; '.join(failures)}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(
            {name: [{"entry": o.entry.name, "expect": o.entry.expect, "key": o.key,
                     "message": o.message} for o in outs] for name, outs in rows.items()},
            indent=1, ensure_ascii=False))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
