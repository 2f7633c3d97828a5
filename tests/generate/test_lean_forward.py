"""The lean Llama/Qwen2 decoding forward (`ttt.lean_forward`) against the Hugging Face forward it stands in
for: the same hidden states (to float rounding) and the same cache contents, with and without a cache, in a
prefix window and in the fixed-shape window a GPU uses; where it does not apply, the engine keeps the
Hugging Face modules; decoded tokens equal the eager engine's on the shipped model too."""
import pytest
import torch
from transformers.cache_utils import Cache, StaticLayer

from ttt.generate import _PrefixLayer, _eager_decoder, generate
from ttt.lean_forward import LeanDecoder
from ttt.model import TtTModel
from ttt.speech import default_model_dir
from ttt.training.backbones import tiny_backbone

from helpers import LONG, SHORT

CLOSE = dict(rtol=1e-4, atol=1e-5)


def hf(model, ids, doc, spans, pos, offset, cache):
    return model.backbone_forward(ids, doc, spans, pos, q_offset=offset, cache=cache, hidden_only=True)


def random_model(base_tokenizer, family: str, kv_heads: int, **config) -> TtTModel:
    import copy

    tok = copy.deepcopy(base_tokenizer)
    backbone = tiny_backbone(len(tok) + 80, family=family, hidden_size=64, layers=3, heads=4, kv_heads=kv_heads)
    for key, value in config.items():
        setattr(backbone.config, key, value)
    if config:  # rebuild with the changed config (biases, rope scaling), same seed
        torch.manual_seed(1)
        backbone = type(backbone)(backbone.config).eval()
    with torch.no_grad():  # biases and norms away from their zero/one initialisation, so they are exercised
        for name, p in backbone.named_parameters():
            if "bias" in name or "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return TtTModel.from_backbone(backbone, tok, audio_codebook_size=64).eval()


def steps(rows=1):
    """A prompt of 11 tokens (a run of 4 inside it), then a block of 5 as its own run, then one text token."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 300, (rows, 17), generator=g)
    spans = torch.zeros(rows, 17, dtype=torch.long)
    spans[:, 3:7] = 1
    spans[:, 11:16] = 2
    return ids, spans, [(0, 11), (11, 16), (16, 17)]


def run(decoder, model, ids, spans, pieces, window: str):
    """Decode `pieces` one after another through `decoder` with a cache; hidden states and final cache."""
    rows, n_layers, cap = ids.shape[0], model.backbone.config.num_hidden_layers, 24
    full = window == "full"
    cache = Cache(layers=[(StaticLayer if full else _PrefixLayer)(max_cache_len=cap) for _ in range(n_layers)])
    positions = torch.arange(cap)
    spans_all = torch.zeros(rows, cap, dtype=torch.long)
    spans_all[:, : spans.shape[1]] = spans
    outs = []
    for start, end in pieces:
        pos = positions[start:end].expand(rows, -1)
        if full:
            doc = torch.where(positions < end, 0, -1).expand(rows, -1)
            outs.append(decoder(ids[:, start:end], doc, spans_all, pos, positions[start], cache))
        else:
            for layer in cache.layers:
                layer.visible = end
            doc = torch.zeros(rows, end, dtype=torch.long)
            outs.append(decoder(ids[:, start:end], doc, spans_all[:, :end], pos, None, cache))
    return outs, cache


MODELS = [("qwen2", 2, {}), ("qwen2", 4, {}), ("llama", 2, {"attention_bias": True, "mlp_bias": True}),
          ("llama", 1, {"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}})]


@pytest.mark.parametrize("family,kv_heads,config", MODELS, ids=lambda m: str(m))
@pytest.mark.parametrize("window,fuse", [("prefix", None), ("full", None), ("full", False)])
@pytest.mark.parametrize("rows", [1, 2])
@torch.no_grad()
def test_lean_forward_equals_hugging_face_forward(base_tokenizer, family, kv_heads, config, window, fuse, rows):
    """`fuse=False` with the full window is the GPU path (separate projections), run here eagerly."""
    model = random_model(base_tokenizer, family, kv_heads, **config)
    assert LeanDecoder.unsupported(model.backbone) is None
    lean = LeanDecoder(model.backbone, fuse=fuse)
    ids, spans, pieces = steps(rows)
    want, want_cache = run(lambda *a: hf(model, *a), model, ids, spans, pieces, window)
    got, got_cache = run(lean, model, ids, spans, pieces, window)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **CLOSE)
    for a, b in zip(got_cache.layers, want_cache.layers):
        torch.testing.assert_close(a.keys, b.keys, **CLOSE)
        torch.testing.assert_close(a.values, b.values, **CLOSE)
        assert int(a.cumulative_length) == int(b.cumulative_length) == 17
    # without a cache: the whole sequence at once, the TtT mask over all of it
    doc, pos = torch.zeros(rows, 17, dtype=torch.long), torch.arange(17).expand(rows, -1)
    torch.testing.assert_close(lean(ids, doc, spans, pos, None, None), hf(model, ids, doc, spans, pos, None, None), **CLOSE)


@torch.no_grad()
def test_lean_forward_follows_weights_changed_in_place(base_tokenizer):
    """Training between turns (or loading other weights) changes what the concatenated weights must hold."""
    model = random_model(base_tokenizer, "qwen2", 2)
    lean = LeanDecoder(model.backbone)
    ids, spans, _ = steps()
    doc, pos = torch.zeros(1, 17, dtype=torch.long), torch.arange(17)[None]
    before = lean(ids, doc, spans, pos, None, None)
    buffers = [w["qkv"].data_ptr() for w in lean.fused]
    for layer in model.backbone.model.layers:
        layer.self_attn.k_proj.weight.mul_(1.5)
        layer.mlp.up_proj.weight.mul_(0.5)
    after = lean(ids, doc, spans, pos, None, None)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, hf(model, ids, doc, spans, pos, None, None), **CLOSE)
    assert [w["qkv"].data_ptr() for w in lean.fused] == buffers  # refilled in place, not reallocated
    unfused = LeanDecoder(model.backbone, fuse=False)  # the GPU path reads the modules' weights directly
    torch.testing.assert_close(unfused(ids, doc, spans, pos, None, None), after, **CLOSE)
    assert unfused.fused == []


def test_large_models_are_not_fused_by_default(base_tokenizer, monkeypatch):
    """Concatenated copies of a large model's weights would cost memory for a gain its matmuls hide."""
    model = random_model(base_tokenizer, "qwen2", 2)
    assert LeanDecoder(model.backbone).refresh()  # a small model on CPU: fused
    monkeypatch.setattr("ttt.lean_forward.FUSE_UP_TO_BYTES", 1000)
    lean = LeanDecoder(model.backbone)
    assert lean.refresh() is None and lean.copy_bytes > 1000


def test_unsupported_backbones_keep_the_hugging_face_forward(make_model):
    assert "attention implementation 'eager'" in LeanDecoder.unsupported(make_model(attn="eager").backbone)
    model = make_model()
    model.backbone.config.model_type = "mistral"
    assert "model type 'mistral'" in LeanDecoder.unsupported(model.backbone)
    assert not isinstance(_eager_decoder(model), LeanDecoder)
    with pytest.raises(ValueError, match="does not support this backbone: model type 'mistral'"):
        LeanDecoder(model.backbone)
    assert isinstance(_eager_decoder(make_model()), LeanDecoder)


def test_engine_on_the_hugging_face_forward_equals_eager_engine(trained):
    """The fallback path (a backbone the lean forward does not cover) decodes what the eager engine does."""
    trained.backbone.config._attn_implementation = "eager"
    try:
        assert not isinstance(_eager_decoder(trained), LeanDecoder)
        for example in (LONG, SHORT):
            messages = example["messages"][:-1]
            got = generate(trained, messages, max_new_tokens=80)
            assert got.token_ids == generate(trained, messages, max_new_tokens=80, engine="eager").token_ids
    finally:
        trained.backbone.config._attn_implementation = "sdpa"


@pytest.mark.skipif(not (default_model_dir() / "ttt_config.json").is_file(), reason="the default model is not shipped")
def test_shipped_model_lean_forward_and_engine_equal_the_previous_ones():
    torch.set_num_threads(1)
    model = TtTModel.from_pretrained(default_model_dir(), dtype=torch.float32).eval()
    assert isinstance(_eager_decoder(model), LeanDecoder)
    messages = [{"role": "user", "content": "what is six plus three"}]
    ids = model.formatter.encode_prompt(messages).input_ids[None]
    n = ids.shape[1]
    doc, spans, pos = torch.zeros(1, n, dtype=torch.long), torch.zeros(1, n, dtype=torch.long), torch.arange(n)[None]
    with torch.no_grad():
        torch.testing.assert_close(LeanDecoder(model.backbone)(ids, doc, spans, pos, None, None),
                                   hf(model, ids, doc, spans, pos, None, None), **CLOSE)
    for kwargs in ({"max_new_tokens": 60}, {"force_text": "seven plus four is eleven", "steps": 2}):
        new = generate(model, messages, **kwargs)
        old = generate(model, messages, engine="eager", **kwargs)
        assert new.audio_spans and new.token_ids == old.token_ids


@pytest.mark.slow
@pytest.mark.parametrize("family,kv_heads,config", MODELS[::2], ids=lambda m: str(m))
@torch.no_grad()
def test_compiled_lean_forward_equals_hugging_face_forward(base_tokenizer, inductor_cache, family, kv_heads, config):
    """`LeanDecoder.compiled()` (what `compile="inductor"` runs on CPU one-token steps: fused matrix-vector
    reductions over the modules' weights) against the Hugging Face forward, step by step over a prefix."""
    model = random_model(base_tokenizer, family, kv_heads, **config)
    lean = LeanDecoder(model.backbone)
    compiled = lean.compiled(dynamic=True)
    ids, spans, _ = steps(2)
    pieces = [(0, 9)] + [(i, i + 1) for i in range(9, 17)]  # a prompt, then one token at a time
    want, _ = run(lambda *a: hf(model, *a), model, ids, spans, pieces, "prefix")
    got, _ = run(lambda ids_, *a: (compiled if ids_.shape[1] == 1 else lean)(ids_, *a), model, ids, spans, pieces,
                 "prefix")
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **CLOSE)
