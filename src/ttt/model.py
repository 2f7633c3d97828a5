"""TtTModel: a stock Hugging Face causal LM + the TtT vocabulary, mask and unified loss.

The backbone's modeling file is untouched: the modality-aware mask goes in through `attention_mask`
(a 4D tensor, or a Flex `BlockMask`), which transformers passes to the attention implementation as is.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.utils import ModelOutput

from ttt.config import TtTConfig, check_model_dir
from ttt.files import publishing
from ttt.format import EncodedExample, Formatter, Modality
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
        outputs = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask_for(self.backbone, doc_ids, span_ids),
            position_ids=position_ids,
            logits_to_keep=0 if return_logits else need,
            use_cache=False,
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
        text_loss = (ce * text_w).sum() / n_docs
        audio_loss = (ce * audio_w).sum() / n_docs
        return TtTOutput(
            loss=text_loss + audio_loss,
            text_loss=text_loss.detach(),
            audio_loss=audio_loss.detach(),
            logits=outputs.logits if return_logits else None,
        )

    def targets(
        self, labels: torch.Tensor, modality: torch.Tensor, doc_ids: torch.Tensor, trainable: torch.Tensor,
        masked: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Where the text loss applies, and the target id at every position.

        A text target at position i is the next *real* token (end padding skipped) when that token is
        trained text of the same example (any trained token in "ar" mode, none in "nar"); a masked
        position's target is its own clean token.
        """
        nxt = _next_real_position(modality == Modality.SPAN_PAD)

        def at_next(t: torch.Tensor) -> torch.Tensor:
            return t.gather(1, nxt.clamp(max=t.shape[1] - 1))

        text = (nxt < labels.shape[1]) & at_next(trainable) & (at_next(doc_ids) == doc_ids) & ~masked
        text &= modality != Modality.SPAN_PAD
        if self.config.mode == "ttt":
            text &= at_next(modality) == Modality.TEXT
        elif self.config.mode == "nar":
            text = torch.zeros_like(text)
        return text, torch.where(masked, labels, at_next(labels))

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Weights (safetensors), HF config, tokenizer and `ttt_config.json`, swapped in atomically."""
        with publishing(directory) as tmp:
            self.backbone.save_pretrained(tmp)
            self.tokenizer.save_pretrained(tmp)
            self.config.save(tmp)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **model_kwargs) -> "TtTModel":
        """Load what `save_pretrained` wrote, or an adapter-only release (`ttt.adapters`: LoRA + TtT token rows,
        applied over its base model and merged); `model_kwargs` go to `AutoModelForCausalLM.from_pretrained`."""
        from ttt.adapters import is_adapter_dir, load_adapter_model

        directory = check_model_dir(directory)
        if is_adapter_dir(directory):
            return load_adapter_model(directory, **model_kwargs)
        config = TtTConfig.load(directory)
        tokenizer = AutoTokenizer.from_pretrained(directory)
        backbone = AutoModelForCausalLM.from_pretrained(directory, **model_kwargs)
        return cls(backbone, tokenizer, config)


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
