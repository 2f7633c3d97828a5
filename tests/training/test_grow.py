"""`ttt grow`: block expansion adds layers yet leaves the model's loss, logits and decoding unchanged."""
import copy

import pytest
import torch

from ttt.cli import main
from ttt.generate import generate
from ttt.training.grow import expand_layers
from ttt.model import TtTModel
from ttt.training.collate import collate_for

from helpers import chat_example

PROMPT = chat_example(n_spans=1, last=9)["messages"][:2]


def _loss(model, examples, seed=0):
    batch = collate_for(model, [model.encode(e) for e in examples], generator=torch.Generator().manual_seed(seed))
    return model(**batch)


@pytest.mark.parametrize("family", ["qwen2", "llama"])
def test_grown_model_computes_what_the_source_did(make_model, family):
    source = make_model(family)
    grown = expand_layers(copy.deepcopy(source))
    assert grown.backbone.config.num_hidden_layers == 4 == len(grown.backbone.model.layers)
    assert [layer.self_attn.layer_idx for layer in grown.backbone.model.layers] == [0, 1, 2, 3]
    examples = [chat_example(n_spans=2, last=9), chat_example(n_spans=1, last=30)]
    with torch.no_grad():
        a, b = _loss(source, examples), _loss(grown, examples)
    torch.testing.assert_close(b.logits, a.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(b.loss, a.loss)
    speak = dict(max_new_tokens=60, steps=2, max_last_span=40, force_text="chunk 0 the end")
    before = generate(source, PROMPT, **speak)
    after = generate(grown, PROMPT, **speak)  # a diffused span against a KV cache keyed by the new layer indices
    assert after.token_ids == before.token_ids and len(after.audio_codes) > 0


def test_new_layers_learn(make_model):
    grown = expand_layers(make_model(), every=2)
    layers = grown.backbone.model.layers
    assert len(layers) == 3 and float(layers[2].self_attn.o_proj.weight.detach().abs().sum()) == 0.0
    grown.train()
    _loss(grown, [chat_example()]).loss.backward()
    twin = layers[2]
    assert twin.self_attn.o_proj.weight.grad.abs().sum() > 0 and twin.mlp.down_proj.weight.grad.abs().sum() > 0


def test_bad_every(make_model):
    with pytest.raises(ValueError, match="positive"):
        expand_layers(make_model(), every=0)
    with pytest.raises(ValueError, match="nothing would be added"):
        expand_layers(make_model(), every=3)


def test_grow_command(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "grown"
    assert main(["grow", str(tiny_model_dir), str(out)]) == 0
    assert "2 -> 4 layers" in capsys.readouterr().out
    grown = TtTModel.from_pretrained(out)
    assert grown.backbone.config.num_hidden_layers == 4
    assert len(grown.backbone.config.layer_types) == 4
    assert main(["grow", str(tiny_model_dir), str(tiny_model_dir)]) == 1
    assert main(["grow", str(tmp_path / "missing"), str(tmp_path / "x")]) == 1
