"""Supervised fine-tuning (labkit.sft) and the adapter plumbing (labkit.adapters), on the tiny
random model (tests/conftest.py) and on the toy world, where SFT on samples of π(x | c) must
land on π(x | c)."""
import copy
import json
import math
import warnings

import pytest
import torch

import labkit as lk
from labkit import adapters, bayes, sft, toy
from labkit.models import LM

EXAMPLES = [(f"Say {w}", f"{w.upper()}!") for w in ("hi", "yes", "no", "cat", "dog", "sun")]
FAST = dict(max_steps=12, batch_size=3, learning_rate=1e-2)


@pytest.fixture
def lm(tiny_lm):
    """A private copy of the tiny model: adapters injected here do not reach other tests."""
    return LM(model=copy.deepcopy(tiny_lm.model), tokenizer=tiny_lm.tokenizer,
              name="tiny-random-llama")


def logits(lm_, prompt="Say hi", chat=True):
    with torch.inference_mode():
        return lm_.model(input_ids=lm_.encode(prompt, chat=chat)).logits[0].clone()


def tune(lm_, examples=EXAMPLES, **kw):
    kw = FAST | kw
    cache = kw.pop("cache", False)
    force = kw.pop("force", False)
    return sft.finetune(lm_, examples, sft.SFTConfig(**kw), progress=False, cache=cache,
                        force=force)


# --- the pure functions --------------------------------------------------------------------


def test_masked_labels_keep_only_response_tokens():
    ids = torch.arange(1, 13).reshape(2, 6)
    labels = sft.masked_labels(ids, [2, 1], [5, 3])
    assert labels.tolist() == [[-100, -100, 3, 4, 5, -100], [-100, 8, 9, -100, -100, -100]]
    assert labels.dtype == torch.long


def test_lr_at_equals_transformers_linear_schedule_at_every_step():
    from transformers import get_linear_schedule_with_warmup

    for warmup, total in ((0, 10), (3, 10), (10, 10), (4, 25), (1, 1)):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
        sched = get_linear_schedule_with_warmup(opt, warmup, total)
        for step in range(total + 2):
            ours = sft.lr_at(step, learning_rate=0.5, warmup_steps=warmup, max_steps=total)
            assert ours == pytest.approx(opt.param_groups[0]["lr"], abs=1e-12), (warmup, step)
            opt.step()
            sched.step()


def test_sft_loss_equals_a_naive_per_example_loop(lm):
    rows = sft.encode(lm, EXAMPLES[:4] + [("A much longer prompt than the others", "OK")])
    ids, mask, labels = sft.collate(rows, pad_id=0, device=lm.device)
    assert (mask.sum(1) < ids.shape[1]).any()              # padding is really there
    with torch.no_grad():
        fast = sft.sft_loss(lm.model(input_ids=ids, attention_mask=mask).logits, labels)
        total, count = 0.0, 0
        for row, p in rows:                                 # one example, no padding
            logp = torch.log_softmax(lm.model(input_ids=torch.tensor([row])).logits[0], -1)
            for t in range(p, len(row)):                    # every response token, EOS included
                total -= float(logp[t - 1, row[t]])
                count += 1
    assert float(fast) == pytest.approx(total / count, rel=1e-5)


def test_the_trainer_s_loss_is_sft_loss_on_the_whole_batch(lm):
    """The trainer computes logits only where they predict a response token; at step 1 (B = 0:
    the model is still the base) its loss is `sft_loss` of the full forward pass."""
    mixed = EXAMPLES[:3] + [("A much longer prompt than the others", "OK"), ("Hi", "x y z w")]
    _, history = sft.finetune(lm, mixed, sft.SFTConfig(max_steps=1, batch_size=len(mixed)),
                              progress=False)
    rows = sft.encode(lm, mixed)
    ids, mask, labels = sft.collate(rows, pad_id=0, device=lm.device)
    with torch.no_grad():
        full = sft.sft_loss(lm.model(input_ids=ids, attention_mask=mask).logits, labels)
    assert history[0]["loss"] == pytest.approx(float(full), rel=1e-5)


def test_examples_are_tokenized_by_the_one_bos_rule(lm):
    (ids, p), = sft.encode(lm, [("Say hi", "HI!")])
    assert ids[:p] == lm.ids(lm.chat_prompt("Say hi"), start=False)
    assert ids[p:] == lm.ids("HI!", start=False) + [lm.eos_token_id]
    world = toy.make_world()                      # the toy world: an empty prompt is just <s>
    (ids, p), = sft.encode(world.as_lm(), [("", "sun rain snow snow")], chat=False)
    assert p == 1 and ids == [world.bos_id, *world.encode("sun rain snow snow").tolist(),
                              world.bos_id + 1]


# --- training on the tiny model --------------------------------------------------------------


def test_loss_goes_down_and_history_has_the_documented_fields(lm):
    _, history = tune(lm, max_steps=16, warmup_steps=2)
    first = sum(h["loss"] for h in history[:3]) / 3
    last = sum(h["loss"] for h in history[-3:]) / 3
    assert last < first - 0.05
    assert [h["step"] for h in history] == list(range(1, 17))
    assert {"step", "epoch", "loss", "learning_rate", "seconds"} <= set(history[0])
    assert [h["learning_rate"] for h in history] == pytest.approx(
        [sft.lr_at(s, learning_rate=1e-2, warmup_steps=2, max_steps=16) for s in range(16)])


def test_lora_weights_change_and_base_weights_do_not(lm):
    before = {n: p.detach().clone() for n, p in lm.model.named_parameters()}
    tuned, _ = tune(lm)
    name = tuned.model.names[-1]
    lora = dict(adapters.state_dict(lm.model, name))
    assert lora and all(float(w.abs().sum()) > 0 for k, w in lora.items() if "lora_B" in k)
    for n, p in lm.model.named_parameters():
        if "lora_" not in n:
            assert torch.equal(p, before[n.replace(".base_layer", "")]), n
            assert p.grad is None, f"{n} got a gradient: the base must be frozen while training"
            assert p.requires_grad                  # ... and its own flags restored after
    assert not any(p.requires_grad for p in adapters.adapter_parameters(lm.model, name))


def test_the_base_keeps_its_logits_with_two_adapters_and_shares_its_weights(lm):
    ref = logits(lm)
    one, _ = tune(lm)
    two, _ = tune(lm, learning_rate=3e-2, seed=1)
    assert torch.equal(logits(lm), ref)
    assert not torch.allclose(logits(one), ref) and not torch.allclose(logits(two), logits(one))
    assert one.model.base is lm.model and two.model.base is lm.model     # no copy
    n_base = sum(p.numel() for n, p in lm.model.named_parameters() if "lora_" not in n)
    assert sum(p.numel() for p in lm.model.parameters()) < 1.1 * n_base


def test_two_runs_with_one_seed_are_identical(lm):
    a, ha = tune(lm)
    torch.rand(3)                       # the global random state moves between the runs
    b, hb = tune(lm)
    assert torch.equal(logits(a), logits(b))
    assert [h["loss"] for h in ha] == [h["loss"] for h in hb]
    c, _ = tune(lm, seed=3)
    assert not torch.equal(logits(a), logits(c))


def test_gradient_checkpointing_trains_the_same_adapter_silently(lm, capfd):
    a, ha = tune(lm)
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        b, hb = tune(lm, gradient_checkpointing=True)
    assert not [str(w.message) for w in caught] and capfd.readouterr().err == ""
    assert [h["loss"] for h in hb] == pytest.approx([h["loss"] for h in ha], rel=1e-5)
    torch.testing.assert_close(logits(b), logits(a), rtol=1e-4, atol=1e-5)
    assert not adapters.split(lm.model)[0].is_activation_checkpointing    # off again after


def test_eval_loss_is_logged_every_eval_every_steps_and_at_the_end(lm):
    held = [("Say red", "RED!"), ("Say blue", "BLUE!")]
    tuned, history = sft.finetune(lm, EXAMPLES, sft.SFTConfig(**FAST, eval_every=5),
                                  eval_examples=held, progress=False)
    assert [h["step"] for h in history if "eval_loss" in h] == [5, 10, 12]
    assert history[-1]["eval_loss"] == pytest.approx(sft.eval_loss(tuned, held), rel=1e-5)


def test_full_fine_tuning_trains_a_copy(lm):
    ref = logits(lm)
    tuned, history = tune(lm, lora_r=None, learning_rate=1e-3, max_steps=4)
    assert tuned.model is not lm.model and not isinstance(tuned.model, adapters.AdapterView)
    assert torch.equal(logits(lm), ref) and not torch.allclose(logits(tuned), ref)
    assert not any(p.requires_grad for p in tuned.model.parameters())


def test_a_tuned_lm_can_be_tuned_again_as_a_stack(lm):
    ref = logits(lm)
    one, _ = tune(lm)
    one_logits = logits(one)
    two, _ = tune(one)
    assert two.model.names == one.model.names + [two.model.names[-1]]
    assert torch.equal(logits(lm), ref) and torch.equal(logits(one), one_logits)
    assert not torch.allclose(logits(two), one_logits)


def test_a_new_adapter_changes_nothing_until_it_is_trained(lm):
    from peft import LoraConfig

    ref = logits(lm)
    flags = [p.requires_grad for p in lm.model.parameters()]
    adapters.add(lm.model, LoraConfig(r=4, target_modules=["q_proj"]), "x")
    view = adapters.AdapterView(lm.model, "x")
    assert adapters.adapter_names(lm.model) == ["x"]
    assert not any(p.requires_grad for p in adapters.adapter_parameters(lm.model, "x"))
    assert [p.requires_grad for n, p in lm.model.named_parameters() if "lora_" not in n] == flags
    assert torch.equal(logits(lm), ref) and torch.equal(logits(LM(view, lm.tokenizer, "v")), ref)
    with pytest.raises(ValueError, match="already has an adapter named 'x'"):
        adapters.add(lm.model, LoraConfig(r=4, target_modules=["q_proj"]), "x")
    with pytest.raises(ValueError, match="no adapter"):
        adapters.AdapterView(lm.model, "y")


def test_scale_goes_from_the_base_to_the_tuned_model(lm):
    tuned, _ = tune(lm)
    full = logits(tuned)
    with adapters.scaled(tuned.model, 0.0):
        assert torch.equal(logits(tuned), logits(lm))
    with adapters.scaled(tuned.model, 0.5):
        half = logits(tuned)
    assert torch.equal(logits(tuned), full)                         # restored after
    assert float((half - logits(lm)).abs().max()) < float((full - logits(lm)).abs().max())
    with pytest.raises(ValueError, match="scale"):
        tuned.model.set_scale(float("nan"))


def test_a_tuned_lm_works_with_the_lab_functions_without_a_warning(lm, capfd):
    from labkit import metrics, prompting

    tuned, _ = tune(lm, max_steps=20, learning_rate=3e-2)
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = lk.next_token(tuned, "Say hi", chat=True)
        text, steps = lk.generate(tuned, "Say hi", chat=True, max_new_tokens=6, seed=0,
                                  trace=True)
        ppl = lk.perplexity(tuned, "Say hi", " HI!", chat=True)
        scores = prompting.label_logprobs(tuned, ["Say hi"], [" HI", " no"])
        greedy = prompting.greedy(tuned, ["Say hi"], max_new_tokens=3)
    assert not [str(w.message) for w in caught]
    assert capfd.readouterr().err == ""
    assert d.probs.sum() == pytest.approx(1.0) and not torch.equal(
        d.logits, lk.next_token(lm, "Say hi", chat=True).logits)
    assert isinstance(text, str) and math.isfinite(ppl) and len(greedy) == 1
    assert ppl != pytest.approx(lk.perplexity(lm, "Say hi", " HI!", chat=True))
    assert scores.shape == (1, 2) and not torch.allclose(
        scores, prompting.label_logprobs(lm, ["Say hi"], [" HI", " no"]))
    assert min(metrics.step_kls(steps, base=lm)) > 0
    assert max(metrics.step_kls(steps, base=tuned)) < 1e-5


# --- saving, loading, the cache ----------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing:FutureWarning")  # inside peft
def test_save_and_load_round_trip_gives_identical_logits(lm, tmp_path):
    pristine = copy.deepcopy(lm.model)
    tuned, history = tune(lm)
    path = sft.save(tuned, tmp_path / "adapter", history=history)
    manifest = json.loads((path / adapters.MANIFEST).read_text())
    assert set(manifest["files"]) == {adapters.PEFT_CONFIG, adapters.PEFT_WEIGHTS, adapters.HISTORY}
    assert manifest["config"]["lora_r"] == 8 and manifest["base"]["name"] == lm.name
    again = sft.load_adapter(lm, path)
    assert again.model.base is lm.model
    assert not any(p.requires_grad for p in adapters.adapter_parameters(lm.model,
                                                                        again.model.names[0]))
    assert torch.equal(logits(again), logits(tuned))
    # the directory is peft's own format too
    from peft import PeftModel
    theirs = LM(model=PeftModel.from_pretrained(pristine, str(path)).eval(),
                tokenizer=lm.tokenizer, name="peft")
    torch.testing.assert_close(logits(theirs), logits(tuned), rtol=0, atol=1e-6)


def test_lk_load_on_an_adapter_directory_gives_base_and_adapter(lm, tmp_path):
    base_dir = tmp_path / "base"
    lm.model.save_pretrained(base_dir)
    lm.tokenizer.save_pretrained(base_dir)
    on_disk = lk.load(str(base_dir))
    tuned, _ = tune(on_disk)
    sft.save(tuned, tmp_path / "adapter")
    loaded = lk.load(str(tmp_path / "adapter"))
    assert isinstance(loaded.model, adapters.AdapterView)
    torch.testing.assert_close(logits(loaded), logits(tuned), rtol=0, atol=0)


def test_a_cached_finetune_returns_without_training_and_force_retrains(lm, tmp_path,
                                                                      monkeypatch):
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path))
    pristine = copy.deepcopy(lm.model)
    calls = []
    real = sft.sft_loss
    monkeypatch.setattr(sft, "sft_loss", lambda *a: calls.append(1) or real(*a))
    tuned, history = tune(lm, cache=True)
    trained = len(calls)
    assert trained == FAST["max_steps"]
    (key_dir,) = (tmp_path / "adapters").iterdir()
    again, history2 = tune(lm, cache=True)
    assert len(calls) == trained                              # no step was run
    assert history2 == history and torch.equal(logits(again), logits(tuned))
    n_adapters = len(adapters.adapter_names(lm.model))
    tune(lm, cache=True)                                      # a notebook cell run again
    assert len(adapters.adapter_names(lm.model)) == n_adapters   # reused, not a new copy
    other, _ = tune(lm, cache=True, learning_rate=2e-2)      # another config: another key
    assert len(calls) == 2 * trained and len(list((tmp_path / "adapters").iterdir())) == 2
    tune(lm, cache=True, force=True)
    assert len(calls) == 3 * trained
    # a fresh process: another copy of the same base finds the cache too
    fresh = LM(model=pristine, tokenizer=lm.tokenizer, name=lm.name)
    cached, _ = tune(fresh, cache=True)
    assert len(calls) == 3 * trained and torch.equal(logits(cached), logits(tuned))


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("examples, error, match", [
    ([], ValueError, "no examples"),
    ([("Say hi", "")], ValueError, "example 0 has an empty response"),
    ([("Say hi", "HI"), ("Say yes",)], TypeError, "example 1 must be a .prompt, response. pair"),
    ("Say hi", TypeError, "list of .prompt, response. pairs"),
    ([("x " * 600, "HI")], ValueError, "example 0 is .* context .* refused, not truncated"),
])
def test_bad_examples_get_a_clear_message(lm, examples, error, match):
    with pytest.raises(error, match=match):
        sft.finetune(lm, examples, sft.SFTConfig(max_length=512), progress=False)
    assert adapters.adapter_names(lm.model) == []


@pytest.mark.parametrize("kw, match", [
    (dict(learning_rate=0), "learning_rate must be > 0"),
    (dict(learning_rate=-1e-4), "learning_rate"),
    (dict(warmup_steps=1.5), "warmup_steps"),
    (dict(lr_scheduler_type="cosine"), "lr_scheduler_type"),
    (dict(lora_r=0), "lora_r"),
    (dict(max_steps=0), "max_steps"),
    (dict(target_modules=()), "target_modules"),
])
def test_bad_settings_get_a_clear_message(kw, match):
    with pytest.raises(ValueError, match=match):
        sft.SFTConfig(**kw)


def test_unknown_target_modules_name_the_model_s_layers(lm):
    with pytest.raises(ValueError, match="q_proj"):
        tune(lm, target_modules=("qkv",))
    assert adapters.adapter_names(lm.model) == []


def test_a_nan_loss_stops_naming_the_step_and_leaves_no_adapter(lm, tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match=r"loss became nan at step \d+ \(learning rate"):
        tune(lm, learning_rate=1e8, warmup_steps=0, max_steps=30, cache=True)
    assert adapters.adapter_names(lm.model) == [] and not (tmp_path / "adapters").exists()


def test_a_failed_run_leaves_the_other_adapters_as_they_were_and_says_nothing_else(lm):
    one, _ = tune(lm)
    ref = logits(one)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="loss became nan"):
            tune(lm, learning_rate=1e8, warmup_steps=0, max_steps=30)
    assert not [str(w.message) for w in caught]
    assert adapters.adapter_names(lm.model) == one.model.names
    assert torch.equal(logits(one), ref)


def test_saving_over_an_adapter_is_refused_unless_asked(lm, tmp_path):
    one, _ = tune(lm)
    two, _ = tune(lm, seed=1)
    sft.save(one, tmp_path / "a")
    with pytest.raises(ValueError, match="already holds an adapter.*overwrite=True"):
        sft.save(two, tmp_path / "a")
    assert torch.equal(logits(sft.load_adapter(lm, tmp_path / "a")), logits(one))
    sft.save(two, tmp_path / "a", overwrite=True)
    assert torch.equal(logits(sft.load_adapter(lm, tmp_path / "a")), logits(two))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]        # nothing left beside it


def test_a_save_that_fails_midway_leaves_nothing_behind(lm, tmp_path, monkeypatch):
    import safetensors.torch

    tuned, _ = tune(lm)

    other, _ = tune(lm, seed=1)
    sft.save(other, tmp_path / "old")
    seen = []

    def broken(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half")
        # what a reader (or a crash) would find at the targets right now
        seen.append(((tmp_path / "adapter").exists(), sorted(p.name for p in
                                                              (tmp_path / "old").iterdir())))
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    for target, overwrite in (("adapter", False), ("old", True)):
        with pytest.raises(OSError, match="disk full"):
            sft.save(tuned, tmp_path / target, overwrite=overwrite)
    complete = sorted([adapters.MANIFEST, adapters.PEFT_CONFIG, adapters.PEFT_WEIGHTS])
    assert seen == [(False, complete), (False, complete)]      # never a half-written target
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]    # no temporary folder left
    assert torch.equal(logits(sft.load_adapter(lm, tmp_path / "old")), logits(other))


def test_a_half_written_directory_is_detected(lm, tmp_path):
    tuned, _ = tune(lm)
    path = sft.save(tuned, tmp_path / "adapter")
    weights = path / adapters.PEFT_WEIGHTS
    weights.write_bytes(weights.read_bytes()[:100])                   # truncated
    for call in (lambda: sft.load_adapter(lm, path), lambda: lk.load(str(path))):
        with pytest.raises(ValueError, match=f"half-written.*{adapters.PEFT_WEIGHTS}.*Delete it"):
            call()
    (path / adapters.MANIFEST).unlink()
    weights.unlink()
    with pytest.raises(ValueError, match="half-written.*no labkit_adapter.json"):
        sft.load_adapter(lm, path)
    with pytest.raises(ValueError, match="no adapter directory"):
        sft.load_adapter(lm, tmp_path / "nothing")


def test_an_adapter_for_another_base_is_refused(lm, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    tuned, _ = tune(lm)
    path = sft.save(tuned, tmp_path / "adapter")
    config = copy.deepcopy(adapters.split(lm.model)[0].config)
    torch.manual_seed(1)
    same_shape = LM(model=LlamaForCausalLM(config).eval(), tokenizer=lm.tokenizer, name=lm.name)
    with pytest.raises(ValueError, match="made for the base .*fingerprint"):
        sft.load_adapter(same_shape, path)
    wider = LlamaConfig(**{**config.to_dict(), "hidden_size": 48, "head_dim": 12})
    other = LM(model=LlamaForCausalLM(wider).eval(), tokenizer=lm.tokenizer, name="other")
    with pytest.raises(ValueError, match="made for the base 'tiny-random-llama'.*hidden_size 32"):
        sft.load_adapter(other, path)
    assert adapters.adapter_names(other.model) == []


def test_only_a_lora_tuned_lm_can_be_saved(lm, tmp_path):
    full, _ = tune(lm, lora_r=None, max_steps=1)
    with pytest.raises(ValueError, match="only an LM tuned with LoRA"):
        sft.save(full, tmp_path / "x")
    with pytest.raises(ValueError, match="full fine-tuning .* not cached"):
        tune(lm, lora_r=None, cache=tmp_path)


# --- the toy world: SFT on samples of π(x | c) is conditioning ----------------------------------


def test_sft_on_samples_of_a_condition_lands_on_the_conditional():
    world = toy.make_world()
    lm_ = world.as_lm()
    snow = world.vocab.index("snow")
    target = bayes.condition(world.log_prob(), world.sequences()[:, -1] == snow)
    cfg = sft.SFTConfig(lora_r=None, max_steps=100, batch_size=128, learning_rate=1e-2)
    kls = [float(bayes.kl(target, world.log_prob()))]                  # the base: N = 0
    with toy.one_thread():
        for n in (64, 256, 1024):
            samples, _ = bayes.rejection_sample(world, lambda s: s[:, -1] == snow, n, seed=1)
            tuned, _ = sft.finetune(lm_, [("", world.text(s)) for s in samples], cfg,
                                    chat=False, progress=False)
            logp = world.log_prob(tuned.model)
            assert float(torch.logsumexp(logp, 0)) == pytest.approx(0.0, abs=1e-9)
            kls.append(float(bayes.kl(target, logp)))
    assert kls[1] > kls[2] > kls[3] and kls[3] < 0.1 < kls[0]
    assert torch.equal(world.log_prob(lm_.model), world.log_prob())   # the base is untouched


def test_lora_on_the_toy_world_gives_the_tuned_policy_s_exact_distribution():
    world = toy.make_world()
    lm_ = world.as_lm()
    tuned, _ = sft.finetune(lm_, [("", "snow snow snow snow")] * 8,
                            sft.SFTConfig(max_steps=10, learning_rate=3e-2), chat=False,
                            progress=False)
    logp = world.log_prob(tuned.model)
    assert float(torch.logsumexp(logp, 0)) == pytest.approx(0.0, abs=1e-9)
    row = world.index(world.encode("snow snow snow snow")[None])
    assert float(logp[row]) > float(world.log_prob()[row]) + 0.5
    assert torch.equal(world.log_prob(lm_.model), world.log_prob())
