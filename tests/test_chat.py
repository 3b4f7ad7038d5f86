"""SFT and refined models in their own chat format (experiments/chat.py,
checkpoints/chat_format.py): the ids fed to a chat model are apply_chat_template's,
few-shot examples become turns, greedy outputs with the end-of-turn stop equal
transformers' generate, alignment with per-model prefixes equals NumPy, and an
experiment records the formatting per role and re-runs only that role's stages when
it changes."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import in_process
import pytest
from safetensors.numpy import load_file, save_file
from test_alignment import numpy_statistics

import pretty_jax
from pretty_jax import experiments
from pretty_jax.alignment.statistics import STATISTICS, AlignmentScorer
from pretty_jax.checkpoints import loading
from pretty_jax.checkpoints.sample_text import SENTENCES
from pretty_jax.checkpoints.tokenizer import load_tokenizer
from pretty_jax.core.errors import UserError
from pretty_jax.engine.batching import left_pad
from pretty_jax.engine.generator import DecodeConfig, Generator
from pretty_jax.experiments.chat import RolePrompt, resolve_role
from pretty_jax.experiments.plan import plan_experiment
from pretty_jax.experiments.priors import PriorSpec
from pretty_jax.models import forward
from pretty_jax.tasks import Example, format_prompt
from pretty_jax.tasks.registry import get_task

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.exists(), reason="../shared/data (real sample data) is absent")

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Llama-2-chat's template (system message folded into the first user turn).
LLAMA2 = (
    "{% if messages[0]['role'] == 'system' %}{% set system = '<<SYS>>\\n' + messages[0]['content'] + "
    "'\\n<</SYS>>\\n\\n' %}{% set messages = messages[1:] %}{% else %}{% set system = '' %}{% endif %}"
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + (system if loop.first else '') + "
    "message['content'] + ' [/INST]' }}{% else %}{{ ' ' + message['content'] + ' ' + eos_token }}{% endif %}"
    "{% endfor %}"
)
STYLES = {"chatml": (CHATML, ["<|im_start|>", "<|im_end|>"]), "llama2": (LLAMA2, [])}
SHOTS = [Example("s0", "One cat.", "Un chat."), Example("s1", "Two dogs.", "Deux chiens.")]


def with_chat_template(source: Path, target: Path, style: str, template: str | None = None) -> Path:
    """A copy of checkpoint `source` whose tokenizer has the chat template of `style`
    (ChatML's markers added as special tokens, inside the model's padded vocabulary)."""
    shutil.copytree(source, target)
    tokenizer = load_tokenizer(target)
    default, markers = STYLES[style]
    if markers:
        tokenizer.add_special_tokens({"additional_special_tokens": markers})
    tokenizer.chat_template = template or default
    tokenizer.save_pretrained(target)
    return target


def _messages(system, prompts, answers):
    messages = [{"role": "system", "content": system}] if system else []
    for prompt, answer in zip(prompts, answers):
        messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    return messages + [{"role": "user", "content": prompts[-1]}]


@pytest.mark.parametrize("style", STYLES)
def test_chat_prompt_ids_are_apply_chat_templates_with_shots_as_turns(jax_checkpoint, tmp_path, style):
    directory = with_chat_template(jax_checkpoint("llama"), tmp_path / "chat", style)
    tokenizer = load_tokenizer(directory)
    formatting = resolve_role("sft", RolePrompt("auto", "Translate to French: {source}", "Be brief."),
                              tokenizer, str(directory), "unused {source}")
    assert formatting.format == "chat" and formatting.chat.source == str(directory / "chat_template.jinja")
    example = Example("e0", "The house is red.", "La maison est rouge.")
    ids = formatting.prompt_ids(tokenizer, [example], {}, SHOTS)
    prompts = [f"Translate to French: {e.source}" for e in SHOTS + [example]]
    messages = _messages("Be brief.", prompts, [s.reference for s in SHOTS])
    assert ids == [tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=False)]
    end_of_turn = tokenizer.eos_token_id if style == "llama2" else tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert formatting.chat.end_of_turn_ids() == (end_of_turn,)
    closed_turns = len(SHOTS) if style == "llama2" else len(messages)  # Llama-2 closes only the answers
    assert ids[0].count(end_of_turn) == closed_turns


def test_auto_without_template_is_plain_with_the_roles_own_template(jax_checkpoint):
    directory = jax_checkpoint("llama")
    tokenizer = load_tokenizer(directory)
    formatting = resolve_role("refined", RolePrompt("auto", "Translate to French: {source}"), tokenizer,
                              str(directory), "English: {source}\nFrench:")
    example = Example("e0", "The house is red.", "")
    assert formatting.format == "plain"
    assert formatting.prompt_ids(tokenizer, [example], {}, SHOTS) == [
        tokenizer("Translate to French: One cat. Un chat.\n\nTranslate to French: Two dogs. Deux chiens.\n\n"
                  "Translate to French: The house is red.").input_ids
    ]


def test_a_gguf_files_chat_template_is_read_from_its_metadata(jax_checkpoint, tmp_path, monkeypatch):
    pytest.importorskip("gguf", reason="writing a GGUF file needs the gguf package")
    from gguf_files import write_gguf

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = write_gguf(jax_checkpoint("llama"), tmp_path / "chat.gguf", metadata={"tokenizer.chat_template": LLAMA2})
    tokenizer = loading.load_tokenizer_of(path)
    formatting = resolve_role("sft", RolePrompt("auto"), tokenizer, str(path), "{source}")
    assert formatting.format == "chat" and formatting.chat.source == str(path)
    ids = formatting.prompt_ids(tokenizer, [Example("e0", "The house is red.", "")], {})
    assert ids == [tokenizer.apply_chat_template([{"role": "user", "content": "The house is red."}],
                                                 add_generation_prompt=True, return_dict=False)]
    assert tokenizer.decode(ids[0]).startswith("<s>[INST] The house is red. [/INST]")


def _emits_end_of_turn(directory: Path, end_id: int, prompts, pad_id: int) -> None:
    """Makes the end-of-turn token's output row twice that of a token greedy decoding
    emits a few steps in, so that rows end with it at different steps."""
    model = loading.load_model(directory, "float32")
    greedy = Generator(model, batch_size=4).generate(prompts, None, DecodeConfig(max_new_tokens=12))
    emitted = greedy[1].tokens[3]
    tensors = load_file(directory / "model.safetensors")
    tensors["lm_head.weight"][end_id] = 2.0 * tensors["lm_head.weight"][emitted]
    save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})


@pytest.mark.slow
@pytest.mark.parametrize("style", STYLES)
def test_greedy_chat_outputs_equal_transformers_generate(tiny_checkpoint, tmp_path, style):
    from pretty_jax.checkpoints.reference import HFReference

    torch = pytest.importorskip("torch")
    directory = with_chat_template(tiny_checkpoint("llama"), tmp_path / "chat", style)
    tokenizer = load_tokenizer(directory)
    formatting = resolve_role("sft", RolePrompt("chat", "Translate into French: {source}"), tokenizer,
                              str(directory), "")
    examples = [Example(f"e{i}", s, "") for i, s in enumerate(SENTENCES[:4])]
    prompts = formatting.prompt_ids(tokenizer, examples, {}, SHOTS[:1])
    (end_id,) = formatting.chat.end_of_turn_ids()
    _emits_end_of_turn(directory, end_id, prompts, 0)
    model = formatting.stopping_model(loading.load_model(directory, "float32"))
    assert end_id in model.config.special_tokens.eos_token_ids
    generator = Generator(model, tokenizer, batch_size=4)
    ours = generator.generate(prompts, None, DecodeConfig(max_new_tokens=12))
    tokens, mask, _ = left_pad(prompts, generator.pad_id)
    reference = HFReference(directory)
    with torch.no_grad():
        theirs = reference.model.generate(
            input_ids=torch.as_tensor(tokens, dtype=torch.long), attention_mask=torch.as_tensor(mask, dtype=torch.long),
            max_new_tokens=12, do_sample=False, pad_token_id=generator.pad_id,
            eos_token_id=list(model.config.special_tokens.eos_token_ids),
        )[:, tokens.shape[1]:].numpy()
    for row, result in enumerate(ours):
        n = len(result.tokens)
        assert list(result.tokens) == [int(t) for t in theirs[row][:n]], f"row {row}"
        assert all(int(t) == generator.pad_id for t in theirs[row][n:]), f"row {row} ended early"
    ended = [r for r in ours if r.finish_reason == "eos" and r.tokens[-1] == end_id]
    assert ended and all(len(r.tokens) < 12 for r in ended)
    assert all("<|im_end|>" not in r.text and "</s>" not in r.text for r in ours)


@pytest.mark.slow
def test_alignment_compares_steps_by_index_after_each_models_own_prefix(jax_checkpoint, jax_sft_stand_in):
    foundation = loading.load_model(jax_checkpoint("llama"), "float32")
    sft = loading.load_model(jax_sft_stand_in("llama"), "float32")
    lm_prefixes = [[1, 5, 9], [1, *range(7, 27)]]                # 3 and 20 tokens
    sft_prefixes = [[1, *range(30, 45), 5, 9], [1, 40, 41, 42]]  # 18 and 4 tokens
    trajectories = [[20, 21, 22, 23, 24, 25], [50, 51, 52]]
    ours = AlignmentScorer(foundation, sft, batch_size=2, chunk=4).score(lm_prefixes, trajectories, sft_prefixes)
    assert [len(o["tv"]) for o in ours] == [6, 3]

    def step_logits(model, prefix, trajectory):
        tokens, mask, positions = left_pad([prefix + trajectory], 0)
        logits = np.asarray(forward(model.graphdef, model.params, tokens, positions, mask)[0])[0]
        return logits[len(prefix) - 1 : len(prefix) + len(trajectory) - 1]

    for row, trajectory in enumerate(trajectories):
        expected = numpy_statistics(step_logits(foundation, lm_prefixes[row], trajectory),
                                    step_logits(sft, sft_prefixes[row], trajectory))
        for name in STATISTICS:
            np.testing.assert_allclose(ours[row][name], expected[name], rtol=2e-4, atol=2e-5, err_msg=name)
    same = AlignmentScorer(foundation, sft, batch_size=2, chunk=4).score(lm_prefixes, trajectories)
    assert not np.allclose(same[0]["kl_sft_lm"], ours[0]["kl_sft_lm"])  # the SFT prefix matters


def _settings(out: Path, foundation: Path, sft: Path, refined: Path, **changes) -> experiments.Settings:
    settings = experiments.Settings(
        task="translation", data=str(DATA / "flores101_devtest"), split="devtest", source_lang="eng",
        target_langs=("fra",), limit=4, template=get_task("translation").default_template, num_shots=1,
        priors=(PriorSpec("none"), PriorSpec("sft", 1), PriorSpec("refined", 1, "words")), sweep=(),
        decode=DecodeConfig(max_new_tokens=5, stop_strings=("\n",)), batch_size=4, output_dir=out,
        foundation=str(foundation), sft=str(sft), refined_model=str(refined), dtype="float32",
        sft_prompt=RolePrompt("auto", None, "You translate."),
        refined_prompt=RolePrompt("chat", "Translate to French: {source}"),
        align=True, align_prior_tokens=(0, 1),
    )
    return dataclasses.replace(settings, **changes)


@pytest.mark.slow
@needs_data
def test_experiment_records_formats_and_reruns_only_the_changed_role(jax_checkpoint, jax_sft_stand_in, tmp_path):
    # The foundation's tokenizer is the SFT model's (with its template, unused: the foundation stays plain).
    foundation = with_chat_template(jax_checkpoint("llama"), tmp_path / "foundation", "chatml")
    sft = with_chat_template(jax_sft_stand_in("llama"), tmp_path / "sft", "chatml")
    refined = with_chat_template(jax_checkpoint("llama"), tmp_path / "refined", "llama2")
    out = tmp_path / "out"
    settings = _settings(out, foundation, sft, refined)
    results = pretty_jax.run_experiment(settings)
    pair_dir = out / "eng-fra"
    records = {name: [json.loads(x) for x in (pair_dir / f"{name}.jsonl").read_text().splitlines()]
               for name in ("sft", "refined", "none", "sft-1tok", "refined-1word")}

    # What the stages fed their models: apply_chat_template of the few-shot turns.
    shot, examples = _examples(settings)
    fields = {"src_lang": "English", "tgt_lang": "French"}
    for role, directory, template, system in (("sft", sft, settings.template, "You translate."),
                                              ("refined", refined, "Translate to French: {source}", None)):
        tokenizer = load_tokenizer(directory)
        ids = [tokenizer.apply_chat_template(
            _messages(system, [format_prompt(template, e, fields) for e in (shot, example)], [shot.reference]),
            add_generation_prompt=True, return_dict=False) for example in examples]
        formatting = resolve_role(role, RolePrompt("chat", template, system), tokenizer, str(directory), "")
        model = formatting.stopping_model(loading.load_model(directory, "float32"))
        expected = Generator(model, tokenizer, batch_size=4).generate(ids, None, settings.decode)
        assert [r["tokens"] for r in records[role]] == [list(g.tokens) for g in expected], role
        assert [r["text"] for r in records[role]] == [g.text for g in expected], role

    tokenizer = load_tokenizer(foundation)  # the foundation is prompted plain, though its tokenizer has a template
    plain_ids = [tokenizer(format_prompt(settings.template, e, fields, [shot])).input_ids for e in examples]
    expected = Generator(loading.load_model(foundation, "float32"), tokenizer, batch_size=4).generate(
        plain_ids, None, settings.decode)
    assert [r["tokens"] for r in records["none"]] == [list(g.tokens) for g in expected]
    formats = results["prompt_formats"]
    assert set(formats) == {"sft", "refined"}
    assert formats["sft"]["format"] == "chat" and formats["sft"]["system_message"] == "You translate."
    assert formats["sft"]["chat_template_file"] == str(sft / "chat_template.jinja")
    assert formats["refined"]["prompt_template"] == "Translate to French: {source}"
    run_config = json.loads((out / "run_config.json").read_text())
    assert run_config["stages"]["eng-fra/sft.jsonl"]["sft_prompt"] == formats["sft"]
    assert run_config["stages"]["eng-fra/sft-1tok.jsonl"]["sft_prompt"] == formats["sft"]
    assert run_config["stages"]["eng-fra/refined.jsonl"]["refined_prompt"] == formats["refined"]
    report = (out / "report.md").read_text()
    assert f"SFT model prompted: chat template of `{sft / 'chat_template.jinja'}`" in report
    assert "refined model prompted: chat template of" in report
    assert {str(k) for k in results["pairs"]["eng-fra"]["alignment"]} == {"0", "1"}

    # The SFT model prompted plain instead: its stage and the SFT prior's run again, the rest is kept.
    stamps = {name: (pair_dir / f"{name}.jsonl").stat().st_mtime_ns for name in records}
    plain = dataclasses.replace(settings, sft_prompt=RolePrompt("plain"))
    results = pretty_jax.run_experiment(plain)
    after = {name: (pair_dir / f"{name}.jsonl").stat().st_mtime_ns for name in records}
    assert {name for name in records if after[name] != stamps[name]} == {"sft", "sft-1tok"}
    expected = Generator(loading.load_model(sft, "float32"), load_tokenizer(sft), batch_size=4).generate(
        plain_ids, None, settings.decode)
    rerun = [json.loads(x) for x in (pair_dir / "sft.jsonl").read_text().splitlines()]
    assert [r["tokens"] for r in rerun] == [list(g.tokens) for g in expected]
    assert results["prompt_formats"]["sft"] == {"format": "plain", "prompt_template": settings.template}
    assert json.loads((out / "run_config.json").read_text())["stages"]["eng-fra/sft.jsonl"]["sft_prompt"] == {
        "format": "plain", "prompt_template": settings.template}
    assert "SFT model prompted: plain" in (out / "report.md").read_text()

    # The same settings again: nothing runs again.
    pretty_jax.run_experiment(plain)
    assert {name: (pair_dir / f"{name}.jsonl").stat().st_mtime_ns for name in records} == after

    # A run recorded before prompt formats existed prompted its SFT model plain: nothing runs again.
    run_config = json.loads((out / "run_config.json").read_text())
    for stage in run_config["stages"].values():
        stage.pop("sft_prompt", None)
    (out / "run_config.json").write_text(json.dumps(run_config))
    pretty_jax.run_experiment(plain)
    assert {name: (pair_dir / f"{name}.jsonl").stat().st_mtime_ns for name in records} == after


def _examples(settings):
    plan = plan_experiment(settings)
    return plan.pairs[0].shots[0], plan.pairs[0].examples


@needs_data
def test_chat_without_template_and_failing_template_are_refused_before_loading(jax_checkpoint, jax_sft_stand_in,
                                                                               tmp_path, monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("pretty_jax.experiments.runner.load_model", no_loading)
    foundation, plain_sft = jax_checkpoint("llama"), jax_sft_stand_in("llama")
    settings = _settings(tmp_path / "out", foundation, plain_sft, plain_sft, refined_prompt=RolePrompt("plain"),
                         sft_prompt=RolePrompt("chat"))
    with pytest.raises(UserError, match=rf"--sft_prompt_format=chat: the tokenizer of --sft={plain_sft} has no chat "
                                        r"template .*use --sft_prompt_format=plain"):
        pretty_jax.run_experiment(settings)
    broken = with_chat_template(plain_sft, tmp_path / "broken", "chatml",
                                "{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system role') }}"
                                "{% endif %}" + CHATML)
    settings = dataclasses.replace(settings, sft=str(broken), sft_prompt=RolePrompt("auto", None, "Be brief."))
    with pytest.raises(UserError, match=rf"chat template in {broken / 'chat_template.jinja'} failed to render.*"
                                        "no system role"):
        pretty_jax.run_experiment(settings)
    assert not (tmp_path / "out" / "eng-fra").exists()


@pytest.mark.slow
def test_the_role_flags_reach_the_plan_with_escapes_read(jax_checkpoint, jax_sft_stand_in, tmp_path):
    flores = tmp_path / "flores"
    flores.mkdir()
    for code, text in (("eng", "The cat sleeps."), ("fra", "Le chat dort.")):
        (flores / f"{code}.devtest").write_text(text + "\n", encoding="utf-8")
    sft = with_chat_template(jax_sft_stand_in("llama"), tmp_path / "sft", "chatml")
    result = in_process.run(
        "--dry_run", f"--foundation={jax_checkpoint('llama')}", f"--sft={sft}",
        f"--refined_model={jax_checkpoint('llama')}", f"--data={flores}", "--target_lang=fra", "--priors=none,refined",
        r"--refined_prompt_template=Translate to French:\n{source}", "--refined_prompt_format=plain",
        r"--sft_system_message=Be brief.\tThanks.", f"--output_dir={tmp_path / 'out'}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "sft prompt: chat template of" in result.stdout and "system message `'Be brief.\\tThanks.'`" in result.stdout
    assert "refined prompt: plain, template `'Translate to French:\\n{source}'`" in result.stdout
    assert "<|im_start|>system\nBe brief.\tThanks.<|im_end|>" in result.stdout  # the SFT prompt, rendered
    assert "Translate to French:\nThe cat sleeps." in result.stdout  # the refined model's


@pytest.mark.slow
def test_align_mode_prompts_a_chat_sft_model_in_its_format(jax_checkpoint, jax_sft_stand_in, tmp_path):
    foundation_dir = with_chat_template(jax_checkpoint("llama"), tmp_path / "foundation", "chatml")
    sft_dir = with_chat_template(jax_sft_stand_in("llama"), tmp_path / "sft", "chatml")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps({"id": f"s{i}", "prompt": s}) for i, s in enumerate(SENTENCES[:3])))
    out = tmp_path / "out"
    result = in_process.run(
        "--mode=align", f"--foundation={foundation_dir}", f"--sft={sft_dir}", f"--prompts_file={prompts}",
        f"--output_dir={out}", "--dtype=float32", "--max_new_tokens=6", "--align_prior_token_counts=0,1",
        "--batch_size=4", "--sft_system_message=Be brief.",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "alignment.json").read_text())
    tokenizer = load_tokenizer(sft_dir)
    chat_ids = [tokenizer.apply_chat_template(_messages("Be brief.", [s], []), add_generation_prompt=True,
                                              return_dict=False) for s in SENTENCES[:3]]
    plain_ids = [tokenizer(s).input_ids for s in SENTENCES[:3]]
    formatting = resolve_role("sft", RolePrompt("chat"), tokenizer, str(sft_dir), "{source}")
    sft = formatting.stopping_model(loading.load_model(sft_dir, "float32"))
    sft_outputs = Generator(sft, tokenizer, batch_size=4).generate(chat_ids, None, DecodeConfig(max_new_tokens=6))
    foundation = loading.load_model(foundation_dir, "float32")
    scorer = AlignmentScorer(foundation, sft, batch_size=4)
    for k in (0, 1):
        entries = report["by_prior_tokens"][str(k)]["examples"]
        priors = [list(g.tokens[:k]) for g in sft_outputs]
        assert [e["prior"] for e in entries] == priors
        expected = scorer.score([p + q for p, q in zip(plain_ids, priors)], [e["trajectory"] for e in entries],
                                [c + q for c, q in zip(chat_ids, priors)])
        for entry, stats in zip(entries, expected):
            np.testing.assert_allclose(entry["steps"]["kl_sft_lm"], stats["kl_sft_lm"], rtol=1e-4, atol=1e-6)
