"""Codes -> log-mel network: the learned half of the built-in codec's decoder (Griffin-Lim does the rest).

ConvNeXt-style 1-D blocks (depthwise conv + pointwise MLP, as in Vocos) first mix context at the code
rate; a linear layer then expands each code into its `upsample` mel frames (a learned transposed
convolution with stride = kernel), and narrow blocks smooth the transitions at the mel rate.
Convolutions only: the output for a code depends on a bounded neighbourhood (about +-8 codes), which
keeps streaming decode of short spans possible.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class DecoderConfig:
    """Shape of a `MelDecoder`; stored in the codec's config.json."""

    codebook_size: int = 1024
    code_dim: int = 0  # >0: also feed each code's (standardised) centroid, so rare codes decode like their neighbours
    upsample: int = 8  # mel frames per code (100 Hz mel / 12.5 Hz codes)
    n_mels: int = 80
    dim: int = 256
    mel_dim: int = 128  # the mel-rate blocks run on `upsample` times more frames, so they are kept narrow
    code_layers: int = 4
    mel_layers: int = 3
    code_kernel: int = 5
    mel_kernel: int = 7

    def to_dict(self) -> dict:
        return asdict(self)


class ConvNeXtBlock(nn.Module):
    """Depthwise conv for local context, then a per-frame MLP; residual, pre-norm after the conv."""

    def __init__(self, dim: int, kernel: int, mlp_ratio: int = 2):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D)
        h = self.dwconv(x.transpose(1, 2)).transpose(1, 2)
        return x + self.mlp(self.norm(h))


class MelDecoder(nn.Module):
    """(B, T) codes -> (B, T * upsample, n_mels) natural-log mel. Index `codebook_size` is padding.

    With `code_dim`, the codebook's centroids (plus a zero padding row) live in the `centroids` buffer:
    a code the target voice rarely uses (e.g. one fitted on another speaker) still lands near the
    embedding of its acoustic neighbours instead of an untrained vector."""

    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.config = config
        c = config
        self.embed = nn.Embedding(c.codebook_size + 1, c.dim)
        if c.code_dim:
            self.register_buffer("centroids", torch.zeros(c.codebook_size + 1, c.code_dim))
            self.project = nn.Linear(c.code_dim, c.dim)
        self.code_blocks = nn.ModuleList(ConvNeXtBlock(c.dim, c.code_kernel) for _ in range(c.code_layers))
        self.expand = nn.Linear(c.dim, c.upsample * c.mel_dim)
        self.mel_blocks = nn.ModuleList(ConvNeXtBlock(c.mel_dim, c.mel_kernel) for _ in range(c.mel_layers))
        self.norm = nn.LayerNorm(c.mel_dim)
        self.out = nn.Linear(c.mel_dim, c.n_mels)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        x = self.embed(codes)
        if self.config.code_dim:
            x = x + self.project(self.centroids[codes])
        for block in self.code_blocks:
            x = block(x)
        batch, n_codes, _ = x.shape
        x = self.expand(x).reshape(batch, n_codes * self.config.upsample, self.config.mel_dim)
        for block in self.mel_blocks:
            x = block(x)
        return self.out(self.norm(x))


def masked_l1(prediction: torch.Tensor, target: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean absolute log-mel error over the real (unpadded) frames of each item."""
    frames = torch.arange(prediction.shape[1], device=prediction.device)
    mask = (frames[None, :] < lengths[:, None]).unsqueeze(-1)
    error = F.l1_loss(prediction, target, reduction="none") * mask
    return error.sum() / (mask.sum() * prediction.shape[-1]).clamp(min=1)
