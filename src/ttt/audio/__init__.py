"""Audio: file I/O and resampling (`io`), the `AudioCodec` interface and the built-in codec (`codec`),
and `fit`, which trains that codec.

Heavy modules (torch, faster-whisper) load only when a codec is built or used, so importing
`ttt.audio` is cheap.
"""
from ttt.audio.io import check_wave, load_audio, resample, save_audio

__all__ = ["check_wave", "load_audio", "resample", "save_audio", "AudioCodec", "load_codec", "load_default_codec"]


def __getattr__(name: str):
    if name in {"AudioCodec", "load_codec", "load_default_codec"}:
        from ttt.audio import codec

        return getattr(codec, name)
    raise AttributeError(f"module 'ttt.audio' has no attribute {name!r}")
