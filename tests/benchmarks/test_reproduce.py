"""The reproduction study: its report from per-item results (paired comparisons, Holm, verdicts), its data
handling, and (slow) every stage end to end at smoke scale."""
import argparse
import json
import random
from pathlib import Path

import numpy as np
import pytest

from benchmarks.reproduce import (BY_LABEL, CLAIMS, SYSTEMS, collect, comparisons, eval_splits, main, pack, parse,
                                  report_dir, row_jobs, still_falling, write_report)
from helpers import ANSWER, QUESTION


def _rows(task: str, n: int, rng, correct: float, wer: float) -> list[dict]:
    rows = []
    for i in range(n):
        if task == "asr":
            m = {"wer": [int(rng.random() < wer) * 2, 5], "cer": [int(rng.random() < wer) * 3, 20]}
        elif task == "tts":
            m = {"intelligibility_wer": [int(rng.random() < wer) * 2, 5], "length_ratio": 1.0 + rng.normal(0, wer),
                 "stop_within_20pct": bool(rng.random() > wer), "reference_wer": [0, 5]}
        else:
            m = {"accuracy": bool(rng.random() < correct), "text_accuracy": bool(rng.random() < correct),
                 "audio_accuracy": bool(rng.random() < correct / 2)}
        rows.append({"task": task, "id": f"{task}-{i}", "metrics": m})
    return rows


def _fake_runs(root: Path, quality: dict[str, tuple[float, float]], seeds=(0, 1, 2), n=150) -> None:
    """items.jsonl per (system, seed, task) as `ttt eval` writes them, with known effects."""
    rng = np.random.default_rng(0)
    for system, (correct, wer) in quality.items():
        for seed in seeds:
            run = root / f"{system}-s{seed}"
            for task in ("asr", "text_qa", "spoken_qa", "tts"):
                (run / f"eval-{task}").mkdir(parents=True)
                (run / f"eval-{task}" / "items.jsonl").write_text(
                    "".join(json.dumps(r) + "\n" for r in _rows(task, n, rng, correct, wer)))
            (run / "reproduce.json").write_text(json.dumps({"train_s": 120.0}))
            (run / "log.jsonl").write_text(json.dumps({"step": 900, "stopped": "plateau"}) + "\n")


def _args(tmp_path: Path, **kw) -> argparse.Namespace:
    args = parse(["--runs", str(tmp_path / "runs"), "--reports", str(tmp_path / "rep"), "--resamples", "2000"])
    for k, v in kw.items():
        setattr(args, k, v)
    return args


def test_report_decides_known_effects_paired_and_holm_corrected(tmp_path):
    # TtT clearly better than AR and NAR; the ablations equal to TtT in distribution (null)
    quality = {"ttt": (0.8, 0.1), "ar": (0.5, 0.4), "nar": (0.2, 0.8), "no-ppm": (0.8, 0.1), "no-sst": (0.8, 0.1)}
    _fake_runs(tmp_path / "runs", quality)
    args = _args(tmp_path)
    found = collect(args.runs, list(SYSTEMS), args.seeds)
    assert set(found) == set(quality) and found["ttt"][0]["steps"] == 900 and found["ttt"][0]["stopped"] == "plateau"
    tests, claims = comparisons(found, 2000, 0.05)
    verdicts = {c["claim"]: c["verdict"] for c in claims}
    assert verdicts["TtT beats AR-only on ASR"] == "supported"
    assert verdicts["NAR-only is the worst of the three"] == "supported"
    assert verdicts["PPM helps"] == "not resolved", "a null ablation is not decided"
    assert verdicts["BANOM helps"] == "not measured"
    assert verdicts["SST helps stopping and dialogue, without end padding"] == "not measured"
    # every comparison of the report is in one Holm family; levels are stricter than 95%
    assert all(t["confidence"] >= 0.95 for t in tests.values()) and max(t["confidence"] for t in tests.values()) > 0.99
    assert tests["ttt vs ar: ASR WER"]["items"] == 150 and tests["ttt vs ar: ASR WER"]["estimate"] > 0
    report = write_report(found, args, None).read_text()
    assert "**TtT beats AR-only on ASR**: **supported.**" in report and "Holm" in report
    assert "| TtT | 3 | 900/900/900 | 2.0 |" in report
    assert "Is TtT's audio off the floor?" in report
    data = json.loads((tmp_path / "rep" / "reproduction.json").read_text())
    assert data["setup"]["correction"] == "Holm" and data["table"]["ttt"]["ASR WER"]["per_seed"].keys() == {"0", "1", "2"}
    assert (tmp_path / "rep" / "reproduction.png").is_file()


def test_the_report_says_which_rows_were_still_improving_at_the_step_cap(tmp_path):
    quality = {"ttt": (0.8, 0.1), "ar": (0.5, 0.4)}
    _fake_runs(tmp_path / "runs", quality, seeds=(0,))
    # TtT hit the cap still falling, validated twice at step 1500 (a resume): the later value counts; AR plateaued
    (tmp_path / "runs" / "ttt-s0" / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"step": 500, "valid_loss": 0.9}, {"step": 1000, "valid_loss": 0.8}, {"step": 1500, "valid_loss": 0.75},
        {"step": 1500, "valid_loss": 0.7}, {"step": 2000, "valid_loss": 0.6}]))
    (tmp_path / "runs" / "ar-s0" / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"step": 500, "valid_loss": 0.5}, {"step": 1000, "valid_loss": 0.4}, {"step": 1500, "valid_loss": 0.45},
        {"step": 1500, "stopped": "plateau", "best_valid_loss": 0.4}]))
    args = _args(tmp_path, seeds=[0], steps=2000, resamples=200)
    found = collect(args.runs, list(SYSTEMS), args.seeds)
    assert found["ttt"][0]["valid"] == [(500, 0.9), (1000, 0.8), (1500, 0.7), (2000, 0.6)]
    assert still_falling(found["ttt"][0]["valid"]) == pytest.approx(-0.2)  # 0.6 at 2000 vs 0.8 at 1000
    assert still_falling(found["ar"][0]["valid"]) == pytest.approx(-0.05)  # 0.45 at 1500 vs 0.5 at 500
    assert still_falling([(500, 0.9), (1000, 0.8)]) is None, "a run shorter than the window has no tail"
    report = write_report(found, args, None).read_text()
    assert "| TtT | cap (2000) | 0.600 | 0.600 | -0.200 |" in report
    assert "| AR only | plateau at 1500 | 0.450 | 0.400 | -0.050 |" in report
    assert "1 of 2 trained rows were still improving when the 2000-step cap ended them" in report
    runs = json.loads((tmp_path / "rep" / "reproduction.json").read_text())["systems"]["ttt"]["runs"]["0"]
    assert runs["valid_loss"] == 0.6 and runs["best_valid_loss"] == 0.6


def test_a_contradicted_claim_and_the_length_error():
    assert BY_LABEL["TTS length error"].item_value({"metrics": {"length_ratio": 0.7}}) == (pytest.approx(0.3), None)
    assert BY_LABEL["ASR WER"].item_value({"metrics": {"wer": [2, 5]}}) == (2.0, 5.0)
    assert BY_LABEL["ASR WER"].item_value({"metrics": {}}) is None
    named = {s for _, _, pairs in CLAIMS for a, b, _ in pairs for s in (a, b)}
    assert named == set(SYSTEMS), "every system is in some claim"


def test_contradiction_is_reported(tmp_path):
    _fake_runs(tmp_path / "runs", {"ttt": (0.5, 0.5), "ar": (0.9, 0.05)})
    found = collect(tmp_path / "runs", list(SYSTEMS), [0, 1, 2])
    _, claims = comparisons(found, 2000, 0.05)
    assert {c["claim"]: c["verdict"] for c in claims}["TtT beats AR-only on ASR"] == "contradicted"


def test_eval_splits_are_per_task_with_absolute_audio(tmp_path):
    (tmp_path / "wavs").mkdir()
    src = tmp_path / "eval.jsonl"
    rows = [{"task": t, "id": f"{t}{i}", "text": "a b", "audio": "wavs/x.wav"} for t in ("asr", "tts") for i in range(3)]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    splits = eval_splits(src, tmp_path / "out", items=2)
    assert set(splits) == {"asr", "tts"}
    got = [json.loads(line) for line in splits["asr"].read_text().splitlines()]
    assert [r["id"] for r in got] == ["asr0", "asr1"] and got[0]["audio"] == str(tmp_path / "wavs" / "x.wav")
    with pytest.raises(ValueError, match="no items of the tasks"):
        (tmp_path / "empty.jsonl").write_text(json.dumps({"task": "other"}) + "\n")
        eval_splits(tmp_path / "empty.jsonl", tmp_path / "o2", None)


def test_bad_arguments_are_refused(capsys):
    for argv, message in ((["--jobs", "0"], "--jobs must be at least 1"), (["--plateau", "-1"], "--plateau must be >= 0"),
                          (["--items", "0"], "--items must be at least 1"), (["--alpha", "1.5"], "--alpha must be in")):
        with pytest.raises(SystemExit):
            parse(argv)
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit, match="not found"):
        main(["--data-dir", "/nonexistent/data", "--report-only"])


def _codes(rng: random.Random, n: int) -> str:
    return "".join(f"<|audio_{rng.randrange(1024)}|>" for _ in range(n))


def _example(task: str, rng: random.Random) -> dict:
    from ttt.format import SYSTEM

    q, a = QUESTION, ANSWER
    spoken = f"{a}<|begin_of_quad|>{_codes(rng, 12)}<|end_of_audio_span_last|>"
    heard = f"<|begin_of_audio|>{_codes(rng, 20)}<|end_of_audio|>"
    user, assistant = {"asr": (heard, q), "tts": (a, spoken), "spoken_qa": (heard, spoken), "text_chat": (q, a)}[task]
    return {"messages": [{"role": "system", "content": SYSTEM[task]}, {"role": "user", "content": user},
                         {"role": "assistant", "content": assistant}]}


@pytest.fixture
def study_data(tmp_path, eval_dir):
    """A data folder as the study reads it: train/valid JSONL of the four tasks, an eval split (one item of each
    task, the piper waves of `eval_dir`)."""
    rng = random.Random(0)
    d = tmp_path / "data"
    d.mkdir()
    for name, n in (("train.jsonl", 12), ("valid.jsonl", 2)):
        rows = [_example(t, rng) for t in ("asr", "tts", "spoken_qa", "text_chat") for _ in range(n)]
        (d / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    q, a = str(eval_dir / "wavs" / "q.wav"), str(eval_dir / "wavs" / "a.wav")
    items = [{"task": "asr", "id": "asr-0", "text": QUESTION, "audio": q},
             {"task": "text_qa", "id": "tq-0", "text": QUESTION, "answer": ANSWER},
             {"task": "spoken_qa", "id": "sq-0", "text": QUESTION, "audio": q, "answer": ANSWER, "answer_audio": a},
             {"task": "tts", "id": "tts-0", "text": ANSWER, "audio": a}]
    (d / "eval_test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    return d


def test_pack_holds_what_the_study_reads_with_flac_audio(study_data, tmp_path):
    import soundfile as sf

    out = pack(study_data, study_data / "eval_test.jsonl", tmp_path / "pack")
    rows = [json.loads(line) for line in (out / "eval_test.jsonl").read_text().splitlines()]
    assert (out / "train.jsonl").read_text() == (study_data / "train.jsonl").read_text()
    assert rows[0]["audio"] == "audio/00000.flac" and rows[2]["answer_audio"] == "audio/00001.flac"
    assert sorted(p.name for p in (out / "audio").iterdir()) == ["00000.flac", "00001.flac"], "each wave once"
    first = json.loads((study_data / "eval_test.jsonl").read_text().splitlines()[0])
    original, packed = sf.read(first["audio"], dtype="int16"), sf.read(out / "audio" / "00000.flac", dtype="int16")
    assert sf.info(first["audio"]).subtype == "PCM_16" and original[1] == packed[1]
    assert np.array_equal(original[0], packed[0]), "FLAC keeps the 16-bit samples exactly"
    with pytest.raises(ValueError, match="not empty"):
        pack(study_data, study_data / "eval_test.jsonl", out)


@pytest.mark.slow
def test_smoke_study_runs_every_stage_and_resumes(study_data, tmp_path):
    """`--smoke` on CPU: TtT and NAR trained (30 steps, a 2-layer model), each evaluated on every task, the
    report written; a second call finds every stage done."""
    runs, argv = tmp_path / "runs", ["--smoke", "--data-dir", str(study_data), "--jobs", "2", "--threads", "1"]
    assert main([*argv, "--runs", str(runs)]) == 0
    report = (runs / "report" / "reproduction.md").read_text()
    assert "SMOKE run" in report and "| TtT | 1 | 30 |" in report and "| NAR only | 1 | 30 |" in report
    assert "TtT vs NAR only" in report
    for system in ("ttt", "nar"):
        for task in ("asr", "text_qa", "spoken_qa", "tts"):
            assert (runs / f"{system}-s0" / f"eval-{task}" / "items.jsonl").is_file()
    nar = json.loads((runs / "nar-s0" / "eval-asr" / "eval_settings.json").read_text())
    lengths = json.loads((runs / "nar_lengths.json").read_text())["lengths"]
    assert nar["nar_length"] == lengths["asr"]["block"] < 256, "NAR decodes at its trained length, not the turn cap"
    stamp = (runs / "ttt-s0" / "eval-tts" / "items.jsonl").stat().st_mtime
    assert main([*argv, "--runs", str(runs)]) == 0
    assert (runs / "ttt-s0" / "eval-tts" / "items.jsonl").stat().st_mtime == stamp, "finished stages are skipped"


def test_bundle_sends_trained_rows_once_in_float16_and_unbundle_restores_them(tiny_model_dir, tmp_path):
    import shutil
    import tarfile

    from safetensors import safe_open

    from benchmarks.reproduce import bundle, unbundle
    from ttt.model import TtTModel

    runs = tmp_path / "runs"
    for row in ("ttt-s0", "ar-s0", "nar-s1"):
        shutil.copytree(tiny_model_dir, runs / row / "final")
        (runs / row / "log.jsonl").write_text(json.dumps({"step": 7}) + "\n")
        (runs / row / "reproduce.json").write_text(json.dumps({"train_s": 3.0}))
    (runs / "eval-data").mkdir()
    size = (tiny_model_dir / "model.safetensors").stat().st_size
    files = bundle(runs, tmp_path / "out", limit_mib=2.5 * size / 2**20, file_mib=1.2 * size / 2**20)
    assert len(files) == 2 and json.loads((runs / "bundled.json").read_text()) == ["ar-s0", "nar-s1"]
    more = bundle(runs, tmp_path / "out2", limit_mib=100)
    assert [f.name for f in more] == ["rows-ttt-s0.tar"] and bundle(runs, tmp_path / "out3", limit_mib=100) == []
    with tarfile.open(files[0]) as tar:
        assert tar.getmember("ar-s0/final/model.safetensors").size < 0.6 * size, "float16 weights: half the size"
    here = tmp_path / "here"
    assert unbundle([*files, *more], here) == ["ar-s0", "nar-s1", "ttt-s0"]
    with safe_open(here / "ar-s0" / "final" / "model.safetensors", "pt") as st:
        assert {str(st.get_tensor(k).dtype) for k in st.keys()} == {"torch.float16"}
    assert json.loads((here / "nar-s1" / "log.jsonl").read_text()) == {"step": 7}
    TtTModel.from_pretrained(here / "ttt-s0" / "final")
    assert unbundle(files, here) == [], "rows already here are kept"
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        tar.add(tmp_path / "out" / files[0].name, arcname="../escape.tar")
    with pytest.raises(ValueError, match="not a reproduce bundle"):
        unbundle([evil], here)


def test_items_sharing_a_reference_are_resampled_together(tmp_path):
    from benchmarks.reproduce import item_clusters

    _fake_runs(tmp_path / "runs", {"ttt": (0.8, 0.1), "ar": (0.5, 0.4)})
    eval_file = tmp_path / "eval_test.jsonl"
    rows = [{"task": t, "id": f"{t}-{i}", "text": f"sentence {i % 15}", "answer": f"fact {i % 15}"}
            for t in ("asr", "text_qa", "spoken_qa", "tts") for i in range(150)]
    eval_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    clusters = item_clusters(eval_file)
    assert clusters["asr-16"] == clusters["asr-1"] == "asr:sentence 1" and clusters["spoken_qa-3"] == "spoken_qa:fact 3"
    assert item_clusters(tmp_path / "missing.jsonl") == {}
    found = collect(tmp_path / "runs", list(SYSTEMS), [0, 1, 2])
    by_item, _ = comparisons(found, 2000, 0.05)
    by_cluster, _ = comparisons(found, 2000, 0.05, clusters)
    key = "ttt vs ar: spoken QA text acc"
    width = {n: t[key]["high"] - t[key]["low"] for n, t in (("item", by_item), ("cluster", by_cluster))}
    assert by_cluster[key]["estimate"] == by_item[key]["estimate"] and width["cluster"] != width["item"]
    args = _args(tmp_path, eval_data=eval_file)
    write_report(found, args, None)
    assert json.loads((tmp_path / "rep" / "reproduction.json").read_text())["setup"]["resampled"].startswith("clusters")


def test_only_a_finished_study_replaces_the_committed_report(tmp_path):
    runs = tmp_path / "runs"
    _fake_runs(runs, {"ttt": (0.8, 0.1), "ar": (0.5, 0.4)}, seeds=(0,), n=5)
    assert report_dir(collect(runs, list(SYSTEMS), [0]), [0], runs) == runs / "report"
    _fake_runs(runs, {s: (0.8, 0.1) for s in SYSTEMS if s not in ("ttt", "ar")}, seeds=(0,), n=5)
    assert report_dir(collect(runs, list(SYSTEMS), [0]), [0], runs) == Path("reports")
    (runs / "nar-s0" / "eval-tts" / "items.jsonl").unlink()
    assert report_dir(collect(runs, list(SYSTEMS), [0]), [0], runs) == runs / "report", "one task missing"
    assert parse(["--runs", str(runs)]).reports is None, "decided after the run, from what is evaluated"


def test_every_eval_of_the_study_shares_one_reference_transcript_cache(tmp_path):
    """The reference recordings are the same for every row: heard once per study, not once per eval. The
    cache is not an eval setting (it changes no result), so earlier evals still count as done."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("{}\n")
    args = _args(tmp_path, data_dir=data, threads=1)
    splits = {t: tmp_path / f"{t}.jsonl" for t in ("asr", "spoken_qa", "tts")}
    commands = [j.command for seed in (0, 1) for system in ("ttt", "nar")
                for j in row_jobs(system, seed, args, splits, None) if j.name.startswith("eval")]
    caches = {c[c.index("--reference-cache") + 1] for c in commands}
    assert len(commands) == 12 and caches == {str(args.runs / "eval-data" / "heard_references.json")}


def test_the_study_skips_dnsmos_where_no_metric_reads_it(tmp_path):
    """Spoken QA is evaluated with `--no-dnsmos` (no metric of the study reads its DNSMOS, which on one CPU
    thread is most of that eval's time), TTS with DNSMOS; a spoken-QA eval finished before with DNSMOS (a
    superset) counts as done, and one made with other settings is still refused."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("{}\n")
    args = _args(tmp_path, data_dir=data, threads=1)
    splits = {t: tmp_path / f"{t}.jsonl" for t in ("asr", "spoken_qa", "tts")}
    jobs = {j.name: j for j in row_jobs("ttt", 0, args, splits, None)}
    assert "--no-dnsmos" in jobs["eval ttt-s0 spoken_qa"].command
    assert "--no-dnsmos" not in jobs["eval ttt-s0 tts"].command + jobs["eval ttt-s0 asr"].command
    out = args.runs / "ttt-s0" / "eval-spoken_qa"
    out.mkdir(parents=True)
    (out / "items.jsonl").write_text("")
    before = {"data": str(splits["spoken_qa"]), "items": args.items, "max_last_span": args.max_last_span,
              "max_new_tokens": args.max_new_tokens, "device": args.device}
    (out / "eval_settings.json").write_text(json.dumps(before))
    assert jobs["eval ttt-s0 spoken_qa"].done()
    (out / "eval_settings.json").write_text(json.dumps({**before, "max_new_tokens": 7}))
    with pytest.raises(ValueError, match="was evaluated with"):
        jobs["eval ttt-s0 spoken_qa"].done()


def test_an_eval_expects_the_time_its_systems_latest_eval_took_on_the_same_device(tmp_path):
    """The runner declines an eval that would not end before `--time-limit` (a stopped eval starts over):
    its estimate is the latest finished eval of the task by the same system on the same device, else by any
    system; none before the first has finished."""
    import os

    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("{}\n")
    args = _args(tmp_path, data_dir=data, threads=1)
    splits = {"tts": tmp_path / "tts.jsonl"}

    def expected(system: str, seed: int) -> float | None:
        return next(j.expected_s for j in row_jobs(system, seed, args, splits, None) if j.name.startswith("eval"))

    assert expected("ttt", 1) is None
    for when, (row, seconds, device) in enumerate((("ttt-s0", 300.0, args.device), ("nar-s0", 900.0, args.device),
                                                   ("ttt-s2", 200.0, args.device), ("ttt-s3", 5000.0, "cuda:7"),
                                                   ("nar-s2", 700.0, args.device))):
        out = args.runs / row / "eval-tts"
        out.mkdir(parents=True)
        (out / "eval_seconds.json").write_text(json.dumps(seconds))
        (out / "eval_settings.json").write_text(json.dumps({"device": device}))
        os.utime(out / "eval_seconds.json", (1e9 + when, 1e9 + when))
    assert expected("ttt", 1) == 200.0, "its own system's latest time, not an older one nor another device's"
    assert expected("no-ppm", 1) == 700.0, "a system not evaluated yet expects the latest of any"
