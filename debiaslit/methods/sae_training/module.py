"""SAETrainer: sparse autoencoders on the residual stream of a frozen backbone (METHODS.md §6.4).

Activations are captured batch by batch from any DataModule whose batches hold ``input_ids`` and
``attention_mask`` (no activation store); every real token is one training row. Objectives:

* ``relu``: ``Σ‖x − x̂‖²`` + ``l1_coefficient · Σ_j f_j ‖W_dec[j]‖`` (the L1 weighted by decoder norms,
  so shrinking the decoder cannot cheat the penalty), per token;
* ``topk``: ``Σ‖x − x̂‖²`` only (sparsity is the k), decoder rows kept at unit norm.

Every ``resample_every`` steps, latents that fired on no token since the last check are resampled
towards the worst-reconstructed tokens of the batch (Bricken et al. 2023, deterministically: the
highest-error tokens, so 2 DDP processes choose as 1 does). Validation logs, per site, variance
explained, L0, the dead fraction on the validation set and the downstream loss recovered with the SAE
spliced in (causal LMs: next-token cross-entropy; encoders (``task: base``): the squared distance of
the final hidden states to the clean ones), ``(L_zero − L_sae) / (L_zero − L_clean)`` with the site
zero-ablated as the reference. At the end of fit the SAEs are written in the SAELens layout to
``<save_dir or run dir/saes>/<site>/`` (``cfg.json``, ``sae_weights.safetensors``, ``fidelity.json``
with the last validation metrics); ReLU SAEs with their decoder rows folded to unit norm (same
reconstructions; latents scaled by the row norms, ``decoder_normalized: true``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from debiaslit.backbones import EMBED, ComponentMap, load_backbone
from debiaslit.errors import ConfigError
from debiaslit.sae import SparseAutoencoder, saelens_hook_name, splice, write_saelens
from debiaslit.sae.fidelity import (
    dead_fraction_from,
    l0_from,
    loss_recovered,
    reconstruction_sums,
    variance_explained_from,
)
from debiaslit.utils.files import write_text_atomic
from debiaslit.utils.run_dir import run_dir

TASKS = ("causal-lm", "base")
TOKEN_FIELDS = ("input_ids", "attention_mask", "token_type_ids")
SAES_FOLDER = "saes"


class _AllRead(Exception):
    """Raised by the last residual hook to end a forward whose remaining blocks are not needed."""


def site_name(layer: int | str) -> str:
    """``resid_<layer>`` or ``embed``: the key of a site's SAE, metrics and output folder."""
    return EMBED if layer in (-1, EMBED) else f"resid_{layer}"


class SAETrainer(pl.LightningModule):
    """One SAE per residual site of a frozen backbone, trained on its streamed activations.

    Args:
        backbone: Hub id, local directory, ``minilm-l6`` or a tiny test model.
        task: ``causal-lm`` (the loss recovered is next-token CE) or ``base`` (encoders: the final
            hidden states' squared distance to the clean run).
        layers: Residual sites: block indices (the output of that block) or ``embed``.
        expansion: ``d_sae = expansion · hidden size``.
        activation: ``relu`` (MSE + decoder-norm-weighted L1) or ``topk`` (MSE, ``k`` latents).
        k: Active latents of a topk SAE.
        l1_coefficient: Weight of the L1 term (relu).
        lr: Adam learning rate.
        resample_every: Steps between dead-latent checks (0: never resample).
        save_dir: Where the SAEs go (``<save_dir>/<site>/``); default ``<run dir>/saes``.
    """

    def __init__(
        self,
        backbone: str = "tiny-gpt2",
        task: str = "causal-lm",
        layers: list[int | str] | None = None,
        expansion: int = 8,
        activation: Literal["relu", "topk"] = "relu",
        k: int | None = None,
        l1_coefficient: float = 1e-3,
        lr: float = 1e-3,
        resample_every: int = 0,
        save_dir: str | None = None,
    ) -> None:
        super().__init__()
        if task not in TASKS:
            raise ConfigError(f"model.task must be one of {TASKS} for SAETrainer, got {task!r}")
        if activation not in ("relu", "topk"):
            raise ConfigError(f"model.activation must be 'relu' or 'topk' for training, got {activation!r}")
        if expansion < 1 or lr <= 0 or l1_coefficient < 0 or resample_every < 0:
            raise ConfigError(
                "model: expansion must be >= 1, lr > 0, l1_coefficient >= 0 and resample_every >= 0; got "
                f"{expansion}, {lr}, {l1_coefficient}, {resample_every}"
            )
        layers = list(layers if layers is not None else [0])
        if not layers or len({site_name(layer) for layer in layers}) != len(layers):
            raise ConfigError(f"model.layers must list distinct residual sites, got {layers}")
        self.save_hyperparameters()
        self.model, _ = load_backbone(backbone, task=task, seed=torch.initial_seed())
        self.model.eval().requires_grad_(False)
        cmap = ComponentMap.for_model(self.model)
        for layer in layers:
            cmap.residual_site(layer)  # validates the layer before any training
        self.layers = layers
        hidden = cmap.hidden_size
        generator = torch.Generator().manual_seed(torch.initial_seed())
        self.saes = nn.ModuleDict(
            {
                site_name(layer): SparseAutoencoder(
                    hidden,
                    expansion * hidden,
                    activation,
                    k=k if activation == "topk" else None,
                    site=saelens_hook_name(-1 if layer == EMBED else int(layer)),
                ).init_weights(generator)
                for layer in layers
            }
        )
        for name, sae in self.saes.items():
            self.register_buffer(f"fired_{name}", torch.zeros(sae.d_sae, dtype=torch.long))
        self.register_buffer("b_dec_initialised", torch.tensor(False))
        self._last_rows: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._val: dict[str, Any] = {}
        self.fidelity: dict[str, dict[str, float]] = {}

    def train(self, mode: bool = True) -> SAETrainer:
        """The backbone stays in eval mode (no dropout): only the SAEs train."""
        super().train(mode)
        self.model.eval()
        return self

    # ---- activations ---------------------------------------------------------------------------
    def _inputs(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: batch[k] for k in TOKEN_FIELDS if k in batch}

    @torch.no_grad()
    def residuals(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Residual rows of every real token at each site: ``{site: [tokens, hidden]}``. The forward
        stops once the deepest site is read (the blocks above it do not run)."""
        captured: dict[str, torch.Tensor] = {}
        mask = batch["attention_mask"].bool()

        def keep(name: str):
            def read(x: torch.Tensor) -> None:
                captured[name] = x[mask].float()
                if len(captured) == len(self.layers):
                    raise _AllRead

            return read

        try:
            with splice(self.model, {layer: keep(site_name(layer)) for layer in self.layers}):
                self.model(**self._inputs(batch))
        except _AllRead:
            pass
        return captured

    def _global_count(self, n: int) -> torch.Tensor:
        """Tokens in this step over all processes (losses are sums over it, so DDP ≡ 1 process)."""
        return self.trainer.strategy.reduce(torch.tensor(float(n), device=self.device), reduce_op="sum")

    # ---- training ------------------------------------------------------------------------------
    def sae_loss(
        self, sae: SparseAutoencoder, x: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(per-token summed loss, its parts and the latents) of ``sae`` on rows ``x``."""
        x_hat, f = sae(x)
        sse = (x - x_hat).pow(2).sum()
        parts = {"sse": sse, "f": f, "x_hat": x_hat}
        if sae.activation == "relu":
            l1 = (f * sae.W_dec.norm(dim=1)).sum()
            parts["l1"] = l1
            return sse + self.hparams.l1_coefficient * l1, parts
        return sse, parts

    @torch.no_grad()
    def _init_b_dec(self, rows: dict[str, torch.Tensor]) -> None:
        """b_dec starts at the mean activation of the first global batch (once; kept on resume)."""
        for name, x in rows.items():
            total = self.trainer.strategy.reduce(x.sum(0), reduce_op="sum")
            self.saes[name].b_dec.copy_(total / self._global_count(x.shape[0]))
        self.b_dec_initialised.fill_(True)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        rows = self.residuals(batch)
        if not self.b_dec_initialised:
            self._init_b_dec(rows)
        world = self.trainer.world_size
        total = torch.zeros((), device=self.device)
        for name, x in rows.items():
            sae = self.saes[name]
            loss, parts = self.sae_loss(sae, x)
            total = total + loss * world / self._global_count(x.shape[0])  # DDP averages over processes
            f, x_hat = parts["f"].detach(), parts["x_hat"].detach()
            getattr(self, f"fired_{name}").add_((f != 0).sum(0))
            sums = reconstruction_sums(x, x_hat, f)
            self.log(f"train/{name}/mse", parts["sse"].detach() / x.shape[0])
            self.log(f"train/{name}/l0", l0_from(sums), prog_bar=True)
            self.log(f"train/{name}/var_explained", variance_explained_from(sums), prog_bar=True)
            self._last_rows[name] = (x, x_hat)
        self.log("train/loss", total.detach() / world)
        return total

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """After the optimiser step: topk decoders back to unit rows; every ``resample_every`` steps,
        latents that fired on no token of any process since the last check are resampled."""
        for sae in self.saes.values():
            if sae.activation == "topk":
                with torch.no_grad():
                    sae.W_dec.div_(sae.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))
        every, step = self.hparams.resample_every, self.trainer.global_step
        if not every or step % every:
            return
        optimizer = self.optimizers().optimizer
        for name, sae in self.saes.items():
            counter = getattr(self, f"fired_{name}")
            dead = (self.trainer.strategy.reduce(counter.double(), reduce_op="sum") == 0).nonzero().flatten()
            self.log(f"train/{name}/dead_fraction", dead.numel() / sae.d_sae)
            if dead.numel():
                self._resample(sae, dead, *self._last_rows[name], optimizer)
                rank_zero_info(f"[debiaslit] step {step}: resampled {dead.numel()} dead latents of {name}")
            counter.zero_()

    @torch.no_grad()
    def _resample(
        self,
        sae: SparseAutoencoder,
        dead: torch.Tensor,
        x: torch.Tensor,
        x_hat: torch.Tensor,
        optimizer: torch.optim.Optimizer,
    ) -> None:
        """Dead latent j -> the j-th worst-reconstructed token of the step (all processes' rows):
        decoder row its unit direction, encoder column the same at 0.2 × the mean live encoder norm."""
        rows, errors = self._gathered(x), self._gathered((x - x_hat).pow(2).sum(-1, keepdim=True))[:, 0]
        worst = errors.sort(descending=True, stable=True).indices[: dead.numel()]
        chosen = rows[worst] - sae.b_dec
        dead = dead[: chosen.shape[0]]
        directions = chosen / chosen.norm(dim=1, keepdim=True).clamp_min(1e-12)
        alive = torch.ones(sae.d_sae, dtype=torch.bool, device=dead.device)
        alive[dead] = False
        scale = 0.2 * (sae.W_enc[:, alive].norm(dim=0).mean() if alive.any() else 1.0)
        sae.W_dec[dead] = directions
        sae.W_enc[:, dead] = directions.t() * scale
        sae.b_enc[dead] = 0.0
        for param, index in ((sae.W_dec, (dead,)), (sae.W_enc, (slice(None), dead)), (sae.b_enc, (dead,))):
            for value in optimizer.state.get(param, {}).values():
                if torch.is_tensor(value) and value.shape == param.shape:
                    value[index] = 0.0

    def _gathered(self, rows: torch.Tensor) -> torch.Tensor:
        """``rows`` of every process, in rank order (padded to one length for the all-gather)."""
        if self.trainer.world_size == 1:
            return rows
        counts = self.all_gather(torch.tensor(rows.shape[0], device=rows.device)).flatten()
        padded = rows.new_zeros(int(counts.max()), rows.shape[1])
        padded[: rows.shape[0]] = rows
        gathered = self.all_gather(padded)
        return torch.cat([gathered[r, : int(c)] for r, c in enumerate(counts)])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.saes.parameters(), lr=self.hparams.lr)

    # ---- validation ----------------------------------------------------------------------------
    def _downstream(self, batch: dict[str, torch.Tensor], replace: dict[int | str, Any]) -> torch.Tensor:
        """Per real token: next-token CE (causal LMs) or the final hidden state (encoders)."""
        mask = batch["attention_mask"].bool()
        with splice(self.model, replace):
            out = self.model(**self._inputs(batch))
        if self.hparams.task == "causal-lm":
            valid = mask[:, 1:]
            logits, labels = out.logits[:, :-1][valid].float(), batch["input_ids"][:, 1:][valid]
            return F.cross_entropy(logits, labels, reduction="none")
        return out.last_hidden_state[mask].float()

    def _loss_sums(self, out: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        """[Σ loss, tokens]: CE as is; for encoders the squared distance to the clean final states."""
        loss = out.sum() if self.hparams.task == "causal-lm" else (out - clean).pow(2).sum()
        return torch.stack([loss, torch.tensor(float(out.shape[0]), device=out.device)]).double()

    def on_validation_epoch_start(self) -> None:
        self._val = {}

    @torch.no_grad()
    def validation_step(
        self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        rows = self.residuals(batch)
        clean = self._downstream(batch, {})
        for layer in self.layers:
            name = site_name(layer)
            sae, x = self.saes[name], rows[name]
            x_hat, f = sae(x)
            stats = reconstruction_sums(x, x_hat, f)
            spliced = self._downstream(batch, {layer: lambda h, s=sae: s(h.float())[0].to(h.dtype)})
            ablated = self._downstream(batch, {layer: torch.zeros_like})
            stats |= {
                "clean": self._loss_sums(clean, clean),
                "spliced": self._loss_sums(spliced, clean),
                "ablated": self._loss_sums(ablated, clean),
            }
            acc = self._val.setdefault(name, {})
            for key, value in stats.items():
                acc[key] = acc[key] + value if key in acc else value

    def on_validation_epoch_end(self) -> None:
        for name, acc in self._val.items():
            sums = {key: self.trainer.strategy.reduce(value, reduce_op="sum") for key, value in acc.items()}
            clean, spliced, ablated = (
                float(sums[k][0] / sums[k][1]) for k in ("clean", "spliced", "ablated")
            )
            metrics = {
                "var_explained": float(variance_explained_from(sums)),
                "l0": float(l0_from(sums)),
                "dead_fraction": float(dead_fraction_from(sums["fired"])),
                "loss_clean": clean,
                "loss_spliced": spliced,
                "loss_zero_ablated": ablated,
                "loss_recovered": loss_recovered(clean, spliced, ablated),
            }
            self.fidelity[name] = metrics
            for key, value in metrics.items():
                self.log(
                    f"val/{name}/{key}",
                    value,
                    prog_bar=key in ("var_explained", "l0", "loss_recovered"),
                    rank_zero_only=True,
                )

    # ---- outputs -------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Checkpoints hold the SAEs and counters, not the frozen backbone (reloaded from ``backbone``)."""
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith("model.")]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The backbone's weights come from ``backbone`` itself, so loading stays strict for the SAEs."""
        checkpoint["state_dict"].update({f"model.{k}": v for k, v in self.model.state_dict().items()})

    def on_train_end(self) -> None:
        """Rank 0 writes the SAEs (nothing under ``fast_dev_run``, as every run output)."""
        if self.trainer.fast_dev_run:
            return
        folder = Path(self.hparams.save_dir) if self.hparams.save_dir else run_dir(self.trainer)
        if folder is None or not self.trainer.is_global_zero:
            return
        folder = folder / SAES_FOLDER if not self.hparams.save_dir else folder
        for name, sae in self.saes.items():
            metadata = {"model_name": self.hparams.backbone, "trained_by": "debiaslit SAETrainer"}
            if sae.activation == "relu":  # unit decoder rows: latents then equal their L1-weighted values
                sae = copy.deepcopy(sae).normalize_decoder_()
            out = write_saelens(sae, folder / name, metadata)
            if name in self.fidelity:
                write_text_atomic(out / "fidelity.json", json.dumps(self.fidelity[name], indent=2) + "\n")
            rank_zero_info(f"[debiaslit] SAE {name} written to {out}")
