"""A tiny TtT model overfit on two conversations, so that greedy decoding produces real audio spans.

The fixture trains until greedy decoding reproduces what the tests rely on (checked every `CHECK_EVERY`
steps), not for a fixed number of steps: float kernels differ between CPUs (AVX-512, AVX2, the default
path), so a fixed step count converges on one machine and not on another.
"""
import copy

import pytest
import torch

from helpers import LONG, SHORT
from ttt.generate import generate
from ttt.model import TtTModel
from ttt.training.backbones import tiny_backbone
from ttt.training.collate import collate_for

MAX_STEPS, CHECK_EVERY = 1500, 50
EXPECTED = {  # prompt -> (text, audio spans) under greedy decoding
    "LONG": (" chunk 0 the end", [list(range(26)), list(range(9))]),
    "SHORT": ("hi", [[40, 41, 42, 43, 44]]),
}


def learned(model: TtTModel) -> bool:
    """Greedy decoding reproduces both answers under every schedule the tests use."""
    for name, example in (("LONG", LONG), ("SHORT", SHORT)):
        prompt = example["messages"][:-1]
        for kwargs in ({}, {"block_length": 4, "steps": 2}, {"block_length": 7, "steps": 1},
                       {"steps": 13, "threshold": 0.5}, {"stop_threshold": 0.999}):
            r = generate(model, prompt, max_new_tokens=80, **kwargs)
            if (r.text, r.audio_spans) != EXPECTED[name]:
                return False
    return True


@pytest.fixture(scope="session")
def trained(base_tokenizer):
    tok = copy.deepcopy(base_tokenizer)
    model = TtTModel.from_backbone(
        tiny_backbone(len(tok) + 80), tok, audio_codebook_size=64, quad_span_truncation_prob=0.0, unmasked_audio_prob=0.1
    )
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    gen = torch.Generator().manual_seed(0)
    encoded = [model.encode(LONG), model.encode(SHORT)]
    passes = 0  # consecutive checks passed: two in a row, so the answers hold with some margin
    for step in range(1, MAX_STEPS + 1):
        model.train()
        out = model(**collate_for(model, encoded * 2, train=True, generator=gen), return_logits=False)
        out.loss.backward()
        opt.step()
        opt.zero_grad()
        if step % CHECK_EVERY == 0:
            model.eval()
            with torch.no_grad():
                passes = passes + 1 if learned(model) else 0
            if passes == 2:
                return model
    pytest.fail(f"the toy model did not learn its two answers in {MAX_STEPS} steps (loss {out.loss.item():.3f})")


@pytest.fixture(scope="session")
def inductor_cache(tmp_path_factory):
    """Real `torch.compile` on CPU, with an inductor cache of this test session's own: a kernel cached by a
    run under another ATEN_CPU_CAPABILITY (CI runs three) fails to compile here (torch 2.13: vectorised code
    against headers without a vector ISA), and the engine would fall back to eager. Skips without a C++
    compiler, which inductor needs on CPU."""
    import os
    import shutil

    if not (shutil.which("g++") or shutil.which("c++")):
        pytest.skip("torch.compile (inductor) on CPU needs a C++ compiler")
    before = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(tmp_path_factory.mktemp("inductor"))
    yield
    if before is None:
        os.environ.pop("TORCHINDUCTOR_CACHE_DIR")
    else:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = before
