"""The datasets the paper's configs read (configs/*.cfg), where each file comes from, the
digest it must have, where it goes in the data cache and the flags that point a run at it.

Digests are "<kind>:<hex>":
  sha256   the SHA-256 of the file;
  gitblob  the id git gives the file's content (SHA-1 of "blob <size>\\0" + content), for
           files of a git repository at a release tag whose SHA-256 could not be measured
           from the repository's history.
A file without a pinned digest (`digest=None`) is checked on later fetches against the
SHA-256 its first fetch recorded; a file of a Hugging Face dataset against the digest
the hub sends with it (the LFS object's SHA-256, or the git blob id of a small file).

Only the languages of the paper's configs are listed: translation eng -> zho_simpl,
deu, fra, jpn, rus; POS fra, deu, zho_simpl; summarisation eng -> zho_simpl, fra.
"""

from __future__ import annotations

import dataclasses

from pretty_jax.tasks.flores_plus import FLORES_PLUS_NAMES
from pretty_jax.tasks.languages import get_language

# Where files come from: origin name -> URL base (the hub's is huggingface_hub's
# endpoint, which HF_ENDPOINT changes).
FBAIPUBLICFILES = "fbaipublicfiles"
GITHUB = "github"
HUB = "hub"
ORIGINS = {FBAIPUBLICFILES: "https://dl.fbaipublicfiles.com", GITHUB: "https://raw.githubusercontent.com"}

TRANSLATION_TARGETS = ("zho_simpl", "deu", "fra", "jpn", "rus")
POS_LANGUAGES = ("fra", "deu", "zho_simpl")
SUMMARY_TARGETS = ("zho_simpl", "fra")


@dataclasses.dataclass(frozen=True)
class Unpack:
    """What is taken out of a downloaded archive: `member` (a file inside it) saved as
    `target`, or with member=None the whole archive, whose single top-level folder is
    `target`. Paths are relative to the dataset's folder in the cache."""

    target: str
    member: str | None = None


@dataclasses.dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset.

    target: where it is kept, relative to the dataset's folder in the cache.
    origin: a key of ORIGINS, or HUB for a file of the dataset's hub repository.
    path: the URL path below the origin (HUB: the path inside the repository).
    digest: the pinned "<kind>:<hex>" (see the module docstring), None when not pinned.
    unpack: for an archive, what to take out of it.
    """

    target: str
    origin: str
    path: str
    digest: str | None = None
    unpack: Unpack | None = None


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A dataset the configs read.

    name: what --datasets calls it and its folder in the cache; title: for people;
    page: where a person reads about it (and accepts its terms, when gated);
    flags: the run flags that read it, with {root} for the dataset's folder;
    hub_repo / revision: a Hugging Face dataset repository and the branch, tag or commit
      its files are taken from (the commit it resolved to is recorded in the cache and
      every later file of the dataset comes from that commit).
    """

    name: str
    title: str
    page: str
    files: tuple[RemoteFile, ...]
    flags: tuple[str, ...]
    hub_repo: str | None = None
    revision: str = "main"


def _flores101() -> Dataset:
    archive = RemoteFile(
        "flores101_dataset.tar.gz", FBAIPUBLICFILES, "flores101/dataset/flores101_dataset.tar.gz",
        # The SHA-256 that projects pinning this archive (version 1.0.0) publish.
        "sha256:49fa80207b09fcc0eca8253ed13303b3a0ae0f16081af862601c73ac76f2cba6",
        Unpack("flores101_dataset"),
    )
    return Dataset("flores101", "Flores-101 (dev and devtest, 102 languages)",
                   "https://github.com/facebookresearch/flores/tree/main/previous_releases/flores101",
                   (archive,), ("--data={root}/flores101_dataset",))


def _flores_plus() -> Dataset:
    names = []
    for code in ("eng",) + TRANSLATION_TARGETS:
        flores200 = get_language(code).flores200
        names.append(FLORES_PLUS_NAMES.get(flores200, flores200))
    files = tuple(RemoteFile(f"{split}/{name}.parquet", HUB, f"{split}/{name}.parquet")
                  for split in ("dev", "devtest") for name in names)
    return Dataset("flores_plus", "Flores+ (gated: accept its terms on its page, then log in with `hf auth login`)",
                   "https://huggingface.co/datasets/openlanguagedata/flores_plus", files, ("--data={root}",),
                   hub_repo="openlanguagedata/flores_plus")


def _muse() -> Dataset:
    # Not pinned: no published digest of these files was found.
    files = tuple(RemoteFile(f"en-{iso}.txt", FBAIPUBLICFILES, f"arrival/dictionaries/en-{iso}.txt")
                  for iso in (get_language(code).iso639_1 for code in TRANSLATION_TARGETS))
    return Dataset("muse", "MUSE bilingual dictionaries (full, English to each target)",
                   "https://github.com/facebookresearch/MUSE#ground-truth-bilingual-dictionaries", files,
                   ("--dictionary={root}/{{source_iso}}-{{target_iso}}.txt",))


# Universal Dependencies 2.16, the dev and train files of one treebank per language:
# language -> (repository, file stem, dev SHA-256, train git blob id). The dev digests
# are the SHA-256 of the files at tag r2.16; the train files' are their git blob ids there.
UD_TREEBANKS = {
    "fra": ("UD_French-GSD", "fr_gsd", "3e7531b645e5bd6fe37bb619cdd8292e87f5937e64cd8627b4094324eb830e6b",
            "280d3b6dd727c0c4083fa20af4ef194b1c8f9242"),
    "deu": ("UD_German-GSD", "de_gsd", "00431f2624cbbf66796c097a9303bbc8f8e8ca88ef35c4c5664aa396b2d674c9",
            "9d2f5124449fc1b4ca34be17857c16e84a36bac2"),
    "zho_simpl": ("UD_Chinese-GSDSimp", "zh_gsdsimp",
                  "342a2969df6d6d08bdc25dbc067c93c86ab3099bb054a9921ae7067cbc2c53ad",
                  "920b17964ee245a508b9de0f69330f3dca6b1749"),
}
UD_RELEASE = "r2.16"


def _ud() -> Dataset:
    files = []
    for code in POS_LANGUAGES:
        repository, stem, dev_sha256, train_blob = UD_TREEBANKS[code]
        iso = get_language(code).iso639_1
        for split, digest in (("dev", f"sha256:{dev_sha256}"), ("train", f"gitblob:{train_blob}")):
            path = f"UniversalDependencies/{repository}/{UD_RELEASE}/{stem}-ud-{split}.conllu"
            files.append(RemoteFile(f"{iso}-{split}.conllu", GITHUB, path, digest))
    return Dataset("ud", f"Universal Dependencies {UD_RELEASE[1:]} treebanks (XGLUE's POS task is built from them)",
                   "https://universaldependencies.org", tuple(files),
                   ("--data={root}/{{target_iso}}-dev.conllu", "--lexicon_data={root}/{{target_iso}}-train.conllu"))


# CrossSum's names of the configs' languages (its files are "<source>-<target>_CrossSum.tar.bz2").
CROSSSUM_NAMES = {"eng": "english", "fra": "french", "zho_simpl": "chinese_simplified"}


def _crosssum() -> Dataset:
    files = []
    for target in SUMMARY_TARGETS:
        pair = f"{CROSSSUM_NAMES['eng']}-{CROSSSUM_NAMES[target]}"
        files.append(RemoteFile(f"{pair}_CrossSum.tar.bz2", HUB, f"data/{pair}_CrossSum.tar.bz2",
                                unpack=Unpack(f"eng-{target}.jsonl", member=f"{pair}_test.jsonl")))
    return Dataset("crosssum", "CrossSum (test split, English articles with summaries in each target)",
                   "https://huggingface.co/datasets/csebuetnlp/CrossSum", tuple(files),
                   ("--data={root}/{{source_lang}}-{{target_lang}}.jsonl",), hub_repo="csebuetnlp/CrossSum")


CATALOG: dict[str, Dataset] = {d.name: d for d in (_flores101(), _flores_plus(), _muse(), _ud(), _crosssum())}
# What a plain `python -m pretty_jax.data` fetches: what the paper's configs read
# (Flores+ is an alternative to Flores-101, and gated).
DEFAULT_DATASETS = ("flores101", "muse", "ud", "crosssum")


def file_url(dataset: Dataset, file: RemoteFile, revision: str, mirror: str | None = None) -> str:
    """The URL of `file`: below `mirror` (a URL base serving the same paths) when given,
    else below its origin; a hub file at `revision`."""
    if file.origin == HUB:
        from huggingface_hub import constants

        base = mirror or constants.ENDPOINT
        return f"{base.rstrip('/')}/datasets/{dataset.hub_repo}/resolve/{revision}/{file.path}"
    return f"{(mirror or ORIGINS[file.origin]).rstrip('/')}/{file.path}"


def run_flags(dataset: Dataset, root: str) -> list[str]:
    """The run flags that read `dataset` from its folder `root`."""
    return [flag.format(root=root) for flag in dataset.flags]
