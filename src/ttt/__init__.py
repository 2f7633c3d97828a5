"""text-to-talk: autoregressive text and discrete-diffusion speech in one decoder-only Transformer.

Names are imported lazily so that `ttt --help` and the audio tools start without loading transformers.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "TtTConfig": "ttt.config",
    "EncodedExample": "ttt.format",
    "Formatter": "ttt.format",
    "Modality": "ttt.format",
    "input_audio": "ttt.format",
    "interleave": "ttt.format",
    "TtTModel": "ttt.model",
    "TtTOutput": "ttt.model",
    "Vocab": "ttt.vocab",
    "add_ttt_tokens": "ttt.vocab",
    "AudioSpan": "ttt.generate",
    "GenerationResult": "ttt.generate",
    "TextDelta": "ttt.generate",
    "generate": "ttt.generate",
    "stream": "ttt.generate",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ttt' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
