"""Multinomial logistic regression in torch (the hand-crafted-feature bias classifier).

Objective as scikit-learn's: ``C · Σ_i s_i·CE_i + ½‖W‖²`` (intercept not penalised), with balanced
sample weights ``s_i = n / (K · n_{y_i})`` when asked, solved with L-BFGS in float64. Features are
standardised first (so the penalty acts on standardised weights).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class LogisticRegression:
    """``fit(x, y)`` / ``predict_proba(x)`` on float arrays; classes are ``0 .. num_classes-1``."""

    def __init__(
        self, num_classes: int, c: float = 100.0, balanced: bool = True, max_iter: int = 200
    ) -> None:
        self.num_classes = num_classes
        self.c = c
        self.balanced = balanced
        self.max_iter = max_iter
        self.mean = self.std = self.weight = self.bias = None

    def fit(self, x: torch.Tensor, y: torch.Tensor) -> LogisticRegression:
        x = torch.as_tensor(x, dtype=torch.float64)
        y = torch.as_tensor(y, dtype=torch.long)
        self.mean, self.std = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-8)
        z = (x - self.mean) / self.std
        counts = torch.bincount(y, minlength=self.num_classes).double()
        if self.balanced:
            sample_w = (len(y) / (self.num_classes * counts.clamp_min(1)))[y]
        else:
            sample_w = torch.ones(len(y), dtype=torch.float64)
        weight = torch.zeros(z.shape[1], self.num_classes, dtype=torch.float64, requires_grad=True)
        bias = torch.zeros(self.num_classes, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([weight, bias], max_iter=self.max_iter, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            ce = F.cross_entropy(z @ weight + bias, y, reduction="none")
            loss = (self.c * (sample_w * ce).sum() + 0.5 * weight.pow(2).sum()) / len(y)
            loss.backward()
            return loss

        opt.step(closure)
        self.weight, self.bias = weight.detach(), bias.detach()
        return self

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight is None:
            raise RuntimeError("LogisticRegression used before fit")
        z = (torch.as_tensor(x, dtype=torch.float64) - self.mean) / self.std
        return z @ self.weight + self.bias

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=-1)
