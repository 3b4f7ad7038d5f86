"""Continuous batching gives every example exactly what static batching gives it: the
same tokens (greedy, and sampling from the same per-example keys), finish reasons,
log-probabilities and stop-string cuts, with more examples than slots, mixed prompt
lengths and rows that end at different steps; and it runs fewer steps."""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
import pytest

from pretty_jax.checkpoints import loading
from pretty_jax.checkpoints.sample_text import SENTENCES
from pretty_jax.checkpoints.tokenizer import load_tokenizer
from pretty_jax.engine.generator import DecodeConfig, Generator
from pretty_jax.engine.scheduler import Scheduler, prefill_length, prefix_families, row_buckets
from pretty_jax.engine.strategies import Greedy, Sampling

PRIOR_CYCLE = ([], [10], [20, 30], [], [7], [3, 4, 5], [], [11])


def _inputs(tokenizer) -> tuple[list[list[int]], list[list[int]]]:
    """22 examples: every sentence whole and cut to a few lengths (5 to ~30 tokens),
    with priors of 0-3 tokens."""
    prompts = []
    for cut in (None, 12, 5):
        prompts += [tokenizer(s).input_ids[:cut] for s in SENTENCES]
    prompts = prompts[:22]
    return prompts, [list(PRIOR_CYCLE[i % len(PRIOR_CYCLE)]) for i in range(len(prompts))]


def _with_mid_way_eos(model, generator_args, prompts, priors, max_new_tokens):
    """The model with an extra EOS id: the token its free greedy runs emit most often
    after their first few steps, so examples end at many different steps."""
    # Counted after the priors, as before prior tokens counted within max_new_tokens:
    # the same token as then (under the budget, gemma3's most common tokens tie).
    config = DecodeConfig(max_new_tokens=max_new_tokens, count_prior=False)
    free = Generator(model, **generator_args).generate(prompts, priors, config)
    counts = collections.Counter(t for g in free for t in g.tokens[3:])
    extra = counts.most_common(1)[0][0]
    tokens = model.config.special_tokens
    special = dataclasses.replace(tokens, eos_token_ids=tuple(tokens.eos_token_ids) + (int(extra),))
    return dataclasses.replace(model, config=dataclasses.replace(model.config, special_tokens=special))


@pytest.fixture(scope="module", params=["llama", "gemma3"])
def setup(request, jax_checkpoint):
    directory = jax_checkpoint(request.param)
    tokenizer = load_tokenizer(directory)
    prompts, priors = _inputs(tokenizer)
    model = loading.load_model(directory, "float32")
    model = _with_mid_way_eos(model, dict(batch_size=4), prompts, priors, 20)
    return model, tokenizer, prompts, priors


def _both(model, tokenizer, prompts, priors, config, slots=4):
    continuous = Generator(model, tokenizer, batch_size=slots)
    static = Generator(model, tokenizer, batch_size=slots, continuous=False)
    streamed = {}
    ours = continuous.generate(prompts, priors, config, on_result=lambda i, g: streamed.setdefault(i, g))
    assert sorted(streamed) == list(range(len(prompts))) and [streamed[i] for i in streamed] != []
    assert [streamed[i] for i in range(len(prompts))] == ours
    return ours, static.generate(prompts, priors, config), continuous.stats


def _assert_same(ours, theirs):
    assert len(ours) == len(theirs)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a.tokens == b.tokens, f"example {i}"
        assert a.finish_reason == b.finish_reason, f"example {i}"
        assert a.text == b.text, f"example {i}"
        if b.logprobs is not None:
            np.testing.assert_allclose(a.logprobs, b.logprobs, rtol=1e-5, atol=1e-5, err_msg=f"example {i}")


def test_greedy_with_log_probs_is_identical_and_runs_fewer_steps(setup):
    model, tokenizer, prompts, priors = setup
    config = DecodeConfig(max_new_tokens=20, return_logprobs=True)
    ours, theirs, stats = _both(model, tokenizer, prompts, priors, config)
    _assert_same(ours, theirs)
    reasons = collections.Counter(g.finish_reason for g in ours)
    assert reasons["eos"] >= 3 and reasons["length"] >= 1, reasons
    lengths = [len(g.tokens) for g in ours]
    static_steps = sum(max(lengths[i : i + 4]) for i in range(0, len(lengths), 4))
    assert stats.busy_slot_steps == sum(lengths)
    assert stats.steps < static_steps, (stats.steps, static_steps)
    assert stats.utilisation > sum(lengths) / (4 * static_steps)


def test_sampling_draws_the_same_tokens_from_each_example_key(setup):
    model, tokenizer, prompts, priors = setup
    config = DecodeConfig(max_new_tokens=16, strategy=Sampling(1.0, top_k=50), seed=3, return_logprobs=True)
    ours, theirs, _ = _both(model, tokenizer, prompts, priors, config)
    _assert_same(ours, theirs)
    reseeded, _, _ = _both(model, tokenizer, prompts, priors, dataclasses.replace(config, seed=4))
    assert [g.tokens for g in reseeded] != [g.tokens for g in ours]


def test_stop_strings_end_and_cut_like_static_batches(setup):
    model, tokenizer, prompts, priors = setup
    free, _, _ = _both(model, tokenizer, prompts, priors, DecodeConfig(max_new_tokens=16))
    stop = next(s for s in (tokenizer.decode([t]) for g in free for t in g.tokens[4:]) if s.strip())
    config = DecodeConfig(max_new_tokens=16, strategy=Greedy(), stop_strings=(stop,))
    ours, theirs, _ = _both(model, tokenizer, prompts, priors, config)
    _assert_same(ours, theirs)
    assert any(g.finish_reason == "stop" for g in ours)
    assert all(stop not in g.text for g in ours)


def test_one_slot_and_more_slots_than_examples(setup):
    model, tokenizer, prompts, priors = setup
    config = DecodeConfig(max_new_tokens=12)
    _assert_same(*_both(model, tokenizer, prompts[:7], priors[:7], config, slots=1)[:2])
    _assert_same(*_both(model, tokenizer, prompts[:3], priors[:3], config, slots=8)[:2])


def test_scheduler_takes_short_prompts_first_within_its_window():
    scheduler = Scheduler([30, 5, 20, 7, 40, 6], window=4)
    assert scheduler.take(2) == [1, 3]  # the shortest among examples 0..3
    assert scheduler.take(1) == [5]  # window is now 0, 2, 4, 5
    assert scheduler.take(5) == [2, 0, 4]
    assert len(scheduler) == 0
    assert row_buckets(10, 1) == (1, 2, 4, 8, 10)
    assert row_buckets(8, 2) == (2, 4, 8)
    assert prefill_length(17) == 32 and prefill_length(32) == 32
    assert prefill_length(40) == 48


def test_prefix_families_put_each_example_with_the_longest_it_is_a_prefix_of():
    inputs = [[1, 2], [1, 2, 3], [1, 2, 4], [5], [1, 2, 3], [1], [6, 7], [5, 1], [2]]
    families = prefix_families([(x,) for x in inputs])
    assert sorted(i for f in families for i in f) == list(range(len(inputs)))
    for family in families:
        host = inputs[family[0]]
        assert all(host[: len(inputs[i])] == inputs[i] for i in family)
        assert [len(inputs[i]) for i in family] == sorted((len(inputs[i]) for i in family), reverse=True)
    assert families == [[1, 4, 0, 5], [2], [7, 3], [6], [8]]
    assert prefix_families([]) == []


def test_a_family_holds_only_examples_that_are_prefixes_in_every_stream():
    # Stream 0 chains all three; in stream 1 the second is no prefix of the host.
    inputs = [([1, 2, 3], [7, 8, 9]), ([1, 2], [7, 5]), ([1], [7])]
    assert prefix_families(inputs) == [[0, 2], [1]]


@pytest.mark.parametrize(
    "slots, strategy", [(4, Greedy()), (1, Greedy()), (4, Sampling(1.0, top_k=50))], ids=["greedy", "one-slot", "sampling"]
)
def test_a_prompt_with_and_without_its_priors_shares_one_prefill(setup, slots, strategy):
    """none, a 1-token and a 2-token prior of one prompt (a prefix chain) and a sibling
    prior: two prefills per prompt, and every example gets what static batching gives."""
    model, tokenizer, prompts, _ = setup
    shared_prompts, shared_priors = [], []
    for prompt in prompts[:5]:
        for prior in ([], [10], [10, 20], [30]):
            shared_prompts.append(prompt)
            shared_priors.append(prior)
    config = DecodeConfig(max_new_tokens=12, strategy=strategy, seed=5, return_logprobs=True)
    ours, theirs, stats = _both(model, tokenizer, shared_prompts, shared_priors, config, slots=slots)
    _assert_same(ours, theirs)
    assert stats.prefilled == 2 * 5


def test_records_finishing_out_of_order_are_appended_in_example_order(tmp_path):
    from pretty_jax.experiments.ordered import InOrder
    from pretty_jax.experiments.stages import JsonlStage

    stage = JsonlStage(tmp_path / "stage.jsonl")
    stage.append([{"id": "a"}])
    writer = InOrder(stage, first=1)
    writer.add(3, {"id": "d"})
    writer.add(2, {"id": "c"})
    assert (tmp_path / "stage.jsonl").read_text() == '{"id": "a"}\n' and writer.pending == 2
    writer.add(1, {"id": "b"})
    assert [r["id"] for r in JsonlStage(tmp_path / "stage.jsonl").records] == ["a", "b", "c", "d"]
    assert writer.pending == 0
    with pytest.raises(ValueError, match="example 2 was already written"):
        writer.add(2, {"id": "c"})
