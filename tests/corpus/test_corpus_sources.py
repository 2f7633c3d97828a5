"""Open-vocabulary text sources: cleaning, numbers as words, split by document with no shared sentence."""
from pathlib import Path

import pytest

from ttt.corpus.sources import (
    FORTUNES_DIR, SPLITS, WORDNET_DIR, MissingSource, Sentence, build_text, clean, dedupe_key, fortune_texts,
    parse_sources, spell_numbers, split_by_document, wordnet_texts, write_text,
)

NOUN_LINES = [
    "  1 This software and database is being provided to you, the LICENSEE ...\n",
    '00217593 04 n 01 kill 1 002 @ 00217014 n 0000 | the destruction of an enemy plane; '
    '"the pilot reported two kills during the mission"; "we saw 3 planes at 10:15 am"\n',
    '00217499 04 n 01 disaster 0 001 @ 00217014 n 0000 | an act that has disastrous consequences\n',
    '00218045 04 n 01 razing 0 003 @ 00217014 n 0000 | complete destruction of a building; '
    '"the pilot reported two kills during the mission"\n',
]
FORTUNE = """The early bird gets the worm. Mr. Smith said so in 1990!
\t\t-- Anonymous
%
Q: What is big and red?
%
Never put off until tomorrow what you can do today.
%
"""


@pytest.fixture
def fake_dirs(tmp_path):
    wordnet, fortunes = tmp_path / "wordnet", tmp_path / "fortunes"
    wordnet.mkdir()
    fortunes.mkdir()
    (wordnet / "data.noun").write_text("".join(NOUN_LINES))
    for pos in ("verb", "adj", "adv"):
        (wordnet / f"data.{pos}").write_text(NOUN_LINES[0])
    (fortunes / "wisdom").write_text(FORTUNE)
    (fortunes / "drugs").write_text("Drugs are never in the corpus at all.\n%\n")
    return wordnet, fortunes


def test_numbers_dates_times_money_as_words():
    assert spell_numbers("at 3:30 pm on May 5, 1990 it cost $20") == \
        "at three thirty P M on May fifth, nineteen ninety it cost twenty dollars"
    assert spell_numbers("25% of 1,000 people, the 21st, 3.5 and 105") == \
        "twenty five percent of one thousand people, the twenty first, three point five and one hundred five"
    assert spell_numbers("at 7:00 and 9:05") == "at seven o'clock and nine oh five"


@pytest.mark.parametrize("raw, expected", [
    ("the pilot reported two kills during the mission", "The pilot reported two kills during the mission."),
    ("we saw 3 planes at 10:15 am", "We saw three planes at ten fifteen A M."),
    ("He said -- and meant it -- no", "He said, and meant it, no."),
    ("\u201cIt\u2019s over,\u201d she said", "It's over, she said."),
])
def test_clean_keeps_speakable_sentences(raw, expected):
    assert clean(raw) == expected


@pytest.mark.parametrize("raw", [
    "too short",                                         # 2 words
    " ".join(["word"] * 21),                             # 21 words
    "the caf\u00e9 is open today",                       # not ASCII
    "see the file (below) for details",                  # brackets are not speakable
    "send it to the NASA team now",                      # acronym
    "the xqzvbw jumped over the fence",                  # not in CMUdict
    "my R2D2 robot is broken again",                      # digits left over
    "what the fuck is this thing",                       # profanity
])
def test_clean_refuses(raw):
    assert clean(raw) is None


def test_wordnet_examples_and_glosses_by_synset(fake_dirs):
    wordnet, _ = fake_dirs
    examples = list(wordnet_texts(wordnet, "examples"))
    assert examples == [("wordnet:noun:00217593", "the pilot reported two kills during the mission"),
                        ("wordnet:noun:00217593", "we saw 3 planes at 10:15 am"),
                        ("wordnet:noun:00218045", "the pilot reported two kills during the mission")]
    glosses = dict(wordnet_texts(wordnet, "glosses"))
    assert glosses["glosses:noun:00217499"] == "an act that has disastrous consequences"
    assert glosses["glosses:noun:00217593"] == "the destruction of an enemy plane"


def test_fortunes_sentences_without_attribution_or_pruned_files(fake_dirs):
    _, fortunes = fake_dirs
    texts = list(fortune_texts(fortunes))
    assert {doc for doc, _ in texts} == {"fortunes:wisdom"}
    sentences = [t.strip() for _, t in texts]
    assert "The early bird gets the worm." in sentences
    assert "Mr. Smith said so in 1990!" in sentences  # no cut after "Mr."
    assert not any("Anonymous" in t for t in sentences)


def test_missing_package_is_one_line_naming_it(tmp_path):
    with pytest.raises(MissingSource, match="wordnet-base") as err:
        list(wordnet_texts(tmp_path / "nowhere"))
    assert "\n" not in str(err.value)
    with pytest.raises(MissingSource, match="Debian package fortunes"):
        list(fortune_texts(tmp_path / "nowhere"))


def test_parse_sources():
    assert parse_sources("wordnet, fortunes,world,wordnet") == ["wordnet", "fortunes", "world"]
    with pytest.raises(ValueError, match="unknown --sources entry 'gcide'"):
        parse_sources("wordnet,gcide")
    with pytest.raises(ValueError, match="unknown --sources"):
        parse_sources(" , ")


def _shared(splits) -> set[str]:
    keys = {split: {dedupe_key(s.text) for s in splits[split]} for split in SPLITS}
    return (keys["train"] & keys["valid"]) | (keys["train"] & keys["test"]) | (keys["valid"] & keys["test"])


def test_split_keeps_documents_whole_and_shares_no_sentence():
    # 200 documents of 3 sentences; every document repeats one sentence of a "popular" pool.
    def name(n: int) -> str:  # sentences compare without digits: name documents in letters
        return "".join("abcdefghij"[int(c)] for c in str(n))

    sentences = [Sentence(f"Sentence {name(d)} number {name(i)} here.", "wordnet", f"wordnet:noun:{d}")
                 for d in range(200) for i in range(2)]
    sentences += [Sentence(f"A popular line {name(d % 7)} again.", "wordnet", f"wordnet:noun:{d}")
                  for d in range(200)]
    splits = split_by_document(sentences, seed=3, eval_fraction=0.1)
    assert _shared(splits) == set()
    docs = {split: {s.doc for s in splits[split]} for split in SPLITS}
    assert not (docs["train"] & docs["valid"] or docs["train"] & docs["test"] or docs["valid"] & docs["test"])
    for split in ("valid", "test"):
        assert 40 <= len(splits[split]) <= 60  # 10% of 600, duplicates kept only once
    assert split_by_document(sentences, seed=3, eval_fraction=0.1) == splits
    assert split_by_document(sentences, seed=4, eval_fraction=0.1) != splits
    with pytest.raises(ValueError, match="eval_fraction"):
        split_by_document(sentences, eval_fraction=0.6)


def test_build_text_on_fixture(fake_dirs, tmp_path):
    wordnet, fortunes = fake_dirs
    splits, card = build_text(["wordnet", "glosses", "fortunes", "world"], seed=0, eval_fraction=0.0,
                              wordnet_dir=wordnet, fortunes_dir=fortunes)
    texts = [s.text for s in splits["train"]]
    assert texts.count("The pilot reported two kills during the mission.") == 1
    assert "We saw three planes at ten fifteen A M." in texts
    assert "Never put off until tomorrow what you can do today." in texts
    assert card["raw_texts"]["wordnet"] == 3 and card["sentences"]["train"]["fortunes"] == 4
    assert "What is big and red?" in texts
    write_text(tmp_path / "text", splits, card)
    assert (tmp_path / "text" / "train.jsonl").read_text().count("\n") == len(texts)


@pytest.mark.skipif(not (WORDNET_DIR.exists() and FORTUNES_DIR.exists()),
                    reason="Debian wordnet-base and fortunes not installed (make corpus-deps)")
def test_real_sources_split_without_shared_sentences():
    splits, card = build_text(["wordnet", "fortunes"], seed=0)
    assert _shared(splits) == set()
    assert card["sentences"]["train"]["wordnet"] > 25_000 and card["sentences"]["train"]["fortunes"] > 10_000
    for split in ("valid", "test"):
        assert sum(card["sentences"][split].values()) > 1_000
    assert all(t.isascii() and not any(c.isdigit() for c in t) for s in splits.values() for t in
               (x.text for x in s))


def test_cli_text_refuses_world_only(tmp_path, capsys):
    from ttt.cli import main

    assert main(["data", "text", "--out", str(tmp_path), "--sources", "world"]) == 1
    assert "names no text source" in capsys.readouterr().err


@pytest.mark.skipif(not FORTUNES_DIR.exists(), reason="Debian fortunes not installed (make corpus-deps)")
def test_cli_text_writes_splits_and_card(tmp_path):
    import json

    from ttt.cli import main

    assert main(["data", "text", "--out", str(tmp_path), "--sources", "fortunes", "--seed", "1"]) == 0
    card = json.loads((tmp_path / "text_card.json").read_text())
    for split in SPLITS:
        rows = [json.loads(line) for line in (tmp_path / f"{split}.jsonl").read_text().splitlines()]
        assert len(rows) == card["sentences"][split]["fortunes"] > 0
        assert set(rows[0]) == {"text", "source", "doc"}
