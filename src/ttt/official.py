"""`ttt import-official DIR OUT`: the authors' released TtT checkpoint as a `TtTModel` directory.

The official checkpoint (ai4ed/TtT, e.g. TtT-3B) is stock Qwen2.5 weights saved by a forked modeling
class (`Qwen2ForARDiffLM`, same parameter names as `Qwen2ForCausalLM`) with a Qwen2.5 tokenizer that
already holds the GLM-4-Voice audio tokens. The layout, as its code uses it:

- `<|audio|>` at `config.audio_token_id_start`; the official model treats every id at or above it as
  audio (bidirectional within a run, diffusion targets). The codes `<|audio_0|>`..`<|audio_16383|>`
  follow it with contiguous ids (151685.. in the released model, whose `<|audio|>` is 151684);
- the training script then appends `<|mask_token|>` (`config.mask_token`, 168069 in the released model,
  right after the last code), `<|end_of_audio_new|>` and `<|end_of_audio_span_last|>`;
- `<|begin_of_audio|>`, `<|end_of_audio|>`, `<|begin_of_quad|>` and the ChatML tokens sit below the audio
  range, as text the model predicts autoregressively.

Nothing is remapped: this engine reads every id from the tokenizer (`ttt.vocab.Vocab`), so the import
checks that layout (every TtT token present, codes contiguous, the mask id the config names, embeddings
covering the vocabulary), loads the weights into the stock transformers class (the forked modeling file
is never imported or run), and writes a `TtTModel` directory with the format the checkpoint was trained
on (13 text tokens, 26-code spans), a `decoding.json` matching the official inference script, a
`prompts.json` with the system prompts of the authors' data (ASR, audio chat), and a `codec.json` naming
the codec whose codes the model speaks (GLM-4-Voice's tokenizer for the release).
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

AUDIO_MARKER = "<|audio|>"
# The fields the forked config adds to Qwen2's: read here, not passed to the stock config.
OFFICIAL_CONFIG_FIELDS = ("mask_token", "audio_token_id_start", "unmasked_audio_prob", "prefix_preservation_ratio",
                          "learn_padding", "auto_map")
# What the official inference script runs (`inference_TtT.py` main: 200 steps over 2,600 tokens in 26-token blocks,
# guidance 0.1 with every earlier token masked in the unguided row). Its text is sampled (top-k 10, top-p 0.95 at
# temperature 1); ours stays greedy, so that a model's answers are repeatable (`--temperature 1 --top-k 10
# --top-p 0.95` gives the script's sampling).
OFFICIAL_DECODING = {"block_length": 26, "steps": 2, "cfg_scale": 0.1, "cfg_context": "all"}
# The system prompts of the authors' training data (their sample files), for `ttt asr` / `ttt chat`.
OFFICIAL_PROMPTS = {
    "asr": "You are an Automatic Speech Recognition (ASR) model. The user will provide you with an audio input. "
           "Your task is to transcribe the audio into text and output the result in an interleaved format: "
           "generate 13 text tokens followed by 26 audio tokens, and repeat this pattern until the transcription "
           "is complete.",
    "spoken_qa": "You are an audio-to-audio chat model. The user will provide you with an audio input. Your task "
                 "is to respond in an interleaved format: generate 13 text tokens followed by 26 audio tokens, and "
                 "repeat this pattern until the response is complete.",
}
DEFAULT_CODEC = "glm4voice:THUDM/glm-4-voice-tokenizer"
CODEC_FILE = "codec.json"
_AUDIO = re.compile(r"^<\|audio_(\d+)\|>$")


@dataclass
class OfficialLayout:
    """Ids of the official checkpoint's tokenizer that the import checked."""

    audio_start: int  # id of <|audio_0|>
    codebook_size: int
    mask: int
    marker: int | None  # id of <|audio|>, the official "audio from here up" boundary
    vocab_size: int  # tokens in the tokenizer
    embedding_rows: int


def check_layout(tokenizer, config: dict) -> OfficialLayout:
    """Validate the official token layout; every error names what is wrong and the ids involved."""
    from ttt.vocab import CHAT_SPECIALS, MASK, TTT_SPECIALS

    vocab = tokenizer.get_vocab()
    missing = [t for t in (*CHAT_SPECIALS, *TTT_SPECIALS) if t not in vocab]
    if missing:
        raise ValueError(f"the tokenizer lacks the TtT tokens {missing}: not an official TtT checkpoint")
    codes = {int(m.group(1)): i for tok, i in vocab.items() if (m := _AUDIO.match(tok))}
    if not codes:
        raise ValueError("the tokenizer has no <|audio_N|> tokens: not an official TtT checkpoint")
    n, start = len(codes), codes.get(0)
    if start is None:
        raise ValueError("the tokenizer has <|audio_N|> tokens but no <|audio_0|>")
    for code in range(n):
        if codes.get(code) != start + code:
            raise ValueError(f"audio tokens must have contiguous ids from <|audio_0|> = {start}: <|audio_{code}|> "
                             f"is {codes.get(code, 'missing')}, expected {start + code}")
    mask = vocab[MASK]
    if "mask_token" in config and config["mask_token"] != mask:
        raise ValueError(f"config.json says mask_token = {config['mask_token']} but the tokenizer has {MASK} at {mask}")
    marker = vocab.get(AUDIO_MARKER)
    boundary = config.get("audio_token_id_start")
    if boundary is not None and boundary > start:
        raise ValueError(f"config.json's audio_token_id_start {boundary} lies above <|audio_0|> = {start}: the "
                         "official model would treat codes as text")
    rows = int(config.get("vocab_size", 0))
    if rows < len(tokenizer):
        raise ValueError(f"config.json's vocab_size {rows} is smaller than the tokenizer's {len(tokenizer)} tokens")
    return OfficialLayout(audio_start=start, codebook_size=n, mask=mask, marker=marker, vocab_size=len(tokenizer),
                          embedding_rows=rows)


def load_official(directory: str | os.PathLike, dtype: str | None = None):
    """(stock causal LM, tokenizer, official config dict, layout) from an official checkpoint directory."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    directory = Path(directory)
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{directory}: no config.json (not a Hugging Face checkpoint directory)")
    official = json.loads(config_path.read_text())
    tokenizer = AutoTokenizer.from_pretrained(directory)
    layout = check_layout(tokenizer, official)
    stock = {k: v for k, v in official.items() if k not in OFFICIAL_CONFIG_FIELDS + ("architectures",)}
    model_type = stock.pop("model_type", None)
    if model_type is None:
        raise ValueError(f"{config_path}: no model_type")
    config = AutoConfig.for_model(model_type, **stock)  # the stock class for its type; auto_map is dropped
    kwargs = {"dtype": getattr(torch, dtype)} if dtype else {"dtype": "auto"}
    model, info = AutoModelForCausalLM.from_pretrained(directory, config=config, output_loading_info=True, **kwargs)
    missing = [k for k in info["missing_keys"] if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing:
        raise ValueError(f"{directory}: weights missing for {missing[:5]}{' ...' if len(missing) > 5 else ''}: "
                         f"not a checkpoint of a stock {model_type} model")
    return model, tokenizer, official, layout


def import_official(directory: str | os.PathLike, out: str | os.PathLike, codec: str | None = DEFAULT_CODEC,
                    dtype: str | None = None) -> dict:
    """Write the `TtTModel` directory `out` for the official checkpoint `directory`; returns a summary."""
    from ttt.config import TtTConfig, save_decoding
    from ttt.model import TtTModel

    backbone, tokenizer, official, layout = load_official(directory, dtype)
    config = TtTConfig(audio_codebook_size=layout.codebook_size, text_chunk=13, audio_chunk=26,
                       unmasked_audio_prob=official.get("unmasked_audio_prob", 0.3),
                       prefix_preservation_ratio=official.get("prefix_preservation_ratio", 0.3))
    model = TtTModel(backbone, tokenizer, config)
    out = Path(out)
    model.save_pretrained(out)
    save_decoding(out, OFFICIAL_DECODING)
    (out / "prompts.json").write_text(json.dumps(OFFICIAL_PROMPTS, indent=2) + "\n")
    if codec:
        (out / CODEC_FILE).write_text(json.dumps({"codec": codec}) + "\n")
    summary = {"source": str(directory), "out": str(out), "layout": asdict(layout), "codec": codec,
               "parameters": sum(p.numel() for p in backbone.parameters()), "dtype": str(backbone.dtype)}
    (out / "import_card.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
