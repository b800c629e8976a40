"""The `autonas` command: run (search + retrain + evaluate), and each piece on its own."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.table import Table

from .config import RunConfig
from .errors import AutonasError, ConfigError
from .pipeline import RunInterrupted, execute
from .run import RunDir
from .spaces.genotype import Genotype
from .training.budget import parse_duration
from .ui import console, setup_console_logging

app = typer.Typer(
    help="Neural architecture search for image classification: search a cell architecture, "
    "retrain it, evaluate it, all inside a time budget.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Dataset = Annotated[str, typer.Option("--dataset", "-d", help="MedMNIST flag, e.g. breastmnist "
                                      "(bundled), pneumoniamnist, dermamnist.")]
DataPath = Annotated[Path | None, typer.Option("--data", help="An .npz file in the MedMNIST "
                                               "layout (train/val/test images and labels).")]
Size = Annotated[int, typer.Option(help="MedMNIST image size: 28, 64, 128 or 224.")]
Strategy = Annotated[str, typer.Option("--strategy", "-s", help="Search strategy (see "
                                       "`autonas strategies`).")]
Space = Annotated[str, typer.Option("--space", help="Search space (see `autonas spaces`), or a "
                                    "user space as path/to/file.py:ClassName.")]
Budget = Annotated[str | None, typer.Option("--budget", "-b", help="Wall-clock budget for the "
                                            "whole command, e.g. 600, 10m, 1h30m, none "
                                            "[default: 10m; on --resume, what the run has "
                                            "left].", show_default=False)]
Epochs = Annotated[int | None, typer.Option(help="Search epochs (default: the strategy's).")]
RetrainEpochs = Annotated[int | None, typer.Option(help="Retrain epochs (default: as many as "
                                                   "the budget allows).")]
Seed = Annotated[int, typer.Option(help="Random seed; the same seed on CPU gives the same "
                                   "architecture.")]
Device = Annotated[str, typer.Option(help="auto, cpu or cuda.")]
Out = Annotated[Path | None, typer.Option("--out", "-o", help="Run folder to create (default: "
                                          "runs/<dataset>-<strategy>-<time>).")]
Resume = Annotated[Path | None, typer.Option(help="Continue the run in this folder from its "
                                             "last finished epoch.")]
ConfigFile = Annotated[Path | None, typer.Option("--config", help="YAML file with any options "
                                                 "of config.yaml; flags given override it.")]
Sets = Annotated[list[str] | None, typer.Option("--set", help="Override one option, e.g. "
                                                "--set search.alpha_lr=0.01 --set train.lr=0.1 "
                                                "--set network.channels=24 (repeatable).")]


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _apply_sets(d: dict[str, Any], sets: Sequence[str]) -> None:
    for item in sets:
        if "=" not in item:
            raise ConfigError(f"--set needs KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        target = d
        for p in parts[:-1]:
            if not isinstance(target.get(p), dict):
                target[p] = dict(target.get(p) or {})
            target = target[p]
        target[parts[-1]] = _parse_value(value)


def build_config(*, config: Path | None, dataset: str | None, data: Path | None,
                 size: int | None, strategy: str | None, budget: str | None,
                 space: str | None = None,
                 epochs: int | None, retrain_epochs: int | None, seed: int | None,
                 device: str | None, sets: Sequence[str] | None) -> RunConfig:
    d: dict[str, Any] = RunConfig().to_dict()
    if config is not None:
        loaded = RunConfig.load(config).to_dict()
        d.update(loaded)
    if data is not None:
        d["dataset"] = str(data)
    elif dataset is not None:
        d["dataset"] = dataset
    for key, value in (("size", size), ("strategy", strategy), ("seed", seed),
                       ("device", device), ("space", space)):
        if value is not None:
            d[key] = value
    if budget is not None:
        d["budget"] = parse_duration(budget)
    if epochs is not None:
        d["search"] = {**d.get("search", {}), "epochs": epochs}
    if retrain_epochs is not None:
        d["train"] = {**d.get("train", {}), "epochs": retrain_epochs}
    _apply_sets(d, sets or [])
    return RunConfig.from_dict(d)


def _run_name(cfg: RunConfig) -> str:
    return f"{Path(cfg.dataset).stem.lower()}-{cfg.strategy}"


def _execute(cfg: RunConfig | None, phases: Sequence[str], *, out: Path | None,
             resume: Path | None, budget: str | None, device: str | None = None,
             arch: dict[str, Any] | None = None) -> dict[str, Any]:
    setup_console_logging()
    try:
        if resume is not None:
            run = RunDir.open(resume)
            cfg = RunConfig.from_dict(run.read_yaml("config.yaml"))
            if device is not None:
                cfg.device = device
            seconds = parse_duration(budget) if budget is not None else None
            return execute(cfg, run, phases, resume=True, arch=arch, budget_seconds=seconds)
        assert cfg is not None
        run = RunDir.create(out, _run_name(cfg))
        return execute(cfg, run, phases, arch=arch)
    except RunInterrupted as stop:
        console.print(f"\n[yellow]{stop.phase} interrupted.[/] Everything up to the last "
                      f"finished epoch is saved in {stop.run.path}.\nContinue with: "
                      f"autonas {phases_command(phases)} --resume {stop.run.path}")
        raise typer.Exit(130) from None
    except AutonasError as exc:
        _fail(str(exc))
    raise AssertionError("unreachable")


def phases_command(phases: Sequence[str]) -> str:
    return {("search",): "search", ("retrain",): "train"}.get(tuple(phases), "run")


def print_summary(summary: dict[str, Any]) -> None:
    table = Table(title="autonas run", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    arch = summary.get("arch")
    if isinstance(arch, dict) and {"normal", "reduce"} <= set(arch):
        table.add_row("normal cell", _cell_text(arch["normal"]))
        table.add_row("reduction cell", _cell_text(arch["reduce"]))
    elif arch is not None:
        table.add_row("architecture", summary.get("arch_text") or json.dumps(arch))
    metrics = summary.get("metrics")
    if metrics:
        table.add_row("parameters", f"{metrics['params']:,}")
        for split in ("val", "test"):
            m = metrics[split]
            auc = "n/a" if m["auc"] is None else f"{m['auc']:.4f}"
            table.add_row(f"{split} ACC / AUC", f"{m['accuracy']:.4f} / {auc}")
    for phase, info in summary.get("phases", {}).items():
        table.add_row(f"{phase} time", f"{info.get('seconds', 0):.0f} s")
    if summary.get("budget"):
        table.add_row("total / budget", f"{summary['seconds']:.0f} s / {summary['budget']:.0f} s")
    table.add_row("run folder", summary["run"])
    console.print(table)


def _cell_text(nodes: list) -> str:
    return "  ".join(f"n{i}: " + " + ".join(f"{op}({j})" for op, j in edges)
                     for i, edges in enumerate(nodes))


@app.command()
def run(
    dataset: Dataset = "breastmnist",
    data: DataPath = None,
    size: Size = 28,
    space: Space = "darts",
    strategy: Strategy = "darts",
    budget: Budget = None,
    epochs: Epochs = None,
    retrain_epochs: RetrainEpochs = None,
    seed: Seed = 0,
    device: Device = "auto",
    out: Out = None,
    resume: Resume = None,
    config: ConfigFile = None,
    set_: Sets = None,
) -> None:
    """Search an architecture, retrain it and evaluate it on the test split."""
    cfg = None
    if resume is None:
        cfg = _config_or_fail(config=config, dataset=dataset, data=data, size=size,
                              strategy=strategy, budget=budget, epochs=epochs, space=space,
                              retrain_epochs=retrain_epochs, seed=seed, device=device, sets=set_)
    summary = _execute(cfg, ("search", "retrain", "evaluate"), out=out, resume=resume,
                       budget=budget,
                       device=None if resume is None else device)
    print_summary(summary)


@app.command()
def search(
    dataset: Dataset = "breastmnist",
    data: DataPath = None,
    size: Size = 28,
    space: Space = "darts",
    strategy: Strategy = "darts",
    budget: Budget = None,
    epochs: Epochs = None,
    seed: Seed = 0,
    device: Device = "auto",
    out: Out = None,
    resume: Resume = None,
    config: ConfigFile = None,
    set_: Sets = None,
) -> None:
    """Search only: writes genotype.json (retrain it with `autonas train`)."""
    cfg = None
    if resume is None:
        cfg = _config_or_fail(config=config, dataset=dataset, data=data, size=size,
                              strategy=strategy, budget=budget, epochs=epochs, space=space,
                              retrain_epochs=None, seed=seed, device=device, sets=set_)
    summary = _execute(cfg, ("search",), out=out, resume=resume,
                       budget=budget)
    print_summary(summary)


@app.command()
def train(
    arch: Annotated[Path | None, typer.Option("--arch", "--genotype", help="Architecture to "
                                              "train: a run's architecture.json or "
                                              "genotype.json, or a JSON file written by hand.")]
    = None,
    space: Space = "darts",
    dataset: Dataset = "breastmnist",
    data: DataPath = None,
    size: Size = 28,
    budget: Budget = None,
    retrain_epochs: Annotated[int | None, typer.Option("--epochs", help="Training epochs "
                                                       "(default: as many as the budget "
                                                       "allows).")] = None,
    seed: Seed = 0,
    device: Device = "auto",
    out: Out = None,
    resume: Annotated[Path | None, typer.Option(help="A search run folder to retrain its "
                                                "architecture in, or a train run to "
                                                "continue.")] = None,
    config: ConfigFile = None,
    set_: Sets = None,
) -> None:
    """Train the network an architecture describes (select by validation AUC)."""
    arch_dict = None
    if arch is not None:
        try:
            arch_dict, arch_space = read_arch_file(arch)
        except AutonasError as exc:
            _fail(str(exc))
        space = arch_space or space
    elif resume is None:
        _fail("pass --arch FILE (alias --genotype; e.g. a search run's genotype.json) or "
              "--resume RUN_DIR")
    cfg = None
    if resume is None:
        cfg = _config_or_fail(config=config, dataset=dataset, data=data, size=size,
                              strategy=None, budget=budget, epochs=None, space=space,
                              retrain_epochs=retrain_epochs, seed=seed, device=device, sets=set_)
    summary = _execute(cfg, ("retrain",), out=out, resume=resume, arch=arch_dict,
                       budget=budget)
    if arch_dict is not None and resume is None and cfg is not None:
        from .pipeline import write_architecture
        from .spaces import make_space

        write_architecture(RunDir(summary["run"]), cfg,
                           make_space(cfg.space, **cfg.space_options), arch_dict,
                           source=str(arch))
    print_summary(summary)
    console.print(f"Evaluate on the test split with: autonas evaluate {summary['run']}")


def read_arch_file(path: Path) -> tuple[dict[str, Any], str | None]:
    """(architecture, space name if the file names one) from any architecture JSON."""
    if not path.is_file():
        raise ConfigError(f"architecture file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"architecture file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"architecture file {path} must hold a JSON object")
    if "arch" in data:
        return data["arch"], data.get("space")
    if "genotype" in data:
        return Genotype.from_dict(data["genotype"]).to_dict(), "darts"
    return data, None


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run folder holding model.pt.")],
    device: Device = "auto",
) -> None:
    """Evaluate a trained run on its validation and test splits (writes metrics.json)."""
    setup_console_logging()
    try:
        run = RunDir.open(run_dir)
        if not run.exists("model.pt"):
            _fail(f"{run_dir} has no model.pt: train it first (autonas train --resume {run_dir})")
        cfg = RunConfig.from_dict(run.read_yaml("config.yaml"))
        cfg.device = device
        summary = execute(cfg, run, ("evaluate",), resume=True)
    except AutonasError as exc:
        _fail(str(exc))
    print_summary(summary)


@app.command()
def spaces() -> None:
    """List the search spaces."""
    from .spaces import available_spaces

    for name, desc in available_spaces().items():
        console.print(f"[bold]{name}[/]: {desc}")


@app.command()
def strategies() -> None:
    """List the search strategies."""
    from .strategies import available_strategies

    for name, desc in available_strategies().items():
        console.print(f"[bold]{name}[/]: {desc}")


@app.command()
def datasets() -> None:
    """List the MedMNIST datasets autonas can load by flag."""
    from .data import medmnist_flags

    console.print("breastmnist (28 px) is bundled; others download on first use into "
                  "$AUTONAS_DATA (default: the user cache folder).")
    for flag in medmnist_flags():
        console.print(flag)


def _config_or_fail(**kwargs: Any) -> RunConfig:
    try:
        return build_config(**kwargs)
    except AutonasError as exc:
        _fail(str(exc))
    raise AssertionError("unreachable")


def main() -> None:
    app()


if __name__ == "__main__":
    main()

