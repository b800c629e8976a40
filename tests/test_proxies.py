"""Zero-cost proxies compute what their papers define, on any space's network, without
touching the network they score."""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autonas.errors import ConfigError
from autonas.proxies import PROXIES, naswot, params, score, synflow, zico
from autonas.spaces import BuildSpec, make_space


def batches(n: int = 2, size: int = 8, seed: int = 0) -> list:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 1, size, size, generator=g), torch.arange(8) % 2)
            for _ in range(n)]


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))


def test_params_counts_trainable_parameters():
    net = small_net()
    assert params(net) == 4 * 9 + 4 + 4 + 4 + 4 * 2 + 2


def test_naswot_rewards_telling_images_apart():
    net = small_net()
    x, y = batches(1)[0]
    same = (x[:1].expand_as(x).clone(), y)
    assert naswot(net, [same]) == -math.inf  # identical codes: a singular kernel
    assert math.isfinite(naswot(net, [(x, y)]))
    with pytest.raises(ConfigError, match="ReLU"):
        naswot(nn.Sequential(nn.Flatten(), nn.Linear(64, 2)), [(x, y)])


def test_synflow_of_a_linear_layer_is_the_sum_of_absolute_weights():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 3, bias=False))
    # R = sum(|W| @ ones): dR/dW = 1, so the saliency sum is sum |W|.
    assert synflow(net, batches(1)) == pytest.approx(float(net[1].weight.detach().abs().sum()))


def test_zico_follows_its_definition_and_needs_two_batches():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 2, bias=False))
    data = batches(3)
    grads = []
    for x, y in data:
        w = net[1].weight.detach().clone().requires_grad_(True)
        F.cross_entropy(x.flatten(1) @ w.T, y).backward()
        grads.append(w.grad.double().flatten())
    g = torch.stack(grads)
    expected = math.log(float((g.abs().mean(0) / g.std(0)).sum()))
    assert zico(net, data) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ConfigError, match="2 minibatches"):
        zico(net, data[:1])


@pytest.mark.parametrize("space_name", ["macro", "darts"])
def test_every_proxy_scores_a_network_of_each_space_and_leaves_it_untouched(space_name):
    space = make_space(space_name)
    torch.manual_seed(0)
    model = space.build(space.sample(random.Random(3)),
                        BuildSpec(1, 2, 16, channels=4, layers=2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scores = score(model, batches(2, size=16))
    assert set(scores) == set(PROXIES)
    assert all(isinstance(v, float) and not math.isnan(v) for v in scores.values())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())


def test_unknown_proxies_and_missing_batches_are_named():
    with pytest.raises(ConfigError, match="unknown proxy"):
        score(small_net(), batches(1), ["grasp"])
    with pytest.raises(ConfigError, match="minibatch"):
        score(small_net(), [])
