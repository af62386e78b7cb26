"""SAETrainer end to end on tiny GPT-2: logged fidelity equals a direct computation, the saved SAE
loads, checkpoints hold no backbone, and 2 DDP processes train the same SAE as 1."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import debiaslit
from debiaslit.sae import load_sae
from tests.conftest import REPO_ROOT, debiaslit_command, run_together

CONFIG = str(REPO_ROOT / "tests" / "configs" / "tiny_sae.yaml")


def _scalars(log_dir: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("sae_fit")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(workdir)
        cli = debiaslit.fit(config=CONFIG)
    return cli, workdir / "logs" / "tiny_sae" / "version_0"


def test_logged_fidelity_equals_direct_computation(fitted):
    cli, log_dir = fitted
    sae = load_sae(log_dir / "saes" / "resid_0")
    assert sae.site == "blocks.0.hook_resid_post" and sae.decoder_normalized
    model = cli.model.model  # the frozen backbone, read independently through output_hidden_states
    rows, ce, tokens = [], 0.0, 0
    with torch.no_grad():
        for batch in cli.datamodule.val_dataloader():
            mask = batch["attention_mask"].bool()
            labels = batch["input_ids"].masked_fill(~mask, -100)
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels,
                        output_hidden_states=True)  # fmt: skip
            rows.append(out.hidden_states[1][mask])
            n = int(mask[:, 1:].sum())
            ce, tokens = ce + float(out.loss) * n, tokens + n
    x = torch.cat(rows).double()
    with torch.no_grad():
        x_hat, f = (t.double() for t in sae(x.float()))
    var_explained = 1 - (x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    l0 = (f != 0).sum(-1).double().mean()
    logged = _scalars(log_dir)
    assert logged["val/resid_0/var_explained"][-1] == pytest.approx(float(var_explained), abs=1e-5)
    assert logged["val/resid_0/l0"][-1] == pytest.approx(float(l0), abs=1e-4)
    assert logged["val/resid_0/dead_fraction"][-1] == pytest.approx(
        float(((f != 0).sum(0) == 0).double().mean())
    )
    assert logged["val/resid_0/loss_clean"][-1] == pytest.approx(ce / tokens, rel=1e-5)
    assert "train/resid_0/dead_fraction" in logged  # the resampling check ran (resample_every: 3)
    assert 0 < len(logged["train/resid_0/l0"]) == cli.trainer.global_step


def test_checkpoint_holds_the_saes_only_and_resumes(fitted):
    cli, log_dir = fitted
    ckpt = log_dir.parents[2] / "checkpoints" / "tiny_sae" / "version_0" / "last.ckpt"
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    assert state and not [k for k in state if k.startswith("model.")]
    restored = type(cli.model).load_from_checkpoint(ckpt, map_location="cpu")
    x = torch.randn(5, 32)
    torch.testing.assert_close(restored.saes["resid_0"](x)[0], cli.model.saes["resid_0"](x)[0])


def test_relu_loss_is_mse_plus_decoder_weighted_l1(fitted):
    cli, _ = fitted
    sae = cli.model.saes["resid_0"]
    x = torch.randn(7, 32)
    loss, _ = cli.model.sae_loss(sae, x)
    f = F.relu((x - sae.b_dec) @ sae.W_enc + sae.b_enc)
    expected = (x - f @ sae.W_dec - sae.b_dec).pow(2).sum() + 1e-3 * (f * sae.W_dec.norm(dim=1)).sum()
    torch.testing.assert_close(loss, expected)


@pytest.mark.slow
def test_two_ddp_processes_train_the_same_sae_as_one(tmp_path):
    one = debiaslit_command("fit", [CONFIG], "single", 1, "--data.init_args.batch_size=8")
    two = debiaslit_command("fit", [CONFIG], "ddp", 2, "--data.init_args.batch_size=4")
    run_together(tmp_path, [one, two])
    saes = [load_sae(tmp_path / "logs" / run / "version_0" / "saes" / "resid_0") for run in ("single", "ddp")]
    for key, value in saes[0].tensors().items():
        # several Adam steps on gradients summed in another order: equal up to accumulated rounding
        torch.testing.assert_close(saes[1].tensors()[key], value, rtol=1e-4, atol=1e-5)
    logged = [_scalars(tmp_path / "logs" / run / "version_0") for run in ("single", "ddp")]
    for metric in ("var_explained", "l0", "loss_spliced", "loss_zero_ablated"):
        tag = f"val/resid_0/{metric}"
        assert logged[1][tag] == pytest.approx(logged[0][tag], abs=1e-5)
