"""Trainable bias models: ``fit(examples)`` then ``predict(examples) -> [N, 3]`` in ``NLI_LABELS`` order."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol

import torch

from debiaslit.backbones.checkpoint_file import backbone_weights, read_checkpoint
from debiaslit.bias.experts import one_vs_rest_loss, one_vs_rest_poe
from debiaslit.bias.features import hans_features
from debiaslit.bias.logistic import LogisticRegression
from debiaslit.data.schema import NLI_LABELS, NLIExample
from debiaslit.errors import ConfigError
from debiaslit.metrics.predictions import ENTAILMENT


class BiasModel(Protocol):
    def fit(self, examples: Sequence[NLIExample]) -> None: ...

    def predict(self, examples: Sequence[NLIExample]) -> torch.Tensor: ...


class HansFeatureModel:
    """Hand-crafted HANS features + logistic regression (Clark et al. 2019).

    ``binary``: entailment vs non-entailment, expanded to 3 classes as ``[p_ent, p_non/2, p_non/2]``
    (Clark's expansion); ``three_way``: a 3-class LR; ``one_vs_rest``: bias experts, one balanced binary
    LR per class combined by :func:`~debiaslit.bias.experts.one_vs_rest_poe`.
    """

    def __init__(self, classes: str = "binary", c: float = 100.0) -> None:
        self.binary = classes == "binary"
        self.experts = classes == "one_vs_rest"
        n_lr = len(NLI_LABELS) if self.experts else 1
        n_classes = 2 if self.binary or self.experts else len(NLI_LABELS)
        self.lrs = [LogisticRegression(n_classes, c=c, balanced=True) for _ in range(n_lr)]

    @staticmethod
    def features(examples: Sequence[NLIExample]) -> torch.Tensor:
        return torch.tensor([hans_features(e.premise, e.hypothesis) for e in examples], dtype=torch.float64)

    def fit(self, examples: Sequence[NLIExample]) -> None:
        labels = torch.tensor([NLI_LABELS.index(e.label) for e in examples])
        x = self.features(examples)
        if self.experts:
            for k, lr in enumerate(self.lrs):
                lr.fit(x, (labels == k).long())
            return
        self.lrs[0].fit(x, (labels != ENTAILMENT).long() if self.binary else labels)

    def predict(self, examples: Sequence[NLIExample]) -> torch.Tensor:
        x = self.features(examples)
        if self.experts:  # expert k's log-odds of "class k"
            scores = torch.stack([lr.logits(x)[:, 1] - lr.logits(x)[:, 0] for lr in self.lrs], 1)
            return one_vs_rest_poe(scores).float()
        probs = self.lrs[0].predict_proba(x).float()
        if not self.binary:
            return probs
        out = (probs[:, 1:2] / (len(NLI_LABELS) - 1)).repeat(1, len(NLI_LABELS))
        out[:, ENTAILMENT] = probs[:, 0]
        return out


class BackboneBiasModel:
    """A transformer fine-tuned briefly with a plain loop (hypothesis-only, shallow model or teacher).

    ``inputs``: ``pair`` (premise + hypothesis) or ``hypothesis`` (hypothesis only). ``head``:
    ``softmax`` (cross-entropy) or ``one_vs_rest`` (bias experts: one binary loss per class, predictions
    combined by :func:`~debiaslit.bias.experts.one_vs_rest_poe`). Fresh weights are loaded for every
    ``fit``, so cross-fitted folds never share a model.
    """

    def __init__(
        self,
        backbone: str,
        inputs: str = "pair",
        epochs: int = 3,
        lr: float = 5e-5,
        batch_size: int = 32,
        max_length: int = 128,
        seed: int = 0,
        head: str = "softmax",
    ) -> None:
        self.backbone, self.inputs, self.head = backbone, inputs, head
        self.epochs, self.lr, self.batch_size, self.max_length, self.seed = (
            epochs,
            lr,
            batch_size,
            max_length,
            seed,
        )
        self.model = self.tokenizer = None
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def _encode(self, examples: Sequence[NLIExample]) -> dict[str, torch.Tensor]:
        hyps = [e.hypothesis for e in examples]
        texts = (hyps,) if self.inputs == "hypothesis" else ([e.premise for e in examples], hyps)
        enc = self.tokenizer(
            *texts, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt"
        )
        return {k: v.to(self.device) for k, v in enc.items()}

    def fit(self, examples: Sequence[NLIExample]) -> None:
        from debiaslit.backbones import load_backbone

        self.model, self.tokenizer = load_backbone(self.backbone, num_labels=len(NLI_LABELS), seed=self.seed)
        self.model.to(self.device)
        labels = torch.tensor([NLI_LABELS.index(e.label) for e in examples], device=self.device)
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.lr)
        order = list(range(len(examples)))
        rng = random.Random(self.seed)
        self.model.train()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)  # dropout
            for _ in range(self.epochs):
                rng.shuffle(order)
                for start in range(0, len(order), self.batch_size):
                    idx = order[start : start + self.batch_size]
                    batch = self._encode([examples[i] for i in idx])
                    logits = self.model(**batch).logits
                    gold = labels[torch.tensor(idx, device=self.device)]
                    loss = self.objective(logits, gold)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
        self.model.eval()

    def objective(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.head == "one_vs_rest":
            return one_vs_rest_loss(logits.float(), labels)
        return torch.nn.functional.cross_entropy(logits, labels)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return one_vs_rest_poe(logits.float()) if self.head == "one_vs_rest" else logits.softmax(-1)

    @torch.no_grad()
    def predict(self, examples: Sequence[NLIExample]) -> torch.Tensor:
        if self.model is None:
            raise RuntimeError("BackboneBiasModel.predict before fit")
        chunks = [
            self.probabilities(self.model(**self._encode(examples[s : s + 128])).logits)
            for s in range(0, len(examples), 128)
        ]
        return torch.cat(chunks).float().cpu()


class CheckpointModel(BackboneBiasModel):
    """Predictions of a model trained in an earlier run (a ``debiaslit fit`` checkpoint), e.g. the
    plain fine-tuned teacher of confidence regularisation. It is loaded, never retrained.

    The file is unpickled with ``weights_only=True``: our checkpoints hold only tensors, containers and
    primitives, and a file that needs arbitrary unpickling could run code, so it is refused.
    """

    def __init__(self, path: str, max_length: int = 128) -> None:
        super().__init__(backbone="", max_length=max_length)
        self.path = path

    def load(self) -> None:
        from debiaslit.backbones import load_backbone

        ckpt = read_checkpoint(self.path, "CheckpointBias.path (bias / teacher model)")
        hparams = ckpt.get("hyper_parameters")
        backbone = hparams.get("backbone") if isinstance(hparams, dict) else None
        if not backbone:
            raise ConfigError(
                f"checkpoint '{self.path}' has no `backbone` hyper-parameter: not a debiaslit run"
            )
        self.model, self.tokenizer = load_backbone(backbone, num_labels=len(NLI_LABELS))
        self.model.load_state_dict(backbone_weights(ckpt, self.model, f"checkpoint '{self.path}'"))
        self.model.to(self.device).eval()
