"""`ttt data build`: corpus manifests + codec -> chat-format training data the model accepts, and eval items."""
import json

import pytest
import soundfile as sf

from ttt.audio.codec import load_default_codec
from ttt.corpus.build import build
from ttt.corpus.voices import TARGET_VOICE, get_voice
from ttt.format import Modality


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    (root / "wavs").mkdir()
    voice = get_voice(TARGET_VOICE)
    for name, text in [("q", "what is seven plus four"), ("a", "seven plus four is eleven")]:
        wave, sr = voice.synthesize(text)
        sf.write(root / "wavs" / f"{name}.wav", wave, sr)
    rows = [
        {"id": "s1", "task": "spoken_qa", "question": "what is seven plus four", "question_audio": "wavs/q.wav",
         "answer": "seven plus four is eleven", "answer_audio": "wavs/a.wav"},
        {"id": "a1", "task": "asr", "question": None, "question_audio": "wavs/q.wav", "answer": "what is seven plus four"},
        {"id": "t1", "task": "tts", "question": "seven plus four is eleven", "answer": "seven plus four is eleven",
         "answer_audio": "wavs/a.wav"},
        {"id": "c1", "task": "text_chat", "question": "what is seven plus four", "answer": "seven plus four is eleven"},
    ]
    for split in ("train", "test"):
        (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_build_writes_trainable_chat_data(corpus, tmp_path):
    codec = load_default_codec()
    card = build(corpus, tmp_path, codec, text_chunk=2, audio_chunk=4, vocab_size=300)
    assert card["examples"] == {"train": 4, "test": 4}
    examples = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert [e["task"] for e in examples] == ["spoken_qa", "asr", "tts", "text_chat"]
    qa = examples[0]["messages"]
    assert [m["role"] for m in qa] == ["system", "user", "assistant"]
    assert qa[1]["content"].startswith("<|begin_of_audio|>") and "<|begin_of_quad|>" in qa[2]["content"]
    assert qa[2]["content"].count("<|begin_of_audio|>") >= 1  # 2-token chunks + 4-code spans interleave
    answer_codes = codec.encode_file(corpus / "wavs" / "a.wav")
    assert qa[2]["content"].count("<|audio_") == len(answer_codes)
    assert "<|audio_" not in examples[1]["messages"][2]["content"]  # ASR answers in text
    from transformers import AutoTokenizer

    from ttt.training.backbones import tiny_backbone
    from ttt.model import TtTModel

    tok = AutoTokenizer.from_pretrained(tmp_path / "tokenizer")
    model = TtTModel.from_backbone(tiny_backbone(len(tok) + codec.codebook_size + 16), tok, audio_codebook_size=codec.codebook_size)
    enc = model.encode(examples[0])
    assert int((enc.modality == Modality.INPUT_AUDIO).sum()) == len(codec.encode_file(corpus / "wavs" / "q.wav"))
    evals = [json.loads(line) for line in (tmp_path / "eval_test.jsonl").read_text().splitlines()]
    assert {e["task"] for e in evals} == {"spoken_qa", "asr", "tts", "text_qa"}
    assert all((tmp_path / e["audio"]).exists() for e in evals if "audio" in e)
    spoken = [e for e in evals if e["task"] == "spoken_qa"]
    assert spoken and all((tmp_path / e["answer_audio"]).exists() for e in spoken)
    assert not any("answer_audio" in e for e in evals if e["task"] != "spoken_qa")
    cached = (tmp_path / "codes.jsonl").read_text()
    build(corpus, tmp_path, codec, text_chunk=2, audio_chunk=4, vocab_size=300)
    assert (tmp_path / "codes.jsonl").read_text() == cached  # waves are encoded once


def test_build_needs_a_train_manifest(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.jsonl"):
        build(tmp_path, tmp_path / "out", load_default_codec())


class CountingCodec:
    """The shipped codec, counting the waves it encodes."""

    def __init__(self, codec):
        self.codec, self.encoded = codec, 0

    def encode_file(self, path):
        self.encoded += 1
        return self.codec.encode_file(path)

    def __getattr__(self, name):
        return getattr(self.codec, name)


def _fixed_chunks(content: str) -> list[str]:
    """The text chunks that precede each fixed span of an assistant turn."""
    import re

    parts = re.split(r"<\|begin_of_audio\|>(?:<\|audio_\d+\|>)+<\|end_of_audio_new\|>", content)
    return parts[:-1]


def test_build_with_an_existing_tokenizer_chunks_in_its_tokens(corpus, tmp_path):
    """A pretrained backbone's tokenizer (here a small saved BPE) replaces the trained one: the text chunks
    are counted in its tokens, it is the tokenizer saved with the data, and the codes cache of an earlier
    build of the same corpus is reused instead of encoding the waves again."""
    from transformers import AutoTokenizer

    from ttt.vocab import train_bpe_tokenizer

    backbone_tok = train_bpe_tokenizer(["zebra quagga"] * 3, vocab_size=270)  # ~bytes: many tokens per word
    backbone_tok.save_pretrained(tmp_path / "backbone")
    codec = CountingCodec(load_default_codec())
    build(corpus, tmp_path / "first", codec, text_chunk=2, audio_chunk=4, vocab_size=300)
    assert codec.encoded == 2
    source_cache = (tmp_path / "first" / "codes.jsonl").read_text()

    card = build(corpus, tmp_path / "out", codec, text_chunk=2, audio_chunk=4,
                 tokenizer=tmp_path / "backbone", codes_from=tmp_path / "first" / "codes.jsonl")
    assert codec.encoded == 2, "cached codes are reused, no wave is encoded again"
    assert (tmp_path / "first" / "codes.jsonl").read_text() == source_cache, "the source cache is only read"
    assert (tmp_path / "out" / "codes.jsonl").read_text() == source_cache
    assert card["tokenizer"] == str(tmp_path / "backbone")
    saved = AutoTokenizer.from_pretrained(tmp_path / "out" / "tokenizer")
    assert saved.get_vocab() == backbone_tok.get_vocab(), "the data folder holds the backbone's tokenizer"

    example = json.loads((tmp_path / "out" / "train.jsonl").read_text().splitlines()[0])
    content = example["messages"][2]["content"]
    chunks = _fixed_chunks(content)
    ids = backbone_tok("seven plus four is eleven", add_special_tokens=False)["input_ids"]
    codes = codec.codec.encode_file(corpus / "wavs" / "a.wav")
    expected, t, a = 0, 0, 0  # the interleaving loop, counted in the backbone's tokens
    while len(ids) - t > 2 and len(codes) - a > 4:
        expected, t, a = expected + 1, t + 2, a + 4
    assert len(chunks) == expected and expected >= 3
    assert all(len(backbone_tok(c, add_special_tokens=False)["input_ids"]) == 2 for c in chunks)
    trained = json.loads((tmp_path / "first" / "train.jsonl").read_text().splitlines()[0])
    assert _fixed_chunks(trained["messages"][2]["content"]) != chunks, "the corpus BPE chunks differently"


def test_codes_cache_from_another_codec_or_corpus_is_refused(corpus, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "codes.jsonl").write_text(json.dumps({"audio": "wavs/q.wav", "codes": [1, 2]}) + "\n")
    (other / "build_card.json").write_text(json.dumps({"corpus": str(corpus), "codebook_size": 512,
                                                       "codec_frame_rate": 25.0}))
    with pytest.raises(ValueError, match="codebook size"):
        build(corpus, tmp_path / "out", load_default_codec(), codes_from=other)
    (other / "build_card.json").write_text(json.dumps({"corpus": str(tmp_path), "codebook_size": 1024,
                                                       "codec_frame_rate": 25.0}))
    with pytest.raises(ValueError, match="codes of corpus"):
        build(corpus, tmp_path / "out", load_default_codec(), codes_from=other)
    with pytest.raises(FileNotFoundError, match="no codes cache"):
        build(corpus, tmp_path / "out", load_default_codec(), codes_from=tmp_path / "missing.jsonl")


def test_load_tokenizer_reads_gguf_files_through_transformers(tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    from ttt.corpus.build import load_tokenizer

    calls = []
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", lambda *a, **k: calls.append((a, k)) or "tok")
    gguf = tmp_path / "model.Q4.gguf"
    gguf.write_bytes(b"GGUF")
    assert load_tokenizer(gguf) == "tok" and calls == [((tmp_path,), {"gguf_file": "model.Q4.gguf"})]
    with pytest.raises(FileNotFoundError, match="no GGUF file"):
        load_tokenizer(tmp_path / "absent.gguf")
    with pytest.raises(FileNotFoundError, match="no tokenizer directory"):
        load_tokenizer(tmp_path / "absent")


def test_data_build_cli_takes_tokenizer_and_codes_from(corpus, tmp_path, monkeypatch):
    from ttt.cli import main

    seen = {}
    monkeypatch.setattr("ttt.corpus.build.build", lambda *a, **k: seen.update(args=a, kwargs=k) or {"ok": 1})
    assert main(["data", "build", "--corpus", str(corpus), "--out", str(tmp_path / "o"),
                 "--tokenizer", "x.gguf", "--codes-from", "data/tokens/codes.jsonl",
                 "--exclude-eval-of", "data/corpus"]) == 0
    assert seen["kwargs"]["tokenizer"] == "x.gguf" and str(seen["kwargs"]["codes_from"]) == "data/tokens/codes.jsonl"
    assert [str(p) for p in seen["kwargs"]["exclude_eval_of"]] == ["data/corpus"]
    assert main(["data", "build", "--corpus", str(corpus), "--out", str(tmp_path / "o"),
                 "--tokenizer", "x.gguf", "--vocab-size", "300"]) == 1


def test_exclude_eval_of_drops_train_examples_holding_another_corpus_eval_recordings(corpus, tmp_path):
    """An extra corpus drawn with the same seed may contain the main corpus's scored recordings:
    the spoken question of an ASR/QA test item, the target-voice reference of a TTS test item."""
    import shutil

    extra = tmp_path / "extra"
    shutil.copytree(corpus / "wavs", extra / "wavs")
    shutil.copy(corpus / "wavs" / "q.wav", extra / "wavs" / "n.wav")
    rows = [
        {"id": "x1", "task": "asr", "question": None, "question_audio": "wavs/n.wav", "answer": "hello"},
        {"id": "x2", "task": "asr", "question": None, "question_audio": "wavs/q.wav", "answer": "what is seven plus four"},
        {"id": "x3", "task": "tts", "question": "seven plus four is eleven", "answer": "seven plus four is eleven",
         "answer_audio": "wavs/a.wav"},
        {"id": "x4", "task": "text_chat", "question": "what is seven plus four", "answer": "seven plus four is eleven"},
    ]
    (extra / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    card = build(extra, tmp_path / "out", load_default_codec(), text_chunk=2, audio_chunk=4, vocab_size=300,
                 exclude_eval_of=[corpus])
    assert card["examples"] == {"train": 2} and card["excluded_train_examples"] == {str(corpus): 2}
    kept = [json.loads(line)["id"] for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert kept == ["x1", "x4"]
    with pytest.raises(FileNotFoundError, match="no valid.jsonl/test.jsonl"):
        build(extra, tmp_path / "out2", load_default_codec(), exclude_eval_of=[tmp_path / "absent"])
