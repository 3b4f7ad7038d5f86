"""Alignment statistics against plain NumPy; their invariants; chunking, padding, length
grouping and devices not changing them; token distribution shift and the top tokens
against NumPy; the align run, its JSON, its figures and its explorer page."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import in_process
import pytest
from generation_cases import PRIORS, alignment_case

from pretty_jax.alignment.explorer import decode_data
from pretty_jax.alignment.plots import FIGURES
from pretty_jax.alignment.shift import SHIFT_CLASSES, shift_shares
from pretty_jax.alignment.statistics import (
    STATISTICS,
    AlignmentScorer,
    check_same_tokenizer,
    length_groups,
    step_statistics,
)
from pretty_jax.alignment.summary import aggregate, alignment_pairs, read_report
from pretty_jax.checkpoints import loading
from pretty_jax.checkpoints.sample_text import SENTENCES
from pretty_jax.checkpoints.tokenizer import load_tokenizer
from pretty_jax.core.errors import UserError
from pretty_jax.engine.batching import bucket_length, left_pad
from pretty_jax.models import forward

ROOT = Path(__file__).resolve().parents[1]


def numpy_statistics(logits_lm: np.ndarray, logits_sft: np.ndarray) -> dict[str, np.ndarray]:
    """The statistics, one position at a time, in float64."""
    out = {name: [] for name in STATISTICS}
    for lm, sft in zip(logits_lm.reshape(-1, logits_lm.shape[-1]), logits_sft.reshape(-1, logits_sft.shape[-1])):
        lm, sft = lm.astype(np.float64), sft.astype(np.float64)
        p_lm = np.exp(lm - lm.max()) / np.exp(lm - lm.max()).sum()
        p_sft = np.exp(sft - sft.max()) / np.exp(sft - sft.max()).sum()
        choice = int(np.argmax(sft))
        mixture = (p_lm + p_sft) / 2
        out["sft_rank_in_lm"].append(int(np.sum(lm > lm[choice])))
        out["p_lm_own"].append(p_lm.max())
        out["p_sft_own"].append(p_sft.max())
        out["p_lm_of_sft"].append(p_lm[choice])
        out["kl_sft_lm"].append(np.sum(p_sft * np.log(p_sft / p_lm)))
        out["kl_lm_sft"].append(np.sum(p_lm * np.log(p_lm / p_sft)))
        out["js"].append(0.5 * np.sum(p_sft * np.log(p_sft / mixture)) + 0.5 * np.sum(p_lm * np.log(p_lm / mixture)))
        out["tv"].append(0.5 * np.abs(p_lm - p_sft).sum())
    return {name: np.array(values).reshape(logits_lm.shape[:-1]) for name, values in out.items()}


def _assert_close(ours, expected):
    for name in STATISTICS:
        np.testing.assert_allclose(np.asarray(ours[name]), expected[name], rtol=2e-4, atol=2e-5, err_msg=name)


def test_step_statistics_equal_numpy_on_random_logits():
    rng = np.random.default_rng(0)
    lm = rng.normal(size=(3, 5, 1000)).astype(np.float32) * 3
    sft = (lm + rng.normal(size=lm.shape).astype(np.float32)).astype(np.float32)
    _assert_close(step_statistics(jnp.asarray(lm), jnp.asarray(sft)), numpy_statistics(lm, sft))


def test_identical_distributions_agree_fully():
    logits = jnp.asarray(np.random.default_rng(1).normal(size=(4, 300)).astype(np.float32))
    stats = step_statistics(logits, logits)
    assert np.all(np.asarray(stats["sft_rank_in_lm"]) == 0)
    for name in ("kl_sft_lm", "kl_lm_sft", "js", "tv"):
        np.testing.assert_allclose(stats[name], 0.0, atol=1e-6)
    np.testing.assert_allclose(stats["p_lm_of_sft"], stats["p_lm_own"])


@pytest.fixture(scope="module")
def model_pair(jax_checkpoint, jax_sft_stand_in):
    """The tiny LLaMA and a perturbed copy of it standing in for its SFT model."""
    foundation_dir, sft_dir = jax_checkpoint("llama"), jax_sft_stand_in("llama")
    return foundation_dir, sft_dir, loading.load_model(foundation_dir, "float32"), loading.load_model(sft_dir, "float32")


@pytest.mark.slow
def test_scorer_equals_numpy_on_two_models_with_padding_and_chunk_boundaries(model_pair):
    foundation_dir, _, foundation, sft = model_pair
    tokenizer = load_tokenizer(foundation_dir)
    ours = alignment_case(foundation, sft, tokenizer)
    prompts = [tokenizer(s).input_ids for s in SENTENCES[: len(PRIORS)]]
    for row, (prompt, prior) in enumerate(zip(prompts, PRIORS)):
        trajectory = list(range(20, 20 + len(ours["tv"][row])))
        sequence = prompt + list(prior) + trajectory
        tokens, mask, positions = left_pad([sequence], 0)
        steps = slice(len(prompt) + len(prior) - 1, len(sequence) - 1)
        lm = np.asarray(forward(foundation.graphdef, foundation.params, tokens, positions, mask)[0])[0, steps]
        sf = np.asarray(forward(sft.graphdef, sft.params, tokens, positions, mask)[0])[0, steps]
        _assert_close({name: np.array(ours[name][row]) for name in STATISTICS}, numpy_statistics(lm, sf))
    assert [len(v) for v in ours["tv"]] == [7, 13, 0, 4, 9, 1]


def test_chunk_size_does_not_change_the_numbers(model_pair):
    _, _, foundation, sft = model_pair
    prefixes = [[1, 5, 6, 7], [1, 9]]
    trajectories = [list(range(30, 41)), list(range(50, 53))]
    small = AlignmentScorer(foundation, sft, batch_size=2, chunk=1).score(prefixes, trajectories)
    large = AlignmentScorer(foundation, sft, batch_size=2, chunk=64).score(prefixes, trajectories)
    for a, b in zip(small, large):
        for name in STATISTICS:
            np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6)


def _padded_cells(groups, prefixes, trajectories, chunk=16) -> int:
    """Token cells of the batches' [B, P + T] layouts as the scorer builds them (prefix
    width bucketed, steps rounded up to the chunk)."""
    return sum(
        len(group) * (bucket_length(max(len(prefixes[i]) for i in group))
                      + -(-max(max(len(trajectories[i]) for i in group), 1) // chunk) * chunk)
        for group in groups
    )


def test_length_groups_cut_padding_and_keep_every_example_once():
    rng = np.random.default_rng(3)
    prefixes = [[1] * int(n) for n in rng.integers(1, 200, size=40)]
    trajectories = [[2] * int(n) for n in rng.integers(0, 64, size=40)]
    groups = length_groups(prefixes, trajectories, 8)
    assert sorted(i for g in groups for i in g) == list(range(40))
    assert all(len(g) == 8 for g in groups)
    in_order = [list(range(s, s + 8)) for s in range(0, 40, 8)]
    assert _padded_cells(groups, prefixes, trajectories) < 0.85 * _padded_cells(in_order, prefixes, trajectories)


@pytest.mark.slow
def test_length_grouping_leaves_each_examples_numbers_unchanged(model_pair):
    _, _, foundation, sft = model_pair
    prefixes = [[1, 5, 6, 7] * 5, [1, 9], [1, 4] * 12, [1, 3, 8], [1] + list(range(40, 70))]
    trajectories = [list(range(30, 33)), list(range(50, 70)), [], list(range(60, 62)), list(range(20, 31))]
    assert length_groups(prefixes, trajectories, 2) != [[0, 1], [2, 3], [4]]  # the grouping reorders
    grouped = AlignmentScorer(foundation, sft, batch_size=2, chunk=4, top_tokens=5).score(prefixes, trajectories)
    alone = AlignmentScorer(foundation, sft, batch_size=1, chunk=4, top_tokens=5)
    for prefix, trajectory, ours in zip(prefixes, trajectories, grouped):
        expected = alone.score([prefix], [trajectory])[0]
        assert len(ours["tv"]) == len(trajectory)
        np.testing.assert_array_equal(ours["lm_top_ids"], expected["lm_top_ids"])
        for name in STATISTICS + ("lm_top_logprobs", "sft_top_logprobs"):
            np.testing.assert_allclose(ours[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_top_tokens_equal_numpy(model_pair):
    _, _, foundation, sft = model_pair
    prefix, trajectory = [1, 8, 15, 22], list(range(30, 39))
    ours = AlignmentScorer(foundation, sft, batch_size=2, chunk=4, top_tokens=10).score([prefix], [trajectory])[0]
    tokens, mask, positions = left_pad([prefix + trajectory], 0)
    steps = slice(len(prefix) - 1, len(prefix) + len(trajectory) - 1)
    for model, name in ((foundation, "lm"), (sft, "sft")):
        logits = np.asarray(forward(model.graphdef, model.params, tokens, positions, mask)[0])[0, steps].astype(np.float64)
        logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - logits.max(-1, keepdims=True)
        order = np.argsort(-logp, axis=-1, kind="stable")[:, :10]
        assert ours[f"{name}_top_ids"].shape == (len(trajectory), 10)
        np.testing.assert_array_equal(ours[f"{name}_top_ids"], order)
        np.testing.assert_allclose(ours[f"{name}_top_logprobs"], np.take_along_axis(logp, order, -1), rtol=1e-4, atol=1e-5)
    # The SFT model's top token is its argmax: its probability is p_sft_own.
    np.testing.assert_allclose(np.exp(ours["sft_top_logprobs"][:, 0]), ours["p_sft_own"], rtol=1e-5)


def numpy_shift(ranks: np.ndarray) -> dict[str, float]:
    """Unshifted / marginal / shifted shares from 1-based ranks, by the definition."""
    rank = np.asarray(ranks) + 1
    return {"unshifted": np.mean(rank == 1), "marginal": np.mean((rank >= 2) & (rank <= 3)), "shifted": np.mean(rank > 3)}


def test_token_shift_shares_equal_numpy_overall_and_by_step():
    rng = np.random.default_rng(5)
    lengths = [7, 0, 12, 3, 12, 1]
    examples = [
        {name: rng.random(n) for name in STATISTICS} | {"sft_rank_in_lm": rng.geometric(0.45, size=n) - 1}
        for n in lengths
    ]
    examples[0]["sft_rank_in_lm"] = np.arange(7)  # the class boundaries: 1-based ranks 1, 2, 3, 4
    overall, per_step = aggregate(examples, (1, 5))
    pooled = np.concatenate([e["sft_rank_in_lm"] for e in examples])
    for name, expected in numpy_shift(pooled).items():
        assert overall["token_shift"][name] == pytest.approx(expected)
    assert sum(overall["token_shift"].values()) == pytest.approx(1.0)
    assert len(per_step) == max(lengths)
    for t, summary in enumerate(per_step):
        at_t = np.array([e["sft_rank_in_lm"][t] for e in examples if len(e["sft_rank_in_lm"]) > t])
        assert summary["steps"] == len(at_t)
        for name, expected in numpy_shift(at_t).items():
            assert summary["token_shift"][name] == pytest.approx(expected), (t, name)
    assert shift_shares(np.zeros(0, np.int32)) == {name: None for name in SHIFT_CLASSES}


@pytest.mark.slow
def test_four_devices_give_the_same_numbers(model_pair):
    foundation_dir, sft_dir, foundation, sft = model_pair
    expected = alignment_case(foundation, sft, load_tokenizer(foundation_dir))
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "mesh_worker.py"), "--job=alignment",
         f"--run=2x2:{foundation_dir}", f"--sft_checkpoint={sft_dir}", "--devices=4"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = json.loads(result.stdout.strip().splitlines()[-1])["runs"][0]["outputs"]
    for name in STATISTICS:
        for ours, theirs in zip(outputs[name], expected[name]):
            np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6, err_msg=name)


def test_trajectory_kinds_choose_prior_and_steps():
    prompts, sft_out, refs, cont = [[1, 2]], [[7, 8, 9]], [[4, 5, 6, 3]], [[11, 12]]
    assert alignment_pairs("foundation", 2, prompts, sft_out, cont) == ([[7, 8]], [[1, 2, 7, 8]], [[11, 12]])
    assert alignment_pairs("sft", 1, prompts, sft_out) == ([[7]], [[1, 2, 7]], [[8, 9]])
    assert alignment_pairs("reference", 3, prompts, sft_out, None, refs) == ([[4, 5, 6]], [[1, 2, 4, 5, 6]], [[3]])


class _Vocab:
    def __init__(self, tokens):
        self.vocab = {t: i for i, t in enumerate(tokens)}

    def get_vocab(self):
        return self.vocab


def test_different_tokenizers_are_refused_naming_the_difference(jax_checkpoint):
    with pytest.raises(UserError, match=r"tokenizers differ at id 3: '<0x00>' in llama, '<pad>' in bloom"):
        check_same_tokenizer(load_tokenizer(jax_checkpoint("llama")), load_tokenizer(jax_checkpoint("bloom")), "llama", "bloom")
    with pytest.raises(UserError, match=r"\(a\) has 3 tokens and the SFT tokenizer \(b\) 2"):
        check_same_tokenizer(_Vocab(["x", "y", "z"]), _Vocab(["x", "y"]), "a", "b")


@pytest.mark.slow
def test_align_run_writes_json_and_figures_that_replot_identically(model_pair, tmp_path):
    foundation_dir, sft_dir, _, _ = model_pair
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps({"id": f"s{i}", "prompt": s}) for i, s in enumerate(SENTENCES[:5])))
    out = tmp_path / "out"
    result = in_process.run(
        "--mode=align", f"--foundation={foundation_dir}", f"--sft={sft_dir}", f"--prompts_file={prompts}",
        f"--output_dir={out}", "--dtype=float32", "--max_new_tokens=12", "--align_prior_token_counts=0,1,2",
        "--batch_size=4",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = read_report(out / "alignment.json")
    assert list(report["by_prior_tokens"]) == ["0", "1", "2"]
    for k, entry in report["by_prior_tokens"].items():
        assert len(entry["examples"]) == 5
        assert all(len(e["prior"]) == int(k) for e in entry["examples"])
        assert entry["overall"]["steps"] == sum(len(e["trajectory"]) for e in entry["examples"])
        assert entry["per_step"][0]["steps"] == sum(len(e["trajectory"]) > 0 for e in entry["examples"])
        top = entry["overall"]["topk_agreement"]
        assert top["1"] <= top["5"] <= top["50"]
        ranks = np.concatenate([e["steps"]["sft_rank_in_lm"] for e in entry["examples"]])
        for name, expected in numpy_shift(ranks).items():
            assert entry["overall"]["token_shift"][name] == pytest.approx(expected)
        assert entry["overall"]["token_shift"]["unshifted"] == pytest.approx(top["1"])
    assert "explorer_page_data" not in report
    page = (out / "alignment.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and decode_data(page)["examples"][0]["id"] == "s0"
    assert "http://" not in page and "https://" not in page  # nothing fetched
    figures = [out / name for name in FIGURES]
    assert all(f.stat().st_size > 10_000 and f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in figures)
    redrawn = tmp_path / "redrawn"
    replot = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "plot_alignment.py"), f"--alignment_json={out / 'alignment.json'}",
         f"--out_dir={redrawn}"], capture_output=True, text=True,
    )
    assert replot.returncode == 0, replot.stderr
    for name in FIGURES:
        assert (redrawn / name).read_bytes() == (out / name).read_bytes(), name
