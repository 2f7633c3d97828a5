"""The reproduction study's statistics and verdicts, on hand-computed numbers."""
import json

import numpy as np
import pytest

from benchmarks.reproduce import BY_LABEL, aggregate, compare, judge, t_interval


def test_t_interval_hand_computed():
    mean, lo, hi = t_interval([1.0, 2.0, 3.0])
    # sd = 1, t(0.975, 2) = 4.3027, half-width = 4.3027 / sqrt(3) = 2.4841
    assert mean == 2.0 and hi - mean == pytest.approx(2.4841, abs=1e-4) and mean - lo == pytest.approx(2.4841, abs=1e-4)
    assert t_interval([5.0]) == (5.0, 5.0, 5.0)


@pytest.mark.parametrize("better, a, b, sign", [
    ("lower", [0.1, 0.11, 0.12], [0.3, 0.31, 0.32], 1),
    ("higher", [0.1, 0.11, 0.12], [0.3, 0.31, 0.32], -1),
    ("one", [1.05, 0.95, 1.0], [2.0, 2.1, 1.9], 1),
])
def test_compare_direction_and_significance(better, a, b, sign):
    gain, p = compare(a, b, better)
    assert gain * sign > 0 and p < 0.01


def test_compare_noise_and_exact_ties():
    gain, p = compare([0.1, 0.5, 0.3], [0.2, 0.4, 0.35], "lower")
    assert p > 0.5
    assert compare([0.0, 0.0], [0.0, 0.0], "higher") == (0.0, 1.0)
    assert compare([0.5, 0.5], [0.0, 0.0], "higher") == (0.5, 0.0)
    assert np.isnan(compare([0.5], [0.0], "higher")[1])


def _found(values: dict[str, list[float]]) -> dict:
    return {s: {seed: {"metrics": {"asr": {"wer": v}}, "train_s": 60.0, "steps": 10} for seed, v in enumerate(vs)}
            for s, vs in values.items()}


def test_aggregate_and_judge():
    table = aggregate(_found({"ttt": [0.10, 0.12, 0.11], "ar": [0.30, 0.29, 0.31], "nar": [0.05, 0.06, 0.04]}))
    assert table["ttt"]["ASR WER"]["mean"] == pytest.approx(0.11)
    assert table["ttt"]["train minutes"]["mean"] == 1.0 and "TTS WER" not in table["ttt"]
    assert judge("c", [("ttt", "ar", ["ASR WER"])], table)[0] == "supported"
    assert judge("c", [("ttt", "nar", ["ASR WER"])], table)[0] == "contradicted"
    assert judge("c", [("ttt", b, ["ASR WER"]) for b in ("ar", "nar")], table)[0] == "mixed"
    verdict, evidence = judge("c", [("ttt", "no-sst", ["ASR WER"])], table)
    assert verdict == "not measured yet" and "not measured yet" in evidence[0]
    assert BY_LABEL["TTS length ratio"].better == "one"


def test_judge_says_how_each_comparison_was_decided():
    table = aggregate(_found({"ttt": [0.10, 0.12, 0.11], "ar": [0.10, 0.30, 0.05], "nar": [0.2], "no-sst": [0.3] * 3,
                              "no-ppm": [0.11] * 3}))
    assert "within seed noise" in judge("c", [("ttt", "ar", ["ASR WER"])], table)[1][0]
    verdict, evidence = judge("c", [("ttt", "nar", ["ASR WER"])], table)
    assert verdict == "not resolved at this budget" and "one seed, no test" in evidence[0]
    assert "p = " in judge("c", [("ttt", "no-sst", ["ASR WER"])], table)[1][0]
    assert "the same in every seed" in judge("c", [("no-ppm", "no-sst", ["ASR WER"])], table)[1][0]


def test_report_has_table_verdicts_and_the_discussion(tmp_path):
    import argparse
    from pathlib import Path

    from benchmarks.reproduce import write_report

    found = _found({"ttt": [0.10, 0.12, 0.11], "ar": [0.30, 0.29, 0.31]})
    args = argparse.Namespace(reports=tmp_path, config=Path("configs/repro.yaml"), steps=10, data=Path("d.jsonl"),
                              per_task=2, seeds=[0, 1, 2], max_last_span=5, max_new_tokens=8,
                              discussion=tmp_path / "discussion.md")
    report = write_report(found, args).read_text()
    assert "| TtT | 3 | 0.11 ± " in report and "**TtT beats AR-only on ASR: supported.**" in report
    assert "Reading the results" not in report
    args.discussion.write_text("A person read this.\n")
    assert write_report(found, args).read_text().endswith("## Reading the results\n\nA person read this.\n")
    assert json.loads((tmp_path / "reproduction.json").read_text())["claims"][0]["verdict"] == "supported"
