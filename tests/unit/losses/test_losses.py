"""The bias-aware losses against hand calculations (plain ``math``), their invariances, and where
gradients flow."""

from __future__ import annotations

import math

import lightning
import pytest
import torch
import torch.nn.functional as F

from debiaslit.errors import ConfigError
from debiaslit.losses import (
    ConfidenceRegularization,
    CrossEntropy,
    LearnedMixin,
    ProductOfExperts,
    Reweight,
    anneal_probs,
)
from debiaslit.methods.erm import ERM

LOGITS = [[1.0, 0.0, -1.0], [0.5, 0.5, 0.0], [-0.3, 0.8, 0.1]]
LABELS = [0, 2, 1]
BIAS = [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.25, 0.25, 0.5]]
TEACHER = [[0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.1, 0.7, 0.2]]


def softmax(row: list[float]) -> list[float]:
    exps = [math.exp(v) for v in row]
    return [e / sum(exps) for e in exps]


def ce(row: list[float], y: int) -> float:
    return -math.log(softmax(row)[y])


def tensors() -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    batch = {"bias_probs": torch.tensor(BIAS), "teacher_probs": torch.tensor(TEACHER)}
    return torch.tensor(LOGITS, requires_grad=True), torch.tensor(LABELS), batch


def test_reweight_hand_value() -> None:
    logits, labels, batch = tensors()
    w = [1 - BIAS[i][LABELS[i]] for i in range(3)]  # 0.3, 0.4, 0.75
    expected = sum(w[i] * ce(LOGITS[i], LABELS[i]) for i in range(3)) / sum(w)
    for norm in ("global", "batch"):  # identical in one process
        assert Reweight(norm=norm)(logits, labels, batch).item() == pytest.approx(expected, rel=1e-6)


def test_product_of_experts_hand_value() -> None:
    logits, labels, batch = tensors()
    expected = 0.0
    for i in range(3):
        joint = [pm * pb for pm, pb in zip(softmax(LOGITS[i]), BIAS[i], strict=True)]
        expected += -math.log(joint[LABELS[i]] / sum(joint)) / 3
    assert ProductOfExperts()(logits, labels, batch).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("entropy_weight", [0.0, 0.03])
def test_learned_mixin_hand_value(entropy_weight: float) -> None:
    logits, labels, batch = tensors()
    feats = [[1.0, -2.0], [0.5, 0.0], [-1.0, 1.0]]
    w, b = [0.4, -0.3], 0.2
    loss_fn = LearnedMixin(entropy_weight=entropy_weight, hidden_size=2)
    with torch.no_grad():
        loss_fn.gate.weight.copy_(torch.tensor([w]))
        loss_fn.gate.bias.fill_(b)
    batch["features"] = torch.tensor(feats)
    expected = 0.0
    for i in range(3):
        g = math.log1p(math.exp(w[0] * feats[i][0] + w[1] * feats[i][1] + b))
        mixed = [pm * pb**g for pm, pb in zip(softmax(LOGITS[i]), BIAS[i], strict=True)]
        expected += -math.log(mixed[LABELS[i]] / sum(mixed)) / 3
        q = [pb**g / sum(p**g for p in BIAS[i]) for pb in BIAS[i]]
        expected += entropy_weight * -sum(qj * math.log(qj) for qj in q) / 3
    assert loss_fn(logits, labels, batch).item() == pytest.approx(expected, rel=1e-6)


def test_confidence_regularization_hand_value() -> None:
    logits, labels, batch = tensors()
    expected = 0.0
    for i in range(3):
        beta = BIAS[i][LABELS[i]]
        scaled = [t ** (1 - beta) for t in TEACHER[i]]
        target = [s / sum(scaled) for s in scaled]
        expected += -sum(t * math.log(p) for t, p in zip(target, softmax(LOGITS[i]), strict=True)) / 3
    assert ConfidenceRegularization()(logits, labels, batch).item() == pytest.approx(expected, rel=1e-6)


def test_annealing_hand_value_and_schedule() -> None:
    probs = torch.tensor([BIAS[0]])
    torch.testing.assert_close(anneal_probs(probs, 1.0), probs)  # theta = 1 is the identity
    powered = [p**0.8 for p in BIAS[0]]
    assert anneal_probs(probs, 0.8)[0].tolist() == pytest.approx(
        [p / sum(powered) for p in powered], rel=1e-6
    )
    poe = ProductOfExperts(anneal_to=0.8)
    assert poe.theta == 1.0
    poe.set_progress(0.5)
    assert poe.theta == pytest.approx(0.9)
    logits, labels, batch = tensors()
    annealed = dict(batch, bias_probs=anneal_probs(batch["bias_probs"], 0.9))
    assert poe(logits, labels, batch).item() == pytest.approx(
        ProductOfExperts()(logits, labels, annealed).item()
    )
    # the UKPLab variant anneals the weight instead: w^θ
    rw = Reweight(anneal_to=0.5, anneal="weight")
    rw.set_progress(1.0)
    w = [(1 - BIAS[i][LABELS[i]]) ** 0.5 for i in range(3)]
    assert rw.weights(logits, labels, batch).tolist() == pytest.approx(w, rel=1e-6)


def test_invariances() -> None:
    logits, labels, batch = tensors()
    plain = F.cross_entropy(logits, labels).item()
    uniform = dict(batch, bias_probs=torch.full((3, 3), 1 / 3))
    assert ProductOfExperts()(logits, labels, uniform).item() == pytest.approx(plain, rel=1e-6)
    never_right = torch.tensor([[0.0, 0.5, 0.5], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5]])
    assert Reweight()(logits, labels, dict(batch, bias_probs=never_right)).item() == pytest.approx(
        plain, rel=1e-6
    )
    # conf-reg with beta = 0 distils the teacher; beta = 1 gives a uniform target
    distil = -(torch.tensor(TEACHER) * logits.log_softmax(-1)).sum(-1).mean().item()
    cr = ConfidenceRegularization()
    assert cr(logits, labels, dict(batch, bias_probs=never_right)).item() == pytest.approx(distil, rel=1e-6)
    always_right = F.one_hot(labels, 3).float()
    to_uniform = -(logits.log_softmax(-1).mean(-1)).mean().item()
    assert cr(logits, labels, dict(batch, bias_probs=always_right)).item() == pytest.approx(
        to_uniform, rel=1e-6
    )
    # learned-mixin with g = 0 is cross-entropy
    lm = LearnedMixin(hidden_size=2)
    with torch.no_grad():
        lm.gate.weight.zero_()
        lm.gate.bias.fill_(-60.0)
    assert lm(logits, labels, dict(batch, features=torch.ones(3, 2))).item() == pytest.approx(plain, rel=1e-6)
    assert CrossEntropy()(logits, labels, batch).item() == pytest.approx(plain)


def test_zero_bias_probabilities_stay_finite() -> None:
    logits, labels, batch = tensors()
    hard = dict(batch, bias_probs=torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]))
    for loss in (ProductOfExperts(), ConfidenceRegularization(), Reweight()):
        assert torch.isfinite(loss(logits, labels, hard))


@pytest.mark.parametrize(
    "loss", [Reweight(), ProductOfExperts(), ConfidenceRegularization(), LearnedMixin(0.03, hidden_size=2)]
)
def test_bias_probs_carry_no_gradient(loss: torch.nn.Module) -> None:
    logits, labels, batch = tensors()
    bias = batch["bias_probs"].clone().requires_grad_(True)
    teacher = batch["teacher_probs"].clone().requires_grad_(True)
    batch = dict(batch, bias_probs=bias, teacher_probs=teacher, features=torch.randn(3, 2))
    loss(logits, labels, batch).backward()
    assert bias.grad is None and teacher.grad is None
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_reweight_zero_weight_example_gets_no_gradient() -> None:
    logits, labels, batch = tensors()
    batch["bias_probs"] = batch["bias_probs"].clone()
    batch["bias_probs"][1] = torch.tensor([0.0, 0.0, 1.0])  # bias certain and right: w = 0
    Reweight()(logits, labels, batch).backward()
    assert torch.all(logits.grad[1] == 0) and logits.grad[0].abs().sum() > 0


def test_learned_mixin_gradients_reach_gate_and_optionally_features() -> None:
    logits, labels, batch = tensors()
    feats = torch.randn(3, 2, requires_grad=True)
    lm = LearnedMixin(hidden_size=2)
    lm(logits, labels, dict(batch, features=feats)).backward()
    assert lm.gate.weight.grad.abs().sum() > 0 and feats.grad.abs().sum() > 0
    feats.grad = None
    LearnedMixin(hidden_size=2, detach_features=True)(logits, labels, dict(batch, features=feats)).backward()
    assert feats.grad is None


def test_bad_options_and_shapes() -> None:
    with pytest.raises(ConfigError, match="norm"):
        Reweight(norm="local")
    with pytest.raises(ConfigError, match="anneal_to"):
        ProductOfExperts(anneal_to=0.0)
    logits, labels, batch = tensors()
    with pytest.raises(ConfigError, match="bias_probs"):
        ProductOfExperts()(logits, labels, dict(batch, bias_probs=torch.ones(3, 2) / 2))
    with pytest.raises(ConfigError, match="gate"):
        LearnedMixin()(logits, labels, dict(batch, features=torch.ones(3, 2)))


def test_module_feeds_features_and_learned_mixin_checkpoint_reloads(tmp_path) -> None:
    torch.manual_seed(0)
    module = ERM(backbone="tiny-bert", dropout=0.0, loss=LearnedMixin(entropy_weight=0.03))
    hidden = module.model.config.hidden_size
    assert module.loss.gate.in_features == hidden
    batch = {
        "input_ids": torch.randint(5, 50, (4, 7)),
        "attention_mask": torch.ones(4, 7, dtype=torch.long),
        "labels": torch.tensor([0, 1, 2, 0]),
        "bias_probs": torch.full((4, 3), 1 / 3),
    }
    module.train()
    logits, features = module.logits_and_features(batch)
    loss = module.training_loss(logits, batch, features)
    loss.backward()
    # h(x) is the [CLS] state of the same forward pass, so the encoder also learns g (Clark's default)
    assert module.loss.gate.weight.grad.abs().sum() > 0
    emb = module.model.get_input_embeddings().weight.grad
    assert emb is not None and emb.abs().sum() > 0
    module.eval()
    with pytest.raises(ConfigError, match="features"):
        module.training_loss(module(batch), batch)  # features were not passed

    with torch.no_grad():
        module.loss.gate.weight.fill_(0.123)
    path = tmp_path / "lm.ckpt"
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
            "pytorch-lightning_version": lightning.__version__,
        },
        path,
    )
    predict_only = ERM.load_from_checkpoint(path)  # the loss is not a hyper-parameter: main model only
    assert isinstance(predict_only.loss, CrossEntropy)
    torch.testing.assert_close(predict_only.model.state_dict(), module.model.state_dict())
    restored = ERM.load_from_checkpoint(path, loss=LearnedMixin(entropy_weight=0.03))
    assert torch.all(restored.loss.gate.weight == 0.123)


def test_annealing_follows_the_trainer_progress(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    import debiaslit
    from tests.conftest import REPO_ROOT

    monkeypatch.chdir(tmp_path)
    configs = [
        str(REPO_ROOT / "tests/configs/tiny_erm.yaml"),
        str(REPO_ROOT / "tests/configs/tiny_reweight.yaml"),
    ]
    loss = {"class_path": "debiaslit.losses.ProductOfExperts", "init_args": {"anneal_to": 0.5}}
    cli = debiaslit.fit(config=configs, overrides={"trainer.max_epochs": 1, "model.init_args.loss": loss})
    # 64 pairs at batch 8: the last of 8 steps runs at progress 7/8, i.e. theta = 1 - 0.5 * 7/8
    assert cli.model.loss.progress == pytest.approx(7 / 8)
    assert cli.model.loss.theta == pytest.approx(1 - 0.5 * 7 / 8)
