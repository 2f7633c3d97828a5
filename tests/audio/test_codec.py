"""The codec interface, save/load fidelity and the shipped codec (fast tests: no Whisper, no training)."""
import time

import numpy as np
import pytest
import torch

from ttt.audio.codec import AudioCodec, VQCodecConfig, VQMelCodec, default_codec_dir, load_codec, load_default_codec
from ttt.audio.decoder import DecoderConfig, MelDecoder
from ttt.audio.vocoder import MelConfig


def tiny_codec(seed: int = 0) -> VQMelCodec:
    """Random log-mel codec: exercises every code path of `VQMelCodec` without loading Whisper."""
    torch.manual_seed(seed)
    decoder_config = DecoderConfig(codebook_size=16, upsample=8, dim=32, mel_dim=16, code_layers=1, mel_layers=1)
    config = VQCodecConfig(features="logmel", pool=4, codebook_size=16, mel=MelConfig().to_dict(),
                           decoder=decoder_config.to_dict(), griffin_lim_iters=4)
    tensors = {"centroids": torch.randn(16, 80), "feature_mean": torch.full((80,), -5.0), "feature_std": torch.full((80,), 2.0)}
    tensors.update({f"decoder.{k}": v.half().float() for k, v in MelDecoder(decoder_config).state_dict().items()})
    return VQMelCodec(config, tensors)


def speechlike(sample_rate: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def test_interface_is_abstract():
    with pytest.raises(TypeError):
        AudioCodec()
    assert issubclass(VQMelCodec, AudioCodec)


def test_encode_any_rate_and_channels():
    codec = tiny_codec()
    codes = codec.encode(speechlike(16000), 16000)
    assert codec.frame_rate == 12.5 and codec.codebook_size == 16
    assert all(isinstance(c, int) and 0 <= c < 16 for c in codes)
    assert abs(len(codes) - 12.5) <= 1
    wave44 = speechlike(44100)
    stereo = np.stack([wave44, wave44], axis=1)
    assert codec.encode(stereo, 44100) == codec.encode(wave44, 44100)
    assert abs(len(codec.encode(wave44, 44100)) - len(codes)) <= 1


def test_decode_shape_and_range():
    codec = tiny_codec()
    wave, sample_rate = codec.decode([0, 3, 15, 7])
    assert sample_rate == 16000 and wave.dtype == np.float32
    assert abs(len(wave) - 4 / 12.5 * 16000) <= 160
    assert np.all(np.isfinite(wave)) and np.max(np.abs(wave)) <= 1.0
    for bad in ([], [16], [-1]):
        with pytest.raises(ValueError):
            codec.decode(bad)


def test_one_code_decodes():
    """A streamed block can hold a single code: shorter than an FFT window, it must still decode."""
    codec = load_default_codec()
    wave, sample_rate = codec.decode([5])
    assert len(wave) == 3 * 160 and np.all(np.isfinite(wave))  # 4 mel frames at hop 160
    longer, _ = codec.decode([5, 5, 5])
    assert len(longer) == 11 * 160


def test_encode_rejects_bad_waves():
    codec = tiny_codec()
    with pytest.raises(ValueError, match="silent"):
        codec.encode(np.zeros(16000, dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="NaN"):
        codec.encode(np.full(16000, np.nan, dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="sample rate"):
        codec.encode(speechlike(16000), 0)


def test_save_load_roundtrip_is_exact(tmp_path):
    codec = tiny_codec()
    codec.save(tmp_path / "c")
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_codec(tmp_path / "c")
    assert isinstance(loaded, VQMelCodec) and loaded.config == codec.config
    for name, value in codec.tensors().items():
        assert torch.equal(value, loaded.tensors()[name]), name
    wave = speechlike(16000)
    codes = codec.encode(wave, 16000)
    assert loaded.encode(wave, 16000) == codes
    assert np.array_equal(loaded.decode(codes)[0], codec.decode(codes)[0])


def test_load_codec_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_codec(tmp_path)
    (tmp_path / "config.json").write_text('{"type": "no-such-codec"}')
    with pytest.raises(ValueError, match="no-such-codec"):
        load_codec(tmp_path)


def test_shipped_codec_loads_fast_and_is_small():
    load_default_codec()  # warm the imports (torch, safetensors), which are not the codec's cost
    start = time.perf_counter()
    codec = load_default_codec()
    assert time.perf_counter() - start < 1.0
    assert codec.frame_rate <= 25 and 512 <= codec.codebook_size <= 4096
    assert sum(p.stat().st_size for p in default_codec_dir().iterdir()) < 10 * 2**20
    wave, sample_rate = codec.decode(list(range(0, 40, 3)))
    assert sample_rate == 16000 and np.all(np.isfinite(wave))


def test_train_codec_smoke(tmp_path):
    """The whole training path on a toy log-mel set: rows, k-means, decoder steps, save and reload."""
    import json

    from ttt.audio.io import save_audio
    from ttt.audio.fit import CodecFitConfig, train_codec

    rows = []
    for i, voice in enumerate(["piper-joe", "flite-slt", "piper-joe", "espeak-en"] * 2):
        t = np.arange(16000) / 16000
        wave = 0.3 * np.sin(2 * np.pi * (200 + 60 * i) * t * (1 + t))
        save_audio(tmp_path / f"w{i}.wav", wave.astype(np.float32), 16000)
        rows.append({"audio": f"w{i}.wav", "text": "x", "voice": voice})
    (tmp_path / "audio_train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = CodecFitConfig(features="logmel", pool=4, codebook_size=8, steps=3, batch_size=2, dim=32, kmeans_iters=3)
    codec = train_codec([tmp_path / "audio_train.jsonl"], tmp_path / "codec", config)
    assert codec.codebook_size == 8 and codec.frame_rate == 12.5
    assert codec.config.trained_on["decoder_utterances"] == 4
    assert load_codec(tmp_path / "codec").encode_file(tmp_path / "w0.wav") == codec.encode_file(tmp_path / "w0.wav")


def test_cli_parse_codes(tmp_path):
    from ttt.cli.codec import parse_codes

    assert parse_codes("1 2, 3") == parse_codes("[1, 2, 3]") == [1, 2, 3]
    (tmp_path / "codes.txt").write_text("4 5\n6\n")
    assert parse_codes(f"@{tmp_path / 'codes.txt'}") == [4, 5, 6]
    with pytest.raises(ValueError, match="integers"):
        parse_codes("1 two")
