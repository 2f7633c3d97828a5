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
from ttt.fields import convert, from_mapping

SOURCES = ("tiny", "hf", "ttt")
PRECISIONS = ("auto", "fp32", "bf16")
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class DataConfig:
    """Where the examples come from (`.jsonl`, `.json` or a `datasets` directory). Without `valid` nor
    `valid_fraction`, no validation runs."""

    # one file or a list, read in order and trained on as one set (a corpus + extra TTS examples built alike)
    train: str | list[str] = ""
    valid: str | None = None  # validation file (same formats)
    valid_fraction: float = 0.0  # without `valid`: this share of the training examples is held out (seeded)
    split: str = "train"  # split of a `datasets` directory to train on
    valid_split: str = "validation"  # and to validate on
    skip_malformed: bool = False  # drop bad lines/examples with one warning instead of failing
    pack: bool = False  # first-fit pack examples into rows of `ttt.max_length`
    bucket_pools: int = 50  # batches per pool sorted by length (length bucketing, data.BatchSampler)

    @property
    def train_files(self) -> list[str]:
        return [self.train] if isinstance(self.train, str) else list(self.train)


@dataclass
class BackboneConfig:
    """The model trained: a tiny one built here, a Hugging Face checkpoint, or a TtT model to continue."""

    # "tiny": built here (sizes below); "hf": `path` is a Hugging Face checkpoint directory; "ttt": `path` is a
    # TtT model directory (as written by `save_pretrained` or a checkpoint)
    source: str = "tiny"
    path: str | None = None
    gguf_file: str | None = None  # "hf": a GGUF file inside `path` (or an absolute path)
    family: str = "qwen2"  # "tiny": "qwen2" or "llama"
    hidden_size: int = 64  # "tiny" sizes from here to max_positions
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    intermediate_size: int | None = None
    max_positions: int = 4096
    # "tiny": a tokenizer directory (e.g. the one `ttt data build` writes, so that the data's text chunks are
    # the model's tokens); None trains a BPE of `tokenizer_vocab_size` on the training texts
    tokenizer: str | None = None
    tokenizer_vocab_size: int = 512
    attn_implementation: str = "auto"  # "auto": dense SDPA, Flex on a GPU from FLEX_FROM_TOKENS tokens; or any HF value


@dataclass
class OptimConfig:
    """AdamW with linear warm-up then cosine decay."""

    lr: float = 1e-3  # peak learning rate
    min_lr_ratio: float = 0.1  # the cosine ends at min_lr_ratio * lr (at max_steps)
    warmup_steps: int = 0  # linear warm-up from 0
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0  # global gradient-norm clip; 0 disables clipping


@dataclass
class LoraSettings:
    """LoRA (peft) on the attention and MLP projections."""

    enabled: bool = False
    r: int = 16  # adapter rank
    alpha: int = 32  # LoRA scaling numerator (scale = alpha / r)
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: list(LORA_TARGETS))
    # also train the embedding (and untied output) rows of the tokens TtT added — audio codes and specials —
    # which LoRA alone would leave at their random initialisation
    train_ttt_tokens: bool = True


@dataclass
class TrainConfig:
    """One training run (the YAML file's top level); the global batch is `batch_size * grad_accum * processes`."""

    data: DataConfig = field(default_factory=DataConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    ttt: dict[str, Any] = field(default_factory=dict)  # TtTConfig fields, applied over the backbone source's
    optim: OptimConfig = field(default_factory=OptimConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    out_dir: str = "runs/ttt"  # checkpoints/, log.jsonl, final/
    max_steps: int = 1000  # optimizer steps; the learning-rate schedule runs over them
    # wall-clock budget: stop after the first step at which this many minutes were spent in the training
    # loop (summed over resumed runs), or at max_steps if that comes first
    max_minutes: float | None = None
    # plateau stop: after this many validations in a row whose `valid_loss` is not below the best so far by more
    # than `early_stop_min_delta`, stop (validated, saved and exported as at max_steps); None: off. The
    # learning-rate schedule still runs over max_steps, which becomes a cap
    early_stop_patience: int | None = None
    early_stop_min_delta: float = 0.0
    batch_size: int = 8  # examples per micro-batch per process
    grad_accum: int = 1  # micro-batches per optimizer step
    eval_batch_size: int = 16
    eval_interval: int = 200  # steps between validations
    max_eval_batches: int | None = None  # cap on validation batches (spread over lengths); None: all
    save_interval: int = 500  # steps between checkpoints
    keep_last: int = 3  # newest checkpoints kept ...
    keep_every: int | None = None  # ... plus those at multiples of this, for averaging weights over the run
    log_interval: int = 10  # steps between log lines
    seed: int = 0  # model init, data order, noising
    precision: str = "auto"  # "auto": bf16 where the GPU supports it, else fp32
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
        e = self.early_stop_patience
        if e is not None and (isinstance(e, bool) or not isinstance(e, int) or e <= 0):
            raise ValueError(f"early_stop_patience must be a positive number of validations (or null), got {e!r}")
        if e is not None and not (self.data.valid or self.data.valid_fraction > 0):
            raise ValueError("early_stop_patience needs validation data (data.valid or data.valid_fraction)")
        if not self.early_stop_min_delta >= 0:
            raise ValueError(f"early_stop_min_delta must be >= 0, got {self.early_stop_min_delta}")
        self.ttt_config()
        if self.data.pack and self.ttt.get("max_length") is None:
            raise ValueError("data.pack needs ttt.max_length (the packed row length)")

    def ttt_config(self, base: TtTConfig | None = None) -> TtTConfig:
        """The TtT settings: `base` (or the defaults) updated with this config's `ttt` section."""
        return from_mapping(TtTConfig, {**dataclasses.asdict(base or TtTConfig()), **self.ttt}, "ttt")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# settings a resumed run may not change: they decide the shapes of the weights, the vocabulary or the format
ARCHITECTURE = {
    "backbone": ("source", "family", "hidden_size", "layers", "heads", "kv_heads", "intermediate_size",
                 "max_positions", "tokenizer_vocab_size"),
    "lora": ("enabled", "r", "alpha", "target_modules", "train_ttt_tokens"),
    "ttt": ("audio_codebook_size", "text_chunk", "audio_chunk", "mode"),
}


def architecture_changes(saved: dict, cfg: TrainConfig) -> list[str]:
    """`key=old (now new)` for each architecture setting of `cfg` that differs from a saved run's config
    (`TrainConfig.to_dict()` as stored in its checkpoints)."""
    now = cfg.to_dict()
    changes = []
    for section, keys in ARCHITECTURE.items():
        old_section, new_section = saved.get(section) or {}, now.get(section) or {}
        for key in keys:
            old, new = old_section.get(key), new_section.get(key)
            if isinstance(old, list) or isinstance(new, list):
                old, new = list(old or []), list(new or [])
            if old != new:
                changes.append(f"{section}.{key}={old!r} (now {new!r})")
    return changes


def _build(cls, data: Any, where: str, section: str = "", overridden: frozenset[str] = frozenset()):
    """A dataclass from a dict, recursing into dataclass-typed fields; unknown keys and values of the wrong
    type are errors naming the key and where it came from (the YAML file or a `--set` override)."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: {section or 'the config'} must be a mapping, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        keys = sorted(f"{section}{k}" for k in unknown)
        raise ValueError(f"{where}: unknown keys {keys} (known: {sorted(known)})")
    kwargs = {}
    for name, value in data.items():
        dotted = f"{section}{name}"
        origin = f"--set {dotted}" if dotted in overridden else f"{where}: {dotted}"
        sub = known[name].default_factory if known[name].default_factory is not dataclasses.MISSING else None
        if sub is not None and dataclasses.is_dataclass(sub):
            value = _build(sub, value, where, f"{dotted}.", overridden)
        else:
            value = convert(cls, name, value, origin)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as err:  # a __post_init__ comparison on a value the types let through
        raise ValueError(f"{where}: {err}") from None


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
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise ValueError(f"override {text!r}: the value is not valid YAML ({_first_line(err)})") from None


def _first_line(err: Exception) -> str:
    return " ".join(str(err).split())


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a YAML config (or start from defaults) and apply dotted-key overrides."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no config file {path}")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: not valid YAML ({_first_line(err)})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the config must be a YAML mapping")
    for key, value in (overrides or {}).items():
        _set(data, key, value)
    return _build(TrainConfig, data, str(path or "config"), overridden=frozenset(overrides or {}))
