"""Bad CMA configuration fails early with a message naming the option and the valid values."""

from __future__ import annotations

import pytest

from debiaslit.backbones import ComponentMap
from debiaslit.cma.callback import NIECallback
from debiaslit.cma.effects import ClassProbability
from debiaslit.cma.mediators import Mediator, mediators_for
from debiaslit.cma.probe import Probe
from debiaslit.cma.run import analyse
from debiaslit.cma.setup import Intervention, MediationSetup
from debiaslit.errors import ConfigError
from tests.unit.cma.helpers import nli_batch, tiny


@pytest.fixture(scope="module")
def bert():
    return tiny("tiny-bert", "sequence-classification")


def test_unknown_component_and_layer(bert) -> None:
    cmap = ComponentMap.for_model(bert[0])
    with pytest.raises(ConfigError, match=r"unknown cma component\(s\) \['MLP'\].*valid components: Q, K"):
        mediators_for(cmap, ["Q", "MLP"])
    with pytest.raises(ConfigError, match=r"layers \[5\] out of range; valid layers: 0..1"):
        mediators_for(cmap, ["Q"], [0, 5])
    with pytest.raises(ConfigError, match="unknown component 'X'"):
        MediationSetup(bert[0], ClassProbability(0), [Mediator("X", 0)])


def test_position_out_of_range(bert) -> None:
    model, tok = bert
    setup = MediationSetup(model, ClassProbability(0), [Mediator("O", 0)], position=40)
    batch = nli_batch(tok)
    with pytest.raises(ConfigError, match=r"position 40 is out of range: example 0 has \d+ tokens"):
        setup.capture(batch)
    with pytest.raises(ConfigError, match="position 'middle' is unknown"):
        MediationSetup(model, ClassProbability(0), [Mediator("O", 0)], position="middle")
    word = MediationSetup(model, ClassProbability(0), [Mediator("O", 0)], position="word")
    with pytest.raises(ConfigError, match="needs a `positions` field"):
        word.capture(batch)


def test_empty_reference_set(bert) -> None:
    model, tok = bert
    items = [{"input_ids": [2, 99, 3], "attention_mask": [1, 1, 1]}]
    with pytest.raises(ConfigError, match="reference set is empty"):
        Probe(items, 0, reference=[])
    setup = MediationSetup(model, ClassProbability(0), [Mediator("O", 0)])
    with pytest.raises(ConfigError, match="needs a non-empty reference set"):
        analyse(setup, Probe(items, 0), Intervention("reference"))
    with pytest.raises(ConfigError, match="needs counterfactual inputs"):
        analyse(setup, Probe(items, 0), Intervention("counterfactual"))
    with pytest.raises(ConfigError, match="unknown cma intervention 'swap'"):
        Intervention("swap")
    with pytest.raises(ConfigError, match="unknown cma estimator 'fast'"):
        analyse(setup, Probe(items, 0), Intervention("zero"), estimator="fast")


def test_callback_options() -> None:
    with pytest.raises(ConfigError, match="estimator 'fast' is unknown"):
        NIECallback(estimator="fast")
    with pytest.raises(ConfigError, match="target_class 'yes' is not one of"):
        NIECallback(target_class="yes")
    with pytest.raises(ConfigError, match="unknown cma effect measure 'kl'"):
        NIECallback(effect="kl")
    with pytest.raises(ConfigError, match="every_n_epochs must be >= 1"):
        NIECallback(every_n_epochs=0)
