"""Instruction following in a format the model was not tuned on: notebook 03's data set.

Notebook 02 measured that SmolLM2-135M-Instruct, sent a request as raw text, often gives no
answer and rarely obeys a format ("one word", "uppercase"). Here every request is written in a
plain format of our own,

    Instruction: List three fruits, separated by commas.
    Response: Apple, banana, cherry.

over ten task types, each with a checker that says whether a reply obeys it (`obeys`) and a
reference response that does. Six types are for training; four are **held out** and appear
only in `test_unseen`: does tuning on many task types help on unseen ones? -- the question of
FLAN (Wei et al. 2022, "Finetuned Language Models Are Zero-Shot Learners", §2: instruction
tuning on clusters of tasks, evaluated on a held-out cluster), in miniature. `test_seen` holds
unseen items of the training types.

* `instruction_data(seed)` -> `InstructionData(train, test_seen, test_unseen)` of `Item`s
  (type, instruction, response, key); `train` goes round the types, so any prefix of it is
  balanced (quick mode trains on the first few dozen);
* `format_prompt`, `pairs(items)` -> the (prompt, response) pairs `lk.sft.finetune` takes
  (the response carries its leading space: "Response:" + " Apple, ...");
* `answered(reply)`, `obeys(item, reply)`, `score(items, replies)` -> shares;
* `sloppy(text)` / `sloppy_items(items)`: the same responses all lowercase without
  punctuation (notebook 03 §5, "data quality is output quality"), and `style(replies)`: the
  share of replies with no capital letter, with no punctuation, with no final punctuation,
  to measure how far that style leaks into replies to `UNRELATED` requests.

Every reference response is one line, and every training response starts with a capital
letter and ends with . ! or ?, so that `style` of the careful training data is exactly 0.
Replies are judged on their first line (generate with stop="\\n", or let them end at EOS).

Left out on purpose: human-written data, open-ended requests with no checker, multi-turn
dialogue, and anything that needs world knowledge notebook 02 measures (capitals), so that
forgetting can be measured on it.
"""
from .data import (HELD_OUT_TYPES, TRAIN_TYPES, UNRELATED, InstructionData, Item,
                   format_prompt, instruction_data, pairs, pool_sizes, sloppy, sloppy_items)
from .judge import answered, first_line, obeys, score, style

__all__ = ["HELD_OUT_TYPES", "TRAIN_TYPES", "UNRELATED", "InstructionData", "Item",
           "answered", "first_line", "format_prompt", "instruction_data", "obeys",
           "pairs", "pool_sizes", "score", "sloppy", "sloppy_items", "style"]
