"""SpeechLM and the `ttt demo / asr / tts / chat` commands on a tiny random model (real codec, real files)."""
import json

import pytest
import soundfile as sf

from ttt.cli import main
from ttt.config import DECODING_FILE, load_decoding
from ttt.speech import SpeechLM


def test_decoding_json_gives_defaults_and_arguments_override_it(tiny_model_dir, tmp_path):
    assert load_decoding(tiny_model_dir) == {}
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    for f in tiny_model_dir.iterdir():
        (model_dir / f.name).write_bytes(f.read_bytes())
    (model_dir / DECODING_FILE).write_text(json.dumps({"steps": 13, "block_length": 26, "stop_threshold": 0.3}))
    lm = SpeechLM.from_dir(model_dir, steps=None, max_last_span=50)
    assert lm.generation == {"steps": 13, "block_length": 26, "stop_threshold": 0.3, "max_last_span": 50}
    assert SpeechLM.from_dir(model_dir, steps=2).generation["steps"] == 2
    (model_dir / DECODING_FILE).write_text(json.dumps({"stepz": 13}))
    with pytest.raises(ValueError, match="decoding.json: unknown decoding settings \\['stepz'\\]"):
        SpeechLM.from_dir(model_dir)


def test_demo_writes_answer_text_and_says_when_there_is_no_audio(tiny_model_dir, eval_dir, tmp_path, capsys):
    """The random model answers in text only: answer.txt is written, no empty or stale answer.wav."""
    out = tmp_path / "demo"
    out.mkdir()
    (out / "answer.wav").write_bytes(b"stale")
    rc = main(["demo", "--model", str(tiny_model_dir), "--wav", str(eval_dir / "wavs" / "q.wav"), "--out", str(out),
               "--no-score", "--max-last-span", "30", "--threads", "1"])
    captured = capsys.readouterr()
    assert rc == 0 and "question:" in captured.out and f"wrote {out / 'answer.txt'}" in captured.out
    assert (out / "answer.txt").read_text().strip() == captured.out.split("answer: ")[1].split("\n")[0].strip()
    assert "the model produced no audio" in captured.err and not (out / "answer.wav").exists()
    assert sf.info(out / "question.wav").duration > 0.5


def test_asr_tts_chat_commands(tiny_model_dir, eval_dir, tmp_path, capsys):
    common = ["--model", str(tiny_model_dir), "--max-last-span", "20", "--steps", "2"]
    assert main(["asr", str(eval_dir / "wavs" / "q.wav"), *common]) == 0
    assert main(["tts", "seven plus four", "-o", str(tmp_path / "t.wav"), *common]) == 0
    assert sf.info(tmp_path / "t.wav").samplerate == 16000
    assert main(["chat", str(eval_dir / "wavs" / "q.wav"), "-o", str(tmp_path / "c.wav"), *common]) == 0
    assert (tmp_path / "c.wav").is_file() or "produced no audio" in capsys.readouterr().err


def test_missing_model_and_bad_audio_are_clear_errors(eval_dir, tmp_path, capsys):
    assert main(["asr", str(eval_dir / "wavs" / "q.wav"), "--model", str(tmp_path / "none")]) == 1
    assert "none: no such folder" in capsys.readouterr().err
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not a wave")
    assert main(["asr", str(broken), "--model", str(tmp_path / "none")]) == 1
    assert "broken.wav" in capsys.readouterr().err


def test_chat_sends_history_between_system_prompt_and_question(tiny_model_dir, eval_dir):
    """`history` is earlier turns' `answer.turn` messages; the turn is generated after them, and a turn fed
    back as history is valid model input (the assistant message is the model's own interleaved format)."""
    from ttt.audio.io import load_audio
    from ttt.format import SYSTEM
    from ttt.generate import generate

    lm = SpeechLM.from_dir(tiny_model_dir, max_last_span=10, max_new_tokens=60)
    wave, sr = load_audio(eval_dir / "wavs" / "q.wav")
    first = lm.chat(wave, sr)
    user, assistant = first.turn
    assert user == {"role": "user", "content": lm.audio_prompt(wave, sr)} and assistant["role"] == "assistant"
    assert lm.model.tokenizer.decode(first.result.token_ids).startswith(assistant["content"])
    assert "<|im_end|>" not in assistant["content"]
    history = first.turn + [{"role": "user", "content": "seven plus four"}, {"role": "assistant", "content": "eleven"}]
    second = lm.chat(wave, sr, history=history)
    expected = generate(lm.model, [{"role": "system", "content": SYSTEM["spoken_qa"]}, *history, user],
                        **lm.generation)
    assert second.result.token_ids == expected.token_ids
    prompt = lm.model.formatter.encode_prompt([{"role": "system", "content": SYSTEM["spoken_qa"]}, *history, user])
    assert second.result.forward_log[0][1] == len(prompt) > first.result.forward_log[0][1]  # the prefill
    assert lm.chat(wave, sr, history=[]).result.token_ids == first.result.token_ids


def test_from_dir_device(tiny_model_dir):
    import torch

    assert SpeechLM.from_dir(tiny_model_dir, device="cpu").model.device == torch.device("cpu")
    with pytest.raises(ValueError, match="device 'gpu0'"):
        SpeechLM.from_dir(tiny_model_dir, device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda': this torch build sees no CUDA GPU"):
            SpeechLM.from_dir(tiny_model_dir, device="cuda")
        return
    cpu = SpeechLM.from_dir(tiny_model_dir, max_new_tokens=20, max_last_span=10)
    gpu = SpeechLM.from_dir(tiny_model_dir, device="cuda", max_new_tokens=20, max_last_span=10)
    assert gpu.model.device.type == "cuda"
    said = gpu.speak("seven plus four")  # forced text: the same tokens on any device, audio decoded on CPU
    assert said.text == cpu.speak("seven plus four").text and said.result.audio_codes
