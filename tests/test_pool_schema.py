"""JsonSchema: every complete output parses and validates against its schema, for every seed and
temperature tried (the real model and a random one), or the pool raises `Incomplete` -- never a
truncated text; its masks are the naive "keeps the text a valid prefix" set; batches, padded
vocabularies, repeated use and the notebook's helpers work; unsupported schemas fail by name."""
import json
import random

import jsonschema           # via nbval -> nbformat (the test extra)
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, LogitsProcessorList

import labkit as lk
from labkit import pool as P
from labkit.models import LM

pytest.importorskip("llguidance")

BOOKING = {"type": "object", "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 24},
    "party_size": {"type": "integer", "minimum": 1, "maximum": 20},
    "day": {"enum": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
                     "Sunday"]}},
    "required": ["name", "party_size", "day"], "additionalProperties": False}
EXAMPLE = ('Message: Hello, Ann Lee here, a table for two at Chez Marie on Monday please.\n'
           'JSON: {"name": "Ann Lee", "party_size": 2, "day": "Monday"}\n\n')
MESSAGE = "Message: Can Tom Berg get a table at Casa Sol on Sunday? There will be six of us.\nJSON:"
# every keyword family llguidance supports: nesting, arrays, bounds, anyOf, const, pattern
RICH = {"type": "object", "properties": {
    "id": {"type": "integer", "minimum": -5, "maximum": 5},
    "score": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
    "ok": {"type": "boolean"},
    "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "minItems": 1, "maxItems": 3},
    "code": {"type": "string", "pattern": "^[A-Z]{2}[0-9]$"},
    "note": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 4}]},
    "where": {"type": "object", "properties": {"x": {"const": 1}}, "required": ["x"],
              "additionalProperties": False}},
    "required": ["id", "score", "ok", "tags", "code", "note", "where"],
    "additionalProperties": False}
PAD = 64


def valid(text, schema) -> bool:
    try:
        jsonschema.validate(json.loads(text), schema)
    except (json.JSONDecodeError, jsonschema.ValidationError):
        return False
    return True


def tiny_model(tokenizer, vocab_size=None):
    """A 2-layer random Llama over `tokenizer` with `vocab_size` logits (more: padded)."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab_size or len(tokenizer), hidden_size=32,
                         intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id)
    return LM(model=LlamaForCausalLM(config).eval(), tokenizer=tokenizer, name="tiny")


def sample(lm, prompt, pool, temps, seeds, max_new_tokens):
    """(outputs, texts written before an Incomplete)."""
    outs, incomplete = [], []
    for t in temps:
        for seed in seeds:
            try:
                outs.append(P.generate_constrained(lm, prompt, pool, max_new_tokens=max_new_tokens,
                                                   controls=[lk.controls.Temperature(t)],
                                                   seed=seed))
            except P.Incomplete as e:
                incomplete.append(e.text)
    return outs, incomplete


def test_the_real_model_always_writes_valid_json(smol):
    pool = P.JsonSchema(smol.tokenizer, BOOKING)
    outs, incomplete = sample(smol, EXAMPLE + MESSAGE, pool, [0.7, 2.0], range(2), 64)
    assert not incomplete and len(outs) == 4
    assert all(valid(t, BOOKING) for t in outs), outs
    assert all("\n" not in t for t in outs)          # one line, as json.dumps writes it


def test_a_random_model_on_every_keyword_family(tiny_lm):
    pool = P.JsonSchema(tiny_lm.tokenizer, RICH)
    outs, incomplete = sample(tiny_lm, "Data:", pool, [0.7, 1.0, 3.0], range(4), 120)
    assert len(outs) >= 6, incomplete
    assert all(valid(t, RICH) for t in outs), [t for t in outs if not valid(t, RICH)]
    for text in incomplete:         # reported, never returned: a valid start, not a document
        assert pool.is_prefix(text) and not pool.is_complete(text)


def test_incomplete_is_an_error_never_a_truncated_output(smol):
    pool = P.JsonSchema(smol.tokenizer, BOOKING)
    with pytest.raises(P.Incomplete, match="max_new_tokens=5") as e:
        P.generate_constrained(smol, EXAMPLE + MESSAGE, pool, max_new_tokens=5, seed=0)
    assert e.value.text.startswith('{"') and e.value.max_new_tokens == 5
    assert "JsonSchema(" in str(e.value) and not valid(e.value.text, BOOKING)


def test_masks_are_the_tokens_that_keep_the_text_a_valid_prefix(tokenizer):
    """The naive definition, text + token is still a valid start (forcing off: any
    tokenization counts), on every allowed token and on 800 others drawn at random (the whole
    vocabulary takes a minute). Byte pieces (no text in labkit's vocabulary) are left out."""
    pool = P.JsonSchema(tokenizer, BOOKING)
    texts = P.vocabulary(tokenizer).texts
    others = random.Random(0).sample(range(len(texts)), 800)
    for text in ['{"', '{"name": "Tom B', '{"name": "Tom", "party_size": 1']:
        allowed = {i for i in pool.allowed_ids(pool.state_after(text)) if texts[i] is not None}
        checked = allowed | {i for i in others if texts[i] is not None}
        naive = {i for i in checked if pool.is_prefix(text + texts[i])}
        assert allowed == naive, (text, sorted(allowed ^ naive)[:5])
    assert len(pool.allowed_ids(pool.state_after('{"'))) > 1          # forcing is off


def test_the_notebook_helpers(tokenizer):
    pool = P.JsonSchema(tokenizer, BOOKING)
    done = '{"name": "Tom", "party_size": 6, "day": "Sunday"}'
    assert pool.is_complete(done) and not pool.is_complete(done[:-1])
    assert pool.allowed_ids(pool.state_after(done)) == [tokenizer.eos_token_id]
    assert pool.state_after('{"name": 3') is None and not pool.is_prefix('{"nam"')
    assert pool.is_complete(json.dumps({"name": "Zoë 😀", "party_size": 2, "day": "Friday"},
                                       ensure_ascii=False))
    d = lk.Distribution.from_logits(torch.randn(len(tokenizer) + PAD), tokenizer)  # padded
    after, z = P.restrict(d, pool, '{"name": "Tom", "party_size": ')
    assert 0 < z < 1 and after.probs[len(tokenizer):].sum() == 0
    assert after.probs[tokenizer.convert_tokens_to_ids("6")] > 0
    assert abs(P.allowed_mass(d, pool, '{"name": "Tom", "party_size": ') - z) < 1e-5
    with pytest.raises(ValueError, match="not a valid start"):
        P.restrict(d, pool, "[")


def test_a_padded_vocabulary(tokenizer):
    lm = tiny_model(tokenizer, len(tokenizer) + PAD)
    pool = P.JsonSchema(tokenizer, {"type": "object", "properties": {"ok": {"type": "boolean"}},
                                    "required": ["ok"], "additionalProperties": False})
    for seed in range(6):
        text, steps = lk.generate(lm, "x", controls=[pool], max_new_tokens=24, seed=seed,
                                  trace=True)
        assert json.loads(text) in ({"ok": True}, {"ok": False})
        assert all(s.token_id < len(tokenizer) for s in steps)


def test_batch_rows_with_transformers_generate(tiny_lm):
    tok = tiny_lm.tokenizer
    schema = {"type": "object", "properties": {"day": {"enum": ["Monday", "Friday"]},
              "n": {"type": "integer", "minimum": 1, "maximum": 9}},
              "required": ["day", "n"], "additionalProperties": False}
    pool = P.JsonSchema(tok, schema)
    ids = tok("Booking:", return_tensors="pt").input_ids
    torch.manual_seed(0)
    out = tiny_lm.model.generate(ids, do_sample=True, max_new_tokens=40, num_return_sequences=4,
                                 logits_processor=LogitsProcessorList([pool]),
                                 pad_token_id=tok.eos_token_id)
    texts = tok.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)
    assert all(valid(t, schema) for t in texts), texts


def test_repeated_use_and_two_generations_at_once(tiny_lm):
    pool = P.JsonSchema(tiny_lm.tokenizer, {"enum": ["yes", "no"]})
    assert {P.generate_constrained(tiny_lm, "Say:", pool, max_new_tokens=8, seed=s)
            for s in range(8)} <= {'"yes"', '"no"'}
    scores = torch.zeros(1, len(tiny_lm.tokenizer))
    ids = torch.tensor([[1, 2]])
    pool.reset()
    pool(ids, scores)
    bad = tiny_lm.tokenizer.convert_tokens_to_ids("hello")
    with pytest.raises(ValueError, match="does not allow"):
        pool(torch.tensor([[1, 2, bad]]), scores)


def test_a_pydantic_model_and_a_json_string(tokenizer):
    pydantic = pytest.importorskip("pydantic")

    class Booking(pydantic.BaseModel):
        name: str
        party_size: int = pydantic.Field(ge=1, le=20)

    pool = P.JsonSchema(tokenizer, Booking)
    assert pool.is_complete('{"name": "Ann", "party_size": 2}')
    assert not pool.is_complete('{"name": "Ann", "party_size": 21}')
    assert P.JsonSchema(tokenizer, json.dumps(BOOKING)).schema == BOOKING


@pytest.mark.parametrize("schema, match", [
    ({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, "uniqueItems"),
    ({"type": "object", "if": {"required": ["a"]}, "then": {"required": ["b"]}}, "if, then"),
    ({"type": "array", "contains": {"type": "integer"}}, "contains"),
    ({"type": "string", "format": "credit-card"}, "Unknown format: credit-card"),
    ({"type": "string", "pattern": "(?=a)b"}, "look-around"),
    ({"type": "strin"}, "Invalid type: strin"),
    ({"$ref": "https://example.com/schema.json"}, "https://example.com/schema.json"),
    ('{"type": ', "not valid JSON"),
    ([1, 2], "is a dict"),
])
def test_unsupported_schemas_fail_by_name(tokenizer, schema, match):
    with pytest.raises((ValueError, TypeError), match=match) as e:
        P.JsonSchema(tokenizer, schema)
    assert "\n" not in str(e.value)


def test_generate_constrained_takes_it_and_still_refuses_a_non_pool(tiny_lm):
    pool = P.JsonSchema(tiny_lm.tokenizer, {"type": "boolean"})
    assert P.generate_constrained(tiny_lm, "x", pool, max_new_tokens=4, seed=0) in ("true",
                                                                                    "false")
    with pytest.raises(TypeError, match="JsonSchema"):
        P.generate_constrained(tiny_lm, "x", lk.controls.Temperature(1.0))
