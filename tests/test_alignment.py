"""Alignment statistics against plain NumPy; their invariants; chunking, padding and
devices not changing them; the align run, its JSON and its figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from generation_cases import PRIORS, alignment_case

from pretty_jax.alignment.plots import FIGURES
from pretty_jax.alignment.statistics import (
    STATISTICS,
    AlignmentScorer,
    check_same_tokenizer,
    step_statistics,
)
from pretty_jax.alignment.summary import alignment_pairs, read_report
from pretty_jax.checkpoints import loading
from pretty_jax.checkpoints.sample_text import SENTENCES
from pretty_jax.checkpoints.tokenizer import load_tokenizer
from pretty_jax.core.errors import UserError
from pretty_jax.engine.batching import left_pad
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


def test_four_devices_give_the_same_numbers(model_pair):
    foundation_dir, sft_dir, foundation, sft = model_pair
    expected = alignment_case(foundation, sft, load_tokenizer(foundation_dir))
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "mesh_worker.py"), "--job=alignment",
         f"--checkpoint={foundation_dir}", f"--sft_checkpoint={sft_dir}", "--devices=4",
         "--mesh_data=2", "--mesh_model=2"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = json.loads(result.stdout.strip().splitlines()[-1])["outputs"]
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


def test_align_run_writes_json_and_figures_that_replot_identically(model_pair, tmp_path):
    foundation_dir, sft_dir, _, _ = model_pair
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps({"id": f"s{i}", "prompt": s}) for i, s in enumerate(SENTENCES[:5])))
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "pretty_jax.run", "--mode=align", f"--foundation={foundation_dir}",
         f"--sft={sft_dir}", f"--prompts_file={prompts}", f"--output_dir={out}", "--dtype=float32",
         "--max_new_tokens=12", "--align_prior_token_counts=0,1,2", "--batch_size=4"],
        capture_output=True, text=True, timeout=600,
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
