"""The resolved run configuration: what `config.yaml` in a run folder holds.

Defaults are sized so `autonas run` on BreastMNIST (28 px) fits 10 minutes on 2 CPU cores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .option_types import check_options
from .training.budget import parse_duration
from .training.trainer import TrainConfig

ENSEMBLE_AUTO_MAX = 5
"""``ensemble: auto`` adds networks while time is left, up to this many."""
ENSEMBLE_MAX = 20
ENSEMBLE_SOURCES = ("seeds", "runners_up")


@dataclass
class NetworkSize:
    """Size of the network retrained from a genotype (YAML section ``network``)."""

    channels: int = 16
    layers: int = 8
    auxiliary: bool = False
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.channels < 2 or self.channels % 2:
            raise ConfigError(f"network channels must be an even number >= 2, got {self.channels}")
        if self.layers < 1:
            raise ConfigError(f"network layers must be >= 1, got {self.layers}")


@dataclass
class RunConfig:
    dataset: str = "breastmnist"
    """A MedMNIST flag or a path to an .npz file in the MedMNIST layout."""
    size: int = 28
    source: dict[str, Any] = field(default_factory=dict)
    """Images on disk instead of ``dataset``: ``{kind: folder, path: DIR}`` or ``{kind: csv,
    csv: FILE, image_dir: DIR, image_col: COL, label_col: COL}``, plus image_size, grayscale,
    resize, val_fraction, test_fraction (see ``autonas.data.folder``); empty = ``dataset``."""
    space: str = "darts"
    """A registered space (see `autonas spaces`) or a user space `file.py:Class`."""
    space_options: dict[str, Any] = field(default_factory=dict)
    strategy: str = "evolution"
    """A registered strategy (see `autonas strategies`). The default is regularized evolution:
    on minutes of CPU, trials of small proxy networks chose better cells than a DARTS
    supernet did (README, "Does the search earn its cost?")."""
    search: dict[str, Any] = field(default_factory=dict)
    """Options of the strategy (see `autonas strategies`)."""
    network: NetworkSize = field(default_factory=NetworkSize)
    train: TrainConfig = field(default_factory=TrainConfig)
    budget: float | None = 600.0
    """Seconds for the whole run (search + retrain + evaluation); None = no limit."""
    search_fraction: float = 0.4
    """Share of the budget the search may use; what it leaves goes to retraining."""
    search_size: int | str | None = "auto"
    """Image side the search works at (the retraining always uses the data's size):
    ``auto`` searches images larger than 64 px at 64 px on CPU (the stems bring both to
    the same cell resolution, so the architecture transfers) and at full size on a GPU;
    None or 0: full size; a number: that side."""
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    tensorboard: bool = False
    """Mirror search and retrain scalars into RUN_DIR/tensorboard/ (needs `tensorboard`)."""
    ensemble: int | str = "auto"
    """Networks in the final model, their probabilities averaged, each trained as the
    retraining was (see ``ensemble_from``). ``auto``: as many as the time the retraining
    left over allows, at most ``ENSEMBLE_AUTO_MAX`` (so a budgeted run whose retraining
    fills its time keeps one network, and so does a run without a budget); a number:
    that many, the retraining's time shared among them."""
    ensemble_from: str = "seeds"
    """``seeds``: the searched architecture with other seeds; ``runners_up``: the search's
    next best distinct architectures (multi-trial strategies; then seeds)."""
    tta: bool = True
    """Test-time augmentation: the final model averages its probabilities over the image
    and the flips its training augmentation used (none: no averaging). On by measurement:
    README, "Test-time augmentation"."""
    val_fraction: float | None = None
    """Hold out this share of train (stratified, seeded) as the validation split instead of
    the file's own, for .npz data whose validation split is empty or unusable."""

    def __post_init__(self) -> None:
        if not 0.0 < self.search_fraction < 1.0:
            raise ConfigError(f"search_fraction must be in (0, 1), got {self.search_fraction}")
        if not (self.search_size in (None, "auto") or (
                isinstance(self.search_size, int) and (self.search_size == 0
                                                       or self.search_size >= 8))):
            raise ConfigError(f"search_size must be auto, 0/None (full size) or a side of at "
                              f"least 8 px, got {self.search_size!r}")
        if isinstance(self.ensemble, str) and self.ensemble.strip().isdigit():
            self.ensemble = int(self.ensemble)  # "--ensemble 3", "--set ensemble=3"
        if not (self.ensemble == "auto" or (isinstance(self.ensemble, int)
                                            and not isinstance(self.ensemble, bool)
                                            and 1 <= self.ensemble <= ENSEMBLE_MAX)):
            raise ConfigError(f"ensemble must be auto or a number of networks from 1 to "
                              f"{ENSEMBLE_MAX}, got {self.ensemble!r}")
        if self.ensemble_from not in ENSEMBLE_SOURCES:
            raise ConfigError(f"ensemble_from must be one of {', '.join(ENSEMBLE_SOURCES)}, "
                              f"got {self.ensemble_from!r}")
        if not isinstance(self.tta, bool):
            raise ConfigError(f"tta must be true or false, got {self.tta!r}")
        if self.val_fraction is not None and not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        d = dict(d)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config key(s) {unknown}; known: {sorted(known)}")
        for key in ("network", "train", "search", "space_options", "source"):
            if key in d and d[key] is None:  # an empty YAML section: the defaults
                d.pop(key)
        if isinstance(d.get("budget"), str):  # "10m", "1h30m", "none" as on the command line
            d["budget"] = parse_duration(d["budget"])
        d = check_options(cls, d)
        if isinstance(d.get("network"), dict):
            net = d["network"]
            known_net = {f.name for f in fields(NetworkSize)}
            unknown_net = sorted(set(net) - known_net)
            if unknown_net:
                raise ConfigError(
                    f"unknown network option(s) {unknown_net}; known: {sorted(known_net)}")
            d["network"] = NetworkSize(**check_options(NetworkSize, net, "network"))
        if isinstance(d.get("train"), dict):
            d["train"] = TrainConfig.from_dict(check_options(TrainConfig, d["train"], "train"))
        return cls(**d)

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {p} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {p} must hold a mapping of options")
        return cls.from_dict(data)


def check_search_options(cfg: RunConfig) -> None:
    """Type-check the strategy's options (``search.*``) before anything runs, converting
    text that YAML read loosely (e.g. ``1e-3``) to the option's type in place."""
    from .spaces import make_space
    from .strategies import make_strategy

    space = make_space(cfg.space, **cfg.space_options)
    strategy_cls = type(make_strategy(cfg.strategy, space))
    search = check_options(strategy_cls, dict(cfg.search or {}), "search")
    trial_train = search.get("train")
    if "train" in strategy_cls.option_names() and isinstance(trial_train, dict):
        search["train"] = check_options(TrainConfig, trial_train, "search.train")
    cfg.search = search
