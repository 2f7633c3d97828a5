"""text-to-talk: autoregressive text and discrete-diffusion speech in one decoder-only Transformer.

The public API is imported from here: `TtTModel`, `TtTConfig`, `GenerationConfig`, `generate`, `stream`,
`SpeechLM`, `load_codec` (and the format helpers below). Names are imported lazily so that `ttt --help`
and the audio tools start without loading transformers.

`ttt.generate` is both a submodule (the decode loop) and its main function. The package attribute is the
function, as users expect from `from ttt import generate`; the module stays importable by its full name
(`from ttt.generate import Generation`).
"""
from __future__ import annotations

import importlib
import sys
import types

_EXPORTS = {
    "TtTConfig": "ttt.config",
    "GenerationConfig": "ttt.config",
    "EncodedExample": "ttt.format",
    "Formatter": "ttt.format",
    "Modality": "ttt.format",
    "SYSTEM": "ttt.format",
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
    "SpeechLM": "ttt.speech",
    "SpokenAnswer": "ttt.speech",
    "load_codec": "ttt.audio.codec",
}
__all__ = sorted(_EXPORTS)


class _Package(types.ModuleType):
    """Keeps an exported name from being replaced by the submodule of the same name (`ttt.generate`),
    which the import system would otherwise set on the package when that submodule is first imported."""

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == value.__name__:
            return
        super().__setattr__(name, value)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ttt' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


sys.modules[__name__].__class__ = _Package
