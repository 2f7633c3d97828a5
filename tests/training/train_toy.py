"""A toy spoken-dialogue data set and a tiny-config factory shared by the training tests."""
from __future__ import annotations

import json
import random
from pathlib import Path

from ttt.training.config import load_config

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"
WORDS = "zero one two three four five six seven eight nine plus minus is what".split()
CODEBOOK = 64


def codes(words: list[str]) -> list[int]:
    """Each word is spoken as three fixed codes, so the audio is learnable from the text."""
    return [(7 * WORDS.index(w) + j) % CODEBOOK for w in words for j in range(3)]


def audio(cs: list[int]) -> str:
    return "".join(f"<|audio_{c}|>" for c in cs)


def spoken(words: list[str], chunk: int = 4) -> str:
    """Assistant content: `chunk` words then their codes in a fixed span, the rest in the last span."""
    parts, i = [], 0
    while len(words) - i > chunk:
        parts.append(" ".join(words[i : i + chunk]) + " <|begin_of_audio|>" + audio(codes(words[i : i + chunk])) + "<|end_of_audio_new|>")
        i += chunk
    parts.append(" ".join(words[i:]) + "<|begin_of_quad|>" + audio(codes(words[i:])) + "<|end_of_audio_span_last|>")
    return "".join(parts)


def example(rng: random.Random) -> dict:
    a, b = rng.randrange(5), rng.randrange(5)
    question = ["what", "is", WORDS[a], "plus", WORDS[b]]
    answer = [WORDS[a], "plus", WORDS[b], "is", WORDS[a + b]]
    return {"messages": [
        {"role": "user", "content": "<|begin_of_audio|>" + audio(codes(question)) + "<|end_of_audio|>"},
        {"role": "assistant", "content": spoken(answer)},
    ]}


def write_toy(path: Path, n: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    path.write_text("".join(json.dumps(example(rng)) + "\n" for _ in range(n)))
    return path


def toy_config(tmp: Path, n_train: int = 24, n_valid: int = 8, **overrides):
    """configs/tiny.yaml shrunk to a seconds-long CPU run on toy data."""
    tmp.mkdir(parents=True, exist_ok=True)
    train = write_toy(tmp / "train.jsonl", n_train, seed=0)
    valid = write_toy(tmp / "valid.jsonl", n_valid, seed=1)
    settings = {
        "data.train": str(train), "data.valid": str(valid), "out_dir": str(tmp / "run"),
        "backbone.hidden_size": 32, "backbone.layers": 2, "backbone.intermediate_size": 64,
        "backbone.tokenizer_vocab_size": 300, "ttt.audio_codebook_size": CODEBOOK,
        "optim.warmup_steps": 2, "optim.lr": 3e-3, "precision": "fp32", "batch_size": 4,
        "max_steps": 8, "eval_interval": 4, "save_interval": 4, "log_interval": 1, "eval_batch_size": 8,
    }
    settings.update(overrides)
    return load_config(CONFIG, settings)


def read_log(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
