"""The model organism's world: deterministic, held-out test set, the grammar's rules,
files in the formats the rest of the project reads."""

from __future__ import annotations

import dataclasses
import json

import pytest

from pretty_jax.checkpoints.loading import load_model
from pretty_jax.core.errors import UserError
from pretty_jax.core.manifest import MANIFEST, read_manifest
from pretty_jax.organism.build import (
    OrganismSettings,
    TrainingRun,
    ensure_organism,
    register_varic,
    world_files,
)
from pretty_jax.organism.proxy_pair import ensure_proxy_pair, smaller
from pretty_jax.organism.world import NounPhrase, Sentence, build_world
from pretty_jax.tasks.dictionary import dictionary_prior_words, read_muse
from pretty_jax.tasks.flores import FloresTask
from pretty_jax.tasks.metrics import target_language_rate


def _small_world():
    return build_world(seed=3, num_documents=300, num_instructions=50, num_test=20)


def test_world_is_deterministic_and_its_test_set_is_held_out():
    world = _small_world()
    assert world == _small_world()
    assert world != build_world(seed=4, num_documents=300, num_instructions=50, num_test=20)
    seen = "\n".join(world.pretraining) + "\n" + "\n".join(en for en, _ in world.instructions)
    for english, varic in world.test:
        assert english not in seen and varic not in seen


def test_varic_word_order_agreement_and_tense():
    cat = NounPhrase(noun=0, adjective=0, definite=True, plural=False)  # the small cat
    apples = NounPhrase(noun=10, adjective=2, definite=False, plural=True)  # some red apples
    sentence = Sentence(subject=cat, verb=0, obj=apples, past=True, time=None)
    assert sentence.english() == "the small cat liked some red apples ."
    assert sentence.varic() == "zo mauo piko sik poman rosan lubir ."
    plural = Sentence(subject=apples, verb=1, obj=cat, past=False, time=0)
    assert plural.english() == "some red apples watch the small cat today ."
    assert plural.varic() == "sik poman rosan zo mauo piko videt vo hodi ."


def test_files_are_read_by_the_tasks_and_the_dictionary(tmp_path):
    register_varic()
    world = _small_world()
    for name, text in world_files(world).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    task = FloresTask(tmp_path / "flores", "test", "eng", "vrc")
    assert [(e.source, e.reference) for e in task.examples()] == list(world.test)
    assert task.prompt_fields() == {"src_lang": "English", "tgt_lang": "Varic"}
    dictionary = read_muse(tmp_path / "muse" / "en-vr.txt")
    assert dictionary["the"][0] == "zo" and dictionary["cats"] == ("mauon",)
    assert dictionary_prior_words("The small cat sleeps", dictionary) == "Zo"
    references = [e.reference for e in task.examples()]
    assert target_language_rate(references, "vrc") == 1.0
    assert target_language_rate([e.source for e in task.examples()], "vrc") == 0.0


TINY = OrganismSettings(num_documents=200, num_instructions=40, num_test=8, hidden_size=16,
                        intermediate_size=32, num_layers=1, num_heads=2,
                        pretrain=TrainingRun(steps=2, batch=4, seq_len=128, learning_rate=3e-3),
                        sft=TrainingRun(steps=2, batch=4, seq_len=128, learning_rate=1e-3))


def _snapshot(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_folder_with_the_builds_entry_names_but_no_manifest_is_refused_and_left_as_it_was(tmp_path):
    users = tmp_path / "organism"  # names the build writes, but no proof the content is ours
    (users / "runs" / "pretrain").mkdir(parents=True)
    (users / "runs" / "pretrain" / "metrics.jsonl").write_text('{"step": 1}\n')
    (users / "data").mkdir()
    (users / "data" / "my-corpus.txt").write_text("mine\n")
    (users / "model_config.json").write_text("{}")
    for folder in (users, tmp_path / "mine"):
        folder.mkdir(exist_ok=True)
        (folder / "notes.txt").write_text("mine\n")
        before = _snapshot(folder)
        with pytest.raises(UserError, match=r"--organism_dir=.* holds no pretty_jax output \(it has .*notes.txt"):
            ensure_organism(folder, TINY, report=lambda phase, seconds: None)
        assert _snapshot(folder) == before


@pytest.mark.slow
def test_the_organism_is_reused_only_while_its_models_are_what_it_built(tmp_path):
    root = tmp_path / "organism"
    phases = []
    organism = ensure_organism(root, TINY, report=lambda phase, seconds: phases.append(phase))
    assert "pretrain foundation" in phases
    (root / "data" / "notes.txt").write_text("mine\n")  # a user's file inside the cache
    phases.clear()
    ensure_organism(root, TINY, report=lambda phase, seconds: phases.append(phase))
    assert phases == []  # reused
    (organism.sft / "config.json").write_text((organism.sft / "config.json").read_text() + " ")
    ensure_organism(root, TINY, report=lambda phase, seconds: phases.append(phase))
    assert "SFT" in phases  # the changed model is not reused: rebuilt
    assert (root / "data" / "notes.txt").read_text() == "mine\n"
    assert (organism.sft / "model.safetensors").exists()


@pytest.mark.slow
def test_the_proxy_pair_is_built_in_the_organism_reused_and_rebuilt_file_by_file(tmp_path):
    root = tmp_path / "organism"
    organism = ensure_organism(root, TINY, report=lambda phase, seconds: None)
    small = dataclasses.replace(smaller(TINY), hidden_size=8, intermediate_size=16, num_layers=1, num_heads=2,
                                pretrain=TINY.pretrain)
    phases = []
    pair = ensure_proxy_pair(organism, small, report=lambda phase, seconds: phases.append(phase))
    assert phases[::2] == ["pretrain small foundation", "SFT of the small foundation"]
    assert load_model(pair.sft, "float32").config.hidden_size == 8
    _, files, _ = read_manifest(root, "--organism_dir")
    assert {"proxy.json", "proxy/foundation/model.safetensors", "proxy/sft/model.safetensors"} <= files
    (root / "proxy" / "notes.txt").write_text("mine\n")  # a user's file inside the cache
    phases.clear()
    ensure_proxy_pair(organism, small, report=lambda phase, seconds: phases.append(phase))
    assert phases == []  # reused
    (root / "proxy" / "sft" / "notes.txt").write_text("mine\n")  # beside a model: it is not the built model
    ensure_proxy_pair(organism, small, report=lambda phase, seconds: phases.append(phase))
    assert "SFT of the small foundation" in phases
    phases.clear()
    other = dataclasses.replace(small, sft=dataclasses.replace(small.sft, steps=3))
    ensure_proxy_pair(organism, other, report=lambda phase, seconds: phases.append(phase))
    assert "SFT of the small foundation" in phases  # other settings: rebuilt
    assert json.loads((root / "proxy.json").read_text())["settings"]["sft"]["steps"] == 3
    assert (root / "proxy" / "sft" / "notes.txt").read_text() == (root / "proxy" / "notes.txt").read_text() == "mine\n"
    assert (root / "proxy" / "runs" / "sft" / MANIFEST).is_file()  # the new run's, not a stale one
