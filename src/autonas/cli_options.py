"""The options that `autonas run`, `search` and `train` share, declared once.

Each option is an ``Annotated`` alias (its flag and help text); :func:`with_options` adds a
chosen set of them to a command's signature and hands the command one
:class:`CommandOptions` holding their values, so the commands list only what is their own.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape as rich_escape

Dataset = Annotated[str | None, typer.Option("--dataset", "-d", help="MedMNIST flag, e.g. "
                                             "breastmnist (bundled; the default), "
                                             "pneumoniamnist, dermamnist.")]
DataPath = Annotated[Path | None, typer.Option("--data", help="An .npz file in the MedMNIST "
                                               "layout (train/val/test images and labels).")]
Size = Annotated[int | None, typer.Option(help="MedMNIST image size: 28 (default), 64, "
                                          "128 or 224.")]
Strategy = Annotated[str | None, typer.Option("--strategy", "-s", help="Search strategy "
                                              "(see `autonas strategies`; default: "
                                              "evolution).")]
Space = Annotated[str | None, typer.Option("--space", help="Search space (see `autonas "
                                           "spaces`; default: darts), or a user space as "
                                           "path/to/file.py:ClassName.")]
Budget = Annotated[str | None, typer.Option("--budget", "-b", help="Wall-clock budget for the "
                                            "whole command, e.g. 600, 10m, 1h30m, none "
                                            "(default: 10m; on --resume, what the run has "
                                            "left).", show_default=False)]
Epochs = Annotated[int | None, typer.Option(help="Search epochs of a one-shot strategy, "
                                            "training epochs per trial of a multi-trial one "
                                            "(default: the strategy's).")]
RetrainEpochs = Annotated[int | None, typer.Option(help="Retrain epochs (default: as many as "
                                                   "the budget allows).")]
EnsembleSize = Annotated[str | None, typer.Option(
    "--ensemble", help="Networks in the final model, their probabilities averaged: auto "
    "(default: as many as the time the retraining leaves over allows, up to 5; so one when "
    "the retraining fills the budget), or a number, which shares the retraining's time.")]
Tta = Annotated[bool | None, typer.Option(
    "--tta/--no-tta", help="Test-time augmentation: average the final model's probabilities "
    "over each image and the flips its training used (default: on).", show_default=False)]
Seed = Annotated[int | None, typer.Option(help="Random seed (default 0); the same seed on CPU "
                                          "gives the same architecture.")]
Device = Annotated[str | None, typer.Option(help="auto (the default), cpu or cuda.")]
Out = Annotated[Path | None, typer.Option("--out", "-o", help="Run folder to create (default: "
                                          "runs/<dataset>-<strategy>-<time>).")]
Resume = Annotated[Path | None, typer.Option(help="Continue the run in this folder from its "
                                             "last finished epoch.")]
ConfigFile = Annotated[Path | None, typer.Option("--config", help="YAML file with any options "
                                                 "of config.yaml; flags given override it.")]
Sets = Annotated[list[str] | None, typer.Option("--set", help="Override one option, e.g. "
                                                "--set search.alpha_lr=0.01 --set train.lr=0.1 "
                                                "--set network.channels=24 (repeatable).")]
MaxTrials = Annotated[int | None, typer.Option("--max-trials", help="Multi-trial strategies: "
                                               "trials to run at most (with --budget, "
                                               "whichever ends first).")]
StorageUrl = Annotated[str | None, typer.Option("--storage", help="Multi-trial strategies: "
                                                "Optuna storage URL, e.g. postgresql://user:"
                                                "pass@host/db (default: SQLite in the run "
                                                "folder).", show_default=False)]
Workers = Annotated[int | None, typer.Option("--workers", help="Multi-trial strategies: "
                                            "worker processes to start on this machine, "
                                            "sharing the study (more than one needs a "
                                            "PostgreSQL --storage; other machines join with "
                                            "`autonas worker`).", show_default=False)]
Loss = Annotated[str | None, typer.Option("--loss", help="Loss of the search and of "
                                          "retraining: ce (cross-entropy), focal (focal "
                                          "loss, gamma train.focal_gamma) or coral (ordinal "
                                          "grades: a CORAL head; a supernet searches with "
                                          "ce) (default: ce; multi-label data: binary "
                                          "cross-entropy per label).",
                                          show_default=False)]
Ddp = Annotated[int | None, typer.Option("--ddp", help="Data-parallel: run the search and "
                                        "retraining on N local processes (gloo on CPU, NCCL "
                                        "on GPUs); the global batch is split across them. "
                                        "Under torchrun, leave it out.",
                                        show_default=False)]
ClassWeights = Annotated[str | None, typer.Option("--class-weights", help="none, or auto: "
                                                  "weight each class by its inverse training "
                                                  "frequency, in the search and retraining "
                                                  "(default: none).", show_default=False)]



Folder = Annotated[Path | None, typer.Option("--folder", help="A folder of images with one "
                                             "subfolder per class (instead of --dataset).")]
CsvFile = Annotated[Path | None, typer.Option("--csv", help="A CSV naming an image file and a "
                                              "label per row (instead of --dataset).")]
ImageDir = Annotated[Path | None, typer.Option("--image-dir", help="Folder the CSV's file "
                                               "names are relative to (default: the CSV's "
                                               "folder).", show_default=False)]
ImageCol = Annotated[str | None, typer.Option("--image-col", help="CSV column of image file "
                                              "names (default: the first such column).",
                                              show_default=False)]
LabelCol = Annotated[str | None, typer.Option("--label-col", help="CSV column of labels, "
                                              "e.g. gender.")]
ImageSize = Annotated[int | None, typer.Option("--image-size", help="--folder/--csv images are "
                                               "resized to this square side (default: 64).",
                                               show_default=False)]
Grayscale = Annotated[bool | None, typer.Option("--grayscale/--rgb", help="Force grayscale or "
                                                "RGB for --folder/--csv (default: the mode "
                                                "most files have).", show_default=False)]



TensorBoardFlag = Annotated[bool, typer.Option("--tensorboard", help="Also write search and "
                                               "retrain scalars to RUN_DIR/tensorboard/ (needs "
                                               "pip install "
                                               f"'{rich_escape('autonas[tensorboard]')}').")]


TrainEpochs = Annotated[int | None, typer.Option("--epochs", help="Training epochs (default: "
                                                 "as many as the budget allows).")]
TrainResume = Annotated[Path | None, typer.Option(help="A search run folder to retrain its "
                                                  "architecture in, or a train run to "
                                                  "continue.")]


@dataclass
class CommandOptions:
    """The shared options' values; those a command does not take keep these defaults."""

    # None: not given, so --config or RunConfig's default applies (a default here would
    # silently override the config file).
    dataset: str | None = None
    data: Path | None = None
    size: int | None = None
    space: str | None = None
    strategy: str | None = None
    budget: str | None = None
    epochs: int | None = None
    retrain_epochs: int | None = None
    ensemble: str | None = None
    tta: bool | None = None
    seed: int | None = None
    device: str | None = None
    out: Path | None = None
    resume: Path | None = None
    config: Path | None = None
    set_: list[str] | None = field(default=None)
    folder: Path | None = None
    csv_file: Path | None = None
    image_dir: Path | None = None
    image_col: str | None = None
    label_col: str | None = None
    image_size: int | None = None
    grayscale: bool | None = None
    max_trials: int | None = None
    storage: str | None = None
    workers: int | None = None
    tensorboard: bool = False
    loss: str | None = None
    class_weights: str | None = None
    ddp: int | None = None

    def config_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``cli.build_config`` these options give."""
        return {"config": self.config, "dataset": self.dataset, "data": self.data,
                "size": self.size, "strategy": self.strategy, "budget": self.budget,
                "epochs": self.epochs, "space": self.space,
                "retrain_epochs": self.retrain_epochs, "ensemble": self.ensemble,
                "tta": self.tta, "seed": self.seed,
                "device": self.device, "sets": self.set_, "max_trials": self.max_trials,
                "storage": self.storage, "loss": self.loss,
                "class_weights": self.class_weights, "workers": self.workers}

    def image_source_args(self) -> tuple[Any, ...]:
        return (self.folder, self.csv_file, self.image_dir, self.image_col, self.label_col,
                self.image_size, self.grayscale)


OPTION_TYPES: dict[str, Any] = {
    "dataset": Dataset, "data": DataPath, "size": Size, "space": Space, "strategy": Strategy,
    "budget": Budget, "epochs": Epochs, "retrain_epochs": RetrainEpochs, "seed": Seed,
    "ensemble": EnsembleSize, "tta": Tta,
    "device": Device, "out": Out, "resume": Resume, "config": ConfigFile, "set_": Sets,
    "folder": Folder, "csv_file": CsvFile, "image_dir": ImageDir, "image_col": ImageCol,
    "label_col": LabelCol, "image_size": ImageSize, "grayscale": Grayscale,
    "max_trials": MaxTrials, "storage": StorageUrl, "workers": Workers,
    "tensorboard": TensorBoardFlag, "loss": Loss, "class_weights": ClassWeights, "ddp": Ddp,
}
assert set(OPTION_TYPES) == {f.name for f in fields(CommandOptions)}


def with_options(*names: str, **retyped: Any) -> Callable[[Callable[..., Any]], Any]:
    """Give a command the shared options ``names`` (in that order, after its own), passed to
    it as ``opts: CommandOptions``. ``retyped`` swaps an option's flag or help for this
    command, e.g. ``retrain_epochs=TrainEpochs``."""
    defaults = {f.name: f.default for f in fields(CommandOptions)}

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        hints = typing.get_type_hints(command, include_extras=True)
        own = [p.replace(annotation=hints.get(p.name, p.annotation))
               for p in inspect.signature(command).parameters.values() if p.name != "opts"]
        shared = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=defaults[n],
                                    annotation=retyped.get(n, OPTION_TYPES[n]))
                  for n in names]

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            opts = CommandOptions(**{n: kwargs.pop(n) for n in names})
            return command(*args, opts=opts, **kwargs)

        params = own + shared
        wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        del wrapper.__wrapped__  # Typer must read the new signature, not the command's
        return wrapper

    return decorate
