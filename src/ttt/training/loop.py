"""The training loop: one code path for 1 CPU process, DDP, FSDP and DeepSpeed via `accelerate`.

Each optimiser step draws one *global* batch from the seeded `BatchSampler` and cuts it into
`grad_accum * processes` micro-batches; micro-batch k is noised with a generator derived from
(seed, step, k). The step's gradient is therefore the same however the micro-batches are spread over
processes and accumulation, and a resumed run continues the uninterrupted run's loss curve exactly.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import DistributedType, set_seed
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer

from ttt.adapters import is_adapter_dir, wrap_lora
from ttt.backbone_source import base_location, load_backbone
from ttt.training.backbones import tiny_backbone
from ttt.vocab import train_bpe_tokenizer
from ttt.training.checkpoint import (is_lora_checkpoint, latest_checkpoint, load_trainable, load_training_state,
                                     resumable_checkpoint, run_lock, save_checkpoint, save_model)
from ttt.training.collate import collate, collate_for
from ttt.config import TtTConfig
from ttt.training.data import (BatchSampler, check_build_card, encode_records, micro_batches, noise_generator, plain_texts,
                      read_records, split_off)
from ttt.files import replace_dir
from ttt.format import EncodedExample
from ttt.hub import training_summary, write_model_card
from ttt.training.run_log import PROJECT, hparams, keep_log_until, trackers
from ttt.model import TtTModel
from ttt.training.config import LoraSettings, TrainConfig, architecture_changes

log = logging.getLogger(__name__)

VALID_STEP = 0  # noise-generator "step" of validation batches; training steps start at 1
MAX_SKIPPED_STEPS = 10  # consecutive steps with non-finite gradients after which training stops


# Row length from which a Flex `BlockMask` would beat the dense 4D SDPA mask in a GPU training step. Measured
# (issue #25) on an H200 (torch 2.11, Qwen2.5-0.5B shape, bf16, rows packing 4 examples,
# `python -m benchmarks.training_attention`): dense costs 1.09x / 1.17x / 1.15x a plain causal step at
# 1,024 / 2,048 / 4,096 tokens, Flex 1.32x / 2.10x / 1.75x, so dense wins at every measured length and Flex is
# chosen only beyond them. Re-measure on other hardware and move this where the two cross.
FLEX_FROM_TOKENS = 8192


def choose_attention(cuda: bool, row_length: int | None) -> str:
    """The "auto" attention: Flex only on a GPU and only for rows long enough that it measured faster than
    the dense mask (`FLEX_FROM_TOKENS`); SDPA with the dense mask otherwise (and when rows are uncapped,
    whose lengths are those of single examples, well under it)."""
    if cuda and row_length is not None and row_length >= FLEX_FROM_TOKENS:
        return "flex_attention"
    return "sdpa"


def _attn(cfg: TrainConfig) -> str:
    impl = cfg.backbone.attn_implementation
    if impl == "auto":
        return choose_attention(torch.cuda.is_available(), cfg.ttt_config().max_length)
    return impl


def build_model(cfg: TrainConfig, records, source_dir: Path | None = None) -> TtTModel:
    """The TtT model the config asks for (`source_dir` overrides it with a TtT directory to continue)."""
    b = cfg.backbone
    attn = _attn(cfg)
    if source_dir is not None or b.source == "ttt":
        directory = Path(source_dir or b.path)
        config = cfg.ttt_config(TtTConfig.load(directory))
        if is_adapter_dir(directory):  # a small LoRA release: its base with the adapters merged in
            loaded = TtTModel.from_pretrained(directory, attn_implementation=attn)
            return TtTModel(loaded.backbone, loaded.tokenizer, config)
        tokenizer = AutoTokenizer.from_pretrained(directory)
        backbone = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32, attn_implementation=attn)
        return TtTModel(backbone, tokenizer, config)
    config = cfg.ttt_config()
    if b.source == "hf":
        location, gguf = base_location({"path": b.path, "gguf_file": b.gguf_file})
        backbone, tokenizer = load_backbone(location, gguf, dtype=torch.float32, attn_implementation=attn)
    else:
        if b.tokenizer:
            tokenizer = AutoTokenizer.from_pretrained(b.tokenizer)
        else:
            tokenizer = train_bpe_tokenizer(plain_texts(records), vocab_size=b.tokenizer_vocab_size)
        backbone = tiny_backbone(
            len(tokenizer), family=b.family, hidden_size=b.hidden_size, layers=b.layers, heads=b.heads,
            kv_heads=b.kv_heads, intermediate_size=b.intermediate_size, max_positions=b.max_positions,
            attn_implementation=attn, seed=cfg.seed,
        )
    return TtTModel.from_backbone(backbone, tokenizer, **asdict(config))


def enable_checkpointing(backbone) -> None:
    """Activation checkpointing, non-reentrant (works with DDP, LoRA and frozen inputs)."""
    kwargs = {"use_reentrant": False}
    if hasattr(backbone, "activation_checkpointing_enable"):  # transformers >= 5.x rename
        backbone.activation_checkpointing_enable(kwargs)
    else:
        backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def apply_lora(model: TtTModel, settings: LoraSettings) -> None:
    """Wrap the backbone with LoRA; the TtT token rows train through peft's trainable tokens."""
    wrap_lora(model, settings.r, settings.alpha, settings.dropout, settings.target_modules, settings.train_ttt_tokens)


def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW; matrices decay, vectors (norms, biases) do not."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.optim.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.optim.lr, betas=cfg.optim.betas)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to 1, then cosine decay to `min_lr_ratio` at `max_steps`."""
    o = cfg.optim
    if step < o.warmup_steps:
        return (step + 1) / o.warmup_steps
    progress = min(1.0, (step - o.warmup_steps) / max(1, cfg.max_steps - o.warmup_steps))
    return o.min_lr_ratio + (1.0 - o.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def validate(accelerator: Accelerator, model, valid: list[EncodedExample], cfg: TrainConfig) -> dict:
    """Validation loss with fixed noise (same batches, same generators each time, so evals compare).

    BANOM is off here: a clean-audio batch would report no audio loss, and validation should measure
    both parts on every batch. Every process runs the same number of forwards (a spare one is weighted 0), which keeps sharded
    engines in lockstep.
    """
    unwrapped = accelerator.unwrap_model(model)
    config = replace(unwrapped.config, unmasked_audio_prob=0.0)
    order = sorted(range(len(valid)), key=lambda i: len(valid[i]))
    batches = [order[i : i + cfg.eval_batch_size] for i in range(0, len(order), cfg.eval_batch_size)]
    if cfg.max_eval_batches:  # spread over the lengths: the shortest batches alone hold no audio
        batches = batches[:: math.ceil(len(batches) / cfg.max_eval_batches)]
    world, rank = accelerator.num_processes, accelerator.process_index
    sums = torch.zeros(4, device=accelerator.device)
    model.eval()
    for j in range(math.ceil(len(batches) / world)):
        b = j * world + rank
        weight = 1.0 if b < len(batches) else 0.0
        b = b if b < len(batches) else 0
        examples = [valid[i] for i in batches[b]]
        batch = collate(examples, unwrapped.formatter, config, generator=noise_generator(cfg.seed, VALID_STEP, b))
        out = model(**_to(batch, accelerator.device), return_logits=False)
        n = weight * len(batches[b])
        sums += torch.stack([out.loss.detach() * n, out.text_loss * n, out.audio_loss * n, torch.tensor(n, device=sums.device)])
    model.train()
    sums = accelerator.reduce(sums, "sum")
    n = sums[3].clamp(min=1)
    return {"valid_loss": (sums[0] / n).item(), "valid_text_loss": (sums[1] / n).item(),
            "valid_audio_loss": (sums[2] / n).item()}


def avoid_cudnn_attention() -> None:
    """Keep SDPA off its cuDNN kernel for training.

    With an explicit attention mask, that kernel's backward returns NaN query gradients when the padded
    length is 64 past a multiple of 128 (pytorch/pytorch#196678: H100/H200, torch 2.11 on). Our masks
    are always explicit: the default model's bf16 training with `attn_implementation=sdpa` on an H200
    (torch 2.11) got a NaN gradient at step 197, the same run with `eager` was clean past step 300, and
    fp32 SDPA (which cuDNN does not serve) trained 2,800 steps cleanly. The memory-efficient and flash
    kernels remain.
    """
    torch.backends.cuda.enable_cudnn_sdp(False)


def _precision(cfg: TrainConfig) -> str:
    if cfg.precision == "fp32":
        return "no"
    if cfg.precision == "bf16":
        return "bf16"
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


@dataclass
class Run:
    """Everything a training run holds between steps."""

    cfg: TrainConfig
    accelerator: Accelerator
    model: torch.nn.Module  # the TtTModel as prepared by accelerate (maybe DDP/FSDP-wrapped)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    sampler: BatchSampler
    train_set: list[EncodedExample]
    valid_set: list[EncodedExample]
    start: int  # last completed step (0 for a fresh run)
    resumed: bool
    train_seconds: float = 0.0  # time spent in the training loop up to `start` (the `max_minutes` clock)
    plateau: "Plateau | None" = None  # the `early_stop_patience` tracker, restored on resume

    @property
    def out_dir(self) -> Path:
        return Path(self.cfg.out_dir)


@dataclass
class Plateau:
    """Validations since the validation loss last improved (`TrainConfig.early_stop_patience`): a loss counts
    as an improvement when it is below the best so far by more than `min_delta`."""

    patience: int
    min_delta: float = 0.0
    best: float = math.inf
    since: int = 0

    def update(self, loss: float) -> bool:
        """Record one validation loss; True once `patience` validations in a row have not improved."""
        if loss < self.best - self.min_delta:
            self.best, self.since = loss, 0
        else:
            self.since += 1
        return self.reached

    @property
    def reached(self) -> bool:
        return self.since >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "since": self.since}


def setup(cfg: TrainConfig, resume: bool = False) -> Run:
    """Build model, data, optimiser and schedule; with `resume`, restore the latest checkpoint."""
    accelerator = Accelerator(mixed_precision=_precision(cfg), gradient_accumulation_steps=cfg.grad_accum,
                              log_with=trackers(cfg.out_dir), project_dir=cfg.out_dir)
    if accelerator.device.type == "cuda":
        avoid_cudnn_attention()
    ckpt = latest_checkpoint(cfg.out_dir)
    if ckpt is not None and not resume:
        raise ValueError(f"{cfg.out_dir} already holds checkpoints (latest {ckpt.name}); "
                         "pass --resume to continue, or choose another --out")
    if resume:
        ckpt = resumable_checkpoint(cfg.out_dir)
    if resume and ckpt is None:
        log.warning("--resume: no checkpoint in %s, starting from scratch", cfg.out_dir)
    if ckpt is not None:
        saved = json.loads((ckpt / "training_state" / "state.json").read_text()).get("config")
        changed = architecture_changes(saved, cfg) if saved else []
        if changed:
            raise ValueError(f"--resume: {ckpt} was trained with {', '.join(changed)}; a resumed run cannot change "
                             "the model's architecture (drop those overrides, or train into another --out)")
    set_seed(cfg.seed)

    train_records = [r for path in cfg.data.train_files
                     for r in read_records(path, cfg.data.split, cfg.data.skip_malformed)]
    full_ckpt = ckpt is not None and not is_lora_checkpoint(ckpt)
    model = build_model(cfg, train_records, source_dir=ckpt if full_ckpt else None)
    for path in cfg.data.train_files:
        check_build_card(path, model.config)
    if cfg.gradient_checkpointing:
        enable_checkpointing(model.backbone)
    if cfg.lora.enabled:
        apply_lora(model, cfg.lora)
        if ckpt is not None:
            load_trainable(model, ckpt)

    train_set = encode_records(model, train_records, cfg.data.skip_malformed)
    valid_set: list[EncodedExample] = []
    if cfg.data.valid:
        valid_records = read_records(cfg.data.valid, cfg.data.valid_split, cfg.data.skip_malformed)
        valid_set = encode_records(model, valid_records, cfg.data.skip_malformed)
    elif cfg.data.valid_fraction > 0:
        train_set, valid_set = split_off(train_set, cfg.data.valid_fraction, cfg.seed)

    global_batch = cfg.batch_size * cfg.grad_accum * accelerator.num_processes
    sampler = BatchSampler([len(ex) for ex in train_set], global_batch, cfg.seed, cfg.data.bucket_pools)
    optimizer = _optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))
    if accelerator.distributed_type == DistributedType.DEEPSPEED:  # no dataloader to infer it from
        accelerator.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = cfg.batch_size
    model, optimizer = accelerator.prepare(model, optimizer)
    start, train_seconds = 0, 0.0
    plateau = None if cfg.early_stop_patience is None else Plateau(cfg.early_stop_patience, cfg.early_stop_min_delta)
    if ckpt is not None:
        state = load_training_state(accelerator, optimizer, ckpt)
        scheduler.load_state_dict(state["scheduler"])
        sampler.load_state_dict(state["sampler"])
        start, train_seconds = state["step"], float(state.get("train_seconds", 0.0))
        if plateau is not None and state.get("plateau"):
            plateau.best, plateau.since = float(state["plateau"]["best"]), int(state["plateau"]["since"])
        log.info("resumed from %s at step %d (%.1f min of training so far)", ckpt, start, train_seconds / 60)
    return Run(cfg, accelerator, model, optimizer, scheduler, sampler, train_set, valid_set, start,
               ckpt is not None, train_seconds, plateau)


def train_step(run: Run, step: int) -> tuple[torch.Tensor, int, bool]:
    """One optimiser step over this process's micro-batches of the step's global batch.

    Returns (loss, text_loss, audio_loss, grad_norm) of this process, its count of real tokens, and
    whether the weights were updated: a step whose gradient norm is not finite is skipped (its gradients
    dropped), so one bad batch or kernel fault cannot turn every weight into NaN. The norm is the global
    one, so every process makes the same decision.
    """
    cfg, acc = run.cfg, run.accelerator
    micros = micro_batches(run.sampler.next_batch(), cfg.grad_accum * acc.num_processes)
    unwrapped = acc.unwrap_model(run.model)
    stats = torch.zeros(4, device=acc.device)
    tokens, finite = 0, True
    for a in range(cfg.grad_accum):
        k = acc.process_index * cfg.grad_accum + a
        batch = collate_for(unwrapped, [run.train_set[i] for i in micros[k]], train=True, pack=cfg.data.pack,
                            generator=noise_generator(cfg.seed, step, k))
        tokens += int((batch["doc_ids"] >= 0).sum())
        with acc.accumulate(run.model):
            out = run.model(**_to(batch, acc.device), return_logits=False)
            acc.backward(out.loss)
            if acc.sync_gradients:
                clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")
                grad_norm = acc.clip_grad_norm_(run.model.parameters(), clip)
                if grad_norm is not None:
                    stats[3] = grad_norm.detach().float()
                    finite = bool(torch.isfinite(stats[3]))
            if finite:
                run.optimizer.step()
            run.optimizer.zero_grad()
        stats[:3] += torch.stack([out.loss.detach(), out.text_loss, out.audio_loss]) / cfg.grad_accum
    run.scheduler.step()
    return stats, tokens, finite


def train(cfg: TrainConfig, resume: bool = False, stop_after: int | None = None) -> Path:
    """`_train` holding the run folder's lock (`run_lock`): a second run on the same --out stops at once.
    Only the main process (RANK 0 under torchrun / accelerate launch) locks; the others share its folder."""
    with run_lock(cfg.out_dir, active=int(os.environ.get("RANK", "0")) == 0):
        return _train(cfg, resume, stop_after)


def _train(cfg: TrainConfig, resume: bool = False, stop_after: int | None = None) -> Path:
    """Train per `cfg`; return the output directory (final model in `OUT/final`).

    resume: continue from the latest checkpoint in `cfg.out_dir` (model, optimizer, scheduler, data
    position, RNG). stop_after: return right after this step without saving, as a crash would — for tests.

    `cfg.max_minutes` ends the run early, after the first step at which that much time has been spent in
    this loop (steps, validation, checkpoints; not model loading or data encoding); the time spent is
    stored in each checkpoint's training state (`train_seconds`), so a resumed run continues the clock.
    The stopping step is logged, validated, saved and exported like `max_steps`, and `log.jsonl` gets a
    record `{"step", "stopped": "max_minutes", "train_minutes"}`.

    `cfg.early_stop_patience` ends the run at the validation that makes that many in a row without
    improvement (`Plateau`); the step is saved and exported the same way, the tracker is kept in each
    checkpoint's state (a resumed run goes on counting, and one that had stopped takes no further step), and
    `log.jsonl` gets `{"step", "stopped": "plateau", "best_valid_loss"}`.
    """
    run = setup(cfg, resume)
    acc, out_dir, main = run.accelerator, run.out_dir, run.accelerator.is_main_process
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        n_train = sum(p.numel() for p in run.model.parameters() if p.requires_grad)
        log.info("%d train / %d valid examples, %d trainable parameters, %d process(es), global batch %d",
                 len(run.train_set), len(run.valid_set), n_train, acc.num_processes, run.sampler.batch_size)
    if main:
        keep_log_until(out_dir, run.start if run.resumed else None)
    acc.init_trackers(PROJECT, config=hparams(cfg.to_dict()))
    bar = tqdm(total=cfg.max_steps, initial=run.start, disable=not main, desc="train", dynamic_ncols=True)
    window = torch.zeros(4, device=acc.device)  # loss, text, audio, grad-norm sums over the log window
    window_steps, tokens, t0 = 0, 0, time.perf_counter()
    budget = None if cfg.max_minutes is None else cfg.max_minutes * 60.0
    clock = time.perf_counter()

    def spent() -> float:  # seconds in the training loop, this process and the runs it resumes
        return run.train_seconds + time.perf_counter() - clock

    first = run.start + 1
    if budget is not None and run.train_seconds >= budget:
        log.info("time budget of %.4g min already spent at step %d: no further steps", cfg.max_minutes, run.start)
        first = cfg.max_steps + 1
    if run.plateau is not None and run.plateau.reached:
        log.info("validation loss had already plateaued at step %d: no further steps", run.start)
        first = cfg.max_steps + 1
    crashed, skipped = False, 0
    run.model.train()
    with logging_redirect_tqdm():
        for step in range(first, cfg.max_steps + 1):
            stats, n_tokens, updated = train_step(run, step)
            skipped = 0 if updated else skipped + 1
            if skipped:
                log.warning("step %d: non-finite gradient norm (loss %.4g): update skipped", step, stats[0].item())
                if skipped >= MAX_SKIPPED_STEPS:
                    raise FloatingPointError(
                        f"{skipped} steps in a row (to step {step}) had non-finite gradients; stopped without saving. "
                        f"The checkpoints in {out_dir / 'checkpoints'} hold finite weights: resume from one with "
                        "a lower optim.lr, --precision fp32 or another backbone.attn_implementation")
            window += stats
            window_steps, tokens = window_steps + 1, tokens + n_tokens
            bar.update(1)
            out_of_time = budget is not None and _all_agree(acc, spent() >= budget)
            last = step == cfg.max_steps or out_of_time
            if out_of_time:
                minutes = spent() / 60
                log.info("time budget of %.4g min spent after step %d (%.4g min of training): stopping before "
                         "max_steps %d", cfg.max_minutes, step, minutes, cfg.max_steps)
            if step % cfg.log_interval == 0 or last:
                mean = (acc.reduce(window, "mean") / window_steps).tolist()
                acc.log({"loss": mean[0], "text_loss": mean[1], "audio_loss": mean[2], "grad_norm": mean[3],
                         "lr": run.scheduler.get_last_lr()[0], "epoch": run.sampler.epoch,
                         "tokens_per_s": tokens * acc.num_processes / (time.perf_counter() - t0)}, step=step)
                bar.set_postfix(loss=f"{mean[0]:.3f}", text=f"{mean[1]:.3f}", audio=f"{mean[2]:.3f}")
                window.zero_()
                window_steps, tokens, t0 = 0, 0, time.perf_counter()
            if run.valid_set and (step % cfg.eval_interval == 0 or last):
                scores = validate(acc, run.model, run.valid_set, cfg)
                acc.log(scores, step=step)
                if run.plateau is not None and _all_agree(acc, run.plateau.update(scores["valid_loss"])) and not last:
                    log.info("validation loss not below %.4g for %d validations: stopping after step %d",
                             run.plateau.best, run.plateau.since, step)
                    acc.log({"stopped": "plateau", "best_valid_loss": run.plateau.best}, step=step)
                    last = True
            if out_of_time:
                acc.log({"stopped": "max_minutes", "train_minutes": minutes}, step=step)
            if step % cfg.save_interval == 0 or last:
                state = {"scheduler": run.scheduler.state_dict(), "sampler": run.sampler.state_dict(),
                         "config": cfg.to_dict(), "train_seconds": spent(),
                         "plateau": run.plateau.state_dict() if run.plateau is not None else None}
                save_checkpoint(acc, run.model, run.optimizer, out_dir, step, state, cfg.lora.enabled, cfg.keep_last,
                                cfg.keep_every)
            if last:
                break
            if stop_after is not None and step >= stop_after:
                crashed = True
                break
    bar.close()
    for tracker in acc.trackers:  # not acc.end_training(): export_final still needs the process group
        tracker.finish()
    if not crashed:
        steps = step if first <= cfg.max_steps else run.start
        export_final(acc, run.model, out_dir / "final", cfg.lora.enabled, training_summary(cfg.to_dict(), steps))
    return out_dir


def _all_agree(accelerator: Accelerator, flag: bool) -> bool:
    """`flag` as decided by the main process, so that every process stops at the same step."""
    if accelerator.num_processes == 1:
        return flag
    from accelerate.utils import broadcast

    return bool(broadcast(torch.tensor([float(flag)], device=accelerator.device), from_process=0).item())


def export_final(accelerator: Accelerator, model, directory: Path, lora: bool, training: dict | None = None) -> None:
    """The trained model as a plain TtT directory (LoRA merged into the weights), loadable by `from_pretrained`,
    with a model card saying how it was trained (`training`, a `ttt.hub.training_summary`)."""
    if lora:
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.backbone = unwrapped.backbone.merge_and_unload()
        model = unwrapped
    tmp = directory.with_name(f".tmp-{directory.name}")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    save_model(accelerator, model, tmp)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_model_card(tmp, training=training, name=directory.parent.name)
        replace_dir(tmp, directory)
        log.info("final model in %s", directory)
    accelerator.wait_for_everyone()
