"""Notebook 03's data: the Instruction/Response data set (labkit/instruct.py) and the
rejection-sampled positive continuations (labkit.tasks.positive_continuations)."""
import random
import re

import pytest
import torch

from labkit import instruct as I
from labkit import tasks
from labkit.lexicon import lexicon_label


@pytest.fixture(scope="module")
def data():
    return I.instruction_data()


def every_item():
    return [it for kind in I.TRAIN_TYPES + I.HELD_OUT_TYPES
            for it in I.data._pool(kind, random.Random(kind))]


def test_deterministic_in_the_seed(data):
    assert I.instruction_data() == data
    other = I.instruction_data(seed=1)
    assert other.train != data.train and len(other.train) == len(data.train)


def test_sizes_and_round_the_types(data):
    n = len(I.TRAIN_TYPES)
    assert (len(data.train), len(data.test_seen), len(data.test_unseen)) == (48 * n, 10 * n, 48)
    for i in range(0, 48, n):                         # any prefix of a few dozen is balanced
        assert [it.type for it in data.train[i:i + n]] == list(I.TRAIN_TYPES)
    small = I.instruction_data(n_train=6, n_test=2, n_unseen=3)
    assert (len(small.train), len(small.test_seen), len(small.test_unseen)) == (36, 12, 12)


def test_splits_are_disjoint_by_type_and_by_item(data):
    assert not set(I.TRAIN_TYPES) & set(I.HELD_OUT_TYPES)
    assert {it.type for it in data.train} == set(I.TRAIN_TYPES)
    assert {it.type for it in data.test_seen} == set(I.TRAIN_TYPES)
    assert {it.type for it in data.test_unseen} == set(I.HELD_OUT_TYPES)
    train = {it.instruction for it in data.train}
    assert len(train) == len(data.train)
    assert not train & {it.instruction for it in data.test_seen + data.test_unseen}


def test_prompts_are_the_raw_format_and_pairs_tokenize_as_one_text(data, tiny_lm):
    it = data.train[0]
    assert it.prompt == f"Instruction: {it.instruction}\nResponse:"
    for prompt, response in I.pairs(data.train[:60] + data.test_unseen):
        assert response.startswith(" ") and not response.startswith("  ")
        assert "\n" not in response
        assert (tiny_lm.ids(prompt, start=True) + tiny_lm.ids(response, start=False)
                == tiny_lm.ids(prompt + response, start=True))


def test_every_reference_response_obeys_its_instruction():
    bad = [(it.type, it.instruction, it.response) for it in every_item()
           if not I.obeys(it, it.response)]
    assert not bad, bad[:5]


def _item(data, kind, **where):
    return next(it for it in data.train + data.test_seen + data.test_unseen
                if it.type == kind and all(getattr(it, k) == v for k, v in where.items()))


VIOLATIONS = {   # type -> plausible replies that do not obey
    "one_word": ["It is green.", "Green grass", "", "1"],
    "uppercase": ["Our neighbour sings a song.", "OUR neighbour SINGS.", "123."],
    "yes_no": ["Yes, it is.", "Maybe.", "Of course"],
    "number": ["Eight.", "It has 8 legs.", "8 legs"],
    "negate": ["My sister walks to school.", "Instruction: Make this sentence negative:"],
}


@pytest.mark.parametrize("kind", sorted(VIOLATIONS))
def test_checkers_reject_plausible_violations(kind):
    for reply in VIOLATIONS[kind]:
        assert not I.obeys(kind, reply), (kind, reply)


def test_checkers_that_need_the_item(data):
    three = _item(data, "list", key=(3,))
    assert I.obeys(three, "Apple, pear, plum.") and I.obeys(three, "apple, pear, plum")
    for reply in ["Apple, pear.", "Apple pear plum", "Apple, pear and plum.",
                  "1. Apple 2. Pear 3. Plum", "Apple, pear, plum, fig."]:
        assert not I.obeys(three, reply), reply
    past = _item(data, "past_tense")
    present, done = past.key
    assert not I.obeys(past, past.instruction.split(": ", 1)[1])     # the sentence unchanged
    assert not I.obeys(past, f"He {present} and {done}.")
    short = _item(data, "short_answer")
    assert I.obeys(short, short.key[0].capitalize() + ".")
    assert not I.obeys(short, "I do not know.")
    assert not I.obeys(short, f"Well, let me think about it for a while, it is {short.key[0]}.")
    srt = _item(data, "sort")
    assert I.obeys(srt, " ".join(srt.key)) and I.obeys(srt, ", ".join(srt.key).upper() + ".")
    assert not I.obeys(srt, ", ".join(reversed(srt.key)))
    assert not I.obeys(srt, ", ".join(srt.key[:-1]))
    start = _item(data, "starts_with")
    assert not I.obeys(start, "The weather is nice.")
    assert not I.obeys(start, f"{start.key[0]}.")                    # not a sentence
    assert I.obeys(start, f'"{start.key[0]} we went home."')


def test_answered_and_the_judged_line():
    assert I.answered(" Green.") and I.answered("8\nInstruction: more")
    for reply in ["", "   ", "\n\n", "...", "Instruction: List two fruits.", "Response:"]:
        assert not I.answered(reply), reply
    assert I.obeys("one_word", "Green.\nInstruction: Answer in one word. What is ice?")
    assert not I.obeys("yes_no", "")


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="pass the Item itself"):
        I.obeys("list", "Apple, pear.")
    with pytest.raises(ValueError, match="unknown task type"):
        I.obeys("poetry", "Roses are red.")
    with pytest.raises(TypeError, match="string"):
        I.obeys("one_word", None)
    with pytest.raises(ValueError, match="pool_sizes"):
        I.instruction_data(n_train=200)
    with pytest.raises(ValueError, match="n_train"):
        I.instruction_data(n_train=0)
    with pytest.raises(ValueError, match="one reply per item"):
        I.score(I.instruction_data().test_seen[:3], ["Yes."])


def test_score_counts_answered_and_obeyed(data):
    items = [_item(data, "yes_no"), _item(data, "one_word"), _item(data, "number")]
    s = I.score(items, ["Yes.", "It is green.", ""])
    assert (s["answered"], s["obeys"], s["n"]) == (pytest.approx(2 / 3), pytest.approx(1 / 3), 3)
    assert s["by_type"] == {"yes_no": (1.0, 1.0), "one_word": (1.0, 0.0), "number": (0.0, 0.0)}


def test_the_sloppy_variant_is_sloppy_and_careful_data_is_not(data):
    careful = [it.response for it in data.train]
    rough = I.sloppy_items(data.train)
    assert [(it.type, it.instruction, it.key) for it in rough] == \
        [(it.type, it.instruction, it.key) for it in data.train]
    for it in rough:
        assert it.response and not re.search(r"[A-Z]", it.response), it.response
        assert not re.search(r"[^\w\s]", it.response), it.response
    assert I.style(careful) == {"no_capital": 0.0, "no_punct": 0.0, "no_final_punct": 0.0,
                                "n": len(careful)}
    assert I.style([it.response for it in rough]) == {"no_capital": 1.0, "no_punct": 1.0,
                                                     "no_final_punct": 1.0, "n": len(rough)}
    assert [p for p, _ in I.pairs(data.train, sloppy_responses=True)] == \
        [p for p, _ in I.pairs(data.train)]
    # sloppy data disobeys the uppercase and list types, and only them
    disobey = {it.type for it in rough if not I.obeys(it, it.response)}
    assert disobey == {"uppercase", "list"}
    assert I.sloppy("Apple, banana, cherry.") == "apple banana cherry"


def test_style_measures_answered_replies_only():
    s = I.style(["Hello there.", "no capital here", "", "Instruction: x", "Cut, by the"])
    assert s == {"no_capital": pytest.approx(1 / 3), "no_punct": pytest.approx(1 / 3),
                 "no_final_punct": pytest.approx(2 / 3), "n": 3}
    assert I.style([])["n"] == 0
    assert len(I.UNRELATED) >= 12 and not {I.format_prompt(u) for u in I.UNRELATED} & \
        {it.prompt for it in every_item()}


# --- positive continuations by rejection sampling -------------------------------------------


def test_positive_continuations_keeps_only_lexicon_positive_ones(tiny_lm):
    state = torch.random.get_rng_state()
    c = tasks.positive_continuations(tiny_lm, 3, max_new_tokens=8, batch_size=24,
                                     max_samples=96, progress=False)
    assert torch.equal(torch.random.get_rng_state(), state)           # the caller's RNG untouched
    assert len(c.pairs) == 3 and c.sampled <= 96
    assert 0 < c.acceptance <= 1 and c.acceptance * c.sampled >= len(c.pairs)
    for prompt, text in c.pairs:
        assert prompt in tasks.NEUTRAL_TRAIN and text.strip() and "\n" not in text
        assert lexicon_label(text) == 1, text
    assert not set(tasks.NEUTRAL_TRAIN) & set(tasks.NEUTRAL_TEST)
    assert c.test_prompts == tasks.NEUTRAL_TEST
    again = tasks.positive_continuations(tiny_lm, 3, max_new_tokens=8, max_samples=96,
                                         progress=False)
    assert again.pairs == c.pairs and again.acceptance == c.acceptance
    other = tasks.positive_continuations(tiny_lm, 3, max_new_tokens=8, max_samples=96, seed=1,
                                         progress=False)
    assert other.pairs != c.pairs


def test_positive_continuations_stops_at_the_sample_budget(tiny_lm):
    c = tasks.positive_continuations(tiny_lm, 50, prompts=["The shop was"], max_new_tokens=4,
                                     batch_size=5, max_samples=12, progress=False)
    assert c.sampled == 12 and len(c.pairs) < 50
    assert c.acceptance == pytest.approx(len(c.pairs) / 12)
    with pytest.raises(ValueError, match="prompts"):
        tasks.positive_continuations(tiny_lm, 2, prompts=[""], progress=False)
    with pytest.raises(ValueError, match="top_p"):
        tasks.positive_continuations(tiny_lm, 2, top_p=0, progress=False)
