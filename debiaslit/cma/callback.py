"""NIECallback: causal mediation effects of every unit at validation end, as curves over training.

Every ``every_n_epochs`` epochs (and on every ``validate`` run; never in the sanity check) the callback
runs :func:`debiaslit.cma.run.analyse` on a fixed probe set from the DataModule: the DataModule's
``cma_probe()`` when it has one (e.g. professions × templates), else a class-balanced subset of one of
its NLI evaluation sets with the HOL or LOL set as reference. Under DDP each rank takes a disjoint
shard of the probe rows and the sums are all-reduced on every rank, so the result equals one process.
Rank 0 logs ``nie/<component>/layer_<i>`` (top-p % mean) at ``trainer.global_step``, a layer ×
component heatmap and per-component histograms, and writes ``<log_dir>/cma/epoch_<E>/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info

from debiaslit.backbones.components import COMPONENTS, ComponentMap
from debiaslit.cma.effects import make_measure
from debiaslit.cma.mediators import check_position, mediators_for
from debiaslit.cma.probe import NLIProbe, Probe, shard
from debiaslit.cma.ranking import RANKED, sites_markdown
from debiaslit.cma.report import heatmap_figure, layer_curve, layer_curves_figure, split_key, write_report
from debiaslit.cma.run import ESTIMATORS, SCREENS, AnalysisResult, UnitEffects, analyse
from debiaslit.cma.setup import Intervention, MediationSetup
from debiaslit.data.schema import NLI_LABELS
from debiaslit.errors import ConfigError
from debiaslit.utils.files import save_png
from debiaslit.utils.run_dir import run_dir


class NIECallback(Callback):
    """Natural indirect effects of neurons / heads, logged and written at validation end.

    Args:
        every_n_epochs: run after every N-th training epoch (always in ``validate``).
        estimator: a screen (``attribution``: first order, every unit, ~2 forward-equivalents; ``atp_qk``:
            + AtP*'s QK fix; ``atp_star``: + GradDrop; ``ig``: integrated gradients), ``exact`` (every
            unit, batched) or ``hybrid`` (the ``screen`` for every unit, then exact effects for its top
            ``verify_top_k`` and a random sample of ``verify_random`` other units per site, seeded by
            ``seed``; the per-site ranking quality goes to ``summary.json`` and TensorBoard).
        screen: the hybrid's first pass (see :data:`debiaslit.cma.run.SCREENS`).
        components: among Q, K, V, AO, I, O, resid, head.
        layers: layer indices (all when null).
        position: ``cls``, ``last``, ``word`` (the substituted word), ``all`` or a token index.
        intervention: ``reference`` (mean over the reference set), ``counterfactual``, ``mean``
            (mean ablation over the probe set), ``scale`` (×``alpha``) or ``zero``.
        effect: ``class_prob`` / ``log_odds`` of ``target_class``, or ``odds_ratio`` (Vig's anti/stereo).
        top_percent: per layer × component, the curve value is the mean of the top p % units.
        probe: how the NLI probe set is drawn (:class:`~debiaslit.cma.probe.NLIProbe`: evaluation set,
            examples per class, HOL / LOL reference); unused when the DataModule has ``cma_probe()``.
        batch_size: probe examples per forward; max_rows: memory budget of the exact estimator (rows).
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        estimator: str = "attribution",
        components: list[str] | None = None,
        layers: list[int] | None = None,
        position: str | int = "cls",
        intervention: str = "reference",
        alpha: float = 0.0,
        effect: str = "class_prob",
        target_class: str = "entailment",
        top_percent: float = 2.5,
        probe: NLIProbe | None = None,
        batch_size: int = 32,
        max_rows: int = 512,
        verify_top_k: int = 16,
        verify_random: int = 16,
        screen: str = "attribution",
        seed: int = 0,
        top_units: int = 20,
    ) -> None:
        if every_n_epochs < 1:
            raise ConfigError(f"NIECallback.every_n_epochs must be >= 1, got {every_n_epochs}")
        if estimator not in ESTIMATORS:
            raise ConfigError(
                f"NIECallback.estimator {estimator!r} is unknown; valid: {', '.join(ESTIMATORS)}"
            )
        if target_class not in NLI_LABELS:
            raise ConfigError(f"NIECallback.target_class {target_class!r} is not one of {NLI_LABELS}")
        check_position(position)
        self.intervention = Intervention(intervention, alpha)
        self.measure = make_measure(effect, NLI_LABELS.index(target_class))
        self.every_n_epochs, self.estimator = every_n_epochs, estimator
        self.components = list(components or COMPONENTS)
        self.layers, self.position, self.top_percent = layers, position, top_percent
        self.probe_spec = probe if probe is not None else NLIProbe()
        if screen not in SCREENS:
            raise ConfigError(f"NIECallback.screen {screen!r} is unknown; valid: {', '.join(SCREENS)}")
        self.batch_size, self.max_rows, self.n_top = batch_size, max_rows, top_units
        self.verify = dict(verify_top_k=verify_top_k, verify_random=verify_random, screen=screen, seed=seed)
        self._probe: Probe | None = None

    # ------------------------------------------------------------------------------------- probe
    def probe(self, trainer: pl.Trainer) -> Probe:
        """The fixed probe set, built once from the DataModule."""
        if self._probe is None:
            dm = trainer.datamodule
            if hasattr(dm, "cma_probe"):
                self._probe = dm.cma_probe()
            elif getattr(dm, "eval_datasets", None):
                name = self.probe_spec.probe_set or next(iter(dm.eval_datasets))
                if name not in dm.eval_datasets:
                    raise ConfigError(
                        f"NIECallback.probe.probe_set {name!r} is not an evaluation set; "
                        f"have {list(dm.eval_datasets)}"
                    )
                self._probe = self.probe_spec.build(dm.eval_datasets[name], dm.tokenizer.pad_token_id or 0)
            else:
                raise ConfigError("NIECallback needs a DataModule with cma_probe() or NLI eval_datasets")
            rank_zero_info(f"[debiaslit] cma probe: {self._probe.summary}")
        return self._probe

    # ------------------------------------------------------------------------------------- hook
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        fitting = trainer.state.fn == "fit"
        if fitting and (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        result = self.compute(trainer, pl_module)
        log_dir = run_dir(trainer)  # broadcast from rank 0: every rank calls it
        if trainer.is_global_zero:
            out_dir = None if log_dir is None else log_dir / "cma" / f"epoch_{trainer.current_epoch}"
            self._report(trainer, result, out_dir)

    def compute(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> AnalysisResult:
        """Run the analysis on this rank's shard and reduce it over all ranks."""
        model = pl_module.model
        was_training = model.training
        model.eval()
        setup = MediationSetup(
            model,
            self.measure,
            mediators_for(ComponentMap.for_model(model), self.components, self.layers),
            self.position,
            self.max_rows,
        )
        probe = self.probe(trainer)
        world, rank = trainer.world_size, trainer.global_rank
        n_ref = len(probe.items if self.intervention.kind == "mean" else probe.reference or [])

        def reduce(t: torch.Tensor) -> torch.Tensor:
            return trainer.strategy.reduce(t.to(pl_module.device), reduce_op="sum").cpu()

        try:
            result = analyse(
                setup, probe, self.intervention, self.estimator, rows=shard(len(probe), rank, world),
                reference_rows=shard(n_ref, rank, world), batch_size=self.batch_size,
                reduce=reduce, **self.verify,
            )  # fmt: skip
        finally:
            model.train(was_training)
        return result

    # ----------------------------------------------------------------------------------- output
    def _report(self, trainer: pl.Trainer, result: AnalysisResult, out_dir: Path | None) -> None:
        """Log the curves; write the tables and figures to ``out_dir`` unless it is None (fast_dev_run).

        Curves, heatmap, histograms and neurons.csv use the exact value of every unit that has one.
        """
        effects = result.effects()
        nie = {key: e.nie for key, e in effects.items()}
        rows = _rows(effects, result.screen, result.count)
        curve = layer_curve(nie, self.top_percent)
        step = trainer.global_step
        scalars = {f"nie/{k}": v for k, v in curve.items()}
        if result.total_effect is not None:
            scalars["cma/total_effect"] = result.total_effect
        ranked = [row for row in result.sites.values() if row["status"] == RANKED and "spearman" in row]
        for name, column in (("spearman", "spearman"), ("recall", "recall_k_in_top_3k")):
            values = [row[column] for row in ranked if row[column] == row[column]]
            if values:  # the worst site: a pooled figure would hide it
                scalars[f"cma/site_{name}_min"] = min(values)
        summary = {
            "epoch": trainer.current_epoch, "global_step": step, "estimator": self.estimator,
            "screen": result.screen, "intervention": self.intervention.kind, "position": self.position,
            "effect": self.measure.name, "top_percent": self.top_percent, "n_examples": result.count,
            "total_effect": result.total_effect, "sites": result.sites, "probe": self.probe(trainer).summary,
        }  # fmt: skip
        title = f"NIE top {self.top_percent:g}% mean, epoch {trainer.current_epoch}"
        if out_dir is not None:
            write_report(out_dir, rows, curve, self.top_percent, summary, self.n_top)
            save_png(layer_curves_figure(curve, title), out_dir / "layers.png")
            save_png(heatmap_figure(curve, title), out_dir / "heatmap.png")
            print(f"[debiaslit] cma epoch {trainer.current_epoch}: wrote {out_dir}", flush=True)
        if self.estimator == "hybrid":
            rank_zero_info(
                f"[debiaslit] cma ranking per site (epoch {trainer.current_epoch}):\n"
                + sites_markdown(result.sites)
            )
        logger = trainer.logger
        if logger is None:
            return
        logger.log_metrics(scalars, step=step)
        experiment = getattr(logger, "experiment", None)
        if hasattr(experiment, "add_figure"):
            experiment.add_figure("nie/heatmap", heatmap_figure(curve, title), step)
            if result.sites and self.estimator == "hybrid":
                experiment.add_text("cma/sites", sites_markdown(result.sites), step)
            by_component: dict[str, list[torch.Tensor]] = {}
            for key, values in nie.items():
                by_component.setdefault(split_key(key)[0], []).append(values)
            for component, values in by_component.items():
                experiment.add_histogram(f"nie_hist/{component}", torch.cat(values), step)


def _rows(effects: dict[str, UnitEffects], screen: str | None, n: int) -> list[dict[str, Any]]:
    """One neurons.csv row per unit: the exact value where computed, else the screen's estimate."""
    rows = []
    for key, e in effects.items():
        component, layer = split_key(key)
        for unit in range(e.nie.numel()):
            exact = bool(e.exact[unit])
            rows.append(
                dict(component=component, layer=layer, index=unit, effect=float(e.nie[unit]),
                     log_effect=float(e.log[unit]), estimator="exact" if exact else screen, n_examples=n,
                     exact=int(exact), estimate="" if e.estimate is None else float(e.estimate[unit]))
            )  # fmt: skip
    return rows
