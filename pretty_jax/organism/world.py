"""A small bilingual world, generated deterministically from a seed.

Two languages say the same things: a fragment of English, and Varic, an invented
language that differs in

  lexicon      every content word is an invented Varic word;
  word order   subject-object-verb, and adjectives after their noun
               ("the small cat likes a red ball" ~ "zo mauo piko ik balo roso lubet .");
  agreement    Varic nouns have a gender (-o / -a); articles and adjectives agree with
               their noun in gender and number ("zo mauo piko", "zia poma pika",
               plural -n: "zi mauon pikon");
  tense        present -et / past -ir on the verb, English -s / -ed.

What the world provides (see `build_world`):
  pretraining  monolingual English and Varic documents, and parallel documents (each
               English line followed by its Varic line), with random titles and line
               labels that carry no meaning
  instructions "Translate ... Varic:" prompts with their answers, only for SFT
  test set     held-out sentence pairs (never in pretraining or instructions)
  dictionary   English -> Varic words in MUSE format (most frequent translation first)
"""

from __future__ import annotations

import dataclasses
import random
from typing import Sequence

from pretty_jax.tasks.languages import Language

VARIC = Language("vrc", "vrc_Latn", "vr", "Varic", "Latn")
# Varic's function words: they tell the target-language detector Varic from English.
VARIC_FUNCTION_WORDS = ("zo", "zia", "zi", "ik", "ika", "sik", "vo", "nu")

NOUNS = (  # English singular, English plural, Varic stem, gender
    ("cat", "cats", "mau", "o"), ("dog", "dogs", "wof", "o"), ("bird", "birds", "piu", "o"),
    ("cow", "cows", "muk", "a"), ("girl", "girls", "nin", "a"), ("boy", "boys", "pup", "o"),
    ("king", "kings", "reg", "o"), ("queen", "queens", "regin", "a"), ("ball", "balls", "bal", "o"),
    ("box", "boxes", "kist", "a"), ("apple", "apples", "pom", "a"), ("house", "houses", "dom", "a"),
    ("tree", "trees", "arb", "o"), ("flower", "flowers", "flor", "a"),
)
ADJECTIVES = (  # English, Varic stem (+ o/a, + n in the plural)
    ("small", "pik"), ("big", "grand"), ("red", "ros"), ("blue", "blav"), ("old", "vek"),
    ("happy", "fel"), ("fast", "rap"), ("quiet", "kalm"),
)
VERBS = (  # English stem (regular), Varic stem
    ("like", "lub"), ("watch", "vid"), ("follow", "sekv"), ("help", "jut"), ("push", "pus"),
    ("call", "klam"), ("visit", "vizit"), ("chase", "kas"), ("kick", "bat"), ("wash", "ban"),
)
TIMES = (("today", "vo hodi"), ("yesterday", "vo ieri"), ("now", "nu"))  # English, Varic (sentence-final)


@dataclasses.dataclass(frozen=True)
class NounPhrase:
    noun: int
    adjective: int | None
    definite: bool
    plural: bool

    def english(self) -> str:
        singular, plural, _, _ = NOUNS[self.noun]
        adjective = [ADJECTIVES[self.adjective][0]] if self.adjective is not None else []
        if self.definite:
            article = "the"
        elif self.plural:
            article = "some"
        else:
            article = "an" if (adjective or [singular])[0][0] in "aeiou" else "a"
        return " ".join([article, *adjective, plural if self.plural else singular])

    def varic(self) -> str:
        _, _, stem, gender = NOUNS[self.noun]
        number = "n" if self.plural else ""
        if self.definite:
            article = "zi" if self.plural else ("zo" if gender == "o" else "zia")
        else:
            article = "sik" if self.plural else ("ik" if gender == "o" else "ika")
        words = [article, stem + gender + number]
        if self.adjective is not None:
            words.append(ADJECTIVES[self.adjective][1] + gender + number)
        return " ".join(words)


@dataclasses.dataclass(frozen=True)
class Sentence:
    subject: NounPhrase
    verb: int
    obj: NounPhrase
    past: bool
    time: int | None

    def english(self) -> str:
        stem = VERBS[self.verb][0]
        if self.past:
            verb = stem + ("d" if stem.endswith("e") else "ed")
        elif self.subject.plural:
            verb = stem
        else:
            verb = stem + ("es" if stem.endswith(("sh", "ch", "s", "x")) else "s")
        time = [TIMES[self.time][0]] if self.time is not None else []
        return " ".join([self.subject.english(), verb, self.obj.english()] + time) + " ."

    def varic(self) -> str:
        verb = VERBS[self.verb][1] + ("ir" if self.past else "et")
        time = [TIMES[self.time][1]] if self.time is not None else []
        return " ".join([self.subject.varic(), self.obj.varic(), verb] + time) + " ."


def _noun_phrase(rng: random.Random) -> NounPhrase:
    return NounPhrase(
        noun=rng.randrange(len(NOUNS)),
        adjective=rng.randrange(len(ADJECTIVES)) if rng.random() < 0.6 else None,
        definite=rng.random() < 0.8,
        plural=rng.random() < 0.3,
    )


def random_sentence(rng: random.Random) -> Sentence:
    return Sentence(
        subject=_noun_phrase(rng),
        verb=rng.randrange(len(VERBS)),
        obj=_noun_phrase(rng),
        past=rng.random() < 0.4,
        time=rng.randrange(len(TIMES)) if rng.random() < 0.3 else None,
    )


# Documents may open with a title line and label their lines; both are drawn at random,
# whatever the document holds, so the foundation model knows these words (the
# instruction's among them) without learning that they ask for anything.
TITLES = (
    "Translate the following sentence from English to Varic.",
    "Some sentences.",
    "English and Varic.",
    "A few lines of text.",
)
LABELS = ("English", "Varic", "A", "B")
@dataclasses.dataclass(frozen=True)
class World:
    """The generated texts. `test` pairs are (english, varic) never seen in training."""

    pretraining: tuple[str, ...]
    instructions: tuple[tuple[str, str], ...]  # (english, varic) pairs for SFT prompts
    test: tuple[tuple[str, str], ...]
    dictionary: tuple[tuple[str, str], ...]


def _document(rng: random.Random, kind: str, sentences: Sequence[Sentence]) -> str:
    """english / varic: one sentence per line; parallel: each English line followed by
    its Varic line. Lines may carry random labels ("Varic: ..."), and the document a
    random title."""
    if kind == "english":
        lines = [s.english() for s in sentences]
    elif kind == "varic":
        lines = [s.varic() for s in sentences]
    else:
        lines = [line for s in sentences for line in (s.english(), s.varic())]
    if rng.random() < 0.5:
        lines = [f"{rng.choice(LABELS)}: {line}" for line in lines]
    if rng.random() < 0.3:
        lines = [rng.choice(TITLES)] + lines
    return "\n".join(lines)


def dictionary_entries() -> list[tuple[str, str]]:
    """English word -> Varic word, most frequent translation first (MUSE order)."""
    entries = [("the", "zo"), ("the", "zia"), ("the", "zi"), ("a", "ik"), ("a", "ika"), ("an", "ik"),
               ("an", "ika"), ("some", "sik")]
    for singular, plural, stem, gender in NOUNS:
        entries += [(singular, stem + gender), (plural, stem + gender + "n")]
    for english, stem in ADJECTIVES:
        entries += [(english, stem + "o"), (english, stem + "a"), (english, stem + "on"), (english, stem + "an")]
    for english, stem in VERBS:
        entries += [(english + "s", stem + "et"), (english + "es", stem + "et"), (english, stem + "et"),
                    (english + ("d" if english.endswith("e") else "ed"), stem + "ir")]
    entries += [("today", "hodi"), ("yesterday", "ieri"), ("now", "nu")]
    return entries


def build_world(
    seed: int = 0,
    num_documents: int = 12000,
    num_instructions: int = 3000,
    num_test: int = 100,
    shares: tuple[float, float, float] = (0.55, 0.15, 0.3),
) -> World:
    """The whole world, the same for the same arguments.

    shares: how many documents are English-only (3-6 lines), Varic-only and parallel
      (2-4 pairs). English dominates, so after an English line the foundation model
      expects more English (most often "the ..."): it knows how to translate, but only
      a first Varic token tells it to.
    """
    rng = random.Random(seed)
    test: dict[str, Sentence] = {}
    while len(test) < num_test:
        sentence = random_sentence(rng)
        test.setdefault(sentence.english(), sentence)
    unseen = lambda s: s.english() not in test  # noqa: E731

    def fresh(count: int) -> list[Sentence]:
        out = []
        while len(out) < count:
            sentence = random_sentence(rng)
            if unseen(sentence):
                out.append(sentence)
        return out

    documents = []
    for _ in range(num_documents):
        kind = rng.choices(("english", "varic", "parallel"), weights=shares)[0]
        documents.append(_document(rng, kind, fresh(rng.randint(3, 6) if kind == "english" else rng.randint(2, 4))))
    instructions = [(s.english(), s.varic()) for s in fresh(num_instructions)]
    return World(
        pretraining=tuple(documents),
        instructions=tuple(instructions),
        test=tuple((s.english(), s.varic()) for s in test.values()),
        dictionary=tuple(dictionary_entries()),
    )
