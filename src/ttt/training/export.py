"""`ttt export`: turn a training checkpoint into a release model directory.

A checkpoint carries optimizer state and full-precision weights; a release needs neither. The export
keeps what `SpeechLM.from_dir` reads — weights (optionally cast to float16, which halves the size; they
are upcast to float32 on load, and the stage-3 default model then spoke 9 of 10 valid TTS sentences with
the very same codes, 454 of 459 codes in all), HF config, tokenizer,
`ttt_config.json` — and writes `decoding.json`, the decoding settings the model was measured with, so
that `ttt demo` and `ttt eval` decode it the same way without flags.

Several sources are averaged weight by weight (checkpoint averaging, as in Transformer NMT and SWA):
the last checkpoints of one run sit around the same minimum, and their mean is often better than any
one of them. Whether it is, is for each run to measure: on the default model's stage 4c, the mean of
the last four checkpoints had valid TTS WER 0.230 and step 2,000 alone 0.206, within the noise of 80
sentences.
"""
from __future__ import annotations

from pathlib import Path

DTYPES = ("float32", "float16", "bfloat16")


def export_model(source: str | Path | list, out: str | Path, dtype: str = "float32",
                 decoding: dict | None = None) -> Path:
    """Write the release directory `out` from one TtT model directory, or the weight average of several
    (`source` a list; config and tokenizer come from the first); return `out`."""
    import torch

    from ttt.config import check_decoding, save_decoding
    from ttt.hub import read_card, write_model_card
    from ttt.model import TtTModel
    from ttt.training.checkpoint import is_lora_checkpoint

    sources = [Path(s) for s in (source if isinstance(source, list) else [source])]
    out = Path(out)
    if not sources:
        raise ValueError("export needs at least one source directory")
    for src in sources:
        if is_lora_checkpoint(src):
            raise ValueError(f"{src} is a LoRA checkpoint (adapters only): export the run's final/ directory, "
                             "where the adapters are merged into the backbone")
        if out.resolve() == src.resolve():
            raise ValueError("export into a new directory, not over a checkpoint it reads")
    if dtype not in DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    settings = dict(decoding or {})
    check_decoding(settings, "decoding setting")  # unknown keys and bad values fail before anything is written
    model = TtTModel.from_pretrained(sources[0], dtype=torch.float32)
    if len(sources) > 1:
        model.backbone.load_state_dict(_average(model, sources))
    model.backbone.to(getattr(torch, dtype))
    model.save_pretrained(out)
    if settings:
        save_decoding(out, settings)
    write_model_card(out, training=read_card(sources[0]).get("training"))  # now with decoding.json
    return out


def _average(first, sources: list[Path]) -> dict:
    """The mean of the sources' backbone weights; every source must have the first one's TtT config,
    vocabulary and tensor shapes, or the mean would mix different models."""
    import torch

    from ttt.model import TtTModel

    total = {k: v.detach().to(torch.float64).clone() for k, v in first.backbone.state_dict().items()}
    for src in sources[1:]:
        other = TtTModel.from_pretrained(src, dtype=torch.float32)
        if other.config != first.config or len(other.tokenizer) != len(first.tokenizer):
            raise ValueError(f"{src} is not the same model as {sources[0]} (TtT config or vocabulary differs)")
        weights = other.backbone.state_dict()
        if weights.keys() != total.keys() or any(weights[k].shape != total[k].shape for k in total):
            raise ValueError(f"{src} has other weight names or shapes than {sources[0]}")
        for k in total:
            total[k] += weights[k].to(torch.float64)
    return {k: (v / len(sources)).to(torch.float32) for k, v in total.items()}
