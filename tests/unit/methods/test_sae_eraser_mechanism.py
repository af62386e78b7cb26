"""The SAE eraser's mechanism: the all-open identity on real tiny models at several residual sites, gate,
penalty and objective values against hand computation, and erasure / LEACE on synthetic activations
with a planted concept direction and a planted task direction."""

from __future__ import annotations

import math

import pytest
import torch
from concept_erasure import LeaceFitter

from debiaslit.backbones import load_backbone
from debiaslit.errors import ConfigError
from debiaslit.evaluation.probes import held_out_accuracy
from debiaslit.methods.sae_eraser.edit import ablation_gate, gated_edit
from debiaslit.methods.sae_eraser.eraser import ResidualEraser
from debiaslit.methods.sae_eraser.gate import LatentGate, annealed_temperature
from debiaslit.methods.sae_eraser.objectives import (
    cross_covariance_norm,
    reverse_gradient,
    uniform_target_loss,
)
from debiaslit.sae import SparseAutoencoder

TEXTS = ["she is a nurse at the hospital", "he was a doctor", "the teacher said that they work"]


def random_sae(d: int, num_latents: int, seed: int) -> SparseAutoencoder:
    """A random SAE with non-zero biases: its reconstruction error is large, which the identity needs."""
    g = torch.Generator().manual_seed(seed)
    sae = SparseAutoencoder(d, num_latents).init_weights(g)
    with torch.no_grad():
        sae.b_enc.normal_(0.0, 0.1, generator=g)
        sae.b_dec.normal_(0.0, 0.5, generator=g)
    return sae


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-gpt-neox", "tiny-gpt2"])
def test_all_open_gate_leaves_the_model_unchanged_at_several_sites(name: str) -> None:
    model, tokenizer = load_backbone(name, task="base", seed=0)
    layers = [-1, 0, 1]
    eraser = ResidualEraser(model, [random_sae(32, 96, s) for s in range(3)], layers, gate="sigmoid_temp")
    inputs = dict(tokenizer(TEXTS, return_tensors="pt", padding=True))
    inputs.pop("token_type_ids", None)
    reference = model(**inputs).last_hidden_state
    eraser.eval()  # deployed gates: 1[m > 0], all open at the start
    with eraser.editing("gates"):
        edited = model(**inputs).last_hidden_state
    assert (edited - reference).abs().max() <= 1e-5
    # the trained soft gate at a low temperature is open too
    eraser.train()
    eraser.set_temperature(0.01)
    with eraser.editing("gates"):
        soft = model(**inputs).last_hidden_state
    assert (soft - reference).abs().max() <= 1e-5
    # ... and removing latents does change it, at every site
    for site in range(3):
        fixed = [torch.arange(96) if i == site else torch.zeros(0, dtype=torch.long) for i in range(3)]
        with eraser.editing("fixed", fixed):
            assert (model(**inputs).last_hidden_state - reference).abs().max() > 1e-3


def test_edit_is_the_decoder_contribution_of_the_removed_latents() -> None:
    sae = random_sae(8, 20, 1)
    x = torch.randn(5, 8, generator=torch.Generator().manual_seed(2))
    removed = torch.tensor([0, 3, 7, 11])
    f = sae.encode(x)
    expected = x - f[:, removed] @ sae.W_dec[removed]
    torch.testing.assert_close(gated_edit(x, sae, ablation_gate(20, removed)), expected)
    # the error term is kept: with nothing removed the input comes back, not the reconstruction
    assert torch.equal(gated_edit(x, sae, torch.ones(20)), x)


def test_sigmoid_gate_temperature_and_penalty_by_hand() -> None:
    gate = LatentGate(4, "sigmoid_temp", init_logit=2.0)
    with torch.no_grad():
        gate.logits.copy_(torch.tensor([2.0, -1.0, 0.5, -0.2]))
    gate.temperature = 0.5
    expected = torch.tensor(
        [1 / (1 + math.exp(-4.0)), 1 / (1 + math.exp(2.0)), 1 / (1 + math.exp(-1.0)), 0.0]
    )
    expected[3] = 1 / (1 + math.exp(0.4))
    torch.testing.assert_close(gate(), expected)
    torch.testing.assert_close((1 - gate.keep_probability()).sum(), (1 - expected).sum())
    gate.eval()
    assert gate().tolist() == [1.0, 0.0, 1.0, 0.0]
    assert gate.erased().tolist() == [1, 3]
    assert annealed_temperature(0, 100, 1.0, 0.01) == 1.0
    assert annealed_temperature(50, 100, 1.0, 0.01) == pytest.approx(0.1)
    assert annealed_temperature(100, 100, 1.0, 0.01) == pytest.approx(0.01)
    with pytest.raises(ConfigError, match="init_logit"):
        LatentGate(4, init_logit=0.0)
    with pytest.raises(ConfigError, match="gate must be one of"):
        LatentGate(4, kind="sigmoid")


def test_hard_concrete_gate_uses_the_shared_binarizer() -> None:
    gate = LatentGate(3, "hard_concrete", init_logit=3.0)
    with torch.no_grad():
        gate.logits.copy_(torch.tensor([3.0, -3.0, 0.1]))
    # P(gate != 0) = σ(log α − β log(−γ/ζ)), β = 2/3, γ = −0.1, ζ = 1.1
    shift = (2 / 3) * math.log(0.1 / 1.1)
    expected = torch.sigmoid(torch.tensor([3.0, -3.0, 0.1]) - shift)
    torch.testing.assert_close(gate.keep_probability(), expected)
    gate.eval()
    assert gate().tolist() == [1.0, 0.0, 1.0]
    gate.train()
    sample = gate()
    assert ((sample >= 0) & (sample <= 1)).all()


def test_objectives_by_hand() -> None:
    x = torch.tensor([[1.0, 2.0], [3.0, 0.0], [5.0, 4.0], [7.0, 2.0]])
    z = torch.tensor([0, 0, 1, 1])
    # centred x: (-3, 0), (-1, -2), (1, 2), (3, 0); centred one-hot z: ±(0.5, -0.5)
    # Cov = (1/4) Σ x_c z_cᵀ: column "1" = (1/4)(0.5·(1+3) − 0.5·(−3−1), 0.5·(2+0) − 0.5·(0−2)) = (1, 0.5)
    assert float(cross_covariance_norm(x, z, 2)) == pytest.approx(2 * (1.0**2 + 0.5**2))
    assert float(cross_covariance_norm(x, torch.tensor([0, 1, 0, 1]), 2)) == pytest.approx(
        2 * ((0.5 * 2 - 0.5 * -2) / 4) ** 2 + 2 * ((0.5 * -2 - 0.5 * 2) / 4) ** 2
    )
    # uniform target: log 2 at equal logits; for logits (0, log 3): −½(log ¼ + log ¾)
    assert float(uniform_target_loss(torch.zeros(3, 2))) == pytest.approx(math.log(2))
    logits = torch.tensor([[0.0, math.log(3.0)]])
    assert float(uniform_target_loss(logits)) == pytest.approx(-0.5 * (math.log(0.25) + math.log(0.75)))
    leaf = torch.tensor([1.0, -2.0], requires_grad=True)
    (reverse_gradient(leaf) * torch.tensor([3.0, 4.0])).sum().backward()
    assert leaf.grad.tolist() == [-3.0, -4.0]


def planted(n: int = 800, d: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Concept on direction e0, task on e1 (independent labels), noise everywhere."""
    g = torch.Generator().manual_seed(seed)
    concept = torch.randint(0, 2, (n,), generator=g)
    task = torch.randint(0, 2, (n,), generator=g)
    x = 0.3 * torch.randn(n, d, generator=g)
    x[:, 0] += 2.0 * (2 * concept - 1)
    x[:, 1] += 2.0 * (2 * task - 1)
    return x, concept, task


def planted_sae(d: int = 16) -> SparseAutoencoder:
    """Latents ±e_i for every axis (2d latents): the concept lives in latents 0 and 1, the task in 2, 3."""
    sae = SparseAutoencoder(d, 2 * d, apply_b_dec_to_input=False)
    directions = torch.cat([torch.stack([torch.eye(d)[i], -torch.eye(d)[i]]) for i in range(d)])
    with torch.no_grad():
        sae.W_enc.copy_(directions.T)
        sae.W_dec.copy_(directions)
    return sae


def test_erasure_on_planted_directions_sends_a_fresh_probe_to_chance_and_keeps_the_task() -> None:
    torch.manual_seed(0)
    x, concept, task = planted()
    index = torch.arange(x.shape[0])
    sae = planted_sae()
    assert held_out_accuracy(x, concept, index, 2) > 0.95
    gate = LatentGate(32, "sigmoid_temp", init_logit=4.0)
    head = torch.nn.Linear(16, 2)
    optimizer = torch.optim.Adam([*gate.parameters(), *head.parameters()], lr=0.1)
    steps = 100
    for step in range(steps):
        gate.temperature = annealed_temperature(step, steps, 1.0, 0.01)
        edited = gated_edit(x, sae, gate())
        loss = (
            torch.nn.functional.cross_entropy(head(edited), task)
            + 10.0 * cross_covariance_norm(edited, concept, 2)
            + 1e-2 * (1 - gate.keep_probability()).sum()
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    gate.eval()
    assert sorted(gate.erased().tolist()) == [0, 1]  # exactly the concept's latents
    edited = gated_edit(x, sae, gate()).detach()
    assert held_out_accuracy(edited, concept, index, 2) < 0.58  # chance is ~0.5
    assert held_out_accuracy(edited, concept, index, 2, hidden=32) < 0.58
    assert held_out_accuracy(edited, task, index, 2) > 0.95


def test_leace_on_the_same_data_removes_the_linear_concept() -> None:
    x, concept, task = planted()
    eraser = LeaceFitter.fit(x, concept.float()[:, None]).eraser
    erased = eraser(x)
    assert float(cross_covariance_norm(erased, concept, 2)) < 1e-8
    assert float(cross_covariance_norm(x, concept, 2)) > 0.5
    index = torch.arange(x.shape[0])
    assert held_out_accuracy(erased, concept, index, 2) < 0.58
    assert held_out_accuracy(erased, task, index, 2) > 0.95
