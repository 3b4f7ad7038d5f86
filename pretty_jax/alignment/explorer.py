"""The explorer page, `alignment.html`: one self-contained file (inline CSS and JS, no
network) to read the alignment statistics token by token.

Its data, built by `page_data` while the statistics are computed (the report keeps it
under `summary.EXPLORER_DATA`, which alignment.json leaves out):

    {"foundation": str, "sft": str, "trajectory": str, "ks": ["0", "1", ...],
     "tokens": {"<id>": text},              # each distinct id decoded once
     "examples": [{"id": str, "prompt": str, "source": str,    # source: what the list shows
                   "runs": {"<k>": {"prior": [id], "trajectory": [id],      # T steps
                                    "rank": [sft_rank_in_lm], "p_lm_of_sft": [p],
                                    "kl": [KL(SFT||LM)], "js": [JS],
                                    "lm_top": [[id] * N] * T, "lm_lp": [[log-prob] * N] * T,
                                    "sft_top": ..., "sft_lp": ...}}}]}

Only the N (10) most probable tokens per step per model travel, so the page grows with
examples x steps x N, not with the vocabulary. Numbers are rounded (log-probs and
divergences to 4 decimals), and the JSON is gzipped and inlined as base64 (about 3x
smaller than plain JSON); the page inflates it with the browser's own
`DecompressionStream`, so nothing is fetched.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
from typing import Mapping, Sequence

import numpy as np

from pretty_jax.alignment.explorer_page import TEMPLATE
from pretty_jax.core import strict_json

PAGE_FILE = "alignment.html"
_DECIMALS = 4
# Word-start markers of SentencePiece and byte-level BPE vocabularies.
_SPACE_MARKERS = ("\u2581", "\u0120")


def _rounded(values) -> list:
    """Rounded floats, null for a value that is missing or not finite (the page's JSON
    must parse: `JSON.parse` refuses NaN)."""
    return _nested_finite(np.round(np.asarray(values, dtype=np.float64), _DECIMALS).tolist())  # None -> NaN -> None


def _nested_finite(values):
    """A nested list of floats with every non-finite value as None."""
    if isinstance(values, list):
        return [_nested_finite(v) for v in values]
    return values if math.isfinite(values) else None


def token_text(tokenizer, token_id: int) -> str:
    """How a token reads inside running text: its decoded text, with the leading space
    a word-initial piece carries (decoding one piece alone drops it)."""
    token_id = int(token_id)
    text = tokenizer.decode([token_id])
    piece = tokenizer.convert_ids_to_tokens(token_id)
    if isinstance(piece, str) and piece.startswith(_SPACE_MARKERS) and not text.startswith(" "):
        text = " " + text
    return text


def _run(example: Mapping, top: Mapping[str, np.ndarray]) -> dict:
    steps = example["steps"]
    return {
        "prior": list(example["prior"]),
        "trajectory": list(example["trajectory"]),
        "rank": [int(r) for r in steps["sft_rank_in_lm"]],
        "p_lm_of_sft": _rounded(steps["p_lm_of_sft"]),
        "kl": _rounded(steps["kl_sft_lm"]),
        "js": _rounded(steps["js"]),
        "lm_top": np.asarray(top["lm_top_ids"]).tolist(),
        "lm_lp": _rounded(top["lm_top_logprobs"]),
        "sft_top": np.asarray(top["sft_top_ids"]).tolist(),
        "sft_lp": _rounded(top["sft_top_logprobs"]),
    }


def page_data(
    report: Mapping, prompts: Sequence[str], tops: Mapping[str, Sequence[Mapping[str, np.ndarray]]], tokenizer,
    sources: Sequence[str] | None = None,
) -> dict:
    """The page's data (module docstring) from a report (alignment.json's content), the
    examples' prompt texts and, by k (as in the report) and example, the scorer's
    `TOP_FIELDS` arrays [T, N]; `sources` (default: the prompts) are what the list shows."""
    by_prior = report["by_prior_tokens"]
    sources = prompts if sources is None else sources
    examples = []
    for index, (prompt, source) in enumerate(zip(prompts, sources, strict=True)):
        runs = {k: _run(entry["examples"][index], tops[k][index]) for k, entry in by_prior.items()}
        examples.append({"id": by_prior[next(iter(by_prior))]["examples"][index]["id"], "prompt": prompt,
                         "source": source, "runs": runs})
    distinct = sorted({
        int(t) for e in examples for run in e["runs"].values()
        for t in [*run["prior"], *run["trajectory"], *np.ravel(run["lm_top"]), *np.ravel(run["sft_top"])]
    })
    return {
        "foundation": report["foundation"], "sft": report["sft"], "trajectory": report["trajectory"],
        "ks": list(by_prior), "tokens": {str(t): token_text(tokenizer, t) for t in distinct}, "examples": examples,
    }


def encode_data(data: Mapping) -> str:
    """The page's data as inlined: gzipped JSON in base64 (no timestamp in the gzip
    header, so the same data gives the same page)."""
    payload = strict_json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return base64.b64encode(gzip.compress(payload, compresslevel=9, mtime=0)).decode("ascii")


def decode_data(html: str) -> dict:
    """The data inlined in a page's text (the inverse of `encode_data`)."""
    encoded = html.split('<script type="application/octet-stream" id="data">', 1)[1].split("</script>", 1)[0]
    return json.loads(gzip.decompress(base64.b64decode(encoded)))


def page_html(data: Mapping, title: str) -> str:
    """alignment.html's text: the template with the title (escaped) and the data (base64,
    which no token text can break out of) filled in."""
    escaped_title = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return TEMPLATE.replace("__TITLE__", escaped_title).replace("__DATA__", encode_data(data))
