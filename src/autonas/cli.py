"""The `autonas` command: run (search + retrain + evaluate), and each piece on its own."""

from __future__ import annotations

import json
import os
import shutil
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.markup import escape as rich_escape
from rich.table import Table

from .cli_options import CommandOptions, Device, TrainEpochs, TrainResume, with_options
from .config import RunConfig, check_search_options
from .data.validate import check_train_counts
from .errors import AutonasError, ConfigError
from .pipeline import (
    RunInterrupted,
    check_data_parallel,
    execute,
    execute_data_parallel,
    joined_group,
    load_data,
    rank0_value,
)
from .run import RunDir
from .training import distributed
from .training.budget import parse_duration, process_start
from .ui import console, setup_console_logging

app = typer.Typer(
    help="Neural architecture search for image classification: search a cell architecture, "
    "retrain it, evaluate it, all inside a time budget.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

def _fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {rich_escape(message)}")  # "[extra]" is not markup
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
                 device: str | None, sets: Sequence[str] | None,
                 max_trials: int | None = None, storage: str | None = None,
                 loss: str | None = None, class_weights: str | None = None,
                 workers: int | None = None, ensemble: str | None = None,
                 tta: bool | None = None, check_search: bool = True) -> RunConfig:
    """The run's config from defaults, --config, flags and --set, every value type-checked
    (the strategy's own options too, unless ``check_search`` is off: no search runs)."""
    d: dict[str, Any] = RunConfig().to_dict()
    if config is not None:
        loaded = RunConfig.load(config).to_dict()
        d.update(loaded)
    if data is not None:
        d["dataset"] = str(data)
    elif dataset is not None:
        d["dataset"] = dataset
    for key, value in (("size", size), ("strategy", strategy), ("seed", seed),
                       ("device", device), ("space", space), ("ensemble", ensemble),
                       ("tta", tta)):
        if value is not None:
            d[key] = value
    if budget is not None:
        d["budget"] = parse_duration(budget)
    if epochs is not None:
        d["search"] = {**d.get("search", {}), search_epochs_option(d["strategy"]): epochs}
    if retrain_epochs is not None:
        d["train"] = {**d.get("train", {}), "epochs": retrain_epochs}
    # Only when given: one-shot strategies have no such options and must say so.
    for key, value in (("max_trials", max_trials), ("storage", storage),
                       ("workers", workers)):
        if value is not None:
            d["search"] = {**d.get("search", {}), key: value}
    _apply_losses(d, loss, class_weights)
    _apply_sets(d, sets or [])
    cfg = RunConfig.from_dict(d)
    if check_search:
        check_search_options(cfg)
    return cfg


def strategy_option_names(strategy: str) -> set[str] | None:
    """The options a strategy takes; None for an unknown name, which is reported where the
    config is checked."""
    from .strategies import make_strategy

    try:
        return set(make_strategy(strategy).option_names())
    except AutonasError:
        return None


def search_epochs_option(strategy: str) -> str:
    """--epochs is a one-shot search's ``epochs`` and a multi-trial one's ``trial_epochs``."""
    names = strategy_option_names(strategy) or set()
    return "trial_epochs" if "trial_epochs" in names and "epochs" not in names else "epochs"


def _apply_losses(d: dict[str, Any], loss: str | None, class_weights: str | None) -> None:
    """--loss / --class-weights set the retraining's options and the search's: a one-shot
    strategy's own ``loss``/``class_weights``, a multi-trial strategy's trial ``train``."""
    from .training.losses import LOSSES

    if loss is not None and loss not in LOSSES:
        raise ConfigError(f"--loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    if class_weights is not None and class_weights not in ("none", "auto"):
        raise ConfigError(f"--class-weights must be none or auto, got {class_weights!r} (a "
                          "list of weights goes in --set train.class_weights=[1,3])")
    given: dict[str, Any] = {}
    if loss is not None:
        given["loss"] = loss
    if class_weights is not None:
        given["class_weights"] = None if class_weights == "none" else class_weights
    if not given:
        return
    d["train"] = {**d.get("train", {}), **given}
    names = strategy_option_names(d["strategy"])
    if names is None:
        return
    search = dict(d.get("search") or {})
    if "loss" in names:  # a supernet has a softmax head: it searches an ordinal task with ce
        search.update({**given, **({"loss": "ce"} if given.get("loss") == "coral" else {})})
    elif "train" in names:
        search["train"] = {**(search.get("train") or {}), **given}
    d["search"] = search


def _run_name(cfg: RunConfig) -> str:
    return f"{Path(cfg.dataset).stem.lower()}-{cfg.strategy}"


def _execute(cfg: RunConfig | None, phases: Sequence[str], *, out: Path | None,
             resume: Path | None, budget: str | None, device: str | None = None,
             arch: dict[str, Any] | None = None, ddp: int | None = None) -> dict[str, Any]:
    setup_console_logging()
    try:
        with warnings_on_console():
            options: dict[str, Any] = {"arch": arch, "clock_start": command_clock()}
            if ddp is not None:
                distributed.check_world_size(ddp)
                if distributed.env_world_size() > 1:
                    raise ConfigError("--ddp launches its own processes; under torchrun leave "
                                      "it out (torchrun --nproc-per-node N -m autonas ...)")
            if resume is not None:
                run = RunDir.open(resume)
                cfg = RunConfig.from_dict(run.read_yaml("config.yaml"))
                if device is not None:
                    cfg.device = device
                options.update(resume=True, budget_seconds=(
                    parse_duration(budget) if budget is not None else None))
                return _launch(cfg, run, phases, ddp, options)
            assert cfg is not None
            if ddp is not None:
                check_data_parallel(cfg, phases, processes=ddp)  # before the folder exists
            with joined_group(cfg):  # a torchrun rank joins here
                data = load_data(cfg)  # bad data fails here, before a run folder exists
                if "search" in phases:
                    check_train_counts(data.train_y, data.n_classes, data.name)
                existed = out is not None and out.exists()
                run = RunDir(rank0_value(lambda: _new_run_folder(out, cfg)))
                if ddp is None:
                    options["data"] = data  # the ranks of --ddp load their own copy
                try:
                    return _launch(cfg, run, phases, ddp, options)
                except AutonasError:
                    if distributed.is_writer():
                        discard_unstarted_run(run, keep_folder=existed)
                    raise
    except RunInterrupted as stop:
        console.print(f"\n[yellow]{stop.phase} interrupted.[/] Everything up to the last "
                      f"finished epoch is saved in {stop.run.path}.\nContinue with: "
                      f"autonas {phases_command(phases)} --resume {stop.run.path}")
        raise typer.Exit(130) from None
    except AutonasError as exc:
        _fail(str(exc))
    raise AssertionError("unreachable")


@contextmanager
def warnings_on_console() -> Iterator[None]:
    """Python warnings (e.g. about the data) as one plain console line, not file:line
    noise on stderr."""
    with warnings.catch_warnings():
        def show(message: Warning | str, category: type[Warning], filename: str,
                 lineno: int, file: Any = None, line: str | None = None) -> None:
            console.print(f"[yellow]warning:[/] {rich_escape(str(message))}")

        warnings.showwarning = show
        yield


def _launch(cfg: RunConfig, run: RunDir, phases: Sequence[str], ddp: int | None,
            options: dict[str, Any]) -> dict[str, Any]:
    """The phases in this process (one rank under torchrun), or on ``ddp`` local ranks."""
    if ddp is not None:
        return execute_data_parallel(cfg, run, phases, ddp, **options)
    with joined_group(cfg):
        return execute(cfg, run, phases, **options)


def _new_run_folder(out: Path | None, cfg: RunConfig) -> str:
    check_out(out)
    return str(create_run_dir(out, _run_name(cfg)).path)


def check_out(out: Path | None) -> None:
    """Refuse an --out that cannot become a run folder before any work is done."""
    target = out if out is not None else Path("runs")
    if target.exists() and not target.is_dir():
        raise ConfigError(f"--out {target} is an existing file, not a folder; pass the path "
                          "of a new (or empty) folder")
    if out is not None and out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"output folder {out} already holds files; pass --resume {out} to "
                          "continue that run, or choose another --out")
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"--out {target}: {existing} is a file, so no folder can be made "
                          "under it; pass another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write to {existing} (permission denied), so the run folder "
                          f"{target} cannot be created there; pass an --out in a folder you "
                          "can write to")


def create_run_dir(out: Path | None, name: str) -> RunDir:
    try:
        return RunDir.create(out, name)
    except OSError as exc:
        where = out if out is not None else Path("runs")
        raise ConfigError(f"cannot create the run folder {where}: {exc.strerror or exc}; pass "
                          "an --out in a folder you can write to") from None


def discard_unstarted_run(run: RunDir, *, keep_folder: bool) -> None:
    """A run that failed before any phase started holds nothing worth resuming: remove what
    it wrote, so the same --out can be used again."""
    if run.exists("status.json"):
        return
    if not keep_folder:
        shutil.rmtree(run.path, ignore_errors=True)
        return
    for child in run.path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


RESUME_KEEPS = ("resume", "budget", "device", "ddp")
"""What --resume may be given with: the rest of a run's settings live in its config.yaml."""


def given(ctx: typer.Context, name: str) -> bool:
    """Typed on the command line (by name: Typer may carry its own copy of click's enum)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


def refuse_settings_on_resume(ctx: typer.Context, resume: Path | None) -> None:
    """Settings given with --resume would be silently ignored: say so before anything runs."""
    if resume is None:
        return
    given_here = [param.opts[0] for param in ctx.command.params
                  if param.name not in RESUME_KEEPS and given(ctx, param.name)]
    if given_here:
        _fail(f"--resume continues {resume} with the settings in its config.yaml, so "
              f"{', '.join(given_here)} would be ignored: leave them out (only --budget, "
              f"--device and --ddp apply), or edit {resume / 'config.yaml'} first (its "
              "search section holds max_trials, epochs and the strategy's other options)")


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


def image_source(folder: Path | None, csv_file: Path | None, image_dir: Path | None,
                 image_col: str | None, label_col: str | None, image_size: int | None,
                 grayscale: bool | None) -> dict[str, Any]:
    """The config's ``source`` mapping for --folder / --csv (absolute paths, so a resumed
    run finds the images from any working folder); empty without either."""
    if folder is not None and csv_file is not None:
        raise ConfigError("pass either --folder or --csv, not both")
    if folder is None and csv_file is None:
        extra = [n for n, v in (("--image-dir", image_dir), ("--image-col", image_col),
                                ("--label-col", label_col), ("--image-size", image_size))
                 if v is not None]
        if extra:
            raise ConfigError(f"{', '.join(extra)} only apply to --csv (or --folder) data")
        return {}
    common: dict[str, Any] = {"image_size": image_size or 64, "grayscale": grayscale}
    if folder is not None:
        if not folder.is_dir():
            raise ConfigError(f"--folder {folder}: folder not found")
        return {"kind": "folder", "path": str(folder.resolve()), **common}
    assert csv_file is not None
    if not csv_file.is_file():
        raise ConfigError(f"--csv {csv_file}: file not found")
    if label_col is None:
        raise ConfigError("--csv needs --label-col COLUMN (the column holding the labels)")
    folder_of_images = image_dir if image_dir is not None else csv_file.parent
    if not folder_of_images.is_dir():
        raise ConfigError(f"--image-dir {folder_of_images}: folder not found")
    return {"kind": "csv", "csv": str(csv_file.resolve()),
            "image_dir": str(folder_of_images.resolve()), "image_col": image_col,
            "label_col": label_col, **common}


SOURCE_OPTIONS = ("folder", "csv_file", "image_dir", "image_col", "label_col", "image_size",
                  "grayscale")
SEARCH_OPTIONS = ("max_trials", "storage", "workers", "tensorboard")
COMMON_OPTIONS = ("seed", "device", "out", "resume", "config", "set_", "loss",
                  "class_weights", "ddp")


@app.command()
@with_options("dataset", "data", "size", "space", "strategy", "budget", "epochs",
              "retrain_epochs", "ensemble", "tta", *COMMON_OPTIONS, *SOURCE_OPTIONS,
              *SEARCH_OPTIONS)
def run(ctx: typer.Context, opts: CommandOptions) -> None:
    """Search an architecture, retrain it and evaluate it on the test split."""
    _search_command(ctx, opts, ("search", "retrain", "ensemble", "evaluate"))


@app.command()
@with_options("dataset", "data", "size", "space", "strategy", "budget", "epochs",
              *COMMON_OPTIONS, *SOURCE_OPTIONS, *SEARCH_OPTIONS)
def search(ctx: typer.Context, opts: CommandOptions) -> None:
    """Search only: writes genotype.json (retrain it with `autonas train`)."""
    _search_command(ctx, opts, ("search",))


def _search_command(ctx: typer.Context, opts: CommandOptions, phases: Sequence[str]) -> None:
    refuse_settings_on_resume(ctx, opts.resume)
    cfg = None
    if opts.resume is None:
        cfg = _config_from(opts)
        if opts.tensorboard:
            _enable_tensorboard(cfg)
    summary = _execute(cfg, phases, out=opts.out, resume=opts.resume, budget=opts.budget,
                       device=opts.device if given(ctx, "device") else None, ddp=opts.ddp)
    if summary.get("rank", 0) == 0:
        print_summary(summary)


def _config_from(opts: CommandOptions, *, check_search: bool = True) -> RunConfig:
    """The run's config from the shared options, --folder/--csv data included."""
    cfg = _config_or_fail(**opts.config_kwargs(), check_search=check_search)
    try:
        source = image_source(*opts.image_source_args())
    except AutonasError as exc:
        _fail(str(exc))
    if source:
        cfg.source = source
        cfg.dataset = str(source.get("path") or source.get("csv"))
    return cfg


@app.command()
@with_options("space", "dataset", "data", "size", "budget", "retrain_epochs", "tta",
              *COMMON_OPTIONS,
              *SOURCE_OPTIONS, retrain_epochs=TrainEpochs, resume=TrainResume)
def train(
    opts: CommandOptions,
    arch: Annotated[Path | None, typer.Option("--arch", "--genotype", help="Architecture to "
                                              "train: a run's architecture.json or "
                                              "genotype.json, or a JSON file written by hand.")]
    = None,
) -> None:
    """Train the network an architecture describes (select by validation AUC)."""
    arch_dict = None
    if arch is not None:
        try:
            arch_dict, arch_space = read_arch_file(arch)
        except AutonasError as exc:
            _fail(str(exc))
        opts.space = arch_space or opts.space
    elif opts.resume is None:
        _fail("pass --arch FILE (alias --genotype; e.g. a search run's genotype.json) or "
              "--resume RUN_DIR")
    cfg = None
    if opts.resume is None:
        opts.strategy = None
        cfg = _config_from(opts, check_search=False)
    summary = _execute(cfg, ("retrain",), out=opts.out, resume=opts.resume, arch=arch_dict,
                       budget=opts.budget, ddp=opts.ddp)
    if summary.get("rank", 0) != 0:
        return
    if arch_dict is not None and opts.resume is None and cfg is not None:
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
    if "genotype" in data:  # the cell space validates it (with per-position "cells", if any)
        if not isinstance(data["genotype"], dict):
            raise ConfigError(f"{path}: 'genotype' must be a JSON object with 'normal' and "
                              "'reduce' cells")
        return data["genotype"], "darts"
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
def tune(
    run_dir: Annotated[Path, typer.Argument(help="A run folder holding a searched "
                                            "architecture (architecture.json).")],
    budget: Annotated[str, typer.Option("--budget", "-b", help="Wall-clock budget for tuning "
                                        "(and retraining with --retrain), e.g. 10m, 1h, "
                                        "none.")] = "10m",
    max_trials: Annotated[int | None, typer.Option("--max-trials", help="Trials of the "
                                                   "tuning study in all, counting earlier "
                                                   "calls on this run.")] = None,
    storage: Annotated[str | None, typer.Option("--storage", help="Optuna storage URL "
                                                "(default: SQLite in RUN_DIR/tune).",
                                                show_default=False)] = None,
    trial_epochs: Annotated[int, typer.Option(help="Epochs of a full trial; Hyperband stops "
                                              "most trials after fewer.")] = 9,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: the run's).",
                                             show_default=False)] = None,
    device: Device = "auto",
    retrain: Annotated[bool, typer.Option("--retrain", help="Then retrain with the best "
                                          "settings into RUN_DIR/tuned and evaluate.")]
    = False,
) -> None:
    """Tune the training settings of a run's architecture (learning rate, weight decay, batch
    size, augmentation, loss, class weights) with TPE + Hyperband; writes tune/best.yaml."""
    from .tune import tune as tune_run

    setup_console_logging()
    try:
        summary = tune_run(run_dir, budget=parse_duration(budget), max_trials=max_trials,
                           storage=storage, trial_epochs=trial_epochs, seed=seed,
                           device=device, retrain=retrain)
    except AutonasError as exc:
        _fail(str(exc))
    table = Table(title="autonas tune", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row(f"best val {summary['objective']}", f"{summary['value']:.4f}")
    for key, value in summary["best"].items():
        table.add_row(key, f"{value:.3g}" if isinstance(value, float) else str(value))
    states = summary["states"]
    table.add_row("trials", f"{summary['n_trials']} ({states['COMPLETE']} complete, "
                  f"{states['PRUNED']} pruned, {states['FAIL']} failed)")
    table.add_row("settings", summary["best_yaml"])
    metrics = summary.get("metrics")
    if metrics:
        test = metrics["test"]
        auc = "n/a" if test["auc"] is None else f"{test['auc']:.4f}"
        table.add_row("tuned test ACC / AUC", f"{test['accuracy']:.4f} / {auc}")
        table.add_row("tuned run", summary["tuned_run"])
    console.print(table)
    if not retrain:
        console.print(f"Retrain with: autonas train --arch {run_dir}/architecture.json "
                      f"--config {summary['best_yaml']} (add the data options of the run)")


@app.command()
def worker(
    storage: Annotated[str, typer.Option("--storage", help="The study's storage URL, e.g. "
                                         "postgresql://user:pass@host/db.")],
    study: Annotated[str, typer.Option("--study", help="The study name (the run folder's "
                                       "name, or search.study_name).")],
    device: Device = "auto",
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for the coordinator "
                                        "to create the study (workers may start first).")]
    = 120.0,
) -> None:
    """Join a running multi-trial search as one more worker (any machine that reaches the
    database and the data); it runs trials until the search is over."""
    from .trials.workers import join

    setup_console_logging()
    try:
        summary = join(storage, study, device=device, wait=wait)
    except AutonasError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        console.print("\n[yellow]worker stopped.[/] Its trial is re-run by another worker.")
        raise typer.Exit(130) from None
    console.print(f"worker done: {summary['trials']} trials here; search {summary['stopped']}")


@app.command("export")
def export_command(
    run_dir: Annotated[Path, typer.Argument(help="A run folder holding model.pt and "
                                            "model.json (or a saved ImageClassifier).")],
    format_: Annotated[str, typer.Option("--format", "-f", help="state_dict (weights with "
                                         "normalisation + JSON), torchscript or onnx.")]
    = "onnx",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File to write (default: "
                                             "RUN_DIR/export/model.<format>).",
                                             show_default=False)] = None,
) -> None:
    """Export a trained model with its input normalisation, checked against PyTorch."""
    from .export import export_run

    try:
        result = export_run(run_dir, format_, out)
    except AutonasError as exc:
        _fail(str(exc))
    spec = result["input"]
    shape = {"NHW": "N,H,W", "NHWC": "N,H,W,C"}.get(spec["layout"], "N,C,H,W")
    console.print(f"wrote {result['path']} ({format_}); input: {spec['dtype']} images "
                  f"({shape}) with C={spec['channels']}, H={spec['height']}, "
                  f"W={spec['width']}, any batch size; output: class probabilities")
    console.print(f"max abs difference from PyTorch on sample inputs: "
                  f"{result['max_abs_diff']:.2e}")


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A run folder holding model.pt and "
                                            "model.json (or a saved ImageClassifier).")],
    images: Annotated[list[Path], typer.Argument(help="Image files, or folders of them.")],
) -> None:
    """Predict image files; writes CSV to stdout: path, label, one probability per class."""
    import csv
    import sys

    from .export.predict import predict_files

    try:
        names, rows = predict_files(run_dir, images)
    except AutonasError as exc:
        _fail(str(exc))
    writer = csv.writer(sys.stdout)
    writer.writerow(["path", "label", *(f"p_{n}" for n in names)])
    for path, label, probs in rows:
        writer.writerow([str(path), label, *(f"{p:.6f}" for p in probs)])


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




def _enable_tensorboard(cfg: RunConfig) -> None:
    """Check for the optional package before any run folder is made."""
    from .report.tensorboard import require_tensorboard

    try:
        require_tensorboard()
    except AutonasError as exc:
        _fail(str(exc))
    cfg.tensorboard = True


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder: finished, interrupted or "
                                            "partial.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="HTML file to write "
                                             "(default: RUN_DIR/report.html).",
                                             show_default=False)] = None,
) -> None:
    """Write the self-contained HTML report of a run (reads the folder, re-runs nothing)."""
    from .report import write_report

    setup_console_logging()
    try:
        path = write_report(run_dir, out)
    except AutonasError as exc:
        _fail(str(exc))
    console.print(f"report: {path}")


@app.command()
def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run folders to compare.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")]
    = Path("compare.html"),
) -> None:
    """One page comparing runs: a table of their results and overlaid validation curves."""
    from .report import write_comparison

    setup_console_logging()
    try:
        path = write_comparison(run_dirs, out)
    except AutonasError as exc:
        _fail(str(exc))
    console.print(f"comparison: {path}")


def _config_or_fail(**kwargs: Any) -> RunConfig:
    try:
        return build_config(**kwargs)
    except AutonasError as exc:
        _fail(str(exc))
    raise AssertionError("unreachable")


_ENTRY_POINT = False


def command_clock() -> float | None:
    """Where a command's budget starts: the process's start when this process was started
    for the command (the ``autonas`` script, ``python -m autonas``), so interpreter start and
    imports count; None (the call itself) when the CLI is driven from other code."""
    if _ENTRY_POINT or Path(sys.argv[0]).name in ("autonas", "autonas.exe"):
        return process_start()
    return None


def main() -> None:
    global _ENTRY_POINT
    _ENTRY_POINT = True
    app()


if __name__ == "__main__":
    main()

