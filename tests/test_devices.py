"""Nothing in labkit assumes the CPU: every path a notebook takes on a Colab GPU keeps its tensors
on the model's device (or moves them to the CPU on purpose, for tables and plots).

There is no GPU in CI, so the "meta" device stands in for CUDA: like CUDA it refuses a CPU
tensor combined with its own ("Tensor on device cpu is not on the expected device meta"), and
like CUDA it accepts a CPU long index tensor and a 0-dim CPU tensor. It has no values, so code
that reads numbers (`bool(...)`, `.item()`, `.cpu()`, `.tolist()`) cannot run there: those paths
are checked up to that point (a test replaces the one value-reading call) or by reading only.
"""
import copy

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

import labkit as lk
from labkit import decoding, pplm, prompting, steer
from labkit import pool as P
from labkit.models import LM

META = torch.device("meta")
PROMPT = "The weather today is"
_INDEXING = {torch.Tensor.__getitem__, torch.Tensor.__setitem__, torch.Tensor.index_put_,
             torch.Tensor.index_put}


class CudaLike(TorchFunctionMode):
    """Meta's own checks miss a few mixes that CUDA refuses (a CPU index into `embedding`, i.e.
    CPU input_ids given to the model, or into `gather`): refuse every torch call that combines
    a meta tensor with a CPU tensor of ≥ 1 dimension, except a CPU integer or bool index tensor
    when indexing, which CUDA accepts too. (torch's private helpers, named "_...", are skipped:
    `Module.to` calls one with the old and the new parameter.)"""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        tensors = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)]
        if not name.startswith("_") or func in _INDEXING:       # not torch's own internals
            if any(t.device == META for t in tensors):
                for j, t in enumerate(tensors):
                    if t.device.type != "cpu" or t.dim() == 0:
                        continue
                    if func in _INDEXING and j > 0 and not t.is_floating_point():
                        continue
                    raise RuntimeError(f"{name}: a CPU tensor {tuple(t.shape)} ({t.dtype}) "
                                       "combined with tensors on the model's device")
        return func(*args, **kwargs)


@pytest.fixture(scope="module")
def meta_lm(tiny_lm):
    """The tiny model with its weights on the meta device: the stand-in for an LM on a GPU.
    Eager attention: SDPA's mask helper reads the padding mask's values (`.all()`)."""
    model = copy.deepcopy(tiny_lm.model).to(META)
    model.set_attn_implementation("eager")
    return LM(model=model, tokenizer=tiny_lm.tokenizer, name="tiny-on-meta")


def test_meta_refuses_what_cuda_refuses_and_accepts_what_it_accepts(meta_lm):
    scores = torch.zeros(2, 5, device=META)
    with pytest.raises(RuntimeError, match="expected device meta"):
        scores + torch.zeros(5)                                          # cpu + "gpu"
    with pytest.raises(RuntimeError, match="device"):
        scores.masked_fill(torch.zeros(5, dtype=torch.bool), 0.0)        # a cpu mask
    with pytest.raises(RuntimeError, match="expected device meta"):
        torch.nn.Linear(5, 2)(scores)                                    # a cpu module
    assert (scores + torch.tensor(1.0)).device == META                   # 0-dim cpu: fine
    assert scores[:, torch.tensor([1, 3])].device == META                # cpu long index: fine
    # what meta alone lets through and CUDA does not: CudaLike refuses it
    cpu_ids = torch.tensor([[1, 2, 3]])
    assert meta_lm.model(input_ids=cpu_ids).logits.device == META
    with CudaLike(), pytest.raises(RuntimeError, match="CPU tensor"):
        meta_lm.model(input_ids=cpu_ids)
    with CudaLike(), pytest.raises(RuntimeError, match="CPU tensor"):
        scores.gather(-1, torch.tensor([[0], [1]]))
    with CudaLike():
        assert scores[:, torch.tensor([1, 3])].device == META
        assert (scores + torch.tensor(1.0)).device == META


# --- every LogitsProcessor on "GPU" scores ----------------------------------------------------


C = lk.controls
CONTROLS = {          # name -> a control, given the tokenizer
    "Temperature": lambda tok: C.Temperature(0.7), "TopK": lambda tok: C.TopK(5),
    "TopP": lambda tok: C.TopP(0.9), "MinP": lambda tok: C.MinP(0.1),
    "Greedy": lambda tok: C.Greedy(),
    "LogitBias": lambda tok: steer.LogitBias({3: 1.5, 17: -2.0, 42: float("-inf")}),
    "BagOfWords": lambda tok: steer.BagOfWords(tok, ["happy", "xylophone"], 2.0),
    "Allowed": lambda tok: P.Allowed([1, 2, 3]),
    "OneOf": lambda tok: P.OneOf(tok, [" Paris", " Rome"]),
    "Quote": lambda tok: P.Quote(tok, "Marie Curie was born in Warsaw"),
    "Regex": lambda tok: P.Regex(tok, r" ?\d{4}"),
    "Catalogue": lambda tok: P.Catalogue(tok, ["Paris", "Warsaw"]),
    "JsonSchema": lambda tok: P.JsonSchema(tok, {"type": "object", "properties": {
        "n": {"type": "integer"}}, "required": ["n"]}),
}


@pytest.mark.parametrize("name", CONTROLS)
def test_each_control_keeps_scores_on_their_device(tokenizer, name):
    """The same instance serves the CPU (`Distribution.apply`, the plots) and then the GPU
    (`lk.generate`), as notebooks 05 and 06 do; input_ids are CPU here since the pools and the
    bag read them (`.tolist()`), which a CUDA tensor allows and a meta one does not."""
    control = CONTROLS[name](tokenizer)
    vocab = len(tokenizer)
    ids = tokenizer([PROMPT, "Once upon a"], return_tensors="pt", padding=True).input_ids
    if isinstance(control, P.Pool):
        control.reset()
    cpu = control(ids, torch.randn(2, vocab))
    assert cpu.device.type == "cpu" and cpu.shape == (2, vocab)
    for shape in [(2, vocab), (2, vocab + 7)]:     # + rows beyond the tokenizer (padded vocab)
        if isinstance(control, P.Pool):
            control.reset()
        with CudaLike():
            out = control(ids, torch.zeros(shape, device=META))
        assert out.device == META and out.shape == shape, repr(control)


def test_bag_completion_boost_lands_on_the_scores_device(tokenizer):
    bag = steer.BagOfWords(tokenizer, ["xylophone"], 2.0)
    first = tokenizer(" xylophone", add_special_tokens=False).input_ids[0]
    with CudaLike():
        out = bag(torch.tensor([[5, first]]), torch.zeros(1, len(tokenizer), device=META))
    assert out.device == META and out.shape == (1, len(tokenizer))


# --- the discriminator: trained on the CPU, used on the LM's device ---------------------------


def test_discriminator_on_copies_only_when_the_device_differs(tiny_lm):
    disc = steer.Discriminator(tiny_lm.model.config.hidden_size)
    assert disc.on("cpu") is disc
    moved = disc.on(META)
    assert moved is not disc and moved.head.weight.device == META
    assert moved.classes == disc.classes and disc.head.weight.device.type == "cpu"


def test_guidance_runs_a_cpu_discriminator_on_the_lms_device(meta_lm):
    """notebook 06: train_discriminator returns a CPU head; guidance feeds it hidden states
    from the model on the GPU (before the fix: a CPU Linear on CUDA input -> RuntimeError)."""
    disc = steer.Discriminator(meta_lm.model.config.hidden_size)      # on the CPU, as trained
    guide = steer.ClassifierGuidance(meta_lm, disc, target="positive", gamma=3.0, top_k=4)
    ids = meta_lm.tokenizer(PROMPT, return_tensors="pt").input_ids    # the context: CPU
    cand = torch.tensor([5, 6, 7, 8], device=META)                     # top-k of "GPU" scores
    with CudaLike():
        logp = guide.attribute_logprob(ids, cand)
    assert logp.device == META and logp.shape == (4,)
    assert disc.head.weight.device.type == "cpu"                     # the caller's head stays


def _record_sampling(monkeypatch, module, token_id):
    """Replace `module.sample_step` (it reads values: `if ... .any()`, multinomial) by one that
    records the scores it is given and draws `token_id`."""
    seen = []

    def fake(scores, generator):
        seen.append(scores)
        return torch.tensor([[token_id]])

    monkeypatch.setattr(module, "sample_step", fake)
    return seen


def test_pplm_with_a_cpu_discriminator_stays_on_the_lms_device(meta_lm, monkeypatch):
    """PPLM's gradient on the key-value cache goes through the discriminator: it must sit
    on the model's device (before the fix: RuntimeError)."""
    seen = _record_sampling(monkeypatch, decoding, meta_lm.eos_token_id)
    disc = steer.Discriminator(meta_lm.model.config.hidden_size)
    with CudaLike():
        pplm.generate(meta_lm, PROMPT, discriminator=disc, controls=[lk.controls.TopK(10)],
                      max_new_tokens=1)
    assert len(seen) == 1 and seen[0].device == META
    assert seen[0].shape == (1, meta_lm.model.config.vocab_size)
    assert disc.head.weight.device.type == "cpu"


def test_pplm_with_a_bag_stays_on_the_lms_device(meta_lm, tokenizer, monkeypatch):
    seen = _record_sampling(monkeypatch, decoding, meta_lm.eos_token_id)
    bag = steer.BagOfWords(tokenizer, ["happy"], 2.0)
    with CudaLike():
        pplm.generate(meta_lm, PROMPT, bag=bag, controls=[lk.controls.TopK(10)],
                      max_new_tokens=1)
    assert len(seen) == 1 and seen[0].device == META
    assert seen[0].shape == (1, meta_lm.model.config.vocab_size)


# --- the sampling loop and the batched label scorer -------------------------------------------


def test_generate_hands_the_controls_scores_on_the_models_device(meta_lm, monkeypatch):
    sunny = meta_lm.tokenizer(" sunny", add_special_tokens=False).input_ids[0]
    seen = _record_sampling(monkeypatch, decoding, sunny)
    controls = [C.Temperature(0.7), C.TopK(20), C.TopP(0.9), C.MinP(0.05),
                steer.LogitBias({3: 1.0, 9: -1.0})]
    with CudaLike():
        text = decoding.generate(meta_lm, PROMPT, controls=controls, max_new_tokens=1)
    assert text == meta_lm.tokenizer.decode([sunny])
    assert len(seen) == 1 and seen[0].device == META
    assert seen[0].shape == (1, meta_lm.model.config.vocab_size)


def test_label_logprobs_scores_on_the_models_device(meta_lm, monkeypatch):
    """The batched scorer (prefix cache, right-padded prompts, labels on the prompts' cache)
    builds its ids, masks and positions on the CPU and must move each to the model; the log-
    probabilities are read with float(): recorded here (meta has no value), one per label."""
    read = []

    def fake_float(x=0.0):
        if isinstance(x, torch.Tensor):
            read.append(x)
            return -1.0
        return float(x)

    monkeypatch.setattr(prompting, "float", fake_float, raising=False)
    prompts = ["Review: good\nSentiment:", "Review: the soup was cold\nSentiment:", "Okay"]
    labels = [" positive", " negative"]
    for scorer in (prompting.label_logprobs, prompting.label_logprobs_naive):
        read.clear()
        kw = {"batch_size": 2} if scorer is prompting.label_logprobs else {}
        with CudaLike():
            out = scorer(meta_lm, prompts, labels, prefix="Classify.\n", end="\n", **kw)
        assert out.device.type == "cpu" and out.shape == (3, 2)        # a table: on the CPU
        assert torch.equal(out, torch.full((3, 2), -1.0))
        assert len(read) == 6 and all(t.device == META for t in read), scorer.__name__


# --- the toy world: its tiny model stays on the CPU on purpose, `as_lm` copies it -------------


def test_toy_world_stays_on_cpu_and_as_lm_moves_a_copy():
    world = lk.toy.make_world(seed=0)
    lm = world.as_lm(device=META)
    assert lm.device == META
    assert next(world.base.parameters()).device.type == "cpu"        # the ground truth stays
    assert world.log_prob().device.type == "cpu"
