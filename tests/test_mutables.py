"""Model-space API: mutables, ModelSpace (sample / validate / freeze / build), medmnist-cnn."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest
import torch
from torch import nn

from autonas.errors import ConfigError
from autonas.spaces import BuildSpec, make_space
from autonas.spaces.medmnist_cnn import (
    BiggerKernelBlock,
    CNNModelSpace,
    Depth3ConvolutionBlock,
    Depth4ConvolutionBlock,
    SimpleConvolutionBlock,
)
from autonas.spaces.model_space import (
    ChosenInputs,
    InputChoice,
    LayerChoice,
    ModelSpace,
    MutableBatchNorm2d,
    MutableConv2d,
    MutableLinear,
    Parametrized,
    Repeat,
    choice,
    has_mutables,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "medmnist_cnn_space.py"


def activation(name: str) -> nn.Module:
    return {"relu": nn.ReLU(), "tanh": nn.Tanh()}[name]


class ToySpace(ModelSpace):
    """Every kind of mutable, small: 8x8 inputs."""

    def __init__(self, in_channels: int = 1, num_classes: int = 3, hidden: int = 6) -> None:
        super().__init__()
        width = choice("width", [4, 8])
        self.stem = MutableConv2d(in_channels, width, choice("kernel", [1, 3]), padding="same")
        self.bn = MutableBatchNorm2d(width)
        self.act = Parametrized(activation, choice("act", ["relu", "tanh"]))
        self.op = LayerChoice({"conv": nn.Conv2d(8, 8, 3, padding=1),
                               "pool": nn.AvgPool2d(3, 1, 1)})
        self.blocks = Repeat(lambda i: nn.Sequential(nn.Conv2d(8, 8, 1), nn.ReLU()), (0, 2),
                             label="depth")
        self.merge = InputChoice(3, n_chosen=2, label="merge")
        self.fc1 = MutableLinear(8, choice("hidden", [hidden, 2 * hidden]))
        self.fc2 = MutableLinear(self.fc1.out_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.stem(x)))
        x = nn.functional.pad(x, (0, 0, 0, 0, 0, 8 - x.shape[1]))  # widths up to 8
        a = self.op(x)
        b = self.blocks(a)
        h = self.merge([x, a, b]).mean((2, 3))
        return self.fc2(torch.relu(self.fc1(h)))


def all_archs(space: ModelSpace) -> list[dict]:
    views = space.choices()
    return [space.from_choices(dict(zip(views, combo)))
            for combo in itertools.product(*views.values())]


def test_toy_space_labels_are_stable_and_in_definition_order() -> None:
    labels = ToySpace().labels()
    assert labels == ["width", "kernel", "act", "op", "depth", "merge", "hidden"]
    assert ToySpace().labels() == labels  # same construction, same labels
    assert ToySpace().size() == 2 * 2 * 2 * 2 * 3 * 3 * 2


def test_every_arch_freezes_to_a_plain_module_that_runs() -> None:
    space = ToySpace()
    archs = all_archs(space)
    assert len(archs) == space.size()
    assert len({json.dumps(a, sort_keys=True) for a in archs}) == len(archs)
    x = torch.randn(2, 1, 8, 8)
    for arch in archs:
        assert json.loads(json.dumps(arch)) == arch  # plain JSON
        assert space.validate(json.loads(json.dumps(arch))) == arch
        model = space.freeze(arch)
        assert not has_mutables(model)
        assert model(x).shape == (2, 3)


def test_frozen_module_has_the_chosen_sizes_and_sliced_weights() -> None:
    space = ToySpace()
    arch = {"width": 4, "kernel": 1, "act": "tanh", "op": "pool", "depth": 2,
            "merge": [0, 2], "hidden": 12}
    model = space.freeze(arch)
    assert isinstance(model.stem, nn.Conv2d) and model.stem.weight.shape == (4, 1, 1, 1)
    assert model.stem.padding == (0, 0)
    assert torch.equal(model.stem.weight, space.stem.weight[:4, :, 1:2, 1:2])
    assert isinstance(model.bn, nn.BatchNorm2d) and model.bn.num_features == 4
    assert isinstance(model.act, nn.Tanh)
    assert isinstance(model.op, nn.AvgPool2d)
    assert isinstance(model.blocks, nn.Sequential) and len(model.blocks) == 2
    assert isinstance(model.merge, ChosenInputs) and model.merge.indices == [0, 2]
    assert (model.fc1.in_features, model.fc1.out_features) == (8, 12)
    assert model.fc2.in_features == 12
    assert torch.equal(model.fc2.weight, space.fc2.weight[:, :12])
    model.fc1.weight.data.zero_()  # a copy: training the frozen model leaves the space alone
    assert space.fc1.weight.abs().sum() > 0


def test_unfrozen_space_computes_its_default_architecture() -> None:
    torch.manual_seed(0)
    space = ToySpace().eval()
    x = torch.randn(3, 1, 8, 8)
    default = space.default_arch()
    assert default == {"width": 4, "kernel": 1, "act": "relu", "op": "conv", "depth": 0,
                       "merge": [0, 1], "hidden": 6}
    torch.testing.assert_close(space.freeze(default).eval()(x), space(x))


def test_sample_is_seeded_and_covers_the_space() -> None:
    space = ToySpace()
    assert space.sample(random.Random(3)) == space.sample(random.Random(3))
    rng = random.Random(0)
    seen = {json.dumps(space.sample(rng), sort_keys=True) for _ in range(1500)}
    assert len(seen) > space.size() * 0.9
    for s in seen:
        space.validate(json.loads(s))


@pytest.mark.parametrize(("change", "message"), [
    ({"nope": 1}, "unknown label"),
    ({"width": 5}, "not among its choices"),
    ({"width": True}, "not among its choices"),
    ({"act": "gelu"}, "not among its choices"),
    ({"op": "sep"}, "not among its choices"),
    ({"op": 2}, "not among its choices"),
    ({"merge": [1]}, "exactly 2"),
    ({"merge": [1, 1]}, "exactly 2"),
    ({"merge": [0, 3]}, "0..2"),
    ({"merge": 1}, "list of 2"),
])
def test_validate_names_what_is_wrong(change: dict, message: str) -> None:
    space = ToySpace()
    arch = {**space.default_arch(), **change}
    with pytest.raises(ConfigError, match=message):
        space.validate(arch)


def test_validate_missing_label_and_canonical_forms() -> None:
    space = ToySpace()
    arch = space.default_arch()
    del arch["depth"]
    with pytest.raises(ConfigError, match=r"no value for \['depth'\]"):
        space.validate(arch)
    with pytest.raises(ConfigError, match="JSON object"):
        space.validate([1, 2])
    canon = space.validate({**space.default_arch(), "op": 1, "merge": [2, 0]})
    assert canon["op"] == "pool" and canon["merge"] == [0, 2]


def test_shared_choice_is_one_decision() -> None:
    space = make_space("medmnist-cnn")
    assert space.labels() == ["convolution_block", "feature"]
    for feature in (64, 128):
        model = space.freeze({"convolution_block": 0, "feature": feature})
        assert model.fc1.out_features == model.fc2.in_features == feature


def test_duplicate_labels_fail_at_construction() -> None:
    class TwoLayerChoices(ModelSpace):
        def __init__(self) -> None:
            super().__init__()
            self.a = LayerChoice([nn.Identity(), nn.ReLU()], label="op")
            self.b = LayerChoice([nn.Identity(), nn.Tanh()], label="op")

    class TwoChoices(ModelSpace):
        def __init__(self) -> None:
            super().__init__()
            self.a = MutableLinear(4, choice("w", [2, 4]))
            self.b = MutableLinear(4, choice("w", [2, 4]))

    for cls in (TwoLayerChoices, TwoChoices):
        with pytest.raises(ConfigError, match=r"label '(op|w)' is used by two .*unique"):
            cls()


def test_repeat_copies_share_choices_and_factories_get_their_own_labels() -> None:
    class Stack(ModelSpace):
        def __init__(self) -> None:
            super().__init__()
            w = choice("w", [2, 4])
            self.shared = Repeat(nn.Sequential(MutableLinear(4, w), MutableLinear(w, 4)), 3,
                                 label="fixed")
            self.own = Repeat(lambda i: LayerChoice([nn.Identity(), nn.Tanh()]), (1, 2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.own(self.shared(x))

    space = Stack()
    assert space.labels() == ["w", "own", "own.blocks.0", "own.blocks.1"]
    model = space.freeze({"w": 4, "own.blocks.0": 1, "own.blocks.1": 0, "own": 1})
    assert len(model.shared) == 3 and len(model.own) == 1
    assert isinstance(model.own[0], nn.Tanh)
    assert model(torch.randn(2, 4)).shape == (2, 4)


def test_kernel_choice_needs_same_padding() -> None:
    with pytest.raises(ConfigError, match="padding='same'"):
        MutableConv2d(1, 4, choice("k", [3, 5]), padding=1)
    with pytest.raises(ConfigError, match="groups=1"):
        MutableConv2d(4, choice("c", [4, 8]), 3, groups=2)
    with pytest.raises(ConfigError, match="positive ints"):
        MutableLinear(4, choice("c", ["a", "b"]))


def test_choices_view_round_trips() -> None:
    space = ToySpace()
    view = space.choices()
    assert view["merge"] == ["0,1", "0,2", "1,2"]
    assert view["op"] == ["conv", "pool"]
    for value_list in view.values():
        assert all(isinstance(v, (int, float, str, bool)) for v in value_list)
    for arch in all_archs(space)[::7]:
        assert space.from_choices(space.to_choices(arch)) == arch


# ----------------------------------------------------------------------------- medmnist-cnn


@pytest.mark.parametrize("block", [SimpleConvolutionBlock, BiggerKernelBlock,
                                   Depth3ConvolutionBlock, Depth4ConvolutionBlock])
@pytest.mark.parametrize("channels", [1, 3])
def test_every_block_maps_28px_to_32x14x14(block: type, channels: int) -> None:
    assert block(input_channels=channels)(torch.randn(2, channels, 28, 28)).shape == \
        (2, 32, 14, 14)


def test_medmnist_cnn_expresses_the_seed() -> None:
    space = make_space("medmnist-cnn")
    (block, feature) = space.decisions()
    assert block.values == (0, 1, 2, 3)
    assert block.names == ("SimpleConvolutionBlock", "BiggerKernelBlock",
                           "Depth3ConvolutionBlock", "Depth4ConvolutionBlock")
    assert feature.values == (64, 128)
    best = space.freeze({"convolution_block": 0, "feature": 128})
    # The seed's printed best model, layer for layer.
    assert [(n, repr(m)) for n, m in best.named_children()] == [
        ("convolution_block", repr(SimpleConvolutionBlock(1))),
        ("fc1", "Linear(in_features=6272, out_features=128, bias=True)"),
        ("fc2", "Linear(in_features=128, out_features=2, bias=True)"),
    ]
    assert "Conv2d(1, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))" in repr(best)
    assert "Conv2d(16, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))" in repr(best)


@pytest.mark.parametrize(("channels", "classes", "size"), [(1, 2, 28), (3, 5, 28), (3, 4, 16)])
def test_medmnist_cnn_build_adapts_to_the_data(channels: int, classes: int, size: int) -> None:
    space = make_space("medmnist-cnn")
    for block in range(4):
        model = space.build({"convolution_block": block, "feature": 64},
                            BuildSpec(in_channels=channels, num_classes=classes,
                                      image_size=size))
        assert not has_mutables(model)
        x = torch.randn(2, channels, size, size).contiguous(memory_format=torch.channels_last)
        assert model(x).shape == (2, classes)
        assert model.fc1.in_features == 32 * 14 * 14
    assert space.options() == {"input_channels": 1, "num_classes": 2}  # the space is unchanged


def test_example_file_is_the_same_space(tmp_path: Path) -> None:
    space = make_space(f"{EXAMPLE}:CNNModelSpace")
    builtin = CNNModelSpace()
    assert space.decisions() == builtin.decisions()
    model = space.build({"convolution_block": 2, "feature": 128},
                        BuildSpec(in_channels=3, num_classes=4, image_size=28))
    assert model(torch.randn(2, 3, 28, 28)).shape == (2, 4)


def test_a_space_that_does_not_fit_the_data_fails_clearly() -> None:
    space = make_space(f"{EXAMPLE}:CNNModelSpace")  # written for 28 px, like the seed
    with pytest.raises(ConfigError, match="does not run on 1x16x16 inputs"):
        space.build({"convolution_block": 0, "feature": 64},
                    BuildSpec(in_channels=1, num_classes=2, image_size=16))


USER_SPACE = '''
import torch
from torch import nn
from autonas.spaces.model_space import LayerChoice, ModelSpace, MutableLinear, choice


class TinySpace(ModelSpace):
    def __init__(self, in_channels=1, num_classes=2, width=4, **extra):
        super().__init__()
        self.conv = LayerChoice({"c3": nn.Conv2d(in_channels, width, 3, padding=1),
                                 "c1": nn.Conv2d(in_channels, width, 1)}, label="conv")
        hidden = choice("hidden", [8, 16])
        self.fc1 = MutableLinear(width, hidden)
        self.fc2 = MutableLinear(hidden, num_classes)

    def forward(self, x):
        h = self.conv(x).mean((2, 3))
        return self.fc2(torch.relu(self.fc1(h)))
'''


def test_user_space_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "my_space.py"
    path.write_text(USER_SPACE)
    space = make_space(f"{path}:TinySpace", width=6, note="kept")
    assert space.options() == {"in_channels": 1, "num_classes": 2, "width": 6, "note": "kept"}
    rebuilt = make_space(f"{path}:TinySpace", **space.options())
    assert rebuilt.decisions() == space.decisions()
    arch = space.validate({"conv": "c1", "hidden": 16})
    model = space.build(arch, BuildSpec(in_channels=3, num_classes=7, image_size=8))
    assert model.conv.weight.shape == (6, 3, 1, 1)
    assert (model.fc2.in_features, model.fc2.out_features) == (16, 7)
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 7)
    with pytest.raises(ConfigError, match="no 'Missing'"):
        make_space(f"{path}:Missing")


# ---------------------------------------------------------------- InputChoice reductions


@pytest.mark.parametrize(("reduction", "expected"), [
    ("sum", lambda a, c: a + c),
    ("mean", lambda a, c: (a + c) / 2),
    ("concat", lambda a, c: torch.cat([a, c], 1)),
    ("none", lambda a, c: [a, c]),
])
def test_input_choice_reductions(reduction, expected) -> None:
    inputs = [torch.randn(2, 3, 4, 4) for _ in range(3)]
    m = InputChoice(3, n_chosen=2, reduction=reduction, label="in")
    frozen = m.freeze({"in": [0, 2]})
    got, want = frozen(inputs), expected(inputs[0], inputs[2])
    if reduction == "none":
        assert isinstance(got, list) and len(got) == 2
        for g, w in zip(got, want):
            assert torch.equal(g, w)
    else:
        torch.testing.assert_close(got, want)
    unfrozen = m(inputs)  # the default: the first n_chosen inputs
    default = expected(inputs[0], inputs[1])
    if reduction == "none":
        assert all(torch.equal(g, w) for g, w in zip(unfrozen, default))
    else:
        torch.testing.assert_close(unfrozen, default)
    if reduction == "concat":
        assert got.shape == (2, 6, 4, 4)


def test_input_choice_rejects_an_unknown_reduction() -> None:
    with pytest.raises(ConfigError, match="reduction must be one of sum, mean, concat, none"):
        InputChoice(3, reduction="max", label="x")


class ConcatSpace(ModelSpace):
    """Two of three branches concatenated: the head sees twice the branch width."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2) -> None:
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(in_channels, 3, 1) for _ in range(3))
        self.pick = InputChoice(3, n_chosen=2, reduction="concat", label="pick")
        self.head = nn.Linear(6, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pick([b(x) for b in self.branches])
        return self.head(h.mean((2, 3)))


def test_concat_space_freezes_every_choice() -> None:
    space = ConcatSpace()
    x = torch.randn(2, 1, 6, 6)
    for arch in all_archs(space):
        model = space.freeze(arch)
        assert model(x).shape == (2, 2)
    assert space.size() == 3


# ----------------------------------------------------------------------------- choice arithmetic


def test_choice_arithmetic_values_and_labels() -> None:
    k = choice("k", [3, 5, 7])
    w = choice("w", [8, 16])
    assert (k // 2).values == [1, 2, 3]
    assert (w * 2).values == [16, 32] and (2 * w).values == [16, 32]
    assert (w + 1).values == [9, 17] and (1 + w).values == [9, 17]
    assert (w - 4).values == [4, 12] and (40 - w).values == [32, 24]
    assert (w / 4).values == [2.0, 4.0] and (w % 3).values == [2, 1]
    assert (-w).values == [-8, -16]
    assert k.map(lambda v: v * v).values == [9, 25, 49]
    both = w * k
    assert [c.label for c in both.sources()] == ["w", "k"]
    assert both.values == [24, 40, 56, 48, 80, 112]
    assert both.evaluate({"w": 16, "k": 5}) == 80 and both.evaluate() == 24
    assert repr(k // 2) == "(choice('k', [3, 5, 7]) // 2)"
    with pytest.raises(TypeError):
        _ = k + "x"


class DerivedSpace(ModelSpace):
    """A width used twice (``w * 2``), padding from the kernel (``k // 2``), and a pooling
    window from the kernel through Parametrized."""

    def __init__(self, in_channels: int = 1, num_classes: int = 3) -> None:
        super().__init__()
        w = choice("w", [2, 4])
        k = choice("k", [1, 3, 5])
        self.conv1 = MutableConv2d(in_channels, w, k, padding=k // 2)
        self.conv2 = MutableConv2d(w, w * 2, 3, padding=1)
        self.bn = MutableBatchNorm2d(w * 2)
        self.pool = Parametrized(nn.MaxPool2d, k, stride=1, padding=k // 2)
        self.fc = MutableLinear(w * 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(torch.relu(self.bn(self.conv2(self.conv1(x)))))
        return self.fc(h.mean((2, 3)))


def test_derived_values_freeze_to_the_computed_sizes() -> None:
    space = DerivedSpace()
    assert space.labels() == ["w", "k"]  # derived values are no decisions of their own
    model = space.freeze({"w": 4, "k": 5})
    assert model.conv1.padding == (2, 2) and model.conv1.weight.shape == (4, 1, 5, 5)
    assert model.conv2.weight.shape == (8, 4, 3, 3)
    assert model.bn.num_features == 8 and model.fc.in_features == 8
    assert isinstance(model.pool, nn.MaxPool2d) and model.pool.kernel_size == 5
    assert model.pool.padding == 2
    x = torch.randn(2, 1, 7, 7)
    for arch in all_archs(space):
        frozen = space.freeze(arch)
        assert not has_mutables(frozen) and frozen(x).shape == (2, 3)
    torch.testing.assert_close(space.eval()(x), space.freeze(space.default_arch()).eval()(x))


def test_padding_that_changes_the_output_size_is_refused() -> None:
    k = choice("k", [1, 3])
    with pytest.raises(ConfigError, match="different output sizes"):
        MutableConv2d(1, 2, k, padding=1)
    with pytest.raises(ConfigError, match="different output sizes"):
        MutableConv2d(1, 2, k, padding=k)
    MutableConv2d(1, 2, k, padding=k // 2)  # keeps the size: accepted


def test_repeat_refuses_a_derived_depth() -> None:
    with pytest.raises(ConfigError, match="not a derived value"):
        Repeat(lambda i: nn.Identity(), choice("d", [1, 2]) * 2)
