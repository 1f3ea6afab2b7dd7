"""labkit.toy and labkit.bayes: the exact toy world and the conditioning math of notebook 01."""
import copy
import math

import pytest
import torch

import labkit as lk
from labkit import bayes, toy


@pytest.fixture(scope="module")
def world():
    """The default world (6 weather words × 4 days), built once per test module."""
    return toy.make_world()


@pytest.fixture(scope="module")
def small():
    """A 3-word × 4 world (81 sequences): RL and DPO run on it in a few seconds."""
    return toy.make_world(vocab=("a", "b", "c"), length=4, steps=80)


def lp_of(probs):
    return torch.tensor(probs, dtype=torch.float64).log()


# --- the world ------------------------------------------------------------------------------


def test_world_enumerates_and_sums_to_one(world):
    seqs = world.sequences()
    assert seqs.shape == (6 ** 4, 4)
    assert len(set(map(tuple, seqs.tolist()))) == seqs.shape[0]
    assert torch.equal(world.index(seqs), torch.arange(seqs.shape[0]))
    logp = world.log_prob()
    assert logp.dtype == torch.float64
    assert abs(float(logp.exp().sum()) - 1) < 1e-9


def test_base_learned_the_grammar(world):
    truth = world.grammar.log_prob(world.sequences())
    assert abs(float(truth.exp().sum()) - 1) < 1e-9
    assert float(bayes.kl(truth, world.log_prob())) < 0.05           # nats


def test_make_world_is_cached_and_deterministic(world):
    assert toy.make_world() is world
    other = toy.make_world(vocab=("a", "b", "c"), length=4, steps=80)
    assert torch.allclose(other.log_prob(), toy._make_world.__wrapped__(
        0, ("a", "b", "c"), 4, (("steps", 80),)).log_prob(), atol=1e-9)


def test_log_prob_matches_token_by_token(world):
    """The batched forward pass agrees with the naive one-position-at-a-time product."""
    seqs = world.sequences()[[0, 7, 500, 1295]]
    fast = world.log_prob()[world.index(seqs)]
    for seq, lp in zip(seqs, fast):
        naive = 0.0
        for t in range(world.length):
            d = world.next_token(world.text(seq[:t]))
            naive += math.log(float(d.probs[seq[t]]))
        assert abs(naive - float(lp)) < 1e-5


def test_lm_interface(world):
    lm = lk.load("toy", device="cpu")
    assert lm.name == "toy"
    assert lm.tokenizer("sun rain").input_ids == [world.bos_id, 0, 2]
    d = lk.next_token(lm, "sun rain")
    assert abs(float(d.probs.sum()) - 1) < 1e-5
    assert d.top(1)[0][0] in world.vocab
    # the world's own view (renormalised over the words) agrees with lk.next_token
    mine = world.next_token("sun rain")
    assert torch.allclose(mine.probs, d.probs[:6] / d.probs[:6].sum(), atol=1e-5)
    text = lk.generate(lm, "sun", max_new_tokens=10, seed=0)
    assert len(text.split()) == world.length - 1                        # stops at </s>
    assert lk.generate(lm, "sun", max_new_tokens=10, seed=0) == text
    assert lm.model is not world.base                                   # a copy: safe to tune


def test_sample_matches_probabilities(world):
    x = world.sample(20_000, seed=0)
    freq = torch.bincount(world.index(x), minlength=world.n_sequences).double() / 20_000
    assert float((freq - world.log_prob().exp()).abs().sum()) < 0.15    # total variation ×2
    assert torch.equal(world.sample(5, seed=1), world.sample(5, seed=1))


def test_world_too_large_is_refused():
    with pytest.raises(ValueError, match="too many to enumerate"):
        toy.make_world(length=8)
    with pytest.raises(ValueError, match="distinct"):
        toy.make_world(vocab=("a", "a"))
    with pytest.raises(ValueError, match="unknown word"):
        toy.make_world().encode("sun hail")


# --- the pure functions ------------------------------------------------------------------------


def test_condition_is_bayes_rule():
    p = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    mask = torch.tensor([False, True, True, False])
    got = bayes.condition(p.log(), mask).exp()
    assert torch.allclose(got, torch.tensor([0, 0.6, 0.4, 0], dtype=torch.float64))
    with pytest.raises(ValueError, match="probability 0"):
        bayes.condition(p.log(), torch.zeros(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="probability 0"):   # only on sequences with π = 0
        bayes.condition(lp_of([0.5, 0.5, 0.0]), torch.tensor([False, False, True]))


def test_tilt_against_direct_computation():
    p, r = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64), torch.tensor([0.0, 1.0, 2.0])
    for beta in (0.3, 1.0, 5.0):
        direct = p * torch.exp(r.double() / beta)
        assert torch.allclose(bayes.tilt(p.log(), r, beta).exp(), direct / direct.sum())
    big = bayes.tilt(p.log(), torch.tensor([0.0, 1000.0, 1001.0]), 1.0)    # no overflow
    assert torch.isfinite(big[1:]).all() and abs(float(big.exp().sum()) - 1) < 1e-12


def test_tilt_bad_input():
    logp = lp_of([0.5, 0.5])
    for beta in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="beta"):
            bayes.tilt(logp, torch.zeros(2), beta)
    with pytest.raises(ValueError, match="NaN"):
        bayes.tilt(logp, torch.tensor([0.0, float("nan")]), 1.0)
    with pytest.raises(ValueError, match="NaN or ±inf"):
        bayes.tilt(logp, torch.tensor([0.0, float("inf")]), 1.0)
    with pytest.raises(ValueError, match="shape"):
        bayes.tilt(logp, torch.zeros(2, 3), 1.0)


def test_kl_against_direct_computation():
    p, q = [0.5, 0.3, 0.2, 0.0], [0.25, 0.25, 0.25, 0.25]
    direct = sum(a * math.log(a / b) for a, b in zip(p, q) if a > 0)
    assert abs(float(bayes.kl(lp_of(p), lp_of(q))) - direct) < 1e-12
    assert float(bayes.kl(lp_of(q), lp_of(q))) == 0
    assert math.isinf(float(bayes.kl(lp_of(q), lp_of(p))))            # q > 0 where p = 0


def test_kl_penalised_reward_expectation_is_the_objective():
    """E_π[r - β log π/π0] = E_π[r] - β KL(π‖π0) = -β KL(π‖tilt) + β log Z (Korbak et al.)."""
    gen = torch.Generator().manual_seed(0)
    lp0 = torch.log_softmax(torch.randn(30, generator=gen, dtype=torch.float64), 0)
    lp = torch.log_softmax(torch.randn(30, generator=gen, dtype=torch.float64), 0)
    r, beta = torch.randn(30, generator=gen, dtype=torch.float64), 0.7
    j = float(lp.exp() @ bayes.kl_penalised_reward(r, lp, lp0, beta))
    log_z = float(torch.logsumexp(lp0 + r / beta, 0))
    assert abs(j - (-beta * float(bayes.kl(lp, bayes.tilt(lp0, r, beta))) + beta * log_z)) < 1e-9


def test_match_reward_becomes_the_prompt(world):
    """λ·δ(x_1, y) tilts toward the prompt-conditional, which it reaches as λ → ∞."""
    seqs, logp = world.sequences(), world.log_prob()
    prompt = bayes.condition(logp, seqs[:, 0] == 4)
    gaps = [float(bayes.kl(prompt, bayes.tilt(logp, bayes.match_reward({0: 4}, lam)(seqs), 1.0)))
            for lam in (0.0, 2.0, 5.0, 20.0)]
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-6


def test_rejection_sampling_estimates_the_condition(world):
    logp = world.log_prob()
    last_snow = lambda x: x[:, -1] == 4                                   # noqa: E731
    exact = bayes.condition(logp, last_snow(world.sequences()))
    samples, rate = bayes.rejection_sample(world, last_snow, 4000, seed=0)
    assert samples.shape == (4000, 4) and bool(last_snow(samples).all())
    p_c = float(logp.exp()[last_snow(world.sequences())].sum())
    assert abs(rate - p_c) < 0.02
    freq = torch.bincount(world.index(samples), minlength=world.n_sequences).double() / 4000
    assert float((freq - exact.exp()).abs().sum()) < 0.3
    with pytest.raises(ValueError, match="too rare"):
        bayes.rejection_sample(world, lambda x: (x == 4).all(-1) & (x[:, 0] == 0), 5,
                               max_draws=2000)


# --- the trainers -------------------------------------------------------------------------------


def test_rl_finetune_lands_on_the_tilt(small):
    reward = lambda x: (x == 0).double().sum(-1) - 0.5 * (x[:, -1] == 2).double()  # noqa: E731
    policy, history = bayes.rl_finetune(small, reward, 0.5, seed=0)
    assert history[0]["kl_target"] > 0.2
    assert history[-1]["kl_target"] < 0.02
    target = bayes.tilt(small.log_prob(), bayes.world_reward(small, reward), 0.5)
    assert float(bayes.kl(small.log_prob(policy), target)) < 0.02
    assert history[-1]["reward"] > history[0]["reward"]
    assert set(history[0]) >= {"step", "reward", "kl_base", "kl_target", "seconds"}
    assert small.base.training is False                                 # the base is untouched


def test_rl_finetune_fixed_steps_and_sampled_estimator(small):
    reward = lambda x: (x == 1).double().sum(-1)                          # noqa: E731
    _, h = bayes.rl_finetune(small, reward, 1.0, steps=5, estimator="sampled", n_samples=64)
    assert len(h) == 6 and h[-1]["kl_target"] < h[0]["kl_target"]


def test_rl_finetune_bad_input(small):
    with pytest.raises(ValueError, match="beta"):
        bayes.rl_finetune(small, lambda x: x.sum(-1).double(), 0)
    with pytest.raises(ValueError, match="shape"):
        bayes.rl_finetune(small, lambda x: x.double(), 1.0)
    with pytest.raises(ValueError, match="NaN"):
        bayes.rl_finetune(small, lambda x: x.double().sum(-1) / 0 * 0, 1.0)
    with pytest.raises(ValueError, match="estimator"):
        bayes.rl_finetune(small, lambda x: x.double().sum(-1), 1.0, estimator="ppo")


def test_dpo_lands_on_the_same_tilt(small):
    reward = lambda x: 2.0 * (x == 1).double().sum(-1)                    # noqa: E731
    beta = 1.0          # "b" is common under the base, so pairs drawn from it cover the target
    target = bayes.tilt(small.log_prob(), bayes.world_reward(small, reward), beta)
    pairs = bayes.preference_pairs(small, reward, 2000, seed=0)
    policy, history = bayes.dpo_finetune(small, pairs, beta, target=target)
    assert history[0]["kl_target"] > 0.2
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["kl_target"] < 0.02
    implicit = bayes.implicit_reward(small.log_prob(policy), small.log_prob(), beta)
    true = bayes.world_reward(small, reward)
    assert float(torch.corrcoef(torch.stack([implicit, true]))[0, 1]) > 0.95


def test_dpo_hard_labels_and_bad_input(small):
    chosen, rejected = bayes.preference_pairs(small, lambda x: x.double().sum(-1), 50,
                                              labels="hard")
    assert chosen.shape == rejected.shape == (50, 4)
    _, h = bayes.dpo_finetune(small, (chosen, rejected), 1.0, steps=3)
    assert len(h) == 4 and "kl_target" not in h[0]
    with pytest.raises(ValueError, match="beta"):
        bayes.dpo_finetune(small, (chosen, rejected), -1.0)
    with pytest.raises(ValueError, match="pairs"):
        bayes.dpo_finetune(small, chosen, 1.0)


# --- the toy world's two views stay one distribution --------------------------------------


def _distorted(world):
    """A copy of the base whose *raw* logits now favour </s> and <unk> inside a sequence and
    which prefers snow: what an unconstrained fine-tune can do, since the world's losses
    never look at the specials."""
    from transformers import LlamaForCausalLM

    policy = copy.deepcopy(world.base).train().requires_grad_(True)
    opt = torch.optim.Adam(policy.parameters(), lr=3e-2)
    inp = torch.cat([torch.full((1, 1), world.bos_id), world.encode("snow snow snow")[None]], 1)
    V = len(world.vocab)
    for _ in range(30):
        raw = LlamaForCausalLM.forward(policy, input_ids=inp).logits     # no world mask: 1 L vocab
        loss = -raw[0, :, V + 1:].mean() + torch.nn.functional.cross_entropy(
            raw[0, :-1, :V], inp[0, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    policy = lk.models.freeze(policy)
    raw = LlamaForCausalLM.forward(policy, input_ids=inp).logits[0, :-1]
    assert (raw[:, V + 1:].max(-1).values > raw[:, :V].max(-1).values).all()   # distorted
    return policy


def test_sampling_the_lm_matches_log_prob_after_a_distorting_fine_tune(world):
    policy = _distorted(world)
    lm = world.as_lm(model=policy)
    logp = world.log_prob(policy)
    assert abs(float(logp.exp().sum()) - 1) < 1e-9
    # 20,000 sequences drawn token by token through the LM (batched, transformers' sampler)
    start = torch.full((20_000, 1), world.bos_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        out = lm.model.generate(start, attention_mask=torch.ones_like(start), do_sample=True,
                                max_new_tokens=world.length + 1, pad_token_id=world.bos_id + 1,
                                eos_token_id=world.bos_id + 1, top_k=None, top_p=None)
    words, end = out[:, 1:1 + world.length], out[:, 1 + world.length]
    assert bool((words < len(world.vocab)).all()) and bool((end == world.bos_id + 1).all())
    freq = torch.bincount(world.index(words), minlength=world.n_sequences).double() / 20_000
    assert 0.5 * float((freq - logp.exp()).abs().sum()) < 0.05          # total variation
    # and through the lab's own loop: always exactly `length` words, then it stops
    for seed in range(20):
        text = lk.generate(lm, "snow", max_new_tokens=10, seed=seed)
        assert len(text.split()) == world.length - 1 and set(text.split()) <= set(world.vocab)


def test_the_world_mask_allows_words_inside_and_only_eos_after():
    mask = toy.world_mask(torch.arange(6), n_words=3, length=4, vocab=6)   # 6 positions
    allowed = torch.isfinite(mask)
    assert allowed[:4].tolist() == [[True, True, True, False, False, False]] * 4
    assert allowed[4:].tolist() == [[False, False, False, False, True, False]] * 2


def test_dpo_accuracy_counts_ties_as_half_so_step_0_reads_one_half(world):
    reward_fn = lambda s: (s == world.vocab.index("rain")).double().sum(-1)   # noqa: E731
    for labels in ("hard", "soft"):
        pairs = bayes.preference_pairs(world, reward_fn, 64, seed=3, labels=labels)
        _, history = bayes.dpo_finetune(world, pairs, 1.0, steps=1)
        assert history[0]["accuracy"] == pytest.approx(0.5)              # π_θ = π_ref: all ties


def test_match_reward_refuses_bad_positions_and_word_ids(world):
    snow = world.vocab.index("snow")
    with pytest.raises(ValueError, match="vocab.index"):
        bayes.match_reward({0: "snow"}, 2.0)
    with pytest.raises(ValueError, match="whole number"):
        bayes.match_reward({-1: snow}, 2.0)
    with pytest.raises(ValueError, match="whole number"):
        bayes.match_reward({0: 1.5}, 2.0)
    with pytest.raises(ValueError, match="non-empty"):
        bayes.match_reward({}, 2.0)
    with pytest.raises(ValueError, match="condition"):
        bayes.match_reward({0: snow}, float("inf"))
    with pytest.raises(ValueError, match="past the end"):
        bayes.match_reward({world.length: snow}, 2.0)(world.sequences())
    r = bayes.match_reward({0: snow, 3: torch.tensor(snow)}, 2.0)(world.sequences())
    assert float(r.max()) == 4.0 and r.shape == (world.n_sequences,)
