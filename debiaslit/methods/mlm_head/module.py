"""MLMHeadFit: fit only the MLM head of a BERT-family encoder whose MLM head was not shipped.

all-MiniLM-L6-v2 (the offline pretrained encoder) comes without its MLM head. ``AutoModelForMaskedLM``
builds one whose decoder is tied to the (pretrained, frozen) word embeddings, so only the transform
(dense + LayerNorm) and the output bias are new; they are fitted on neutral text with every encoder
weight frozen, so the gender associations measured afterwards are the pretrained encoder's, read
through a head that has seen only the fitting text. ``debiaslit export`` writes the result as a plain
``save_pretrained`` directory that ``model.init_args.backbone`` can point to.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from debiaslit.backbones import load_tokenizer
from debiaslit.backbones.lm_scoring import token_scores
from debiaslit.errors import ConfigError
from debiaslit.methods.base import BackboneModule
from debiaslit.utils.files import atomic_path


class MLMHeadFit(BackboneModule):
    """A masked LM of which only the head outside ``model.base_model`` trains (tied weights excluded).

    Training masks a fresh ``mlm_probability`` share of each sentence's non-padding, non-special
    tokens every step (all replaced by the mask token, as the evaluators score them); validation
    logs ``val/mlm_loss`` on the fixed masks of the held-out sentences.

    Args:
        backbone: A BERT-family encoder directory or alias (``minilm-l6``).
        mlm_probability: Share of tokens masked per training sentence (at least one).
        Others: see :class:`~debiaslit.methods.base.BackboneModule`.
    """

    def __init__(
        self,
        backbone: str = "minilm-l6",
        mlm_probability: float = 0.15,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_ratio: float = 0.05,
        init_weights_from: str | None = None,
    ) -> None:
        super().__init__(
            backbone, "masked-lm", lr=lr, weight_decay=weight_decay, warmup_ratio=warmup_ratio,
            init_weights_from=init_weights_from,
        )  # fmt: skip
        if not 0 < mlm_probability <= 1:
            raise ConfigError(f"model.mlm_probability must lie in (0, 1], got {mlm_probability}")
        tokenizer = load_tokenizer(backbone)
        self.mask_token_id = tokenizer.mask_token_id
        self.special_ids = torch.tensor(sorted(tokenizer.all_special_ids))
        base = {id(p) for p in self.model.base_model.parameters()}
        for param in self.model.parameters():
            param.requires_grad_(id(param) not in base)
        if not any(p.requires_grad for p in self.model.parameters()):
            raise ConfigError(f"backbone {backbone!r} has no MLM head outside its encoder to fit")
        self.load_initial_weights()

    def train(self, mode: bool = True) -> MLMHeadFit:
        """The frozen encoder stays in eval mode (no dropout): it is the pretrained model as is."""
        super().train(mode)
        self.model.base_model.eval()
        return self

    def _head(self) -> nn.Module:
        [head] = [m for m in self.model.children() if m is not self.model.base_model]
        return head

    def masked_loss(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        """Mean NLL of the tokens at ``positions``, all masked at once; the encoder runs without
        gradients and the head only at the masked positions (the vocabulary matmul dominates)."""
        masked = input_ids.masked_fill(positions, self.mask_token_id)
        with torch.no_grad():
            hidden = self.model.base_model(input_ids=masked, attention_mask=attention_mask).last_hidden_state
        logits = self._head()(hidden[positions]).float()
        return nn.functional.cross_entropy(logits, input_ids[positions])

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        candidates = mask.bool() & ~torch.isin(ids, self.special_ids.to(ids.device))
        positions = candidates & (torch.rand(ids.shape, device=ids.device) < self.hparams.mlm_probability)
        # at least one position per sentence: its first candidate when the draw picked none
        empty = ~positions.any(1) & candidates.any(1)
        positions[empty, candidates[empty].float().argmax(1)] = True
        loss = self.masked_loss(ids, mask, positions)
        self.log("train/mlm_loss", loss, prog_bar=True)
        return loss

    def validation_step(
        self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        positions = batch["mlm_mask"].bool()
        log_p = token_scores(
            self.model, "masked-lm", batch["input_ids"], batch["attention_mask"], positions,
            mask_token_id=self.mask_token_id,
        )  # fmt: skip
        self.log(
            "val/mlm_loss", -log_p.sum() / positions.sum(), batch_size=int(positions.sum()), sync_dist=True
        )

    def export_pretrained(self, directory: str | Path) -> Path:
        """The masked LM and its tokenizer as a plain ``save_pretrained`` directory (written atomically;
        an existing non-empty ``directory`` is refused)."""
        directory = Path(directory)
        if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
            raise ConfigError(
                f"export directory {directory} already exists and is not empty; choose a new one"
            )
        with atomic_path(directory) as tmp:
            self.model.save_pretrained(str(tmp))
            load_tokenizer(self.hparams.backbone).save_pretrained(str(tmp))
        return directory
