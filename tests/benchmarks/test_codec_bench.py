"""benchmarks.codec picks its rows by voice and, with --sources, by text source."""
import pytest

from benchmarks.codec import main, select_rows

ROWS = [{"audio": f"{i}.wav", "text": "t", "voice": voice, "source": source}
        for i, (voice, source) in enumerate([("piper-joe", "world"), ("flite-slt", "world"),
                                             ("piper-joe", "wordnet"), ("espeak-en", "fortunes"),
                                             ("piper-joe", "fortunes")])]


def test_sources_keep_open_speech_only():
    target, others = select_rows(ROWS, "piper", 10, "wordnet,fortunes")
    assert [r["audio"] for r in target] == ["2.wav", "4.wav"] and [r["audio"] for r in others] == ["3.wav"]
    target, others = select_rows(ROWS, "piper", 1)
    assert [r["audio"] for r in target] == ["0.wav"] and [r["audio"] for r in others] == ["1.wav"]


def test_sources_need_the_field_and_a_match():
    with pytest.raises(ValueError, match="no `source` field"):
        select_rows([{k: v for k, v in r.items() if k != "source"} for r in ROWS], "piper", 10, "wordnet")
    with pytest.raises(ValueError, match="no rows of the sources"):
        select_rows(ROWS, "piper", 10, "glosses")


def test_cli_says_which_file_lacks_sources(tmp_path, capsys):
    manifest = tmp_path / "audio_test.jsonl"
    manifest.write_text('{"audio": "a.wav", "text": "hi", "voice": "piper-joe"}\n')
    with pytest.raises(SystemExit):
        main(["--data", str(manifest), "--sources", "wordnet", "--no-librivox"])
    err = capsys.readouterr().err
    assert "audio_test.jsonl: rows have no `source` field" in err
