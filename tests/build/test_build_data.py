"""`ttt data build`: corpus manifests + codec -> chat-format training data the model accepts, and eval items."""
import json

import pytest
import soundfile as sf

from ttt.audio.codec import load_default_codec
from ttt.build_data import build
from ttt.corpus.voices import get_voice
from ttt.format import Modality


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    (root / "wavs").mkdir()
    voice = get_voice("flite-slt")
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

    from ttt.backbones import tiny_backbone
    from ttt.model import TtTModel

    tok = AutoTokenizer.from_pretrained(tmp_path / "tokenizer")
    model = TtTModel.from_backbone(tiny_backbone(len(tok) + codec.codebook_size + 16), tok, audio_codebook_size=codec.codebook_size)
    enc = model.encode(examples[0])
    assert int((enc.modality == Modality.INPUT_AUDIO).sum()) == len(codec.encode_file(corpus / "wavs" / "q.wav"))
    evals = [json.loads(line) for line in (tmp_path / "eval_test.jsonl").read_text().splitlines()]
    assert {e["task"] for e in evals} == {"spoken_qa", "asr", "tts", "text_qa"}
    assert all((tmp_path / e["audio"]).exists() for e in evals if "audio" in e)
    cached = (tmp_path / "codes.jsonl").read_text()
    build(corpus, tmp_path, codec, text_chunk=2, audio_chunk=4, vocab_size=300)
    assert (tmp_path / "codes.jsonl").read_text() == cached  # waves are encoded once


def test_build_needs_a_train_manifest(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.jsonl"):
        build(tmp_path, tmp_path / "out", load_default_codec())
