"""The decoding settings a client may change, with the ranges the page's sliders offer.

Names, types and defaults are `ttt.generate.GenerationConfig`'s; this module only says which fields a
remote client may set (not `force_text`, `use_cache` or `max_new_tokens`, which are the server's) and the
ranges a slider spans. Values are validated by `GenerationConfig.check`, the same rule as everywhere."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ttt.config import CFG_CONTEXTS, FINAL_SPAN_DECODING, GenerationConfig


@dataclass(frozen=True)
class Knob:
    """One slider: `off` is the slider value that means None (an optional threshold left unset). A knob
    with `choices` is a menu of those strings instead (its range fields are unused)."""

    name: str
    minimum: float | None
    maximum: float | None
    step: float | None
    help: str
    off: float | None = None
    choices: tuple[str, ...] | None = None

    @classmethod
    def menu(cls, name: str, choices: tuple[str, ...], help: str) -> "Knob":
        return cls(name, None, None, None, help, choices=choices)


KNOBS = [
    Knob("steps", 1, 26, 1, "denoising steps per audio block: fewer is faster, more is cleaner"),
    Knob("block_length", 1, 52, 1, "codes per diffusion block of the final audio span"),
    Knob("max_last_span", 8, 400, 1, "cap on codes in the final audio span (25 codes = 1 s)"),
    Knob("stop_threshold", 0, 1, 0.05, "end the final span where p(end of audio) reaches this (0 = off)", off=0),
    Knob("threshold", 0, 1, 0.05, "commit every masked code whose confidence reaches this (0 = off)", off=0),
    Knob("temperature", 0, 2, 0.05, "text sampling temperature (0 = greedy)"),
    Knob("top_k", 0, 200, 1, "text sampling: keep the k likeliest tokens (0 = all)"),
    Knob("top_p", 0.05, 1, 0.05, "text sampling: nucleus mass"),
    Knob("diffusion_temperature", 0, 2, 0.05, "audio code sampling temperature (0 = greedy)"),
    Knob("cfg_scale", 0, 3, 0.1, "classifier-free guidance on audio (0 = off; doubles the compute)"),
    Knob("seed", 0, 9999, 1, "sampling seed"),
    Knob.menu("cfg_context", CFG_CONTEXTS, "what guidance's unguided row masks: the prompt, or all context (the reference's)"),
    Knob.menu("final_span", FINAL_SPAN_DECODING, "the final span's earlier blocks: cached, or re-run with each new "
                                                 "block as one run (the reference's)"),
]
CLIENT_FIELDS = {k.name for k in KNOBS}
_TYPES = {f.name: f.type for f in fields(GenerationConfig)}


def resolve(base: dict, changes: dict, audio_chunk: int) -> dict:
    """`base` updated by a client's `changes`; ValueError naming the field for an unknown, server-only or
    invalid one. A knob set to its `off` value (or null) is None."""
    if not isinstance(changes, dict):
        raise ValueError(f"settings must be a JSON object, got {type(changes).__name__}")
    merged = dict(base)
    knobs = {k.name: k for k in KNOBS}
    for name, value in changes.items():
        if name not in CLIENT_FIELDS:
            raise ValueError(f"unknown or server-only setting {name!r} (settable: {', '.join(sorted(CLIENT_FIELDS))})")
        if knobs[name].choices is not None:
            if value not in knobs[name].choices:
                raise ValueError(f"setting {name!r} must be one of {', '.join(knobs[name].choices)}, got {value!r}")
            merged[name] = value
            continue
        if value is None or (knobs[name].off is not None and value == knobs[name].off):
            if "None" not in str(_TYPES[name]):
                raise ValueError(f"setting {name!r} cannot be null")
            merged[name] = None
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"setting {name!r} must be a number, got {value!r}")
        if "int" in str(_TYPES[name]) and "float" not in str(_TYPES[name]):
            if float(value) != int(value):
                raise ValueError(f"setting {name!r} must be a whole number, got {value!r}")
            value = int(value)
        merged[name] = value
    GenerationConfig(**merged).check(audio_chunk)
    return merged


def full(settings: dict) -> dict:
    """Every client-settable field with its value in effect (GenerationConfig defaults filled in)."""
    values = asdict(GenerationConfig(**settings))
    return {name: values[name] for name in CLIENT_FIELDS}


def schema(settings: dict) -> list[dict]:
    """The sliders, each with its value in effect, for `GET /v1/model` and the page."""
    values = full(settings)
    return [{**asdict(k), "value": values[k.name]} for k in KNOBS]
