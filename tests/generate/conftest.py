"""A tiny TtT model overfit on two conversations, so that greedy decoding produces real audio spans."""
import copy

import pytest
import torch

from helpers import LONG, SHORT
from ttt.training.backbones import tiny_backbone
from ttt.model import TtTModel
from ttt.training.collate import collate_for

@pytest.fixture(scope="session")
def trained(base_tokenizer):
    tok = copy.deepcopy(base_tokenizer)
    model = TtTModel.from_backbone(
        tiny_backbone(len(tok) + 80), tok, audio_codebook_size=64, quad_span_truncation_prob=0.0, unmasked_audio_prob=0.1
    )
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    gen = torch.Generator().manual_seed(0)
    encoded = [model.encode(LONG), model.encode(SHORT)]
    model.train()
    for _ in range(250):
        out = model(**collate_for(model, encoded * 2, train=True, generator=gen), return_logits=False)
        out.loss.backward()
        opt.step()
        opt.zero_grad()
    return model.eval()
