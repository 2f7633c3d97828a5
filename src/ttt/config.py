"""TtT settings, serialised as `ttt_config.json` next to the backbone's own config and weights."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

MODES = ("ttt", "ar", "nar")
CONFIG_NAME = "ttt_config.json"


@dataclass
class TtTConfig:
    """How sequences are laid out, noised and trained.

    mode: "ttt" (AR text + diffusion audio spans), "ar" (everything next-token, GLM-4-Voice style) or
        "nar" (each assistant response diffused as a whole, text included).
    unmasked_audio_prob: BANOM — per batch, probability of leaving audio clean and training text only.
    prefix_preservation_ratio: PPM — share of samples whose audio before one random span stays clean.
    quad_span_truncation_prob: SST — probability of truncating an example's final variable-length span.
    sst_keep_range: fraction of that span's codes kept when truncated (drawn uniformly in the range).
    sst_keep_closing_token: keep `<|end_of_audio_span_last|>` after a truncated span. The reference drops
        it together with the rest of the turn, so a truncated span teaches the beginning of the audio
        without a stop signal (as a block sees it at inference); keeping it would teach a stop at a
        random point, which is why it is off.
    last_span_pad: in noised batches, 0..last_span_pad mask tokens (uniform) follow the final span's closing
        token inside its attention run, with no loss. At inference the final span is denoised in blocks, so
        the block that holds the end also holds masks after it; without this padding a run always ends at
        its closing token and the model would read the end of speech off the run length, never off the
        content (it would never stop mid-block). Set it to the inference `block_length` - 1.
    eps: lower bound of the masking probability t ~ U(eps, 1].
    bidirectional_input_audio: user audio attends to itself both ways (the reference does so; it is
        fully known at inference). False makes it causal like text.
    """

    audio_codebook_size: int = 16384
    text_chunk: int = 13
    audio_chunk: int = 26
    mode: str = "ttt"
    unmasked_audio_prob: float = 0.3
    prefix_preservation_ratio: float = 0.3
    quad_span_truncation_prob: float = 0.5
    sst_keep_range: tuple[float, float] = (0.3, 0.9)
    sst_keep_closing_token: bool = False
    last_span_pad: int = 25
    eps: float = 1e-3
    bidirectional_input_audio: bool = True
    max_length: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        for name in ("unmasked_audio_prob", "prefix_preservation_ratio", "quad_span_truncation_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        lo, hi = self.sst_keep_range = tuple(self.sst_keep_range)
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"sst_keep_range must satisfy 0 < lo <= hi <= 1, got {self.sst_keep_range}")
        if not 0.0 < self.eps < 1.0:
            raise ValueError(f"eps must be in (0, 1), got {self.eps}")
        if self.last_span_pad < 0:
            raise ValueError(f"last_span_pad must be >= 0, got {self.last_span_pad}")
        if self.audio_codebook_size <= 0 or self.text_chunk <= 0 or self.audio_chunk <= 0:
            raise ValueError("audio_codebook_size, text_chunk and audio_chunk must be positive")

    def save(self, directory: str | Path) -> None:
        Path(directory, CONFIG_NAME).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> "TtTConfig":
        data = json.loads(Path(directory, CONFIG_NAME).read_text())
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{directory}/{CONFIG_NAME}: unknown keys {sorted(unknown)}")
        return cls(**data)
