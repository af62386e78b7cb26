"""PCGU (Yu et al. 2023) as a LightningModule for masked and causal LMs (METHODS.md §3).

Each training step scores the gendered word of both sentences of every pair, takes the gradient of
each side's summed score (two backward passes, one per side: no per-example gradients are needed),
ranks every candidate partition by the cosine of the two gradients, and updates only the ``top_k``
least similar ones. Optimisation is manual: the optimiser sees gradients only on the selected
partitions, and entries outside them are restored after the step for optimisers that would move them
anyway (momentum, weight decay, Adam), so their weights and optimiser state stay untouched.

Under DDP each ``manual_backward`` all-reduces (averages) the gradients before they are copied, so
every rank ranks the same global gradients and selects the same partitions; the objective is scaled
by ``world_size / global pairs`` so the average equals the one-process objective on the global batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.utilities import rank_zero_only

from debiaslit.backbones import load_tokenizer
from debiaslit.backbones.components import ComponentMap
from debiaslit.backbones.lm_scoring import LM_TASKS, SCORE_KINDS, word_scores
from debiaslit.cma.neurons import AllUnits, UnitSelection
from debiaslit.errors import ConfigError
from debiaslit.evaluation import Evaluator
from debiaslit.methods.base import BackboneModule
from debiaslit.methods.pcgu.guard import PAIR_TYPES, GuardMode, OverCorrectionGuard
from debiaslit.methods.pcgu.partitions import Aggregation, build_partitions
from debiaslit.methods.pcgu.ranking import ZERO_GRAD, Selection, ZeroGrad, masked_update, select_partitions
from debiaslit.utils.files import write_text_atomic
from debiaslit.utils.run_dir import run_dir

OPTION = "model.init_args"
DIRECTIONS = ("advantaged", "disadvantaged", "dynamic")
GENDERS = ("male", "female")
PAIR_FIELDS = ("input_ids", "attention_mask", "word_start", "word_end")
Direction = Literal["advantaged", "disadvantaged", "dynamic"]


def _role_inputs(batch: dict[str, torch.Tensor], male_first: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """Inputs of the first and the second sentence of each pair (male or female per row), padded to
    one width (padding is masked out, so its id does not matter)."""
    width = max(batch[f"input_ids_{g}"].shape[1] for g in GENDERS)
    sides = []
    for g in GENDERS:
        side = {}
        for name in PAIR_FIELDS:
            value = batch[f"{name}_{g}"]
            side[name] = (
                torch.nn.functional.pad(value, (0, width - value.shape[1])) if value.ndim == 2 else value
            )
        sides.append(side)
    male, female = sides
    return [
        {k: torch.where(pick.view(-1, *[1] * (male[k].ndim - 1)), male[k], female[k]) for k in PAIR_FIELDS}
        for pick in (male_first, ~male_first)
    ]


class PCGUMethod(BackboneModule):
    """Partitioned contrastive gradient unlearning on gendered minimal pairs.

    The training DataModule yields pairs (``WinogenderDataModule`` / ``WinoBiasDataModule``):
    ``input_ids_<g>``, ``attention_mask_<g>``, ``word_start_<g>``, ``word_end_<g>`` for g = male,
    female, plus ``male_advantaged`` (from Bergsma or BLS statistics) and ``pair_type``.

    Args:
        task: ``masked-lm`` (the word span masked, its log-probability read) or ``causal-lm``.
        lr: Learning rate (the reference: 1e-5, plain SGD).
        dropout: 0 by default: both gradients of a pair see the same network, so the contrast is the
            word's, not dropout noise (and 2 DDP processes give the 1-process weights).
        units: Candidate weights (``debiaslit.cma.neurons``): ``AllUnits(components, layers,
            include_head)`` or ``TopCMAUnits(neurons_csv, top_percent, ...)`` (CMA-guided PCGU: only the
            rows producing a CMA run's top units compete; use ``include_norms: false`` with it).
        aggregation: ``rows`` (output units, the reference's default) or ``columns`` (input units).
        include_embeddings: Embedding matrices compete too (one partition per token vector in rows).
        include_norms: Every LayerNorm weight and bias vector is a partition.
        top_k: Partitions updated per step (the reference: 10,000); None updates every eligible one
            (the reference's ``--use-full-grad`` ablation).
        objective: ``log_prob`` (includes the softmax normaliser) or ``logit`` (the reference's raw logit).
        direction: ``advantaged`` (descend its score), ``disadvantaged`` (raise its score) or
            ``dynamic`` (per pair, lower whichever sentence scores higher and raise the other; costs one
            extra no-grad forward pass per side to know which is ahead).
        zero_grad: ``exclude`` partitions where either gradient is zero (never selected) or
            ``reference`` (cosine 0, as the public code).
        guard: Over-correction guard per pair type: ``none``, ``stop`` or ``swap`` (see ``guard.py``).
        guard_momentum: Running-gap momentum of the guard.
        optimizer: A ``torch.optim`` class name; ``optimizer_args`` its keyword arguments besides lr.
    """

    def __init__(
        self,
        backbone: str = "tiny-bert",
        task: Literal["masked-lm", "causal-lm"] = "masked-lm",
        lr: float = 1e-5,
        dropout: float | None = 0.0,
        init_weights_from: str | None = None,
        evaluator: Evaluator | None = None,
        units: UnitSelection | None = None,
        aggregation: Aggregation = "rows",
        include_embeddings: bool = False,
        include_norms: bool = True,
        top_k: int | None = 10000,
        objective: Literal["log_prob", "logit"] = "log_prob",
        direction: Direction = "advantaged",
        zero_grad: ZeroGrad = "exclude",
        guard: GuardMode = "none",
        guard_momentum: float = 0.9,
        optimizer: str = "SGD",
        optimizer_args: dict[str, Any] | None = None,
    ) -> None:
        if task not in LM_TASKS:
            raise ConfigError(f"{OPTION}.task must be one of {LM_TASKS} for PCGU, got {task!r}")
        self._check_options(objective, direction, zero_grad, top_k, guard, optimizer, optimizer_args, lr)
        super().__init__(backbone, task, 3, lr, 0.0, 0.0, dropout, init_weights_from, evaluator)
        self.automatic_optimization = False
        self.load_initial_weights()
        self.mask_token_id = load_tokenizer(backbone).mask_token_id if task == "masked-lm" else None
        self.units = AllUnits() if units is None else units
        selected = self.units.resolve(ComponentMap.for_model(self.model), f"{OPTION}.units")
        self.groups = build_partitions(
            self.model, selected, aggregation, include_embeddings, include_norms, self.units.include_head
        )
        candidates = {g.param_name for g in self.groups}
        params = dict(self.model.named_parameters())
        for name, param in params.items():
            param.requires_grad_(name in candidates)
        self.candidates = {name: params[name] for name in dict.fromkeys(g.param_name for g in self.groups)}
        self.guard = OverCorrectionGuard(guard, guard_momentum)
        self.register_buffer("selection_counts", torch.zeros(len(self.groups), dtype=torch.long))
        self.last_selection: Selection | None = None

    @staticmethod
    def _check_options(
        objective: str,
        direction: str,
        zero_grad: str,
        top_k: int | None,
        guard: str,
        optimizer: str,
        optimizer_args: dict[str, Any] | None,
        lr: float,
    ) -> None:
        for name, value, valid in (
            ("objective", objective, SCORE_KINDS),
            ("direction", direction, DIRECTIONS),
            ("zero_grad", zero_grad, ZERO_GRAD),
        ):
            if value not in valid:
                raise ConfigError(f"{OPTION}.{name} must be one of {valid}, got {value!r}")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ConfigError(
                f"{OPTION}.top_k must be a positive integer or null (every partition), got {top_k!r}"
            )
        if direction == "dynamic" and guard != "none":
            raise ConfigError(
                f"{OPTION}.guard={guard!r} needs a fixed direction: 'dynamic' already pushes each pair "
                "towards equal scores (set guard: noneor direction: advantaged / disadvantaged)"
            )
        cls = getattr(torch.optim, optimizer, None)
        if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
            raise ConfigError(f"{OPTION}.optimizer {optimizer!r} is not a torch.optim optimiser class")
        try:
            cls([torch.zeros(1, requires_grad=True)], lr=lr, **(optimizer_args or {}))
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{OPTION}.optimizer_args {optimizer_args!r} for {optimizer}: {err}") from err

    def configure_optimizers(self) -> torch.optim.Optimizer:
        cls = getattr(torch.optim, self.hparams.optimizer)
        return cls(list(self.candidates.values()), lr=self.hparams.lr, **(self.hparams.optimizer_args or {}))

    # ------------------------------------------------------------------------------- training
    def _scores(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return word_scores(
            self.model,
            self.hparams.task,
            **inputs,
            kind=self.hparams.objective,
            mask_token_id=self.mask_token_id,
        )

    def _check_batch(self, batch: dict[str, torch.Tensor]) -> None:
        needed = [f"{f}_{g}" for g in GENDERS for f in PAIR_FIELDS] + ["male_advantaged", "pair_type"]
        missing = [k for k in needed if k not in batch]
        if missing:
            raise ConfigError(
                f"PCGUMethod trains on gendered pairs; the batch lacks {missing} (use a pair DataModule: "
                "WinogenderDataModule or WinoBiasDataModule)"
            )

    def _roles(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(male sentence first [B], first sentence is the advantaged one [B], pair weight [B])."""
        male_adv = batch["male_advantaged"].bool()
        swap, weight = self.guard.roles(batch["pair_type"].long())
        if self.hparams.direction == "dynamic":  # first = whichever sentence is currently ahead
            with torch.no_grad():
                male, female = (self._scores(side) for side in _role_inputs(batch, torch.ones_like(male_adv)))
            male_first = male >= female
        else:
            male_first = male_adv ^ swap
        return male_first, male_first == male_adv, weight

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._check_batch(batch)
        opt = self.optimizers()
        male_first, first_is_adv, weight = self._roles(batch)
        n_global = self.trainer.strategy.reduce(
            torch.tensor(float(weight.numel()), device=self.device), reduce_op="sum"
        )
        scale = weight * (self.trainer.world_size / n_global)
        grads, scores = [], []
        for inputs in _role_inputs(batch, male_first):
            side = self._scores(inputs)
            self.manual_backward((side * scale).sum())  # DDP: all-reduced here
            grads.append(
                {
                    n: torch.zeros_like(p) if p.grad is None else p.grad.detach().clone()
                    for n, p in self.candidates.items()
                }
            )
            opt.zero_grad(set_to_none=True)
            scores.append(side.detach())
        gap = torch.where(first_is_adv, scores[0] - scores[1], scores[1] - scores[0])  # adv − dis
        self._update_guard(gap, batch["pair_type"].long())

        selection = select_partitions(
            self.groups, grads[0], grads[1], self.hparams.top_k, self.hparams.zero_grad
        )
        update = self._direction_update(grads)
        self.last_selection = selection  # for callbacks: what this step selected
        masked = masked_update(self.groups, selection, update, self.candidates)
        self._masked_step(opt, masked)
        self.selection_counts += torch.tensor(selection.group_counts, device=self.selection_counts.device)
        self.log_dict(
            {
                "pcgu/selected": float(selection.n_selected),
                "pcgu/zero_grad_partitions": float(selection.n_zero_grad),
            },
            on_step=True,
            on_epoch=False,
        )

    def _direction_update(self, grads: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """The gradient to descend: lower the first sentence's score, raise the second's, or both."""
        first, second = grads
        if self.hparams.direction == "advantaged":
            return first
        if self.hparams.direction == "disadvantaged":
            return {n: -g for n, g in second.items()}
        return {n: g.sub_(second[n]) for n, g in first.items()}

    def _masked_step(self, opt: Any, masked: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Step on the selected partitions only; parameters without any get no gradient (skipped)."""
        restore = {}
        state = opt.optimizer.state
        for name, param in self.candidates.items():
            if name not in masked:
                param.grad = None
                continue
            param.grad, mask = masked[name]
            if self._moves_zero_gradients(opt):
                saved = {
                    k: v.clone()
                    for k, v in state.get(param, {}).items()
                    if torch.is_tensor(v) and v.shape == param.shape
                }
                restore[name] = (mask.bool(), param.detach().clone(), saved)
        opt.step()
        with torch.no_grad():
            for name, (mask, old, saved) in restore.items():
                param = self.candidates[name]
                param.copy_(torch.where(mask, param, old))
                for key, value in saved.items():
                    state[param][key].copy_(torch.where(mask, state[param][key], value))
        opt.zero_grad(set_to_none=True)

    @staticmethod
    def _moves_zero_gradients(opt: Any) -> bool:
        """Whether the optimiser changes entries whose gradient is 0 (all but plain SGD)."""
        inner = opt.optimizer
        if type(inner) is not torch.optim.SGD:
            return True
        return any(g.get("momentum", 0) or g.get("weight_decay", 0) for g in inner.param_groups)

    def _update_guard(self, gap: torch.Tensor, pair_type: torch.Tensor) -> None:
        """Global per-type gap sums and counts (summed over ranks) into the guard, and its logs."""
        stats = torch.zeros(2, PAIR_TYPES, dtype=torch.float64, device=gap.device)
        stats[0].index_add_(0, pair_type, gap.double())
        stats[1].index_add_(0, pair_type, torch.ones_like(gap, dtype=torch.float64))
        stats = self.trainer.strategy.reduce(stats, reduce_op="sum")
        self.guard.update(stats[0], stats[1])
        logs = {"train/bias_gap": float(stats[0].sum() / stats[1].sum().clamp_min(1))}
        for t in range(PAIR_TYPES):
            if self.guard.initial_sign[t] != 0:
                logs[f"pcgu/guard/running_gap_type{t}"] = float(self.guard.running[t])
                logs[f"pcgu/guard/flips_type{t}"] = float(self.guard.flips[t])
                logs[f"pcgu/guard/flipped_steps_type{t}"] = float(self.guard.flipped_steps[t])
        self.log_dict(logs, on_step=True, on_epoch=False)

    # -------------------------------------------------------------------------------- outputs
    def on_fit_end(self) -> None:
        log_dir = run_dir(self.trainer)  # every rank calls it (broadcast), rank 0 writes
        if log_dir is not None:
            self.write_selection(log_dir / "pcgu_selection.csv")

    @rank_zero_only
    def write_selection(self, path: Path) -> Path:
        """How often each group's partitions were selected over the fit (to compare with CMA rankings)."""
        lines = ["group,parameter,partitions,times_selected"]
        for group, count in zip(self.groups, self.selection_counts.tolist(), strict=True):
            lines.append(f"{group.name},{group.param_name},{group.count},{count}")
        write_text_atomic(path, "\n".join(lines) + "\n")
        return path
