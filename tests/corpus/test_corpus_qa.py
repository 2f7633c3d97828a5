"""Self-distilled spoken-QA data: questions, batched left-padded answers, resumable answering, the filter."""
import json

import pytest
import torch

from helpers import WORDS
from ttt.training.backbones import tiny_backbone
from ttt.vocab import train_bpe_tokenizer
from ttt.cli import main
from ttt.corpus.qa import (
    KNOWN_QA, Question, answer_questions, filter_answer, filter_answers, generate_answers, load_backbone,
    smollm2_gguf, wordnet_questions,
)
from ttt.corpus.sources import MissingSource, clean


@pytest.fixture(scope="module")
def tiny_lm_dir(tmp_path_factory):
    """A tiny random Llama and its BPE tokenizer saved as an HF directory; logits scaled up so greedy
    choices have wide margins (batched and unbatched runs then pick the same tokens on any CPU)."""
    tok = train_bpe_tokenizer(WORDS * 5, vocab_size=400)
    model = tiny_backbone(len(tok), family="llama", seed=3)
    with torch.no_grad():
        model.lm_head.weight.mul_(40.0)
    path = tmp_path_factory.mktemp("tiny_lm")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_batched_left_padded_answers_equal_one_by_one(tiny_lm_dir):
    model, tok = load_backbone(tiny_lm_dir)
    questions = ["what is seven plus four", "hello?", "the capital of france is what city in the world"]
    batched = generate_answers(model, tok, questions, max_new_tokens=6)
    single = [generate_answers(model, tok, [q], max_new_tokens=6)[0] for q in questions]
    assert batched == single
    assert all(isinstance(a, str) for a in batched) and any(batched)


def test_answering_appends_and_resumes(tiny_lm_dir, tmp_path):
    model, tok = load_backbone(tiny_lm_dir)
    questions = [Question("what is seven plus four", "qa:known:a", "test", ("eleven",)),
                 Question("hello world", "qa:noun:1", "train")]
    out = tmp_path / "answers.jsonl"
    first = answer_questions(questions[:1], out, model, tok, batch_size=2, max_new_tokens=4)
    assert first["answered"] == 1
    second = answer_questions(questions, out, model, tok, batch_size=2, max_new_tokens=4)
    assert second["answered"] == 1 and second["already"] == 1
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["question"] for r in rows] == ["what is seven plus four", "hello world"]
    assert rows[0]["accept"] == ["eleven"] and rows[0]["split"] == "test"


def test_load_backbone_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model directory"):
        load_backbone(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no GGUF file"):
        load_backbone(tmp_path / "missing.gguf")


def test_smollm2_gguf_is_found_without_importing_it():
    try:
        path = smollm2_gguf()
    except FileNotFoundError as err:
        pytest.skip(str(err))
    assert path.suffix == ".gguf" and path.is_file()


@pytest.mark.parametrize("question, raw, accept, expected", [
    ("What is a review?", "A review is a critical and often subjective assessment of the", [], (None, "unfinished")),
    ("What is the capital of France?", "The capital of France is Paris. It is big.", ["paris"],
     ("The capital of France is Paris.", "ok")),
    ("How many legs does a spider have?", "A spider has 8 legs.", ["eight"], ("A spider has eight legs.", "ok")),
    ("What is the capital of the United States?", "The capital of the United States is New York City.",
     ["washington"], (None, "wrong")),
    ("What is a dog?", "I'm sorry, I cannot answer that.", [], (None, "refusal")),
    ("What is a dog?", "A dog is a \u00b0 animal.", [], (None, "not speakable")),
    ("What is a dog?", "", [], (None, "empty")),
    ("What is a dog?", "A dog.", [], (None, "too short")),
    ("What is a dog?", "What is a dog?", [], (None, "echo")),
    ("What is a dog?", "A dog is a domesticated animal that people keep as a pet.", [],
     ("A dog is a domesticated animal that people keep as a pet.", "ok")),
])
def test_filter_answer(question, raw, accept, expected):
    assert filter_answer(question, raw, accept) == expected


def test_definition_answers_must_meet_the_gloss():
    gloss = "a channel along the eaves or on the ground for draining rainwater"
    assert filter_answer("What is a gutter?", "A gutter is a drainage system that collects rainwater.",
                         reference=gloss)[1] == "ok"
    assert filter_answer("What is a gutter?", "A gutter is a kind of gutter for a gutter.",
                         reference=gloss) == (None, "off gloss")  # the asked word itself does not count
    assert filter_answer("What does unused mean?", "Unused refers to something that has been discarded.",
                         reference="not yet used or soiled") == (None, "off gloss")


def test_filter_answers_card():
    rows = [{"question": "What is the capital of France?", "raw_answer": "The capital of France is Paris.",
             "accept": ["paris"], "doc": "qa:known:f", "split": "test"},
            {"question": "What is the capital of Japan?", "raw_answer": "The capital of Japan is Kyoto.",
             "accept": ["tokyo"], "doc": "qa:known:j", "split": "valid"},
            {"question": "How many legs does a spider have?", "raw_answer": "A spider has 8 legs (\u00b0).",
             "accept": ["eight"], "doc": "qa:known:s", "split": "valid"},
            {"question": "What is a cat?", "raw_answer": "A cat is a small furry animal.", "accept": [],
             "doc": "qa:noun:1", "split": "train"}]
    kept, card = filter_answers(rows)
    assert [r["question"] for r in kept] == ["What is the capital of France?", "What is a cat?"]
    assert set(kept[0]) == {"question", "answer", "doc", "split"}
    # the backbone's text accuracy counts a right answer the filter drops as unspeakable
    assert card["known_text_accuracy"] == 0.667 and card["known_questions"] == {"asked": 3, "right": 2, "kept": 1}
    assert card["kept"] == {"train": 1, "valid": 0, "test": 1}
    assert card["reasons"]["valid"] == {"wrong": 1, "not speakable": 1}


def test_known_questions_are_eval_only_and_speakable():
    france = [q for q in KNOWN_QA if "France" in q.question]
    assert france[0].split == "test" and france[0].accept == ("paris",)
    assert {q.split for q in KNOWN_QA} == {"valid", "test"}
    assert len({q.doc for q in KNOWN_QA}) == len(KNOWN_QA)
    assert all(clean(q.question) == q.question for q in KNOWN_QA)


DATA_NOUN = ('02084071 05 n 02 dog 0 domestic_dog 0 000 | a member of the genus Canis; "the dog barked"\n'
             '14845743 27 n 01 water 0 000 | binary compound that occurs at room temperature\n'
             '08953029 15 n 01 France 0 000 | a republic in western Europe\n')
INDEX_NOUN = ("dog n 1 0 1 5 02084071\nwater n 1 0 1 3 14845743\nfrance n 1 0 1 2 08953029\n"
              "rare_thing n 1 0 1 0 02084071\n")


def test_wordnet_questions_on_a_fixture(tmp_path):
    (tmp_path / "data.noun").write_text(DATA_NOUN)
    (tmp_path / "index.noun").write_text(INDEX_NOUN)
    (tmp_path / "data.verb").write_text('01926329 38 v 01 run 0 000 | move fast by using legs\n')
    (tmp_path / "index.verb").write_text("run v 1 0 1 9 01926329\n")
    (tmp_path / "data.adj").write_text('01148283 00 a 01 happy 0 000 | enjoying well-being\n')
    (tmp_path / "index.adj").write_text("happy a 1 0 1 1 01148283\n")
    questions = wordnet_questions(tmp_path, eval_fraction=0.0)
    assert [q.question for q in questions] == [
        "What does it mean to run?", "What does a dog eat?", "What is a dog?", "Where does a dog live?",
        "What is water?", "What is France?", "What does happy mean?"]
    assert {q.split for q in questions} == {"train"}
    assert {q.doc for q in questions if "dog" in q.question} == {"qa:noun:02084071"}
    references = {q.question: q.reference for q in questions}
    assert references["What is a dog?"] == "a member of the genus Canis"
    assert references["What does a dog eat?"] == ""  # not a definition: no gloss to meet
    with pytest.raises(MissingSource, match="wordnet-base"):
        wordnet_questions(tmp_path / "none")


def test_cli_qa_rejects_bad_counts(tmp_path, capsys):
    assert main(["data", "qa", "--out", str(tmp_path), "--limit", "-1"]) == 1
    assert "--limit must be >= 0" in capsys.readouterr().err
