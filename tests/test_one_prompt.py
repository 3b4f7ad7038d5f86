"""`python -m pretty_jax.generate` on tiny checkpoints: the continuations it prints are
`Generator.generate`'s, its top-k next tokens are NumPy's softmax of the logits, the
prompt may come from a file, and bad flags are refused before any model loads."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import command_server

from pretty_jax import DecodeConfig, Generator, load_model
from pretty_jax.alignment.one_prompt import token_texts
from pretty_jax.checkpoints import loading
from pretty_jax.checkpoints.loading import load_tokenizer_of
from pretty_jax.checkpoints.tokenizer import continuation_ids
from pretty_jax.models import forward

PROMPT = "Translate into French.\nEnglish: The cat sleeps.\nFrench:"
PRIOR = "Le chat"
TOP_K, MAX_NEW_TOKENS = 5, 6
# One shown string (a JSON literal), then a probability.
CELL = re.compile(r'("(?:[^"\\]|\\.)*")\s+(\d\.\d{4})')


generate_cli = command_server.fixture("pretty_jax.generate")  # one process serving the module's runs


@pytest.fixture(scope="module")
def pair(jax_checkpoint, jax_sft_stand_in):
    return jax_checkpoint("llama"), jax_sft_stand_in("llama")


@pytest.fixture(scope="module")
def printed(generate_cli, pair) -> str:
    foundation, sft = pair
    result = generate_cli(f"--model={foundation}", f"--sft={sft}", r"--prompt=Translate into French.\nEnglish: The cat "
                          r"sleeps.\nFrench:", f"--prior={PRIOR}", f"--top_k={TOP_K}", f"--max_new_tokens={MAX_NEW_TOKENS}")
    assert result.returncode == 0, result.stderr
    return result.stdout


def _numpy_top_k(model, ids: list[int]) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Top-k ids and probabilities of the next token after `ids`, by NumPy's softmax of
    the full forward's last logits; and those logits."""
    tokens = np.asarray([ids], np.int32)
    logits, _ = forward(model.graphdef, model.params, tokens, np.arange(len(ids))[None], np.ones_like(tokens))
    last = np.asarray(logits[0, -1], np.float64)
    probabilities = np.exp(last - last.max())
    probabilities /= probabilities.sum()
    order = np.argsort(-probabilities, kind="stable")[:TOP_K]
    return [int(i) for i in order], probabilities[order], last


@pytest.mark.slow
def test_continuations_and_top_k_are_the_generators_and_numpys(printed, pair):
    lines = printed.splitlines()
    assert lines[0] == f"prompt ({len(load_tokenizer_of(pair[0])(PROMPT).input_ids)} tokens): {json.dumps(PROMPT)}"
    continuation = {line[2:20].strip(): json.loads(line[20:]) for line in lines if line.startswith("  ")
                    and line[2:20].strip() in ("foundation", "foundation + prior", "SFT model")}
    table = [CELL.findall(line) for line in lines if re.match(r"\s+\d+\s+\"", line)]
    assert len(table) == TOP_K
    columns = list(zip(*table))  # foundation / SFT after the prompt, foundation / SFT after the prior

    expected_columns, last_logits = [], {}
    for name, path in (("foundation", pair[0]), ("SFT model", pair[1])):
        model, tokenizer = load_model(path), load_tokenizer_of(path)
        prompt_ids = tokenizer(PROMPT).input_ids
        prior_ids = continuation_ids(tokenizer, PROMPT, PRIOR)
        config = DecodeConfig(max_new_tokens=MAX_NEW_TOKENS)
        plain, primed = Generator(model, tokenizer).generate([prompt_ids, prompt_ids], [[], prior_ids], config)
        assert continuation[name] == plain.answer_text
        if name == "foundation":
            assert continuation["foundation + prior"] == primed.answer_text
            assert primed.answer_text.startswith(PRIOR)
        for point, context in enumerate((prompt_ids, prompt_ids + prior_ids)):
            ids, probabilities, last_logits[name, point] = _numpy_top_k(model, context)
            expected_columns.append((point, token_texts(tokenizer, context, ids), probabilities))
    expected_columns.sort(key=lambda column: column[0])  # the table's order: both models per point

    for shown, (_, texts, probabilities) in zip(columns, expected_columns):
        assert [json.loads(text) for text, _ in shown] == list(texts)
        np.testing.assert_allclose([float(p) for _, p in shown], probabilities, atol=5e-5)
    ranks = [int(np.sum(last_logits["foundation", point] > last_logits["foundation", point][
        np.argmax(last_logits["SFT model", point])])) + 1 for point in (0, 1)]
    assert lines[-1] == (f"the SFT model's most probable token is the foundation's rank {ranks[0]} after the prompt, "
                         f"rank {ranks[1]} after the prior")


@pytest.mark.slow
def test_a_prompt_file_reads_as_the_escaped_prompt(generate_cli, printed, pair, tmp_path):
    prompt_file = tmp_path / "prompt.txt"
    prompt_file.write_text(PROMPT + "\n", encoding="utf-8")
    result = generate_cli(f"--model={pair[0]}", f"--prompt_file={prompt_file}", f"--prior={PRIOR}", f"--top_k={TOP_K}",
                          f"--max_new_tokens={MAX_NEW_TOKENS}")
    assert result.returncode == 0, result.stderr
    with_sft = printed.splitlines()
    alone = result.stdout.splitlines()
    assert alone[:6] == with_sft[:6]  # prompt, prior, and the foundation's continuations
    assert not any("SFT" in line for line in alone)


@pytest.mark.parametrize("flags,message", [
    (["--prompt=a", "--prompt_file=p.txt", "--prior=b"],
     "error: give the prompt as --prompt=TEXT or --prompt_file=FILE (one of them)"),
    (["--prompt=a"], "error: --prior is required: the first word(s) of the answer, e.g. --prior=Bonjour"),
    (["--prompt_file=/no/such/prompt.txt", "--prior=b"], "error: --prompt_file /no/such/prompt.txt does not exist; "
                                                          "check the path"),
    (["--prompt=a", "--prior=b", "--sft=/no/such/model"],
     "error: --sft=/no/such/model does not exist; " + loading.WHERE_MODELS_COME_FROM),
])
def test_bad_flags_are_refused_in_one_line_before_a_model_loads(generate_cli, pair, flags, message):
    result = generate_cli(f"--model={pair[0]}", *flags)
    assert result.returncode == 2
    assert result.stderr.strip() == message
