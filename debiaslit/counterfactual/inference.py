"""Counterfactual inference on saved probabilities (Udomcharoenchaikit et al., EMNLP 2022; METHODS.md §5).

Post-hoc, no retraining: the main model's probabilities ``p_m`` and the bias model's ``p_b`` are fused
on probability vectors with ``F(a, x) = log σ(a + x)``, and the prediction is the argmax of the total
indirect effect ``TIE = F(p_b, p_m) − F(p_b, c)`` (the bias's effect through the model), or of
``TE_model = p_m − c′·p_b``. The scalar ``c`` / ``c′`` is fitted on in-distribution dev predictions
(never on the challenge set).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from debiaslit.errors import ConfigError

METHODS = ("tie", "te_model")
OBJECTIVES = ("reference", "cfvqa")


def fuse(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``F(a, x) = log σ(a + x)``, elementwise (natural log)."""
    return F.logsigmoid(a + x)


def causal_effects(p_m: torch.Tensor, p_b: torch.Tensor, c: float | torch.Tensor) -> dict[str, torch.Tensor]:
    """TE, TIE, NDE, NIE and INT_med of §5.1 (``u = 1/K`` stands for the absent bias, ``c`` for the
    absent model)."""
    u = torch.full_like(p_b, 1.0 / p_b.shape[-1])
    c = torch.as_tensor(c, dtype=p_m.dtype, device=p_m.device).expand_as(p_m)
    y_ax, y_axs, y_asxs, y_asx = fuse(p_b, p_m), fuse(p_b, c), fuse(u, c), fuse(u, p_m)
    tie, nie = y_ax - y_axs, y_asx - y_asxs
    return {"te": y_ax - y_asxs, "tie": tie, "nde": y_axs - y_asxs, "nie": nie, "int_med": tie - nie}


def kl_terms(target: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Elementwise ``t·(log t − log q)`` (0 where t = 0); summed over labels this is KL(t ‖ q)."""
    return torch.xlogy(target, target) - target * log_q


class CounterfactualPostProcessor(nn.Module):
    """One scalar (``c`` for TIE, ``c′`` for TE_model), fitted with Adam on dev probabilities.

    Objectives for ``c`` (``method="tie"``):

    * ``reference`` (``c4n/debias_nlu``, ``get_c`` / ``sharpness_correction``; the default, so that the
      anchor numbers reproduce): ``mean_{i,j} p_b,ij·log(p_b,ij / softmax(log σ(c + F(p_m, p_b)))_ij)``;
    * ``cfvqa`` (the paper's stated, CF-VQA objective): ``KL(softmax(F(p_b, p_m)) ‖ softmax(F(p_b, c)))``,
      averaged over examples.

    ``c′`` (``method="te_model"``) has only the reference objective,
    ``mean_{i,j} p_b,ij·log(p_b,ij / softmax(softmax(c′·p_m))_ij)`` (the double softmax is the
    reference's; c′ then acts as a sharpness scale).
    """

    def __init__(
        self,
        method: str = "tie",
        objective: str = "reference",
        num_labels: int = 3,
        epochs: int = 16,
        lr: float = 1e-4,
        batch_size: int = 64,
        seed: int = 42,
    ) -> None:
        super().__init__()
        if method not in METHODS:
            raise ConfigError(f"counterfactual method must be one of {METHODS}, got '{method}'")
        if objective not in OBJECTIVES:
            raise ConfigError(f"counterfactual objective must be one of {OBJECTIVES}, got '{objective}'")
        if method == "te_model" and objective != "reference":
            raise ConfigError("counterfactual method 'te_model' has only the 'reference' objective for c'")
        self.method, self.objective = method, objective
        self.epochs, self.lr, self.batch_size, self.seed = epochs, lr, batch_size, seed
        self.c = nn.Parameter(torch.tensor(1.0 / num_labels))

    def loss(self, p_m: torch.Tensor, p_b: torch.Tensor) -> torch.Tensor:
        """The fitting objective of the configured method and objective on one batch."""
        if self.method == "te_model":
            return kl_terms(p_b, F.log_softmax(torch.softmax(self.c * p_m, -1), -1)).mean()
        if self.objective == "reference":
            return kl_terms(p_b, F.log_softmax(fuse(self.c, fuse(p_m, p_b)), -1)).mean()
        factual = torch.softmax(fuse(p_b, p_m), -1)
        return kl_terms(factual, F.log_softmax(fuse(p_b, self.c.expand_as(p_m)), -1)).sum(-1).mean()

    def fit(self, p_m: torch.Tensor, p_b: torch.Tensor) -> CounterfactualPostProcessor:
        """Adam on shuffled mini-batches (reference: lr 1e-4, 16 epochs, batch 64, seed 42)."""
        p_m, p_b = p_m.detach().float().clone(), p_b.detach().float().clone()  # no inference tensors
        if p_m.shape != p_b.shape or p_m.ndim != 2:
            raise ConfigError(
                f"counterfactual fit: p_m {tuple(p_m.shape)} and p_b {tuple(p_b.shape)} must be [N, K]"
            )
        optimizer = torch.optim.Adam(self.parameters(), lr=self.lr)
        generator = torch.Generator().manual_seed(self.seed)
        for _ in range(self.epochs):
            order = torch.randperm(len(p_m), generator=generator)
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                optimizer.zero_grad()
                self.loss(p_m[idx], p_b[idx]).backward()
                optimizer.step()
        return self

    @torch.no_grad()
    def transform(self, p_m: torch.Tensor, p_b: torch.Tensor) -> torch.Tensor:
        """Debiased scores; the prediction is their argmax."""
        p_m, p_b = p_m.float(), p_b.float()
        if self.method == "te_model":
            return p_m - self.c * p_b
        return fuse(p_b, p_m) - fuse(p_b, self.c.expand_as(p_m))
