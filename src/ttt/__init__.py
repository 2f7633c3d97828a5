"""text-to-talk: autoregressive text and discrete-diffusion speech in one decoder-only Transformer."""
from ttt.config import TtTConfig
from ttt.format import EncodedExample, Formatter, Modality, input_audio, interleave
from ttt.model import TtTModel, TtTOutput
from ttt.vocab import Vocab, add_ttt_tokens

__all__ = [
    "EncodedExample",
    "Formatter",
    "Modality",
    "TtTConfig",
    "TtTModel",
    "TtTOutput",
    "Vocab",
    "add_ttt_tokens",
    "input_audio",
    "interleave",
]
