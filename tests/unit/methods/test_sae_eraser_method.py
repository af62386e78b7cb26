"""SAEEraserMethod in process on tiny BERT and templated bios: references (LEACE zeroes the concept's
cross-covariance at the read site), the warm start, the evaluation table with every baseline, the
export reapplied by hooks on a plain transformers model, and refused settings."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from debiaslit.data.collate import PadCollator
from debiaslit.datamodules.bias_in_bios import BiasInBiosDataModule
from debiaslit.errors import ConfigError, DataFormatError
from debiaslit.evaluation import ErasureEvaluator
from debiaslit.evaluation.erasure import COLUMNS
from debiaslit.methods import SAEEraserMethod
from debiaslit.methods.sae_eraser import apply_erasure, read_erased
from debiaslit.methods.sae_eraser.objectives import cross_covariance_norm
from debiaslit.sae import SparseAutoencoder, write_saelens


def write_random_saes(folder: Path, layers: list[int], d: int = 32, num_latents: int = 64) -> list[str]:
    paths = []
    for layer in layers:
        sae = SparseAutoencoder(d, num_latents).init_weights(torch.Generator().manual_seed(layer + 1))
        paths.append(str(write_saelens(sae, folder / f"sae_{layer}")))
    return paths


class Table(ErasureEvaluator):
    """Keeps the last table (the real evaluator, plus a handle for the test)."""

    def table(self, module: pl.LightningModule, values: dict[str, torch.Tensor]) -> list[dict]:
        self.last = super().table(module, values)
        return self.last


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[SAEEraserMethod, BiasInBiosDataModule, Path]:
    folder = tmp_path_factory.mktemp("sae_eraser")
    pl.seed_everything(3)
    method = SAEEraserMethod(
        backbone="tiny-bert", saes=write_random_saes(folder, [0, 1]), layers=[0, 1], pooling="mean",
        warm_start_top_n=3, probe_steps=30, lr=0.1, evaluator=Table(probe_steps=30, mlp_hidden=8),
    )  # fmt: skip
    data = BiasInBiosDataModule(tokenizer="tiny-bert", train_split="balanced", n_per_cell=20, batch_size=16)
    trainer = pl.Trainer(
        max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu", devices=1,
    )  # fmt: skip
    trainer.fit(method, datamodule=data)
    trainer.validate(method, datamodule=data, verbose=False)
    return method, data, folder


def test_references_leace_and_warm_start(fitted: tuple) -> None:
    method, data, _ = fitted
    assert bool(method.references_ready)
    batch = next(
        iter(
            torch.utils.data.DataLoader(
                data.datasets["train"], batch_size=40, collate_fn=data.train_dataloader().collate_fn
            )
        )
    )
    with torch.no_grad():
        plain, _ = method.representations(batch, "none")
        erased, _ = method.representations(batch, "leace")
    # LEACE was fitted on exactly these (unedited, pooled) training features
    assert float(cross_covariance_norm(erased, batch["gender"], 2)) < 1e-9
    assert float(cross_covariance_norm(plain, batch["gender"], 2)) > 1e-4
    # warm start: the 3 most concept-attributed latents started closed and moved little in 2 steps
    warm = method.top_attributed(3)
    assert sum(w.numel() for w in warm) == 3
    for gate, closed in zip(method.eraser.gates, warm, strict=True):
        assert (gate.logits[closed] < 0).all()


def test_checkpoint_round_trip_validates_to_the_same_table(fitted: tuple, tmp_path: Path) -> None:
    method, data, _ = fitted
    trainer = pl.Trainer(
        logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu"
    )
    trainer.strategy.connect(method)
    trainer.save_checkpoint(tmp_path / "eraser.ckpt")
    loaded = SAEEraserMethod.load_from_checkpoint(
        tmp_path / "eraser.ckpt",
        map_location="cpu",
        weights_only=True,
        evaluator=Table(probe_steps=30, mlp_hidden=8),
    )
    assert loaded.state_dict().keys() == method.state_dict().keys()
    for key, value in method.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    trainer.validate(loaded, datamodule=data, verbose=False)
    assert loaded.evaluator.last == method.evaluator.last


def test_table_has_every_row_and_column(fitted: tuple) -> None:
    method, _, _ = fitted
    rows = method.evaluator.last
    assert [r["row"] for r in rows] == ["none", "eraser", "leace", "shift", "random", "all_latents"]
    assert all(set(COLUMNS) == set(r) for r in rows)
    by_row = {r["row"]: r for r in rows}
    assert by_row["none"]["edit_size"] == 0.0 and by_row["none"]["latents_erased"] == 0
    erased = sum(e.numel() for e in method.eraser.erased())
    assert by_row["eraser"]["latents_erased"] == erased
    assert by_row["shift"]["latents_erased"] == by_row["random"]["latents_erased"] == max(1, erased)
    assert by_row["eraser"]["edit_size"] > 0.0
    assert by_row["all_latents"]["latents_erased"] == 2 * 64
    assert all(0.0 <= r["fresh_concept_linear"] <= 1.0 for r in rows)


def test_export_reapplied_by_hooks_on_a_plain_model(fitted: tuple, tmp_path: Path) -> None:
    from transformers import AutoModel

    method, data, _ = fitted
    method.eval()
    out = method.export_pretrained(tmp_path / "export")
    record = read_erased(out / "erased_latents.json")
    assert [s["layer"] for s in record["sites"]] == [0, 1]
    assert [len(s["erased"]) for s in record["sites"]] == [e.numel() for e in method.eraser.erased()]
    batch = data.train_dataloader().collate_fn([data.datasets["val"][i] for i in range(4)])
    tokens = {k: batch[k] for k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        _, expected = method.eraser.read(tokens, "gates")
        plain = AutoModel.from_pretrained(out).eval()
        unedited = plain(**tokens, output_hidden_states=True).hidden_states[2]
        handles = apply_erasure(plain, out)
        edited = plain(**tokens, output_hidden_states=True).hidden_states[2]
        for handle in handles:
            handle.remove()
        again = plain(**tokens, output_hidden_states=True).hidden_states[2]
    torch.testing.assert_close(edited, expected, rtol=0, atol=1e-5)
    assert (edited - unedited).abs().max() > 1e-4
    torch.testing.assert_close(again, unedited, rtol=0, atol=0)
    masks = method.save_masks(tmp_path / "masks.safetensors")
    from safetensors.torch import load_file

    loaded = load_file(masks)
    assert sorted(loaded) == ["layer_0", "layer_1"]
    assert int((loaded["layer_0"] == 0).sum() + (loaded["layer_1"] == 0).sum()) == len(
        record["sites"][0]["erased"]
    ) + len(record["sites"][1]["erased"])


def test_bad_settings_and_files_are_refused(fitted: tuple, tmp_path: Path) -> None:
    _, _, folder = fitted
    saes = [str(folder / "sae_0"), str(folder / "sae_1")]
    with pytest.raises(ConfigError, match="saes has 1 SAEs for 2 layers"):
        SAEEraserMethod(saes=saes[:1], layers=[0, 1])
    with pytest.raises(ConfigError, match="read_layer 0 lies below"):
        SAEEraserMethod(saes=saes, layers=[0, 1], read_layer=0)
    with pytest.raises(ConfigError, match="concept_objective must be one of"):
        SAEEraserMethod(saes=saes, layers=[0, 1], concept_objective="mmd")
    with pytest.raises(ConfigError, match="layer 5 out of range"):
        SAEEraserMethod(saes=saes, layers=[0, 5])
    wide = write_saelens(SparseAutoencoder(16, 8), tmp_path / "wide")
    with pytest.raises(ConfigError, match=r"saes\[0\] reads 16 dimensions"):
        SAEEraserMethod(saes=[str(wide)], layers=[0])
    bad = tmp_path / "erased_latents.json"
    site = {"layer": 0, "sae": "s", "num_latents": 4, "erased": [7]}
    bad.write_text(json.dumps({"format": "debiaslit-sae-eraser/1", "sites": [site]}))
    with pytest.raises(DataFormatError, match=r"sites\[0\]\.erased"):
        read_erased(bad)


@pytest.mark.parametrize(
    ("objective", "gate"), [("adversarial", "hard_concrete"), ("probe_chance", "sigmoid_temp")]
)
def test_other_objectives_train_only_gates_and_their_probe(fitted: tuple, objective: str, gate: str) -> None:
    _, data, folder = fitted
    method = SAEEraserMethod(
        backbone="tiny-bert", saes=[str(folder / "sae_1")], layers=[1], concept_objective=objective,
        gate=gate, probe_steps=10, lambda_concept=1.0,
    )  # fmt: skip
    loader = torch.utils.data.DataLoader(data.datasets["train"], batch_size=20, collate_fn=PadCollator(0))
    method.fit_references(loader)
    method.train()
    batch = next(iter(loader))
    pooled, _ = method.eraser.read(method.tokens(batch), "gates")
    concept = method.concept_loss(pooled, batch["gender"])
    probe = method.adversary if objective == "adversarial" else method.concept_probe
    logits = probe(pooled)
    if objective == "probe_chance":
        torch.testing.assert_close(concept, -logits.log_softmax(-1).mean())
    else:
        torch.testing.assert_close(concept, torch.nn.functional.cross_entropy(logits, batch["gender"]))
    method.training_step(batch, 0).backward()
    trainable = {name for name, p in method.named_parameters() if p.requires_grad}
    assert {name for name, p in method.named_parameters() if p.grad is not None} <= trainable
    assert method.eraser.gates[0].logits.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in method.model.parameters())
    assert all(not p.requires_grad for sae in method.eraser.saes for p in sae.parameters())
