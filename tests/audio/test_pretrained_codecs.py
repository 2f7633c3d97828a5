"""Codecs around released weights, loaded from tiny random-weight checkpoints in the official layouts.

GLM-4-Voice's tokenizer: transformers' `WhisperEncoder` (whose parameter names the release shares) plus a
codebook, saved with the release's config fields and feature extractor. Mimi: transformers' `MimiModel`
saved by `save_pretrained`. Each is loaded through `open_codec("TYPE:DIR")`, round-tripped, saved and reloaded.
"""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from pretrained_checkpoints import glm_checkpoint, mimi_checkpoint
from ttt.audio.codec import load_codec, open_codec

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def speech(seconds: float = 2.3, rate: int = 16000) -> tuple[np.ndarray, int]:
    """A real LibriVox clip when the Debian test data is there, else a voiced harmonic tone."""
    clips = sorted(LIBRIVOX.glob("*.wav"))
    if clips:
        wave, sr = sf.read(clips[0], dtype="float32")
        return wave[: int(seconds * sr)], sr
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 140 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32), rate


def audio_jsonl(tmp_path: Path) -> Path:
    rows = []
    for i, seconds in enumerate((1.2, 1.7)):
        wave, sr = speech(seconds)
        sf.write(tmp_path / f"w{i}.wav", wave, sr)
        rows.append({"audio": f"w{i}.wav", "text": "x", "voice": "reader"})
    path = tmp_path / "audio.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("prefix", ["", "model.encoder."])
def test_glm4voice_tokenizer_encodes_at_12_5_hz_from_either_layout(tmp_path, prefix):
    codec = open_codec(f"glm4voice:{glm_checkpoint(tmp_path / 'tok', prefix=prefix)}")
    assert (codec.codec_type, codec.frame_rate, codec.codebook_size) == ("glm4voice", 12.5, 64)
    wave, sr = speech(2.3)
    codes = codec.encode(wave, sr)
    assert len(codes) == math.ceil(len(wave) * 16000 / sr / 1280)  # 1,280 samples (80 ms) a code
    assert all(0 <= c < 64 for c in codes)
    assert codec.encode(wave, sr) == codes
    with pytest.raises(ValueError, match="CosyVoice.*ttt codec train --encoder glm4voice:"):
        codec.decode(codes)


def test_glm4voice_encoder_matches_transformers_whisper_encoder(tmp_path):
    """With centred convolutions, full attention and pooling 1, the quantiser's input must be transformers'
    `WhisperEncoder` output (before its final layer norm) on the same weights."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    directory = glm_checkpoint(tmp_path / "tok", causal=False, pool=1, block=None, max_positions=16)
    codec = open_codec(f"glm4voice:{directory}")
    reference = WhisperEncoder(codec.encoder.config)
    reference.load_state_dict({**codec.encoder.state_dict(), "layer_norm.weight": torch.ones(32),
                               "layer_norm.bias": torch.zeros(32)}, strict=False)
    features = torch.randn(1, 16, 32)
    with torch.no_grad():
        mine, valid = codec.encoder.hidden(features, torch.ones(1, 32, dtype=torch.long))
        theirs = reference.eval()(features).last_hidden_state
    assert valid.all() and torch.allclose(torch.nn.functional.layer_norm(mine, (32,)), theirs, atol=1e-4)


def test_a_decoder_trained_for_glm_codes_round_trips_and_reloads(tmp_path):
    from ttt.audio.fit import CodecFitConfig, train_code_decoder

    source = glm_checkpoint(tmp_path / "tok")
    codec = open_codec(f"glm4voice:{source}")
    trained = train_code_decoder(codec, [audio_jsonl(tmp_path)], tmp_path / "codec",
                                 CodecFitConfig(target_voice="", steps=3, batch_size=2, dim=32))
    assert json.loads((tmp_path / "codec" / "config.json").read_text())["source"] == str(source)
    reloaded = load_codec(tmp_path / "codec")
    wave, sr = speech(1.5)
    codes = reloaded.encode(wave, sr)
    out, out_sr = reloaded.decode(codes)
    assert out_sr == 16000 and len(out) == pytest.approx(len(codes) / 12.5 * 16000, abs=400)
    assert reloaded.decoder[3]["steps"] == 3 and trained.codebook_size == 64


def test_mimi_semantic_stream_round_trips_with_the_lossy_native_decoder(tmp_path):
    codec = open_codec(f"mimi:{mimi_checkpoint(tmp_path / 'mimi')}")
    assert (codec.codec_type, codec.frame_rate, codec.codebook_size, codec.sample_rate) == ("mimi", 12.5, 64, 24000)
    wave, sr = speech(2.0)
    codes = codec.encode(wave, sr)
    assert len(codes) == math.ceil(len(wave) / sr * 12.5) and all(0 <= c < 64 for c in codes)
    from ttt.audio.io import resample

    with torch.no_grad():  # all codebooks: TtT's stream is codebook 0 of Mimi's full encoding
        full = codec.model.encode(torch.from_numpy(resample(wave, sr, 24000))[None, None]).audio_codes
    assert full.shape[1] == 4 and full[0, 0].tolist() == codes
    out, out_sr = codec.decode(codes)
    assert out_sr == 24000 and len(out) == len(codes) * 1920  # 24 kHz / 12.5
    assert out.dtype == np.float32 and np.all(np.abs(out) <= 1)
    codec.save(tmp_path / "saved")
    assert load_codec(tmp_path / "saved").encode(wave, sr) == codes


def test_missing_weights_and_sources_are_one_line_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no folder"):
        open_codec(f"glm4voice:{tmp_path / 'nowhere'}")
    with pytest.raises(FileNotFoundError, match="neither a local folder nor in the Hugging Face cache"):
        open_codec("mimi:nobody-here/no-such-model")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    with pytest.raises(ValueError, match="lacks .*quantize_vocab_size.*not a Whisper-VQ"):
        open_codec(f"glm4voice:{tmp_path / 'bad'}")
    with pytest.raises(ValueError, match="unknown codec type 'snac'"):
        open_codec("snac:some/where")


def test_cli_trains_a_decoder_for_an_encoder_and_round_trips_with_it(tmp_path, capsys):
    from ttt.cli import main

    source = mimi_checkpoint(tmp_path / "mimi")
    data = audio_jsonl(tmp_path)
    assert main(["codec", "train", "--encoder", f"mimi:{source}", "--data", str(data), "--out",
                 str(tmp_path / "codec"), "--target-voice", "", "--steps", "2"]) == 0
    assert "64 codes at 12.5 codes/s" in capsys.readouterr().out
    assert main(["codec", "roundtrip", str(tmp_path / "w0.wav"), "-o", str(tmp_path / "rt.wav"),
                 "--codec", str(tmp_path / "codec")]) == 0
    assert sf.info(tmp_path / "rt.wav").samplerate == 16000  # the trained decoder's, not Mimi's 24 kHz
    assert main(["codec", "train", "--encoder", f"mimi:{source}", "--warm-start", "--data", str(data), "--out",
                 str(tmp_path / "x"), "--target-voice", ""]) == 1
    assert "--warm-start needs a built-in codec folder" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_the_shipped_codec_keeps_its_codebook_when_its_decoder_is_retrained(tmp_path, capsys):
    """Retraining the decoder on new speech must not move a single code (models trained on the codes stay
    valid); a warm start with no steps gives back the very same decoder, a cold start a different one."""
    from ttt.audio.codec import default_codec_dir
    from ttt.cli import main

    data = audio_jsonl(tmp_path)
    shipped = load_codec(default_codec_dir())
    args = ["codec", "train", "--encoder", str(default_codec_dir()), "--data", str(data), "--target-voice", "",
            "--steps", "0"]
    assert main(args + ["--out", str(tmp_path / "warm"), "--warm-start"]) == 0
    assert main(args + ["--out", str(tmp_path / "cold")]) == 0
    assert "1024 codes at 25 codes/s" in capsys.readouterr().out
    warm, cold = load_codec(tmp_path / "warm"), load_codec(tmp_path / "cold")
    wave, sr = speech(1.5)
    codes = shipped.encode(wave, sr)
    assert warm.encode(wave, sr) == codes == cold.encode(wave, sr)
    assert torch.equal(warm.decode_mel(codes), shipped.decode_mel(codes))
    assert not torch.allclose(cold.decode_mel(codes), shipped.decode_mel(codes), atol=1e-2)
    card = json.loads((tmp_path / "warm" / "config.json").read_text())["trained_on"]
    assert card["warm_start"] is True and card["decoder_utterances"] == 2 and "encoder_from" in card
    assert main(args + ["--out", str(tmp_path / "wide"), "--decoder-dim", "64", "--decoder-layers", "6"]) == 0
    wide = load_codec(tmp_path / "wide")
    assert wide.encode(wave, sr) == codes and (wide.decoder.config.dim, wide.decoder.config.code_layers) == (64, 6)
    assert wide.decode_mel(codes).shape == shipped.decode_mel(codes).shape
    capsys.readouterr()
    assert main(args + ["--out", str(tmp_path / "x"), "--decoder-dim", "64", "--warm-start"]) == 1
    assert "a warm start keeps the decoder's shape" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_codec_train_refuses_a_device_it_cannot_use_before_reading_audio(tmp_path, capsys):
    from ttt.cli import main

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    data = audio_jsonl(tmp_path)
    assert main(["codec", "train", "--data", str(data), "--out", str(tmp_path / "c"), "--device", "cuda"]) == 1
    assert "sees no CUDA GPU" in capsys.readouterr().err and not (tmp_path / "c").exists()
    assert main(["codec", "train", "--data", str(data), "--out", str(tmp_path / "c"), "--device", "tpu9"]) == 1
    assert "device 'tpu9'" in capsys.readouterr().err
