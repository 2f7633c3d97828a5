"""`ttt data import`: real recordings (LibriSpeech folder, manifests, a `datasets` dataset) -> codec -> training data."""
import importlib.util
import json
import re
import shutil
from pathlib import Path

import pytest

from ttt.audio.codec import load_default_codec
from ttt.corpus.importers import ImportOptions, import_data

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"
needs_librivox = pytest.mark.skipif(not (LIBRIVOX / "transcription").is_file(),
                                    reason="Debian package pocketsphinx-testdata (real LibriVox clips) not installed")


def librivox_clips() -> dict[str, str]:
    """{utterance id: transcript} of the packaged LibriVox clips (Sphinx `<s> text </s> (id)` lines)."""
    pairs = re.findall(r"<s> (.*) </s> \((\S+)\)", (LIBRIVOX / "transcription").read_text())
    return {utt: text for text, utt in pairs}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def codec():
    return load_default_codec()


@pytest.fixture(scope="module")
def libri(tmp_path_factory):
    """The clips laid out as LibriSpeech (`SPK/CHAPTER/SPK-CHAPTER.trans.txt`), plus a line without audio."""
    root = tmp_path_factory.mktemp("libri")
    chapter = root / "103" / "1240"
    chapter.mkdir(parents=True)
    lines = []
    for utt, text in librivox_clips().items():
        shutil.copy(LIBRIVOX / f"{utt}.wav", chapter / f"103-1240-{utt[-4:]}.wav")
        lines.append(f"103-1240-{utt[-4:]} {text.upper()}")
    lines.append("103-1240-9999 A LINE WHOSE AUDIO IS MISSING")
    (chapter / "103-1240.trans.txt").write_text("\n".join(lines) + "\n")
    return root


@needs_librivox
def test_librispeech_folder_imports_resumes_and_trains_two_steps(libri, codec, tmp_path):
    from ttt.cli.train import main as train_main

    out = tmp_path / "data"
    card = import_data([str(libri)], out, opts=ImportOptions(workers=2, lowercase=True, vocab_size=300))
    assert card["examples"] == {"train": 10} and card["tasks"] == {"train": {"asr": 5, "tts": 5}}
    assert card["clips"] == {"read": 5, "encoded_now": 5, "from_cache": 0}
    assert card["skipped"] == {"no audio file for a transcript": 1}
    skipped = read_jsonl(out / "skipped.jsonl")
    assert skipped[0]["where"] == f"{libri / '103' / '1240' / '103-1240.trans.txt'}:6"
    train = read_jsonl(out / "train.jsonl")
    asr = next(e for e in train if e["id"] == "103-1240-0880-asr")
    assert asr["messages"][2]["content"] == "he was not an ill disposed young man"
    wave = libri / "103" / "1240" / "103-1240-0880.wav"
    assert asr["messages"][1]["content"].count("<|audio_") == len(codec.encode_file(wave))  # 2 processes = 1
    tts = next(e for e in train if e["id"] == "103-1240-0880-tts")
    assert tts["messages"][2]["content"].count("<|audio_") == len(codec.encode_file(wave))
    assert asr["speaker"] == "103"
    evals = read_jsonl(out / "eval_train.jsonl")
    assert {e["task"] for e in evals} == {"asr", "tts"} and all((out / e["audio"]).is_file() for e in evals)

    # resumable: a re-run encodes nothing; a cache line cut short by a kill is re-encoded, nothing else
    before = (out / "train.jsonl").read_text()
    assert import_data([str(libri)], out, opts=ImportOptions(lowercase=True, vocab_size=300))["clips"]["encoded_now"] == 0
    cache = (out / "codes.jsonl").read_bytes()
    (out / "codes.jsonl").write_bytes(cache[:-40])
    card = import_data([str(libri)], out, opts=ImportOptions(lowercase=True, vocab_size=300))
    assert card["clips"] == {"read": 5, "encoded_now": 1, "from_cache": 4}
    assert (out / "train.jsonl").read_text() == before

    # done-when: `ttt train` runs two steps on the imported data with the tiny config
    run = tmp_path / "run"
    assert train_main(["--config", str(CONFIG), "--out", str(run), "--max-steps", "2", "--batch-size", "2",
                       "--precision", "fp32", "--set", f"data.train={out / 'train.jsonl'}", "--set", "data.valid=null",
                       "--set", "data.valid_fraction=0.2", "--set", f"backbone.tokenizer={out / 'tokenizer'}",
                       "--set", "backbone.hidden_size=32", "--set", "backbone.layers=1",
                       "--set", f"ttt.audio_codebook_size={codec.codebook_size}"]) == 0
    steps = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in steps if "loss" in r][-1] == 2
    assert (run / "final" / "config.json").is_file()


@needs_librivox
def test_manifests_name_every_bad_line_and_give_task_templates(codec, tmp_path):
    clips = list(librivox_clips().items())
    wav = [str(LIBRIVOX / f"{utt}.wav") for utt, _ in clips]
    jsonl = tmp_path / "m.jsonl"
    rows = [
        json.dumps({"id": "q", "audio": wav[0], "text": clips[0][1], "answer": "he had leisure", "speaker": "s1"}),
        json.dumps({"id": "a", "audio": wav[1], "text": clips[1][1], "task": "asr", "split": "valid"}),
        "{not json",
        json.dumps({"id": "x", "audio": "missing.wav", "text": "t"}),
        json.dumps({"id": "y", "audio": wav[2], "text": "t", "task": "sing"}),
        json.dumps({"id": "z", "text": "no audio"}),
        json.dumps({"id": "s", "audio": wav[3], "task": "spoken_qa", "answer": "yes", "answer_audio": wav[4]}),
        json.dumps({"id": "n", "audio": wav[4], "task": "tts"}),
    ]
    jsonl.write_text("\n".join(rows) + "\n")
    csv = tmp_path / "m.csv"
    csv.write_text(f"audio,text,speaker\n{wav[2]},{clips[2][1]},s2\n{wav[3]},too,many,fields\n")
    out = tmp_path / "out"
    card = import_data([str(jsonl), f"test={csv}"], out, opts=ImportOptions(tts_speakers=("s1",), vocab_size=300))
    assert card["tasks"] == {"train": {"asr": 1, "tts": 1, "spoken_qa": 2}, "valid": {"asr": 1}, "test": {"asr": 1}}
    reasons = {r["where"]: r["kind"] for r in read_jsonl(out / "skipped.jsonl")}
    assert reasons == {f"{jsonl}:3": "invalid JSON", f"{jsonl}:4": "audio file not found",
                       f"{jsonl}:5": "unknown task", f"{jsonl}:6": "no audio path", f"{jsonl}:8": "tts: no transcript",
                       f"{csv}:2": "tts: speaker not a --tts-speaker", f"{csv}:3": "more CSV fields than the header"}
    train = {e["id"]: e for e in read_jsonl(out / "train.jsonl")}
    assert train["q-qa"]["messages"][2]["content"] == "he had leisure"  # answer without audio: text
    spoken = train["s-qa"]["messages"][2]["content"]
    assert spoken.startswith("yes") and spoken.count("<|audio_") == len(codec.encode_file(wav[4]))
    assert train["q-qa"]["messages"][0]["content"] == "Answer the spoken question out loud."
    qa_eval = next(e for e in read_jsonl(out / "eval_train.jsonl") if e["id"] == "s-qa")
    assert qa_eval["task"] == "spoken_qa" and (out / qa_eval["answer_audio"]).is_file()


@needs_librivox
def test_a_local_datasets_dataset_with_an_audio_column(tmp_path):
    datasets = pytest.importorskip("datasets", reason="`datasets` not installed: pip install 'text-to-talk[datasets]'")
    clips = list(librivox_clips().items())[:3]
    audio = [{"bytes": (LIBRIVOX / f"{utt}.wav").read_bytes(), "path": f"{utt}.wav"} for utt, _ in clips]
    stored = {"bytes": datasets.Value("binary"), "path": datasets.Value("string")}  # Audio's Arrow storage
    features = datasets.Features({"audio": stored, "sentence": datasets.Value("string"),
                                  "speaker_id": datasets.Value("int64")})
    data = datasets.Dataset.from_dict({"audio": audio, "sentence": [t for _, t in clips], "speaker_id": [7, 7, 8]},
                                      features=features)
    data = data.cast_column("audio", datasets.Audio())  # a cast, not an encode: no torchcodec needed
    assert isinstance(data.features["audio"], datasets.Audio)
    datasets.DatasetDict({"dev": data}).save_to_disk(str(tmp_path / "ds"))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="no split 'train'.*--hf-split"):
        import_data([str(tmp_path / "ds")], out)
    card = import_data([str(tmp_path / "ds")], out, opts=ImportOptions(hf_split="dev", tasks=("asr",), vocab_size=300))
    assert card["tasks"] == {"train": {"asr": 3}} and card["skipped"] == {}
    train = read_jsonl(out / "train.jsonl")
    assert [e["messages"][2]["content"] for e in train] == [t for _, t in clips]
    assert [e["speaker"] for e in train] == ["7", "7", "8"]
    written = sorted((out / "audio").rglob("*.wav"))
    assert sorted(p.read_bytes() for p in written) == sorted(a["bytes"] for a in audio)  # stored as given
    assert import_data([str(tmp_path / "ds")], out, opts=ImportOptions(hf_split="dev", tasks=("asr",),
                                                                       vocab_size=300))["clips"]["encoded_now"] == 0


def test_bad_sources_and_options_are_one_line_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="nowhere: no such manifest"):
        import_data(["nowhere"], tmp_path / "o")
    if importlib.util.find_spec("datasets"):  # owner/name is tried as a hub dataset; its failure is one line
        import datasets

        def offline(*args, **kwargs):
            raise ConnectionError("no network\nsecond line")

        monkeypatch.setattr(datasets, "load_dataset", offline)
        with pytest.raises(FileNotFoundError, match="nobody/none: no such manifest or folder, and `datasets` could "
                                                    "not load it as a hub dataset \\(ConnectionError: no network\\)"):
            import_data(["nobody/none"], tmp_path / "o")
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(ValueError, match="must be .jsonl or .csv"):
        import_data([str(tmp_path / "m.txt")], tmp_path / "o")
    with pytest.raises(ValueError, match="--tasks takes asr and/or tts"):
        import_data([str(tmp_path / "m.txt")], tmp_path / "o", opts=ImportOptions(tasks=("chat",)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="neither a LibriSpeech-style folder"):
        import_data([str(tmp_path / "empty")], tmp_path / "o")
    (tmp_path / "bad.jsonl").write_text("{oops\n")
    with pytest.raises(ValueError, match="no usable train examples"):
        import_data([str(tmp_path / "bad.jsonl")], tmp_path / "o")
    assert "invalid JSON" in (tmp_path / "o" / "skipped.jsonl").read_text()


def test_a_cache_of_another_codec_is_refused(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "codes.jsonl").write_text("")
    (out / "codes_codec.json").write_text(json.dumps({"type": "other", "frame_rate": 50, "codebook_size": 8,
                                                      "source": "x"}))
    (tmp_path / "m.jsonl").write_text("")
    with pytest.raises(ValueError, match="holds codes of codec"):
        import_data([str(tmp_path / "m.jsonl")], out)


def test_cli_registers_data_import():
    from ttt.cli import build_parser

    args = build_parser().parse_args(["data", "import", "valid=x.jsonl", "--out", "o", "--workers", "3"])
    assert args.sources == ["valid=x.jsonl"] and args.workers == 3 and args.func.__name__ == "_import"
