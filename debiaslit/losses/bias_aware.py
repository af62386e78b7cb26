"""The bias-aware loss family (METHODS.md §4.3): reweighting, error-set upweighting, product of experts,
learned-mixin(+H), confidence regularisation, with optional annealing of the bias probabilities.

Every loss reads the frozen bias model's probabilities from ``batch["bias_probs"]`` ([B, K], label
order ``NLI_LABELS``, no gradient) and, for confidence regularisation, the teacher's from
``batch["teacher_probs"]``. Only the main model predicts at test time; the losses change training only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from debiaslit.errors import ConfigError
from debiaslit.losses.base import ClassificationLoss

#: Bias models such as an LR with C = 100 emit exact zeros; log p_b is taken of p_b clamped to this.
MIN_PROB = 1e-12
REWEIGHT_NORMS = ("global", "batch")
ANNEAL_TARGETS = ("probs", "weight")


def anneal_probs(probs: torch.Tensor, theta: float) -> torch.Tensor:
    """``p^θ / Σ_k p_k^θ`` (Utama et al. 2020b); θ = 1 is the identity, θ < 1 flattens ``p``."""
    return torch.softmax(theta * probs.clamp_min(MIN_PROB).log(), dim=-1)


def gold_prob(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``p[i, y_i]`` for every row (``gather``: no device-bound one-hot tables)."""
    return probs.gather(1, labels.unsqueeze(1)).squeeze(1)


class BiasAwareLoss(ClassificationLoss):
    """Shared plumbing: reading ``bias_probs`` and annealing them over training.

    Args:
        anneal_to: Final annealing exponent θ; θ falls linearly from 1.0 at the first step to
            ``anneal_to`` at the last (``1.0`` = no annealing). The module sets the training progress
            from ``trainer.global_step / trainer.estimated_stepping_batches`` before every step.
    """

    requires: tuple[str, ...] = ("bias_probs",)

    def __init__(self, anneal_to: float = 1.0) -> None:
        super().__init__()
        if not 0.0 < anneal_to <= 1.0:
            raise ConfigError(f"loss anneal_to must lie in (0, 1], got {anneal_to}")
        self.anneal_to = anneal_to
        self.progress = 0.0

    def set_progress(self, progress: float) -> None:
        """Training progress in [0, 1] (set by the method before every step)."""
        self.progress = min(1.0, max(0.0, float(progress)))

    @property
    def theta(self) -> float:
        return 1.0 - (1.0 - self.anneal_to) * self.progress

    def bias_probs(
        self, batch: dict[str, torch.Tensor], logits: torch.Tensor, anneal: bool = True
    ) -> torch.Tensor:
        """The batch's bias probabilities, detached, on the logits' device and dtype, annealed."""
        probs = batch["bias_probs"].detach().to(device=logits.device, dtype=torch.float32)
        if probs.shape != logits.shape:
            raise ConfigError(
                f"batch['bias_probs'] has shape {tuple(probs.shape)} but the logits {tuple(logits.shape)}"
            )
        return anneal_probs(probs, self.theta) if anneal and self.theta != 1.0 else probs


class WeightedCrossEntropy(BiasAwareLoss):
    """``Σ_i w_i·CE_i / Σ_i w_i`` with per-example weights from the bias model (:meth:`weights`).

    Args:
        norm: ``global`` divides by the weight sum of the *global* batch (all-reduced across DDP
            ranks, no gradient; each rank's loss is scaled by the world size so that DDP's gradient
            average equals the full-batch gradient): the objective then does not depend on the
            number of processes. ``batch`` divides by each rank's local sum (the public code's form).
    """

    def __init__(self, norm: str = "global", anneal_to: float = 1.0) -> None:
        super().__init__(anneal_to)
        if norm not in REWEIGHT_NORMS:
            raise ConfigError(f"{type(self).__name__} norm must be one of {REWEIGHT_NORMS}, got '{norm}'")
        self.norm = norm

    def weights(
        self, logits: torch.Tensor, labels: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self, logits: torch.Tensor, labels: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        w = self.weights(logits, labels, batch)
        ce = F.cross_entropy(logits.float(), labels, reduction="none")
        total, scale = w.sum(), 1.0
        if self.norm == "global" and torch.distributed.is_available() and torch.distributed.is_initialized():
            total = total.detach().clone()
            torch.distributed.all_reduce(total)
            scale = torch.distributed.get_world_size()
        return scale * (w * ce).sum() / total.clamp_min(MIN_PROB)


class Reweight(WeightedCrossEntropy):
    """Example reweighting (Clark et al. 2019 "Reweight"): ``w_i = 1 − p_b,i(y_i)``,
    ``L = Σ_i w_i·CE_i / Σ_i w_i``.

    Args:
        norm: see :class:`WeightedCrossEntropy` (``global`` by default).
        anneal: ``probs`` anneals p_b before taking the weight (the paper); ``weight`` uses
            ``w^θ`` instead (``UKPLab/emnlp2020-debiasing-unknown``).
    """

    def __init__(self, norm: str = "global", anneal_to: float = 1.0, anneal: str = "probs") -> None:
        super().__init__(norm, anneal_to)
        if anneal not in ANNEAL_TARGETS:
            raise ConfigError(f"Reweight anneal must be one of {ANNEAL_TARGETS}, got '{anneal}'")
        self.anneal = anneal

    def weights(
        self, logits: torch.Tensor, labels: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        probs = self.bias_probs(batch, logits, anneal=self.anneal == "probs")
        w = 1.0 - gold_prob(probs, labels)
        return w.pow(self.theta) if self.anneal == "weight" else w


class UpweightErrors(WeightedCrossEntropy):
    """Error-set upweighting (JTT, Liu et al. 2021): ``w_i = upweight`` where the bias model's argmax
    is wrong, else 1; ``L = Σ_i w_i·CE_i / Σ_i w_i``. With an in-sample ERM model trained briefly as
    the bias model (``FinetunedBias(folds: 1, epochs: 1)``) this is "train ERM, upweight what it gets
    wrong, train again"; ``upweight`` is λ_up (Liu et al. search 6–100 on their data).
    """

    def __init__(self, upweight: float = 6.0, norm: str = "global") -> None:
        super().__init__(norm)
        if not upweight >= 1.0:
            raise ConfigError(f"UpweightErrors upweight must be >= 1, got {upweight}")
        self.upweight = upweight

    def weights(
        self, logits: torch.Tensor, labels: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        wrong = self.bias_probs(batch, logits).argmax(-1) != labels
        return 1.0 + (self.upweight - 1.0) * wrong.float()


class ProductOfExperts(BiasAwareLoss):
    """Product of experts (Clark 2019 "Bias Product", He et al. 2019): ``CE(log_softmax(z) + log p_b, y)``."""

    def forward(
        self, logits: torch.Tensor, labels: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        log_pb = self.bias_probs(batch, logits).clamp_min(MIN_PROB).log()
        return F.cross_entropy(F.log_softmax(logits.float(), -1) + log_pb, labels)


class LearnedMixin(BiasAwareLoss):
    """Learned-mixin (+H) (Clark et al. 2019): ``g(x) = softplus(wᵀh(x) + b)``,
    ``L = CE(log_softmax(z) + g(x)·log p_b, y) + w_H·H(softmax(g(x)·log p_b))``.

    ``h(x)`` is the main model's pooled hidden state, which ``DebiasModule`` puts in
    ``batch["features"]`` when a loss requires it. The gate ``(w, b)`` is built for the backbone's
    hidden size when the module binds the loss (``bind_backbone``) and is saved in checkpoints.

    Args:
        entropy_weight: ``w_H`` of the +H variant (Clark et al.: 0.03); 0 = plain learned-mixin.
        detach_features: Stop the gate's gradient into the encoder (the reference code does not).
        hidden_size: Build the gate now instead of at binding time.
    """

    requires = ("bias_probs", "features")

    def __init__(
        self,
        entropy_weight: float = 0.0,
        detach_features: bool = False,
        anneal_to: float = 1.0,
        hidden_size: int | None = None,
    ) -> None:
        super().__init__(anneal_to)
        if entropy_weight < 0:
            raise ConfigError(f"LearnedMixin entropy_weight must be >= 0, got {entropy_weight}")
        self.entropy_weight = entropy_weight
        self.detach_features = detach_features
        self.gate: nn.Linear | None = None
        if hidden_size is not None:
            self.bind_backbone(hidden_size)

    def bind_backbone(self, hidden_size: int) -> None:
        """Create the gate for this hidden size (no-op when it already matches)."""
        if self.gate is not None:
            if self.gate.in_features != hidden_size:
                raise ConfigError(
                    f"LearnedMixin gate was built for hidden size {self.gate.in_features}, "
                    f"the backbone has {hidden_size}"
                )
            return
        self.gate = nn.Linear(hidden_size, 1)

    def scale(self, features: torch.Tensor) -> torch.Tensor:
        """``g(x) ≥ 0`` per example, shape [B, 1]."""
        if self.gate is None:
            raise ConfigError("LearnedMixin has no gate: the model did not bind it to a backbone")
        h = features.detach() if self.detach_features else features
        return F.softplus(self.gate(h.to(self.gate.weight.dtype)))

    def forward(
        self, logits: torch.Tensor, labels: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        log_pb = self.bias_probs(batch, logits).clamp_min(MIN_PROB).log()
        scaled_bias = self.scale(batch["features"]).float() * log_pb
        loss = F.cross_entropy(F.log_softmax(logits.float(), -1) + scaled_bias, labels)
        if self.entropy_weight:
            log_q = F.log_softmax(scaled_bias, -1)
            entropy = -(log_q.exp() * log_q).sum(-1).mean()
            loss = loss + self.entropy_weight * entropy
        return loss


class ConfidenceRegularization(BiasAwareLoss):
    """Confidence regularisation (Utama et al. 2020a): distil a teacher scaled by the bias confidence.

    ``β_i = p_b,i(y_i)``, ``S_i ∝ p_t,i^(1−β_i)``, ``L = −mean_i Σ_j S_ij log p_m,ij``; the teacher
    (``batch["teacher_probs"]``) is a plain model from an earlier run predicting on the training set.
    Computed in log space (``log_softmax``) so that fp16/bf16 zeros do not give NaN.
    """

    requires = ("bias_probs", "teacher_probs")

    def forward(
        self, logits: torch.Tensor, labels: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        beta = gold_prob(self.bias_probs(batch, logits), labels)
        teacher = batch["teacher_probs"].detach().to(device=logits.device, dtype=torch.float32)
        if teacher.shape != logits.shape:
            shapes = f"{tuple(teacher.shape)} but the logits {tuple(logits.shape)}"
            raise ConfigError(f"batch['teacher_probs'] has shape {shapes}")
        target = torch.softmax((1.0 - beta).unsqueeze(1) * teacher.clamp_min(MIN_PROB).log(), dim=-1)
        return -(target * F.log_softmax(logits.float(), -1)).sum(-1).mean()
