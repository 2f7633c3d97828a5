"""`ttt eval` end to end: a tiny random TtT model and the shipped codec on one item per task. It checks
what is written and the shape of the metrics, not their values (the model is random)."""
import json

import pytest
import soundfile as sf

from ttt.cli import main
from ttt.speech import default_model_dir

from helpers import ANSWER, QUESTION

SPEECH = ["produced_audio", "intelligibility_wer", "dnsmos_ovrl", "dnsmos_p808", "forward_passes_per_audio_s",
          "audio_forward_passes_per_audio_s", "rtf", "diffusion_s_per_audio_s", "time_to_first_audio_s"]


def test_ttt_eval_end_to_end(eval_dir, tiny_model_dir, write_jsonl, tmp_path, capsys):
    data = write_jsonl(eval_dir / "eval_small.jsonl", [
        {"task": "asr", "id": "a1", "text": QUESTION, "audio": "wavs/q.wav"},
        {"task": "spoken_qa", "id": "s1", "text": QUESTION, "audio": "wavs/q.wav", "answer": ANSWER,
         "answer_audio": "wavs/a.wav"},  # before tts: its reference transcript is not cached yet
        {"task": "tts", "id": "t1", "text": ANSWER, "audio": "wavs/a.wav"},
        "{broken",
        {"task": "text_qa", "id": "c1", "text": QUESTION, "answer": ANSWER},
        {"task": "text_qa", "id": "c2", "text": "what is one plus one", "answer": "one plus one is two"},
    ])
    out = tmp_path / "report"
    rc = main(["eval", "--model", str(tiny_model_dir), "--data", str(data), "--out", str(out), "--json",
               "--max-new-tokens", "30", "--max-last-span", "26", "--threads", "1", "--no-progress", "--save-audio"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"asr", "tts", "spoken_qa", "text_qa", "skipped_lines"}
    assert printed["skipped_lines"] == 1
    assert {t: printed[t]["n"] for t in ("asr", "tts", "spoken_qa", "text_qa")} == \
        {"asr": 1, "tts": 1, "spoken_qa": 1, "text_qa": 2}
    assert {"wer", "cer", "reference_wer"} <= set(printed["asr"]) and {"accuracy"} <= set(printed["text_qa"])
    assert printed["asr"]["reference_wer"] <= 0.4  # Whisper hears the flite question
    assert {"text_accuracy", "audio_accuracy", "reference_wer", *SPEECH} <= set(printed["spoken_qa"])
    assert printed["spoken_qa"]["reference_wer"] <= 0.4  # Whisper hears the reference voice's answer
    tts = printed["tts"]
    assert {"reference_wer", "mcd_dtw_db", "length_ratio", "stop_within_20pct", *SPEECH} <= set(tts)
    assert tts["reference_wer"] <= 0.4  # Whisper hears the flite reference
    assert 0 <= printed["asr"]["wer"] and 0 <= printed["text_qa"]["accuracy"] <= 1
    saved = json.loads((out / "metrics.json").read_text())
    assert {k: saved[k] for k in printed} == printed and saved["config"]["model"] == str(tiny_model_dir)
    assert saved["skipped"] == [f"{data}:4: malformed JSON (Expecting property name enclosed in double quotes)"]
    report = (out / "report.md").read_text()
    assert "## tts (1 items)" in report and "| WER |" in report and f"{data}:4" in report
    assert all((out / f"{t}.png").stat().st_size > 0 for t in ("asr", "tts", "spoken_qa", "text_qa"))
    items = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert len(items) == 5 and saved["config"]["device"] == "cpu"
    # --save-audio: each generated answer kept as audio/<id>.wav, named in its item and linked in the report
    kept = {i["id"]: i["output"]["audio"] for i in items if "audio" in i["output"]}
    assert "t1" in kept and set(kept) <= {"t1", "s1"}  # TTS always speaks; the random model may answer in text only
    assert sorted(p.name for p in (out / "audio").iterdir()) == sorted(f"{k}.wav" for k in kept)
    for item in items:
        if item["id"] in kept:
            assert kept[item["id"]] == f"audio/{item['id']}.wav"
            assert sf.info(out / kept[item["id"]]).duration == pytest.approx(item["output"]["audio_s"], abs=1e-3)
            assert f"| [{item['id']}](audio/{item['id']}.wav) | {item['task']} |" in report


def test_limit_and_missing_default_model(eval_dir, tiny_model_dir, write_jsonl, tmp_path, capsys):
    data = write_jsonl(eval_dir / "eval_text.jsonl", [
        {"task": "text_qa", "id": f"c{i}", "text": QUESTION, "answer": ANSWER} for i in range(3)])
    rc = main(["eval", "--model", str(tiny_model_dir), "--data", str(data), "--out", str(tmp_path / "r"),
               "--json", "--limit", "2", "--max-new-tokens", "8", "--no-progress"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["text_qa"]["n"] == 2
    if (default_model_dir() / "ttt_config.json").is_file():
        pytest.skip("the default model is shipped")
    assert main(["eval", "--data", str(data), "--out", str(tmp_path / "d")]) == 1
    assert "no shipped default model" in capsys.readouterr().err
