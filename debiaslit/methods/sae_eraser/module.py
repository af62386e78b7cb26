"""SAE concept eraser (METHODS.md §6.4): learn which SAE latents of the residual stream to remove so that a
concept (gender) leaves the representation while a task (profession) stays.

At the start of fit, on the training split with every edit off, the method fits its references once
(identical on every DDP rank: the whole split, in order, on each): the task probe, a concept probe,
the LEACE eraser of the read site and the attribution of every latent to the concept probe's margin.
Training then moves only the gate logits (and the task probe, unless frozen): backbone and SAEs are
frozen. The references, gates and baselines live in the checkpoint, so ``validate --ckpt_path``
reproduces the table.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from concept_erasure import LeaceEraser, LeaceFitter
from lightning.pytorch.utilities import rank_zero_only
from torch import nn
from torch.utils.data import DataLoader

from debiaslit.errors import ConfigError
from debiaslit.evaluation import Evaluator
from debiaslit.evaluation.erasure import ROWS, ErasureEvaluator
from debiaslit.evaluation.probes import Probe, fit_probe
from debiaslit.methods.base import TOKEN_FIELDS, BackboneModule
from debiaslit.methods.sae_eraser.eraser import ResidualEraser
from debiaslit.methods.sae_eraser.export import save_erased, save_gate_masks
from debiaslit.methods.sae_eraser.gate import annealed_temperature
from debiaslit.methods.sae_eraser.objectives import (
    OBJECTIVES,
    cross_covariance_norm,
    reverse_gradient,
    uniform_target_loss,
)
from debiaslit.sae import load_sae
from debiaslit.utils.run_dir import run_dir

OPTION = "model.init_args"
CONCEPT_CLASSES = 2  # gender: 0 male, 1 female (the Bias in Bios batches' ``gender``)


class SAEEraserMethod(BackboneModule):
    """Learned latent gates at residual sites of a frozen backbone, with an SAE per site.

    Args:
        backbone: See :class:`~debiaslit.methods.base.BackboneModule`.
        task: Backbone head: ``base`` (hidden states only) or ``causal-lm`` (adds the LM-loss change).
        saes: One SAE file per layer (SAELens folder or dictionary_learning ``ae.pt``; ``debiaslit.sae``).
        layers: Residual sites: the output of these blocks (``-1``: the embeddings); every one is edited.
        read_layer: Residual site every probe reads (``None``: the last of ``layers``).
        num_professions: Task classes (``datamodule.professions``).
        pooling: One pooling for fitting and applying every probe (``mean``, ``first``, ``last``, ``auto``).
        gate: ``sigmoid_temp`` (g = σ(m/T), T annealed) or ``hard_concrete``.
        init_logit: m0: every gate starts open at σ(m0/T0).
        temperature: (T0, T1) of the exponential anneal of ``sigmoid_temp``.
        concept_objective: ``cross_cov`` (default), ``adversarial`` or ``probe_chance``.
        lambda_concept: λ_c on the concept objective.
        lambda_sparsity: λ_s on the (expected) number of removed latents.
        train_task_probe: Train the task probe with the gates (else it stays as fitted on unedited data).
        warm_start_top_n: Start the N latents with the largest attribution to the concept closed.
        baseline_latents: Latents removed by the SHIFT-style and random baselines (``None``: as many as
            the eraser removes, at least one).
        reference_batches: Training batches the references are fitted on (``None``: all).
        reference_batch_size: Their size: fixed, so the references do not depend on the training batch
            size or the process count.
        probe_steps: Full-batch optimisation steps of every fitted probe.
        lr, weight_decay, warmup_ratio: AdamW on the gate logits (and the probes that train).
        evaluator: What validate / test report (:class:`ErasureEvaluator` when not given).
    """

    def __init__(
        self,
        backbone: str = "tiny-bert",
        task: str = "base",
        saes: list[str] | None = None,
        layers: list[int] | None = None,
        read_layer: int | None = None,
        num_professions: int = 2,
        pooling: str = "mean",
        gate: str = "sigmoid_temp",
        init_logit: float = 4.0,
        temperature: tuple[float, float] = (1.0, 0.01),
        concept_objective: str = "cross_cov",
        lambda_concept: float = 1.0,
        lambda_sparsity: float = 1e-3,
        train_task_probe: bool = True,
        warm_start_top_n: int = 0,
        baseline_latents: int | None = None,
        reference_batches: int | None = None,
        reference_batch_size: int = 32,
        probe_steps: int = 100,
        lr: float = 0.05,
        weight_decay: float = 0.0,
        warmup_ratio: float = 0.0,
        evaluator: Evaluator | None = None,
    ) -> None:
        if task not in ("base", "causal-lm"):
            raise ConfigError(f"{OPTION}.task must be 'base' or 'causal-lm' for the eraser, got {task!r}")
        super().__init__(
            backbone, task, 2, lr, weight_decay, warmup_ratio, 0.0, None,
            evaluator if evaluator is not None else ErasureEvaluator(),
        )  # fmt: skip
        if not saes or not layers:
            raise ConfigError(f"{OPTION}.saes and {OPTION}.layers must each list one entry per site")
        if concept_objective not in OBJECTIVES:
            raise ConfigError(
                f"{OPTION}.concept_objective must be one of {OBJECTIVES}, got {concept_objective!r}"
            )
        if not 0 < temperature[1] <= temperature[0]:
            raise ConfigError(f"{OPTION}.temperature must be (T0, T1) with T0 >= T1 > 0, got {temperature}")
        if num_professions < 2:
            raise ConfigError(f"{OPTION}.num_professions must be >= 2, got {num_professions}")
        for name, low in (("warm_start_top_n", 0), ("probe_steps", 1), ("reference_batch_size", 1)):
            if getattr(self.hparams, name) < low:
                raise ConfigError(f"{OPTION}.{name} must be >= {low}, got {getattr(self.hparams, name)}")
        self.eraser = ResidualEraser(
            self.model, [load_sae(path) for path in saes], layers, read_layer, pooling, gate, init_logit
        )
        d = self.model.config.hidden_size
        self.reference_probe = Probe(d, num_professions).requires_grad_(False)
        self.task_probe = Probe(d, num_professions).requires_grad_(train_task_probe)
        self.concept_probe = Probe(d, CONCEPT_CLASSES).requires_grad_(False)
        self.adversary = Probe(d, CONCEPT_CLASSES) if concept_objective == "adversarial" else None
        total = sum(g.logits.numel() for g in self.eraser.gates)
        self.register_buffer("attribution", torch.zeros(total))
        self.register_buffer("random_order", torch.randperm(total))  # from the run's seed
        self.register_buffer("leace_left", torch.zeros(d, 1))
        self.register_buffer("leace_right", torch.zeros(1, d))
        self.register_buffer("leace_bias", torch.zeros(d))
        self.register_buffer("references_ready", torch.zeros((), dtype=torch.bool))

    # ---------------------------------------------------------------------------------- modes
    def train(self, mode: bool = True) -> SAEEraserMethod:
        """The backbone stays in eval mode (it is frozen; no dropout noise in the edit's gradients)."""
        super().train(mode)
        self.model.eval()
        return self

    @staticmethod
    def tokens(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: batch[k] for k in TOKEN_FIELDS if k in batch}

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Task-probe logits on the erased representation (what the edited model predicts)."""
        pooled, _ = self.eraser.read(self.tokens(batch), "gates")
        return self.task_probe(pooled)

    # ----------------------------------------------------------------------------- references
    def on_fit_start(self) -> None:
        if bool(self.references_ready):
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None:
            raise ConfigError(
                "SAEEraserMethod fits its references on the DataModule's training split: pass data"
            )
        professions = getattr(datamodule, "professions", None)
        if professions is not None and len(professions) != self.hparams.num_professions:
            raise ConfigError(
                f"{OPTION}.num_professions is {self.hparams.num_professions}, the DataModule has "
                f"{len(professions)} professions {list(professions)}"
            )
        loader = datamodule.train_dataloader()
        # the split in order, in batches of a fixed size, on every rank: the same references on each
        ordered = DataLoader(
            loader.dataset, batch_size=self.hparams.reference_batch_size, collate_fn=loader.collate_fn
        )
        self.fit_references(ordered)
        if self.hparams.warm_start_top_n:
            for gate, closed in zip(
                self.eraser.gates, self.top_attributed(self.hparams.warm_start_top_n), strict=True
            ):
                gate.close(closed)

    def _reference_batches(self, loader: Iterable) -> Iterable[dict[str, torch.Tensor]]:
        limit = self.hparams.reference_batches
        for i, batch in enumerate(loader):
            if limit is not None and i >= limit:
                return
            yield {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    def fit_references(self, loader: Iterable) -> None:
        """Task and concept probes, LEACE and latent attributions from unedited training batches."""
        feats, professions, genders = [], [], []
        with torch.no_grad():
            for batch in self._reference_batches(loader):
                feats.append(self.eraser.read(self.tokens(batch), "none")[0].float())
                professions.append(batch["profession"])
                genders.append(batch["gender"])
        if not feats:
            raise ConfigError("the training split gave no batch to fit the eraser's references on")
        x, prof, gender = torch.cat(feats), torch.cat(professions), torch.cat(genders)
        steps = self.hparams.probe_steps
        self.reference_probe.load_state_dict(
            fit_probe(x, prof, self.hparams.num_professions, steps=steps).state_dict()
        )
        self.task_probe.load_state_dict(self.reference_probe.state_dict())
        self.concept_probe.load_state_dict(fit_probe(x, gender, CONCEPT_CLASSES, steps=steps).state_dict())
        if self.adversary is not None:
            self.adversary.load_state_dict(self.concept_probe.state_dict())
        leace = LeaceFitter.fit(x, gender.to(x.dtype)[:, None]).eraser
        self.leace_left.copy_(leace.proj_left)
        self.leace_right.copy_(leace.proj_right)
        self.leace_bias.copy_(leace.bias)
        self.attribution.copy_(self.latent_attribution(self._reference_batches(loader)))
        self.references_ready.fill_(True)

    def latent_attribution(self, batches: Iterable[dict[str, torch.Tensor]]) -> torch.Tensor:
        """Attribution patching of every latent: Σ over examples of ∂(signed concept margin)/∂g at g = 1,
        ≈ how much removing the latent lowers the concept probe's evidence (SHIFT without the human)."""
        total = torch.zeros_like(self.attribution)
        for batch in batches:
            gates = [
                torch.ones(g.logits.numel(), device=self.device, requires_grad=True)
                for g in self.eraser.gates
            ]
            self.eraser.attribution_gates = gates
            with torch.enable_grad():
                pooled, _ = self.eraser.read(self.tokens(batch), "attribution")
                logits = self.concept_probe(pooled)
                margin = (logits[:, 1] - logits[:, 0]) * (2.0 * batch["gender"].to(logits.dtype) - 1.0)
                grads = torch.autograd.grad(margin.sum(), gates)
            total += torch.cat(grads)
        self.eraser.attribution_gates = []
        return total

    def _per_site(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Split indices into the concatenation of all sites' latents into per-site latent indices."""
        out, start = [], 0
        for gate in self.eraser.gates:
            n = gate.logits.numel()
            out.append(flat[(flat >= start) & (flat < start + n)] - start)
            start += n
        return out

    def top_attributed(self, n: int) -> list[torch.Tensor]:
        """The ``n`` latents (over all sites) with the largest attribution: the SHIFT-style set."""
        return self._per_site(self.attribution.topk(min(n, self.attribution.numel())).indices)

    def random_latents(self, n: int) -> list[torch.Tensor]:
        """``n`` latents drawn uniformly over all sites (a fixed draw from the run's seed)."""
        return self._per_site(self.random_order[:n])

    def leace_eraser(self) -> LeaceEraser:
        return LeaceEraser(self.leace_left, self.leace_right, self.leace_bias)

    # ------------------------------------------------------------------------------- training
    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        total = max(1, int(self.trainer.estimated_stepping_batches))
        t0, t1 = self.hparams.temperature
        self.eraser.set_temperature(annealed_temperature(self.trainer.global_step, total, t0, t1))

    def concept_loss(self, pooled: torch.Tensor, gender: torch.Tensor) -> torch.Tensor:
        objective = self.hparams.concept_objective
        if objective == "adversarial":
            return nn.functional.cross_entropy(self.adversary(reverse_gradient(pooled)), gender)
        if objective == "probe_chance":
            return uniform_target_loss(self.concept_probe(pooled))
        # the global batch (gradients flow back to each rank's share), standardised as the probes see it
        x = self.all_gather(pooled, sync_grads=True).reshape(-1, pooled.shape[-1])
        z = self.all_gather(gender).reshape(-1)
        x = (x - self.concept_probe.mean) / self.concept_probe.scale
        return cross_covariance_norm(x, z, CONCEPT_CLASSES)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        pooled, _ = self.eraser.read(self.tokens(batch), "gates")
        task = nn.functional.cross_entropy(self.task_probe(pooled), batch["profession"])
        concept = self.concept_loss(pooled, batch["gender"])
        sparsity = self.eraser.sparsity_penalty()
        loss = task + self.hparams.lambda_concept * concept + self.hparams.lambda_sparsity * sparsity
        self.log("train/loss", loss, prog_bar=True)
        self.log_dict(
            {
                "train/task_loss": task,
                "train/concept_loss": concept,
                "train/expected_erased": sparsity,
                "train/erased": float(sum(e.numel() for e in self.eraser.erased())),
                "train/temperature": self.eraser.gates[0].temperature,
            }
        )
        return loss

    # ----------------------------------------------------------------------------- evaluation
    def erased_latents(self, variant: str) -> list[torch.Tensor] | None:
        """Latents removed per site by a row of the evaluation (None: the row removes no latents)."""
        if variant == "eraser":
            return self.eraser.erased()
        if variant == "all_latents":
            return [torch.arange(g.logits.numel(), device=self.device) for g in self.eraser.gates]
        if variant in ("shift", "random"):
            n = self.hparams.baseline_latents
            n = max(1, sum(e.numel() for e in self.eraser.erased())) if n is None else n
            return self.top_attributed(n) if variant == "shift" else self.random_latents(n)
        return None

    def representations(
        self, batch: dict[str, torch.Tensor], variant: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled read-site features and read-site token states of one evaluation row."""
        return self.eraser.read(self.tokens(batch), *self._mode(variant))

    def _mode(self, variant: str) -> tuple[str, list[torch.Tensor] | None]:
        if variant not in ROWS:
            raise ConfigError(f"unknown evaluation row {variant!r}; valid: {', '.join(ROWS)}")
        if not bool(self.references_ready):
            raise ConfigError(
                "SAEEraserMethod has no fitted references: evaluate after `debiaslit fit`, or pass "
                "--ckpt_path with a checkpoint of such a run"
            )
        if variant == "leace":
            self.eraser.leace = self.leace_eraser()
            return "leace", None
        if variant == "none":
            return "none", None
        if variant == "eraser":
            return "gates", None
        return "fixed", self.erased_latents(variant)

    def task_logits(self, pooled: torch.Tensor, variant: str) -> torch.Tensor:
        """The eraser's row is read by its trained task probe, every other row by the reference probe."""
        return (self.task_probe if variant == "eraser" else self.reference_probe)(pooled)

    def lm_loss(
        self, batch: dict[str, torch.Tensor], variant: str
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Per example: summed next-token cross-entropy and predicted-token count under a row's edit;
        None without an LM head."""
        if self.hparams.task != "causal-lm":
            return None
        tokens = self.tokens(batch)
        logits = self.eraser.logits(tokens, *self._mode(variant))[:, :-1].float()
        targets = tokens["input_ids"][:, 1:]
        mask = tokens.get("attention_mask", torch.ones_like(tokens["input_ids"]))[:, 1:].to(logits.dtype)
        ce = nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        return (ce * mask).sum(1), mask.sum(1)

    # --------------------------------------------------------------------------------- outputs
    def on_fit_end(self) -> None:
        log_dir = run_dir(self.trainer)
        if log_dir is not None:
            self.write_outputs(log_dir)

    @rank_zero_only
    def write_outputs(self, log_dir: Path) -> None:
        path = self.save_erased(log_dir / "erased_latents.json")
        counts = {layer: e.numel() for layer, e in zip(self.eraser.layers, self.eraser.erased(), strict=True)}
        print(f"\n[debiaslit] erased latents per layer {counts} -> {path}", flush=True)

    def save_erased(self, path: str | Path) -> Path:
        """The removed latents per site, the SAE files and the read site, as JSON."""
        return save_erased(self.eraser, self.hparams.saes, path)

    def save_masks(self, path: str | Path) -> Path:
        """The deployed 0/1 gate of every site as safetensors (``debiaslit export --masks_only``)."""
        return save_gate_masks(self.eraser, path)

    def export_pretrained(self, directory: str | Path) -> Path:
        """A plain transformers model folder plus ``erased_latents.json`` and the SAEs: reapply the edit
        with :func:`debiaslit.methods.sae_eraser.apply_erasure` (forward hooks)."""
        from debiaslit.backbones import load_tokenizer
        from debiaslit.methods.sae_eraser.export import export_pretrained

        return export_pretrained(self.model, load_tokenizer(self.hparams.backbone), self.eraser, directory)
