"""Prompting: task generators, multi-token label scoring (batched == one by one), the checks."""
import pytest
import torch

import labkit as lk
from labkit import prompting as P
from labkit import tasks as T


# --- task data ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(T.TASKS))
def test_generators_are_deterministic_and_split(name):
    a, b = T.TASKS[name](), T.TASKS[name]()
    assert a.train == b.train and a.test == b.test
    assert len(a.train) + len(a.test) >= 60 and len(a.test) >= 40
    assert not set(a.train) & set(a.test)                       # held out
    for ex in a.train + a.test:
        assert ex.label and ex.label == ex.label.strip()
        assert not a.choices(ex) or ex.label in a.choices(ex)


def test_sentiment_shots_alternate_and_test_is_balanced():
    t = T.sentiment()
    assert [ex.label for ex in t.train[:4]] == ["positive", "negative"] * 2
    labels = [ex.label for ex in t.test]
    assert labels.count("positive") == labels.count("negative")


def test_arithmetic_answers_are_right():
    for ex in T.arithmetic().test:
        assert ex.steps.endswith(f"= {ex.label}.") and int(ex.label) > 0


def test_follows_and_parse_number():
    assert T.follows("one word", " Banana.") and not T.follows("one word", "It is a banana")
    assert T.follows("uppercase", "SPRING") and not T.follows("uppercase", "Spring")
    assert T.follows("number", "8") and not T.follows("number", "eight")
    assert T.follows("yes/no", "Yes.") and not T.follows("yes/no", "Yes, it is.")
    assert P.parse_number("3 + 4 = 7. 7 - 2 = 5. The answer is 5.") == "5"
    assert P.parse_number("I have 12 now") == "12" and P.parse_number("none") is None


# --- prompts -------------------------------------------------------------------------------------

def test_pick_shots_order_and_too_many():
    t = T.sentiment()
    assert P.pick_shots(t, 4, 0) == t.train[:4]
    assert sorted(map(str, P.pick_shots(t, 4, 3))) == sorted(map(str, t.train[:4]))
    with pytest.raises(ValueError, match="only 24 training examples"):
        P.pick_shots(t, 25)
    with pytest.raises(ValueError, match="whole number"):
        P.pick_shots(t, -1)


@pytest.mark.parametrize("chat", [False, True])
@pytest.mark.parametrize("k", [0, 1, 3])
def test_split_prompt_tokenizes_like_the_whole(smol, chat, k):
    tokenizer = smol.tokenizer
    for task in (T.sentiment(), T.capitals(), T.arithmetic()):
        shots = P.pick_shots(task, k)
        for item in task.test[:3]:
            prefix, query = P.split_prompt(task, item, shots, chat=chat, tokenizer=tokenizer)
            assert smol.ids(prefix, start=False) + smol.ids(query, start=False) == \
                smol.ids(prefix + query, start=False)
            assert (prefix + query).endswith("<|im_start|>assistant\n" if chat else ":")


def test_answer_and_end_text(tokenizer):
    assert P.answer_text("positive", chat=False) == " positive"
    assert P.answer_text("positive", chat=True) == "positive"
    assert P.end_text(False) == "\n" and P.end_text(True, tokenizer) == "<|im_end|>"


def test_build_prompt_matches_the_task_prompt():
    t = T.sentiment()
    shots = P.pick_shots(t, 3, 1)
    prefix, query = P.split_prompt(t, t.test[0], shots)
    assert prefix + query == P.build_prompt([(s.text, s.label) for s in shots], t.test[0].text,
                                            t.instruction)


# --- label scoring ---------------------------------------------------------------------------

def _direct_sum(lm, text_before, label):
    """Σ log p over the label's tokens, from one plain forward pass over the whole sequence."""
    tok = lm.tokenizer
    a = tok(text_before, add_special_tokens=False).input_ids
    b = tok(label, add_special_tokens=False).input_ids
    with torch.no_grad():
        logp = torch.log_softmax(lm.model(input_ids=torch.tensor([a + b])).logits[0].float(), -1)
    return sum(float(logp[len(a) - 1 + t, b[t]]) for t in range(len(b)))


def test_label_score_is_the_sum_of_token_logprobs(tiny_lm):
    prompts = ["Country: Argentina\nCapital:", "Country: India\nCapital:"]
    labels = [" Buenos Aires", " New Delhi", " Paris"]
    got = P.label_logprobs(tiny_lm, prompts, labels)
    for i, p in enumerate(prompts):
        for j, y in enumerate(labels):
            assert got[i, j] == pytest.approx(_direct_sum(tiny_lm, p, y), abs=1e-4)
    assert P.label_logprob(tiny_lm, prompts[0], "Buenos Aires") == \
        pytest.approx(float(got[0, 0]), abs=1e-5)


@pytest.mark.parametrize("prefix", ["", "Give", "Give the capital of each country.\n"])
@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_batched_equals_one_by_one(tiny_lm, prefix, batch_size):
    prompts = ["Country: Peru\nCapital:", "\nCountry: Iran\nCapital:", "Capital:"]
    labels = [[" Lima", " Tehran", " Kuala Lumpur"], [" Tehran", " Oslo", " Addis Ababa"],
              [" Rome", " Mexico City", " Bern"]]
    fast = P.label_logprobs(tiny_lm, prompts, labels, prefix=prefix, end="\n",
                            batch_size=batch_size)
    slow = P.label_logprobs_naive(tiny_lm, prompts, labels, prefix=prefix, end="\n")
    assert torch.allclose(fast, slow, atol=1e-4)
    assert fast.shape == (3, 3) and (fast < 0).all()


def test_empty_prompt_after_a_prefix_is_scored(tiny_lm):
    fast = P.label_logprobs(tiny_lm, [""], [" yes", " no"], prefix="Is water wet?\nAnswer:")
    whole = P.label_logprobs(tiny_lm, ["Is water wet?\nAnswer:"], [" yes", " no"])
    assert torch.allclose(fast, whole, atol=1e-4)


def test_batched_equals_one_by_one_on_the_real_model(smol):
    t = T.sentiment()
    items = t.test[:3]
    for chat in (False, True):
        parts = [P.split_prompt(t, it, P.pick_shots(t, 2, 1), chat=chat, tokenizer=smol.tokenizer)
                 for it in items]
        labels = [P.answer_text(y, chat) for y in t.labels]
        kw = dict(prefix=parts[0][0], end=P.end_text(chat, smol.tokenizer))
        fast = P.label_logprobs(smol, [q for _, q in parts], labels, **kw)
        slow = P.label_logprobs_naive(smol, [q for _, q in parts], labels, **kw)
        assert torch.allclose(fast, slow, atol=1e-4), (fast - slow).abs().max()


def test_bad_input_gives_clear_errors(tiny_lm):
    with pytest.raises(ValueError, match="label set is empty"):
        P.label_logprobs(tiny_lm, ["Sentiment:"], [])
    with pytest.raises(ValueError, match="empty label"):
        P.label_logprobs(tiny_lm, ["Sentiment:"], [" good", ""])
    with pytest.raises(ValueError, match="prompt is empty"):
        P.label_logprobs(tiny_lm, [""], [" good"])
    with pytest.raises(ValueError, match="no prompts"):
        P.label_logprobs(tiny_lm, [], [" good"])
    with pytest.raises(TypeError, match="list of strings"):
        P.label_logprobs(tiny_lm, "Sentiment:", [" good"])
    with pytest.raises(ValueError, match="context window"):       # tiny_lm: 128 positions
        P.label_logprobs(tiny_lm, ["word " * 200], [" good"])
    with pytest.raises(ValueError, match="context window"):
        P.greedy(tiny_lm, ["word " * 120], max_new_tokens=20)


def test_prefix_labels_need_an_end_and_then_are_disjoint(tiny_lm):
    with pytest.raises(ValueError, match="is a prefix of"):
        P.label_logprobs(tiny_lm, ["Capital:"], [" New", " New Delhi"])
    bare = P.label_logprobs_naive(tiny_lm, ["Capital:"], [" New"])
    ended = P.label_logprobs(tiny_lm, ["Capital:"], [" New", " New Delhi"], end="\n")
    assert ended[0, 0] < bare[0, 0]                  # "New, then stop" is a subset of "New..."


def test_score_task_and_sweep(tiny_lm):
    t = T.sentiment()
    s = P.score_task(tiny_lm, t, t.test[:4], shots=2, order=1)
    assert torch.allclose(s.probs.sum(-1), torch.ones(4))
    # accuracy: the share of items whose best label, by the naive one-by-one scorer, is gold
    shots, right = P.pick_shots(t, 2, 1), []
    for it in t.test[:4]:
        prefix, query = P.split_prompt(t, it, shots)
        lp = P.label_logprobs_naive(tiny_lm, [query], [" positive", " negative"], prefix=prefix,
                                    end="\n")[0]
        right.append(("positive", "negative")[int(lp.argmax())] == it.label)
    assert s.accuracy == pytest.approx(sum(right) / 4)
    assert s.p_correct == pytest.approx(float(s.probs[torch.arange(4), s.gold].mean()))
    assert ((s.mass > 0) & (s.mass <= 1)).all()
    hist = P.sweep(tiny_lm, t, t.test[:2], shots=(0, 2), orders=2, chats=(False,))
    assert [(h["shots"], h["order"]) for h in hist] == [(0, 0), (2, 0), (2, 1)]
    (ks, mean, std), = P.summarize(hist).values()
    assert ks == [0, 2] and std[0] == 0
    c = T.capitals()
    assert P.score_task(tiny_lm, c, c.test[:2], shots=1, chat=True).logprobs.shape == (2, 4)
    with pytest.raises(ValueError, match="generation"):
        P.score_task(tiny_lm, T.arithmetic())


def test_greedy_is_batched_like_one_by_one(tiny_lm):
    prompts = ["Question: What is two plus three?\nAnswer:", "Hi"]
    both = P.greedy(tiny_lm, prompts, max_new_tokens=5)
    assert both == [P.greedy(tiny_lm, [p], max_new_tokens=5)[0] for p in prompts]
