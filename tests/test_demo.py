"""The README's first command, end to end: the model organism is built from nothing and
shows the paper's finding in miniature."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import in_process
import numpy as np

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.cfg"


def test_demo_shows_the_prior_knowledge_effect(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "pretty_jax.run", f"--flagfile={CONFIG}", f"--organism_dir={tmp_path / 'organism'}",
         f"--output_dir={out}"],
        capture_output=True, text=True, timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "PreTTY demo: English -> Varic" in result.stdout and "total" in result.stdout
    assert "±: 95% interval half-width, paired bootstrap" in result.stdout
    pair = json.loads((out / "results.json").read_text())["pairs"]["eng-vrc"]
    systems = {key: system["metrics"] for key, system in pair["systems"].items()}
    sft = systems["sft"]
    # The foundation model mostly answers in the wrong language...
    assert systems["none"]["target_language_rate"] < 0.5 * sft["target_language_rate"]
    # ...one SFT prior token brings it close to the SFT model...
    assert systems["sft-1tok"]["chrf"] >= 0.9 * sft["chrf"]
    # ...and a free dictionary prior raises it clearly.
    assert systems["dictionary-1word"]["chrf"] >= systems["none"]["chrf"] + 10
    alignment = pair["alignment"]
    assert alignment["1"]["topk_agreement"]["1"] > alignment["0"]["topk_agreement"]["1"]
    assert alignment["1"]["kl_sft_lm"] < alignment["0"]["kl_sft_lm"]
    # In token-shift terms: the prior turns the early positions unshifted.
    by_step = json.loads((out / "eng-vrc" / "alignment.json").read_text())["by_prior_tokens"]
    early = lambda k, name: np.mean([s["token_shift"][name] for s in by_step[k]["per_step"][:10]])  # noqa: E731
    assert early("1", "unshifted") > 0.9 > 0.5 > early("0", "unshifted")
    assert early("1", "shifted") < 0.5 * early("0", "shifted")
    for name in ("report.md", "prior_sweep.png", "eng-vrc/alignment.json", "eng-vrc/topk_agreement.png",
                 "eng-vrc/token_shift_by_step.png", "eng-vrc/alignment.html"):
        assert (out / name).exists(), name
    # A second run reuses the organism (run in the test process: tests/in_process.py).
    again = in_process.run(f"--flagfile={CONFIG}", f"--organism_dir={tmp_path / 'organism'}", f"--output_dir={out}",
                           "--priors=none", "--sweep_prior_token_counts=", "--noalign")
    assert again.returncode == 0, again.stderr[-4000:]
    assert "pretrain foundation" not in again.stdout
