"""Training configuration: nested dataclasses read from YAML, with `section.key=value` overrides.

The YAML file mirrors the dataclasses (see `configs/tiny.yaml`); unknown keys are errors, so a typo
never silently trains with a default. The TtT settings stay a plain dict (`ttt:`) that is validated
by `TtTConfig` and applied on top of whatever the backbone source provides.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ttt.config import TtTConfig

SOURCES = ("tiny", "hf", "ttt")
PRECISIONS = ("auto", "fp32", "bf16")
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class DataConfig:
    """train/valid: `.jsonl`, `.json` or a `datasets` directory; `train` may also be a list of them, read in
    order and trained on as one set (e.g. a corpus plus extra TTS examples built the same way). Without
    `valid`, `valid_fraction` of the training examples is held out (seeded); with neither, no validation runs."""

    train: str | list[str] = ""
    valid: str | None = None
    valid_fraction: float = 0.0
    split: str = "train"
    valid_split: str = "validation"
    skip_malformed: bool = False
    pack: bool = False
    bucket_pools: int = 50

    @property
    def train_files(self) -> list[str]:
        return [self.train] if isinstance(self.train, str) else list(self.train)


@dataclass
class BackboneConfig:
    """source "tiny": a Qwen2/Llama built here with the tokenizer at `tokenizer` (a directory, e.g. the one
    `ttt data build` writes, so that text chunks in the data match the model's tokens) or, without it, a
    BPE tokenizer trained on the training texts;
    "hf": `path` is a Hugging Face checkpoint directory (with `gguf_file`, a GGUF file inside it);
    "ttt": `path` is a TtT model directory (as written by `save_pretrained` or a checkpoint).
    attn_implementation "auto" is sdpa with the dense mask, or flex_attention on a GPU for rows of
    `ttt.max_length` >= `ttt.train.FLEX_FROM_TOKENS` tokens, where Flex measured faster."""

    source: str = "tiny"
    path: str | None = None
    gguf_file: str | None = None
    family: str = "qwen2"
    hidden_size: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    intermediate_size: int | None = None
    max_positions: int = 4096
    tokenizer: str | None = None
    tokenizer_vocab_size: int = 512
    attn_implementation: str = "auto"


@dataclass
class OptimConfig:
    """AdamW with linear warm-up then cosine decay to `min_lr_ratio * lr`; `grad_clip` 0 disables clipping."""

    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 0
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0


@dataclass
class LoraSettings:
    """LoRA on the attention and MLP projections. `train_ttt_tokens` also trains the embedding (and
    untied output) rows of the tokens TtT added — audio codes and specials — which LoRA alone would
    leave at their random initialisation."""

    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: list(LORA_TARGETS))
    train_ttt_tokens: bool = True


@dataclass
class TrainConfig:
    """One training run. `batch_size` is examples per micro-batch per process; the global batch is
    `batch_size * grad_accum * processes`. `max_minutes` is a wall-clock budget: training stops after the
    first step at which that much time was spent in the training loop (summed over resumed runs), or at
    `max_steps`, whichever comes first; the learning-rate schedule still runs over `max_steps`. Checkpoints
    beyond the newest `keep_last` are deleted, except those at multiples of `keep_every`, kept so that the
    weights can be averaged over the whole run."""

    data: DataConfig = field(default_factory=DataConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    ttt: dict[str, Any] = field(default_factory=dict)
    optim: OptimConfig = field(default_factory=OptimConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    out_dir: str = "runs/ttt"
    max_steps: int = 1000
    max_minutes: float | None = None
    batch_size: int = 8
    grad_accum: int = 1
    eval_batch_size: int = 16
    eval_interval: int = 200
    max_eval_batches: int | None = None
    save_interval: int = 500
    keep_last: int = 3
    keep_every: int | None = None
    log_interval: int = 10
    seed: int = 0
    precision: str = "auto"
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        if not self.data.train:
            raise ValueError("data.train is required")
        if self.backbone.source not in SOURCES:
            raise ValueError(f"backbone.source must be one of {SOURCES}, got {self.backbone.source!r}")
        if self.backbone.source != "tiny" and not self.backbone.path:
            raise ValueError(f"backbone.source {self.backbone.source!r} needs backbone.path")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("max_steps", "batch_size", "grad_accum", "eval_batch_size", "eval_interval",
                     "save_interval", "keep_last", "log_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        k = self.keep_every
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k <= 0):
            raise ValueError(f"keep_every must be a positive step count (or null), got {k!r}")
        if k is not None and k % self.save_interval:
            raise ValueError(f"keep_every ({self.keep_every}) must be a multiple of save_interval ({self.save_interval}): "
                             "only saved steps can be kept")
        m = self.max_minutes
        if m is not None and (isinstance(m, bool) or not isinstance(m, (int, float)) or not m > 0):
            raise ValueError(f"max_minutes must be positive (or null for no time budget), got {self.max_minutes}")
        self.ttt_config()
        if self.data.pack and self.ttt.get("max_length") is None:
            raise ValueError("data.pack needs ttt.max_length (the packed row length)")

    def ttt_config(self, base: TtTConfig | None = None) -> TtTConfig:
        """The TtT settings: `base` (or the defaults) updated with this config's `ttt` section."""
        return dataclasses.replace(base or TtTConfig(), **self.ttt)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _build(cls, data: Any, where: str):
    """A dataclass from a dict, recursing into dataclass-typed fields; unknown keys are errors."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)} (known: {sorted(known)})")
    kwargs = {}
    for name, value in data.items():
        sub = known[name].default_factory if known[name].default_factory is not dataclasses.MISSING else None
        if sub is not None and dataclasses.is_dataclass(sub):
            value = _build(sub, value, f"{where}.{name}")
        elif name == "betas":
            value = tuple(value)
        elif isinstance(value, str) and known[name].type in ("float", "float | None"):
            value = _float(value, f"{where}.{name}")
        kwargs[name] = value
    return cls(**kwargs)


def _float(text: str, where: str) -> float:
    """YAML 1.1 reads `1e-3` (no dot) as a string; a float field takes it as the number it spells."""
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{where}: expected a number, got {text!r}") from None


def _set(data: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        data = data.setdefault(key, {})
        if not isinstance(data, dict):
            raise ValueError(f"override {dotted!r}: {key!r} is not a section")
    data[leaf] = value


def parse_override(text: str) -> tuple[str, Any]:
    """`section.key=value`, the value parsed as YAML (so `3`, `1e-4`, `true`, `[a, b]`, `null` work)."""
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like section.key=value")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML config (or start from defaults) and apply dotted-key overrides."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no config file {path}")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the config must be a YAML mapping")
    for key, value in (overrides or {}).items():
        _set(data, key, value)
    return _build(TrainConfig, data, str(path or "config"))
