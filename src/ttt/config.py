"""The method's two settings objects and their files next to the weights.

`TtTConfig` (how sequences are laid out, noised and trained) is saved as `ttt_config.json`;
`GenerationConfig` (how a model is decoded) is the set of decoding knobs, and a model directory's
recommended values live in `decoding.json`, read and written only by `load_decoding` / `save_decoding`.
"""
from __future__ import annotations

import json
import os
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ttt.fields import check_types, convert, from_mapping

MODES = ("ttt", "ar", "nar")
CFG_CONTEXTS = ("prompt", "all")  # GenerationConfig.cfg_context
SST_SCOPES = ("example", "message")  # TtTConfig.sst_scope
FINAL_SPAN_ATTENTION = ("bidirectional", "block_causal")  # TtTConfig.final_span_attention (training)
FINAL_SPAN_DECODING = ("cached", "official")  # GenerationConfig.final_span (decoding)
CONFIG_NAME = "ttt_config.json"
DECODING_FILE = "decoding.json"  # a model directory's recommended GenerationConfig fields


@dataclass
class TtTConfig:
    """How sequences are laid out, noised and trained (names follow the TtT paper and reference code)."""

    audio_codebook_size: int = 16384  # discrete audio codes the vocabulary holds (the codec's codebook)
    text_chunk: int = 13  # text tokens per chunk of the interleaved assistant turn
    audio_chunk: int = 26  # codes per fixed audio span after each text chunk
    # "ttt" (AR text + diffusion audio spans), "ar" (everything next-token, GLM-4-Voice style) or
    # "nar" (each assistant response diffused as a whole, text included)
    mode: str = "ttt"
    unmasked_audio_prob: float = 0.3  # BANOM: per batch, probability of leaving audio clean (text-only loss)
    prefix_preservation_ratio: float = 0.3  # PPM: share of samples whose audio before one random span stays clean
    quad_span_truncation_prob: float = 0.5  # SST: probability of truncating an example's final variable-length span
    sst_keep_range: tuple[float, float] = (0.3, 0.9)  # fraction of that span's codes kept when truncated (uniform)
    # keep `<|end_of_audio_span_last|>` after a truncated span. The reference drops it with the rest of the
    # turn, so a truncated span teaches the start of the audio without a stop signal (as a block sees it at
    # inference); keeping it would teach a stop at a random point, which is why it is off
    sst_keep_closing_token: bool = False
    # SST_SCOPES: "example" draws once per example and cuts its last final span with everything after it;
    # "message" draws once per assistant message and cuts only the rest of that message (closer, text after
    # it, `<|im_end|>` and its newline), keeping later messages, as the reference's preprocessing does for
    # multi-turn data. The two agree on single-turn examples
    sst_scope: str = "example"
    # also train the text target (the next token) at a masked closing token, whose audio target is the closer
    # itself, as the reference's loss does (it applies the next-token loss wherever the next label is text).
    # Off: one target per position; the next text is learned where the closer is visible, as decoding reads it
    masked_closer_text_target: bool = False
    # in noised batches, 0..last_span_pad masks (uniform) follow the final span's closing token inside its
    # attention run, with no loss: at inference the block holding the end also holds masks after it, and
    # without them the model would read the end of speech off the run length. Set it to block_length - 1
    last_span_pad: int = 25
    eps: float = 1e-3  # lower bound of the masking probability t ~ U(eps, 1]
    bidirectional_input_audio: bool = True  # user audio attends to itself both ways (as the reference; False: causal)
    max_length: int | None = None  # tokens per packed row (None: no packing limit)
    # How the final span (codes + closing token + end padding) attends: "bidirectional" is one run, as the
    # reference trains it; "block_causal" cuts it into runs of `block_length` positions counted from its
    # first code (both ways inside a block, causal across blocks, as BD3-LM / Fast-dLLM v2), which is exactly
    # what cached block-wise decoding shows the model (docs/decoding.md, "The final span's attention")
    final_span_attention: str = "bidirectional"
    block_length: int = 26  # positions per block under "block_causal"; decoding must use the same block_length

    def __post_init__(self) -> None:
        check_types(self)
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        for name in ("unmasked_audio_prob", "prefix_preservation_ratio", "quad_span_truncation_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.sst_scope not in SST_SCOPES:
            raise ValueError(f"sst_scope must be one of {SST_SCOPES}, got {self.sst_scope!r}")
        lo, hi = self.sst_keep_range = tuple(self.sst_keep_range)
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"sst_keep_range must satisfy 0 < lo <= hi <= 1, got {self.sst_keep_range}")
        if not 0.0 < self.eps < 1.0:
            raise ValueError(f"eps must be in (0, 1), got {self.eps}")
        if self.last_span_pad < 0:
            raise ValueError(f"last_span_pad must be >= 0, got {self.last_span_pad}")
        if self.audio_codebook_size <= 0 or self.text_chunk <= 0 or self.audio_chunk <= 0:
            raise ValueError("audio_codebook_size, text_chunk and audio_chunk must be positive")
        if self.final_span_attention not in FINAL_SPAN_ATTENTION:
            raise ValueError(
                f"final_span_attention must be one of {FINAL_SPAN_ATTENTION}, got {self.final_span_attention!r}")
        if self.block_length <= 0:
            raise ValueError(f"block_length must be positive, got {self.block_length}")
        if self.final_span_attention == "block_causal" and self.mode != "ttt":
            raise ValueError(f"final_span_attention='block_causal' needs mode 'ttt' (got mode {self.mode!r}: "
                             "it has no diffused final span)")

    def save(self, directory: str | Path) -> None:
        Path(directory, CONFIG_NAME).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, directory: str | Path) -> "TtTConfig":
        path = Path(directory, CONFIG_NAME)
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        return from_mapping(cls, data, str(path))


@dataclass
class GenerationConfig:
    """Decoding knobs (names follow the reference inference script where one exists); checked on construction.

    `force_text` makes the assistant say exactly this text (TTS): its tokens are fed in chunks of
    `text_chunk`, each followed by a fixed audio span and the last by the final span, which the model
    generates; then the turn ends.

    Engine knobs (none changes the tokens): `compile` is how the fixed-shape forwards run: "graphs" (each
    shape captured once as a CUDA graph and replayed; the default on CUDA), "inductor"
    (`torch.compile(mode="reduce-overhead")`, which fuses kernels too but compiles first; on CPU it compiles
    the one-token step only, 13-40 s, and speeds AR decoding ~1.8x), or "none" (eager; the default
    elsewhere); a failure to capture or compile falls back to eager with a warning.
    """

    max_new_tokens: int = 1024  # cap on generated tokens per turn
    block_length: int = 26  # codes per diffusion block of the final span
    steps: int = 4  # denoising steps per block (each commits >= 1 code)
    threshold: float | None = None  # commit every code above this confidence (Fast-dLLM); None: LLaDA low-confidence
    temperature: float = 0.0  # text sampling temperature (0: greedy)
    top_k: int = 0  # text sampling: keep the k likeliest tokens (0: all)
    top_p: float = 1.0  # text sampling: nucleus mass
    diffusion_temperature: float = 0.0  # Gumbel noise on audio predictions (0: greedy)
    cfg_scale: float = 0.0  # classifier-free guidance on audio (0: off)
    # what the unguided row of classifier-free guidance loses to masks: "prompt" (the prompt before the
    # assistant header; the turn's own text and audio stay visible) or "all" (every token before the block
    # being denoised, as the reference inference script does)
    cfg_context: str = "prompt"
    max_last_span: int = 1024  # cap on codes in the final variable-length span
    # NAR baseline (mode "nar"): tokens in its one response block (None: max_new_tokens). A NAR model trains on
    # its responses plus 0..last_span_pad `<|im_end|>` pads, so a block far longer than those is one it never saw
    nar_length: int | None = None
    stop_threshold: float | None = None  # end the final span where p(end of audio) reaches this
    use_cache: bool = True  # KV cache for the prefix (False recomputes it: a check of the cache)
    seed: int = 0  # sampling seed
    force_text: str | None = None  # TTS: the text to speak (see above)
    engine: str = "fast"  # "fast" (device-side, static cache) or "eager" (the previous engine, for comparison)
    compile: str | None = None  # "graphs", "inductor" or "none" (see above); None: graphs on CUDA, else none
    sync_every_step: bool | None = None  # check after each denoising step if a block is done; None: on CPU only
    # how a final-span block sees the span's earlier blocks: "cached" (each committed block enters the KV
    # cache; later blocks attend it causally, exact for a block_causal-trained model) or "official" (the
    # span's earlier blocks are re-run with each new block as one bidirectional run, as the reference
    # inference's full recompute does and as bidirectional training shows the span; fast engine only)
    final_span: str = "cached"

    def __post_init__(self) -> None:
        check_types(self)
        if self.block_length <= 0:
            raise ValueError(f"block_length must be positive, got {self.block_length}")
        if self.steps <= 0:
            raise ValueError(f"steps must be positive, got {self.steps}")
        if self.max_new_tokens <= 0 or self.max_last_span <= 0:
            raise ValueError("max_new_tokens and max_last_span must be positive")
        if self.nar_length is not None and self.nar_length <= 0:
            raise ValueError(f"nar_length must be positive, got {self.nar_length}")
        for name in ("threshold", "stop_threshold"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value}")
        for name in ("temperature", "diffusion_temperature", "cfg_scale"):
            if not 0 <= getattr(self, name) < math.inf:  # NaN fails this too
                raise ValueError(f"{name} must be finite and >= 0, got {getattr(self, name)}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.force_text is not None and not self.force_text.strip():
            raise ValueError("force_text is empty: nothing to speak")
        if self.cfg_context not in CFG_CONTEXTS:
            raise ValueError(f"cfg_context must be one of {CFG_CONTEXTS}, got {self.cfg_context!r}")
        if self.engine not in ("fast", "eager"):
            raise ValueError(f"engine must be 'fast' or 'eager', got {self.engine!r}")
        if self.compile not in (None, "none", "graphs", "inductor"):
            raise ValueError(f"compile must be 'graphs', 'inductor' or 'none', got {self.compile!r}")
        if self.final_span not in FINAL_SPAN_DECODING:
            raise ValueError(f"final_span must be one of {FINAL_SPAN_DECODING}, got {self.final_span!r}")
        if self.final_span == "official" and self.engine == "eager":
            raise ValueError("final_span='official' is implemented in the fast engine only (engine='fast')")

    def check(self, audio_chunk: int, model: TtTConfig | None = None) -> None:
        """What only a model can tell: each step must commit at least one token of the smaller block, and a
        model trained with block-causal final spans is decoded in the blocks it was trained on."""
        self.__post_init__()  # fields may have been changed since construction (dataclasses.replace re-runs it)
        if model is not None and model.final_span_attention == "block_causal" and self.block_length != model.block_length:
            raise ValueError(
                f"block_length {self.block_length}: this model was trained with block-causal final spans of "
                f"{model.block_length} codes (ttt_config block_length); decode it with block_length {model.block_length}")
        if self.steps > min(self.block_length, audio_chunk):
            raise ValueError(
                f"steps ({self.steps}) > tokens per block ({min(self.block_length, audio_chunk)}): "
                "each step must commit at least one token"
            )


def check_decoding(settings: dict, where: str) -> dict:
    known = {f.name for f in fields(GenerationConfig)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"{where}: unknown decoding settings {unknown} (known: {', '.join(sorted(known))})")
    settings = {key: convert(GenerationConfig, key, value, f"{where}: {key}") for key, value in settings.items()}
    try:
        GenerationConfig(**settings)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    return settings


def load_decoding(model_dir: str | Path) -> dict:
    """The decoding settings a model directory recommends (`decoding.json`), or none.

    Denoising steps, the stop threshold and the final-span cap are chosen per model on validation data;
    keeping them next to the weights means `ttt demo` and `ttt eval` decode a model the way it was measured."""
    path = Path(model_dir) / DECODING_FILE
    if not path.is_file():
        return {}
    try:
        settings = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: malformed JSON ({err})") from None
    if not isinstance(settings, dict):
        raise ValueError(f"{path}: expected a JSON object of GenerationConfig fields")
    return check_decoding(settings, str(path))


def save_decoding(model_dir: str | Path, settings: dict) -> None:
    """Write `decoding.json` (after checking every key and value), so the model is decoded as it was measured."""
    check_decoding(settings, f"decoding setting for {Path(model_dir) / DECODING_FILE}")
    (Path(model_dir) / DECODING_FILE).write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")


def is_model_dir(directory: str | os.PathLike) -> bool:
    """Whether `directory` holds a saved TtT model (its `ttt_config.json`)."""
    return (Path(directory) / CONFIG_NAME).is_file()


def check_model_dir(directory: str | os.PathLike) -> Path:
    """`directory` as a Path, or FileNotFoundError saying it is no TtT model directory."""
    directory = Path(directory)
    if not is_model_dir(directory):
        raise FileNotFoundError(f"no TtT model in {directory} (no {CONFIG_NAME})")
    return directory
