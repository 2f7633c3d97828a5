"""Train the built-in codec from audio JSONL files: k-means on all voices, decoder on the target voice.

The encoder's codebook is fitted on every voice in the data so that questions from any speaker land on
codes that mean the same; the decoder is trained only on the target voice (piper joe), because the
assistant always answers in that voice and one voice is much easier to render from 12.5 codes/s.
"""
from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ttt.audio.codec import VQCodecConfig, VQMelCodec
from ttt.audio.decoder import DecoderConfig, MelDecoder, masked_l1
from ttt.audio.features import make_feature_extractor, pool
from ttt.audio.io import load_audio, resample
from ttt.audio.kmeans import fit_kmeans, nearest
from ttt.audio.vocoder import MelConfig, MelSpectrogram
from ttt.files import read_jsonl

log = logging.getLogger(__name__)


@dataclass
class CodecFitConfig:
    """How `ttt codec train` fits the codec (the saved codec itself is described by `VQCodecConfig`)."""

    features: str = "whisper"  # "whisper" (tiny.en encoder) or "logmel" (speaker-dependent baseline)
    pool: int = 2  # 25 codes/s, as the shipped codec: other voices' words survive far better than at 12.5/s (pool 4,
    # GLM-4-Voice's rate), on open and closed speech alike (benchmarks/codec_results.md)
    codebook_size: int = 1024  # k-means centroids = audio codes
    target_voice: str = "piper"  # voice-name prefix the decoder learns to render
    max_kmeans_utterances: int = 4000  # utterances sampled for k-means (all voices)
    max_decoder_utterances: int = 4000  # target-voice utterances sampled for the decoder
    kmeans_iters: int = 30
    steps: int = 2000  # decoder training steps
    batch_size: int = 16  # decoder batch
    lr: float = 2e-3  # decoder learning rate
    dim: int = 256  # decoder width
    code_layers: int = 4  # decoder blocks at the code rate (each widens the context by `code_kernel - 1` codes)
    centroid_input: bool = True  # the decoder sees each code's centroid as well as its embedding
    seed: int = 0
    device: str = "cpu"  # where the decoder trains (features and k-means stay on the CPU); saved weights are CPU


def read_rows(paths: list[str | Path]) -> list[dict]:
    """Rows of audio JSONL files with `audio` made absolute (it is relative to the file's folder)."""
    rows = []
    for path in paths:
        path = Path(path)
        for line_number, row in read_jsonl(path):
            if "audio" not in row:
                raise ValueError(f"{path}:{line_number}: row has no 'audio' field")
            row["audio"] = str((path.parent / row["audio"]).resolve())
            rows.append(row)
    if not rows:
        raise ValueError(f"no audio rows in {[str(p) for p in paths]}")
    return rows


def is_target(row: dict, prefix: str) -> bool:
    return str(row.get("voice", "")).startswith(prefix)


def _subsample(rows: list[dict], n: int, rng: random.Random) -> list[dict]:
    return rows if len(rows) <= n else rng.sample(rows, n)


def train_codec(data: list[str | Path], out_dir: str | Path, config: CodecFitConfig = CodecFitConfig()) -> VQMelCodec:
    """Fit the codebook, train the decoder, save to `out_dir` and return the codec as reloaded from disk."""
    start = time.time()
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    rows = read_rows(data)
    target_rows = [r for r in rows if is_target(r, config.target_voice)]
    if not target_rows:
        raise ValueError(f"no rows with a voice starting with {config.target_voice!r} in {data}")
    kmeans_rows = _subsample(rows, config.max_kmeans_utterances, rng)
    decoder_rows = _subsample(target_rows, config.max_decoder_utterances, rng)
    log.info("%d rows (%d target voice); k-means on %d, decoder on %d", len(rows), len(target_rows), len(kmeans_rows), len(decoder_rows))

    extractor = make_feature_extractor(config.features)
    mel_config = MelConfig()
    mel = MelSpectrogram(mel_config)
    pooled: dict[str, np.ndarray] = {}
    mels: dict[str, torch.Tensor] = {}
    needed = {r["audio"]: r for r in kmeans_rows + decoder_rows}
    decoder_paths = {r["audio"] for r in decoder_rows}
    for path in tqdm(sorted(needed), desc="features", unit="utt"):
        wave, sr = load_audio(path)
        wave = resample(wave, sr, extractor.sample_rate)
        pooled[path] = pool(extractor(wave), config.pool)
        if path in decoder_paths:
            mels[path] = mel(resample(wave, extractor.sample_rate, mel_config.sample_rate))

    frames = torch.from_numpy(np.concatenate([pooled[r["audio"]] for r in kmeans_rows]))
    mean, std = frames.mean(0), frames.std(0).clamp(min=1e-5)
    with tqdm(total=config.kmeans_iters, desc="k-means", unit="iter") as bar:
        centroids = fit_kmeans((frames - mean) / std, config.codebook_size, config.kmeans_iters, config.seed, lambda _: bar.update())

    upsample = round(mel_config.frame_rate * config.pool / 50.0)
    items = []
    for path in sorted(decoder_paths):
        codes = nearest((torch.from_numpy(pooled[path]) - mean) / std, centroids)
        target = mels[path][: len(codes) * upsample]
        items.append((codes, target))
    usage = torch.bincount(torch.cat([c for c, _ in items]), minlength=config.codebook_size)
    log.info("target-voice code usage: %d of %d codes", int((usage > 0).sum()), config.codebook_size)

    decoder_config = DecoderConfig(
        codebook_size=config.codebook_size,
        code_dim=centroids.shape[1] if config.centroid_input else 0,
        upsample=upsample,
        n_mels=mel_config.n_mels,
        dim=config.dim,
        code_layers=config.code_layers,
    )
    decoder, losses = train_decoder(items, decoder_config, config, centroids)

    codec_config = VQCodecConfig(
        features=config.features,
        pool=config.pool,
        codebook_size=config.codebook_size,
        mel=mel_config.to_dict(),
        decoder=decoder_config.to_dict(),
        trained_on={
            "data": [str(p) for p in data],
            "kmeans_utterances": len(kmeans_rows),
            "decoder_utterances": len(decoder_rows),
            "steps": config.steps,
            "final_train_l1": losses[-1] if losses else None,
            "minutes": round((time.time() - start) / 60, 1),
        },
    )
    tensors = {"centroids": centroids, "feature_mean": mean, "feature_std": std}
    tensors.update({f"decoder.{k}": v for k, v in decoder.state_dict().items()})
    VQMelCodec(codec_config, tensors).save(out_dir)
    log.info("saved codec to %s after %.1f min", out_dir, (time.time() - start) / 60)
    return VQMelCodec.load(out_dir)


def _batch(items: list[tuple[torch.Tensor, torch.Tensor]], pad_code: int, upsample: int):
    n_codes = max(len(c) for c, _ in items)
    codes = torch.full((len(items), n_codes), pad_code, dtype=torch.long)
    target = torch.zeros(len(items), n_codes * upsample, items[0][1].shape[1])
    lengths = torch.zeros(len(items), dtype=torch.long)
    for i, (c, m) in enumerate(items):
        codes[i, : len(c)] = c
        target[i, : len(m)] = m
        lengths[i] = len(m)
    return codes, target, lengths


def train_decoder(items, decoder_config: DecoderConfig, config: CodecFitConfig, centroids: torch.Tensor,
                  init: dict | None = None) -> tuple[MelDecoder, list[float]]:
    """AdamW with linear warm-up and cosine decay on masked L1 between predicted and real log-mel; `init`
    (a decoder state dict) starts from trained weights instead of random ones."""
    decoder = MelDecoder(decoder_config)
    if init is not None:
        decoder.load_state_dict(init)
    if decoder_config.code_dim:
        decoder.centroids[: len(centroids)] = centroids
    device = torch.device(config.device)
    decoder.to(device)
    optimizer = torch.optim.AdamW(decoder.parameters(), lr=config.lr, weight_decay=0.01)
    warmup = max(1, config.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, config.steps))))
    )
    rng = random.Random(config.seed)
    losses = []
    decoder.train()
    with tqdm(range(config.steps), desc="decoder", unit="step") as bar:
        for step in bar:
            codes, target, lengths = _batch(rng.sample(items, min(config.batch_size, len(items))), decoder_config.codebook_size, decoder_config.upsample)
            codes, target, lengths = codes.to(device), target.to(device), lengths.to(device)
            loss = masked_l1(decoder(codes), target, lengths)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(decoder.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            if step % 50 == 0:
                bar.set_postfix(l1=f"{np.mean(losses[-50:]):.3f}")
    decoder.to("cpu").eval()
    return decoder, losses


def _target_items(codec, data: list[str | Path], config: CodecFitConfig, mel: MelSpectrogram,
                  upsample: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(codes, log-mel frames) of the target voice's rows of `data` (at most `max_decoder_utterances`):
    what a decoder for `codec`'s codes trains on."""
    rows = [r for r in read_rows(data) if is_target(r, config.target_voice)]
    if not rows:
        raise ValueError(f"no rows with a voice starting with {config.target_voice!r} in {data}")
    items = []
    for row in tqdm(_subsample(rows, config.max_decoder_utterances, random.Random(config.seed)), desc="encode", unit="utt"):
        wave, sr = load_audio(row["audio"])
        codes = torch.tensor(codec.encode(wave, sr), dtype=torch.long)
        items.append((codes, mel(resample(wave, sr, mel.config.sample_rate))[: len(codes) * upsample]))
    return items


def train_code_decoder(codec, data: list[str | Path], out_dir: str | Path, config: CodecFitConfig = CodecFitConfig()):
    """Train a `MelDecoder` for the codes of a codec around released weights (`ttt.audio.pretrained`), on
    the target voice's rows of `data` (all rows when `target_voice` is empty); save the codec with it to
    `out_dir` (its config names the released weights, which are not copied) and return it reloaded."""
    from dataclasses import asdict

    start = time.time()
    torch.manual_seed(config.seed)
    mel_config = MelConfig()
    upsample = mel_config.frame_rate / codec.frame_rate
    if upsample != int(upsample):
        raise ValueError(f"the decoder needs a whole number of {mel_config.frame_rate:g} Hz mel frames per code; "
                         f"this codec has {codec.frame_rate:g} codes/s")
    items = _target_items(codec, data, config, MelSpectrogram(mel_config), int(upsample))
    decoder_config = DecoderConfig(codebook_size=codec.codebook_size, code_dim=0, upsample=int(upsample),
                                   n_mels=mel_config.n_mels, dim=config.dim, code_layers=config.code_layers)
    decoder, losses = train_decoder(items, decoder_config, config, torch.empty(0))
    trained_on = {"data": [str(p) for p in data], "decoder_utterances": len(items), "steps": config.steps,
                  "final_train_l1": losses[-1] if losses else None, "minutes": round((time.time() - start) / 60, 1)}
    codec.attach_decoder(asdict(decoder_config), mel_config.to_dict(), decoder.state_dict(), trained_on=trained_on)
    codec.save(out_dir)
    log.info("saved %s codec with a trained decoder to %s", codec.codec_type, out_dir)
    return type(codec).load(out_dir)


def retrain_vq_decoder(codec: VQMelCodec, data: list[str | Path], out_dir: str | Path,
                       config: CodecFitConfig = CodecFitConfig(), warm_start: bool = False) -> VQMelCodec:
    """Train a built-in codec's decoder again on new target-voice speech, keeping its encoder.

    The codebook and feature statistics stay as they are, so every code a model was trained on keeps its
    meaning and the model needs no retraining: only what the codes sound like is learnt again (e.g. on
    open-vocabulary sentences, which the closed-world decoder never heard). The decoder gets
    `config.dim` and `config.code_layers` (a wider or deeper one than the codec had, if asked);
    `warm_start` starts from the codec's own decoder weights (fewer steps needed), which needs its shape.
    """
    from dataclasses import asdict, replace

    start = time.time()
    torch.manual_seed(config.seed)
    old = codec.decoder.config
    decoder_config = replace(old, dim=config.dim, code_layers=config.code_layers)
    if warm_start and decoder_config != old:
        raise ValueError(f"a warm start keeps the decoder's shape (dim {old.dim}, {old.code_layers} code layers); "
                         f"got dim {config.dim}, {config.code_layers} code layers")
    items = _target_items(codec, data, config, codec.mel, decoder_config.upsample)
    init = codec.decoder.state_dict() if warm_start else None
    decoder, losses = train_decoder(items, decoder_config, config, codec.centroids, init)
    trained_on = {
        "encoder_from": codec.config.trained_on,
        "data": [str(p) for p in data],
        "decoder_utterances": len(items),
        "steps": config.steps,
        "warm_start": warm_start,
        "final_train_l1": losses[-1] if losses else None,
        "minutes": round((time.time() - start) / 60, 1),
    }
    tensors = {k: v for k, v in codec.tensors().items() if not k.startswith("decoder.")}
    tensors.update({f"decoder.{k}": v for k, v in decoder.state_dict().items() if k != "centroids"})
    retrained = VQMelCodec(replace(codec.config, decoder=asdict(decoder_config), trained_on=trained_on), tensors)
    retrained.save(out_dir)
    log.info("saved codec with a retrained decoder to %s after %.1f min", out_dir, (time.time() - start) / 60)
    return VQMelCodec.load(out_dir)
