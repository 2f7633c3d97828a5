"""TtTModel: a stock Hugging Face causal LM + the TtT vocabulary, mask and unified loss.

The backbone's modeling file is untouched: the modality-aware mask goes in through `attention_mask`
(a 4D tensor, or a Flex `BlockMask`), which transformers passes to the attention implementation as is.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.utils import ModelOutput

from ttt.config import TtTConfig, check_model_dir
from ttt.files import publishing
from ttt.format import EncodedExample, Formatter, Modality
from ttt.hub import resolve_dir, save_and_push, write_model_card
from ttt.masks import attention_mask_for
from ttt.vocab import Vocab, add_ttt_tokens


@dataclass
class TtTOutput(ModelOutput):
    """`loss` = `text_loss` + `audio_loss`; `logits` over every position unless `return_logits=False`."""

    loss: torch.Tensor | None = None
    text_loss: torch.Tensor | None = None
    audio_loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None


class TtTModel(nn.Module):
    """Autoregressive text and absorbing-diffusion audio in one decoder-only Transformer."""

    def __init__(self, backbone: PreTrainedModel, tokenizer, config: TtTConfig) -> None:
        super().__init__()
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.config = config
        self.vocab = Vocab.from_tokenizer(tokenizer, config.audio_codebook_size)
        if len(tokenizer) > backbone.get_input_embeddings().num_embeddings:
            raise ValueError(
                f"tokenizer has {len(tokenizer)} tokens but the backbone embeds only "
                f"{backbone.get_input_embeddings().num_embeddings}; use TtTModel.from_backbone"
            )
        self.formatter = Formatter(tokenizer, self.vocab, config.bidirectional_input_audio)

    @classmethod
    def from_backbone(
        cls, backbone: PreTrainedModel, tokenizer, audio_codebook_size: int = 16384, **config
    ) -> "TtTModel":
        """Add the TtT and audio tokens to `tokenizer` and grow the backbone's embeddings to match."""
        cfg = TtTConfig(audio_codebook_size=audio_codebook_size, **config)
        add_ttt_tokens(tokenizer, audio_codebook_size)
        if len(tokenizer) > backbone.get_input_embeddings().num_embeddings:
            backbone.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        return cls(backbone, tokenizer, cfg)

    @property
    def device(self) -> torch.device:
        return self.backbone.device

    def encode(self, example: dict, index: int = 0) -> EncodedExample:
        """Validate and encode one example once (cache the result; `ttt.training.collate` accepts it)."""
        return self.formatter.encode(example, index)

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        modality: torch.Tensor,
        span_ids: torch.Tensor,
        doc_ids: torch.Tensor,
        position_ids: torch.Tensor,
        trainable: torch.Tensor,
        masked: torch.Tensor,
        p_mask: torch.Tensor,
        n_maskable: torch.Tensor,
        return_logits: bool = True,
    ) -> TtTOutput:
        """Unified loss: next-token CE on text + 1/t-weighted same-position CE on masked audio.

        Each part is normalised per example (text by its text-target count, audio by its maskable count)
        and averaged over the examples of the batch, as the reference does.
        """
        n_docs = n_maskable.numel()
        text_target, target = self.targets(labels, modality, doc_ids, trainable, masked)
        need = (text_target | masked).any(0).nonzero().flatten()
        outputs = self.backbone_forward(
            input_ids, doc_ids, span_ids, position_ids, logits_to_keep=0 if return_logits else need
        )
        logits = outputs.logits[:, need] if return_logits else outputs.logits
        target = target[:, need]
        ce = nn.functional.cross_entropy(logits.float().flatten(0, 1), target.flatten(), reduction="none")
        ce = ce.view(target.shape)

        doc = doc_ids[:, need].clamp(min=0)
        text_w = text_target[:, need].float()
        text_count = torch.zeros(n_docs, device=ce.device).index_add_(0, doc.flatten(), text_w.flatten())
        text_w = text_w / text_count.clamp(min=1)[doc]
        audio_w = masked[:, need].float() / (p_mask[:, need] * n_maskable.clamp(min=1)[doc])
        text_ce = ce
        both = (text_target & masked)[:, need]  # masked closers with a text target (masked_closer_text_target)
        if both.any():  # there the text target is the next real token, not the position's own clean token
            nxt = _next_real_position(modality == Modality.SPAN_PAD).clamp(max=labels.shape[1] - 1)[:, need]
            extra = nn.functional.cross_entropy(logits[both].float(), labels.gather(1, nxt)[both], reduction="none")
            text_ce = ce.masked_scatter(both, extra)
        text_loss = (text_ce * text_w).sum() / n_docs
        audio_loss = (ce * audio_w).sum() / n_docs
        return TtTOutput(
            loss=text_loss + audio_loss,
            text_loss=text_loss.detach(),
            audio_loss=audio_loss.detach(),
            logits=outputs.logits if return_logits else None,
        )

    def backbone_forward(
        self,
        input_ids: torch.Tensor,
        doc_ids: torch.Tensor,
        span_ids: torch.Tensor,
        position_ids: torch.Tensor,
        *,
        q_offset: int | torch.Tensor | None = None,
        cache=None,
        logits_to_keep: int | torch.Tensor = 0,
        hidden_only: bool = False,
    ):
        """The one call of the backbone with the TtT mask, shared by training (`forward`) and decoding.

        `doc_ids`/`span_ids` cover every key position (the cached prefix and the new tokens); queries are the
        last `input_ids.shape[1]` of them, or those from `q_offset` on (a pre-allocated cache). With
        `hidden_only` it returns the final hidden states (B, q, H) and skips the LM head, so that decoding
        can project onto just the tokens a step may produce; otherwise the backbone's output with `.logits`.
        """
        mask = attention_mask_for(self.backbone, doc_ids, span_ids, q_len=input_ids.shape[1], q_offset=q_offset)
        kwargs = dict(
            input_ids=input_ids, attention_mask=mask, position_ids=position_ids, cache=cache, use_cache=cache is not None
        )
        if hidden_only:
            return self.backbone.get_decoder()(**kwargs).last_hidden_state
        return self.backbone(**kwargs, logits_to_keep=logits_to_keep)

    def targets(
        self, labels: torch.Tensor, modality: torch.Tensor, doc_ids: torch.Tensor, trainable: torch.Tensor,
        masked: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Where the text loss applies, and the target id at every position.

        A text target at position i is the next *real* token (end padding skipped) when that token is
        trained text of the same example (any trained token in "ar" mode, none in "nar"); a masked
        position's target is its own clean token, and it has no text target unless
        `config.masked_closer_text_target` (then `forward` scores a masked closer against both).
        """
        nxt = _next_real_position(modality == Modality.SPAN_PAD)

        def at_next(t: torch.Tensor) -> torch.Tensor:
            return t.gather(1, nxt.clamp(max=t.shape[1] - 1))

        text = (nxt < labels.shape[1]) & at_next(trainable) & (at_next(doc_ids) == doc_ids)
        if not self.config.masked_closer_text_target:
            text &= ~masked
        text &= modality != Modality.SPAN_PAD
        if self.config.mode == "ttt":
            text &= at_next(modality) == Modality.TEXT
        elif self.config.mode == "nar":
            text = torch.zeros_like(text)
        return text, torch.where(masked, labels, at_next(labels))

    def save_pretrained(self, directory: str | os.PathLike, training: dict | None = None,
                        metrics: dict | None = None) -> None:
        """Weights (safetensors), HF config, tokenizer, `ttt_config.json` and a model card (README.md,
        `ttt.hub.write_model_card`; `training`/`metrics` go into it), swapped in atomically."""
        with publishing(directory) as tmp:
            self.backbone.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            self.config.save(tmp)
            write_model_card(tmp, training=training, metrics=metrics, name=Path(directory).name)

    def push_to_hub(self, repo_id: str, training: dict | None = None, metrics: dict | None = None,
                    private: bool | None = None, token: str | None = None) -> str:
        """Save to a temporary folder with a model card and upload it as hub repo `repo_id`; the commit URL."""
        return save_and_push(self.save_pretrained, repo_id, training, metrics, private=private, token=token)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, revision: str | None = None,
                        **model_kwargs) -> "TtTModel":
        """Load what `save_pretrained` wrote, from a local folder or a hub id (`ttt.hub.resolve_dir`: folder,
        then the HF cache, then a download), or an adapter-only release (`ttt.adapters`: LoRA + TtT token rows,
        applied over its base model and merged); `model_kwargs` go to `AutoModelForCausalLM.from_pretrained`."""
        from ttt.adapters import is_adapter_dir, load_adapter_model

        directory = check_model_dir(resolve_dir(directory, revision))
        if is_adapter_dir(directory):
            return load_adapter_model(directory, **model_kwargs)
        check_model_files(directory)
        config = TtTConfig.load(directory)
        try:
            tokenizer = AutoTokenizer.from_pretrained(directory)
        except Exception as err:  # tokenizers raises bare Exceptions; any failure here is the files' fault
            raise ValueError(f"{directory}: cannot load the tokenizer (tokenizer.json, tokenizer_config.json): "
                             f"{_first_line(err)}") from None
        try:
            backbone = AutoModelForCausalLM.from_pretrained(directory, **model_kwargs)
        except (ValueError, TypeError, KeyError, OSError) as err:
            raise ValueError(f"{directory}: cannot load the backbone (config.json, model.safetensors): "
                             f"{_first_line(err)}") from None
        return cls(backbone, tokenizer, config)


def check_model_files(directory: Path) -> None:
    """Read the header of every file a model directory loads from, so that a damaged one (a truncated
    copy, a garbage JSON) is a one-line ValueError naming it rather than a SafetensorError, OSError or
    JSONDecodeError from deep inside transformers. Costs milliseconds: safetensors data is not read."""
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"{directory}: no config.json (the backbone's Hugging Face config)")
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    weights = sorted(directory.glob("*.safetensors"))
    if not weights:
        raise FileNotFoundError(f"{directory}: no model.safetensors (the weights)")
    for path in weights:
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except (SafetensorError, OSError) as err:
            raise ValueError(f"{path}: damaged or truncated weights ({' '.join(str(err).split())})") from None


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__


def _next_real_position(pad: torch.Tensor) -> torch.Tensor:
    """For each position, the index of the next position that is not end padding (length if none).

    A text target is the *next real* token: the closing token of a padded final span predicts what
    follows the pads, exactly as at inference, where the block is cut right after that token.
    """
    length = pad.shape[1]
    idx = torch.arange(length, device=pad.device).expand_as(pad)
    real = torch.where(pad, length, idx)
    first_real_from = torch.flip(torch.cummin(torch.flip(real, [1]), 1).values, [1])
    return nn.functional.pad(first_real_from[:, 1:], (0, 1), value=length)
