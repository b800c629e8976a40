"""The run report: cell layout without Graphviz, plots, bootstrap intervals, missing files,
multi-trial and user-space runs, compare, TensorBoard scalars, and the report `autonas run`
writes. Browser checks live in test_report_browser.py."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from autonas.cli import app
from autonas.errors import ConfigError
from autonas.report import cells, load_run, plots, write_comparison, write_report
from autonas.report.stats import _WeightedAuc, bootstrap_ci
from autonas.training.metrics import classification_metrics

ENV = {"AUTONAS_NO_PROGRESS": "1", "AUTONAS_THREADS": "1"}
TINY = [
    "--strategy", "darts",
    "--set", "search.channels=4", "--set", "search.layers=2", "--set", "space_options.nodes=2",
    "--set", "search.batch_size=16", "--set", "network.channels=4",
    "--set", "network.layers=2", "--set", "train.batch_size=16",
    "--set", "search.warmup_epochs=0",
]
HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None
SVG = "{http://www.w3.org/2000/svg}"

# The DARTS paper's normal cell (DARTS_V2): node 3 reads node 0, so it sits a layer later.
DARTS_V2_NORMAL = [[["sep_conv_3x3", 0], ["sep_conv_3x3", 1]],
                   [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]],
                   [["sep_conv_3x3", 1], ["skip_connect", 0]],
                   [["skip_connect", 0], ["dil_conv_3x3", 2]]]


def write_npz(path: Path) -> Path:
    """uint8 16x16 images; class 1 has a bright square in the middle."""
    arrays = {}
    for i, (split, n) in enumerate({"train": 64, "val": 24, "test": 24}.items()):
        rng = np.random.default_rng(i)
        x = rng.integers(0, 90, size=(n, 16, 16), dtype=np.uint8)
        y = (np.arange(n) % 2).astype(np.uint8)
        x[y == 1, 4:12, 4:12] = rng.integers(200, 256, size=(int((y == 1).sum()), 8, 8))
        arrays[f"{split}_images"] = x
        arrays[f"{split}_labels"] = y.reshape(n, 1)
    np.savez(path, **arrays)
    return path


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], env=ENV)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A real tiny `autonas run` (with --tensorboard when the package is there)."""
    root = tmp_path_factory.mktemp("report")
    npz = write_npz(root / "tiny.npz")
    out = root / "run"
    extra = ["--tensorboard"] if HAS_TENSORBOARD else []
    result = invoke("run", "--data", npz, *TINY, "--epochs", 2, "--retrain-epochs", 2,
                    "--seed", 0, "--device", "cpu", "--out", out, *extra)
    assert result.exit_code == 0, (result.output, result.exception)
    return out


class _Collect(HTMLParser):
    """Elements with data-key (the page's key numbers) and every <img>/<svg>."""

    def __init__(self) -> None:
        super().__init__()
        self.numbers: dict[str, list[str]] = {}
        self.images = 0
        self.svgs = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "data-key" in a and "data-value" in a:
            self.numbers.setdefault(a["data-key"] or "", []).append(a["data-value"] or "")
        self.images += tag == "img"
        self.svgs += tag == "svg"


def parse_page(path: Path) -> _Collect:
    collect = _Collect()
    collect.feed(path.read_text())
    return collect


# ----------------------------------------------------------------------------- cells


def _layout_from_svg(svg: str) -> tuple[dict[str, dict], list[dict], list[str]]:
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    nodes = {g.get("data-name"): {"layer": int(g.get("data-layer")),
                                  "x": float(g.get("data-x")), "y": float(g.get("data-y")),
                                  "text": "".join(g.itertext())}
             for g in root.iter(f"{SVG}g") if g.get("class") == "node"}
    edges = [dict(g.attrib) for g in root.iter(f"{SVG}g") if g.get("class") == "edge"]
    labels = ["".join(g.itertext()) for g in root.iter(f"{SVG}g")
              if g.get("class") == "edge-label"]
    return nodes, edges, labels


def test_cell_layout_without_graphviz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda *_a, **_k: None)
    svg = cells.cell_svg(DARTS_V2_NORMAL, "normal cell", id_prefix="t")
    assert svg.startswith("<svg") and "data-layer" in svg  # the built-in layout drew it
    nodes, edges, labels = _layout_from_svg(svg)
    assert set(nodes) == {"c_{k-2}", "c_{k-1}", "0", "1", "2", "3", "c_{k}"}
    assert nodes["c_{k-2}"]["text"] == "ck-2" and nodes["c_{k}"]["text"] == "ck"
    # longest-path layers: node 3 reads node 0, the output reads every node
    assert {n: v["layer"] for n, v in nodes.items()} == {
        "c_{k-2}": 0, "c_{k-1}": 0, "0": 1, "1": 1, "2": 1, "3": 2, "c_{k}": 3}
    positions = [(v["x"], v["y"]) for v in nodes.values()]
    assert len(set(positions)) == len(positions)
    # every op edge labelled once, plus one concat edge per node into the output
    ops = sorted(op for node in DARTS_V2_NORMAL for op, _ in node)
    assert sorted(labels) == ops
    assert sorted(e["data-op"] for e in edges if e["data-op"]) == ops
    assert sum(1 for e in edges if e["data-dst"] == "c_{k}") == 4
    for e in edges:
        src, dst = nodes[e["data-src"]], nodes[e["data-dst"]]
        assert src["layer"] < dst["layer"] and src["x"] < dst["x"]


def test_long_edges_go_around_the_layers_they_skip() -> None:
    graph = cells.cell_graph(DARTS_V2_NORMAL)
    pos = cells.layered_layout(graph)
    long_edges = 0
    for route in cells._routes(graph, pos):
        a, b = pos[route.edge.src], pos[route.edge.dst]
        crossed = [p.y for p in pos.values() if a.layer < p.layer < b.layer]
        for _, y in route.points[1:-1] if crossed else []:
            long_edges += 1
            assert y < min(crossed) - cells.NODE_H / 2 or y > max(crossed) + cells.NODE_H / 2
    assert long_edges == 4  # c_{k-2} -> 3 and the concat edges of nodes 0, 1, 2


def test_cell_layout_escapes_and_handles_repeated_inputs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda *_a, **_k: None)
    cell = [[["a<b&c", 0], ["x", 0]], [["y", 2], ["z", 1]]]
    nodes, _, labels = _layout_from_svg(cells.cell_svg(cell))
    assert sorted(labels) == sorted(["a<b&c", "x", "y", "z"])
    assert [n for n in nodes if nodes[n]["layer"] == 2] == ["1"]
    paths = re.findall(r'<path d="([^"]+)"', cells.cell_svg(cell))
    assert len(set(paths)) == len(paths)  # parallel edges 0 -> n0 are drawn apart


def test_broken_graphviz_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    false = shutil.which("false") or "/bin/false"
    monkeypatch.setattr(shutil, "which", lambda *_a, **_k: false)
    svg = cells.cell_svg(DARTS_V2_NORMAL)
    assert "data-layer" in svg  # the built-in layout


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
def test_cell_with_graphviz() -> None:
    svg = cells.cell_svg(DARTS_V2_NORMAL, "normal", id_prefix="g")
    ET.fromstring(svg)
    assert 'class="cell"' in svg and 'id="g-graph0"' in svg  # Graphviz drew it, ids prefixed
    assert "data-layer" not in svg
    for op in ("sep_conv_3x3", "skip_connect", "dil_conv_3x3"):
        assert op in svg


def test_is_cell() -> None:
    assert cells.is_cell(DARTS_V2_NORMAL)
    assert not cells.is_cell([[["op", 2]]])  # node 0 cannot read state 2
    assert not cells.is_cell({"feature": 64})
    assert not cells.is_cell([64, 128])


# ----------------------------------------------------------------------------- plots


def _search_history(epochs: int = 6) -> list[dict]:
    rng = np.random.default_rng(0)
    cell = [[["skip_connect", 0], ["sep_conv_3x3", 1]], [["skip_connect", 2], ["max_pool_3x3", 0]]]
    return [{"epoch": e, "train_loss": 1.0 / (e + 1), "val_loss": 1.1 / (e + 1),
             "val_accuracy": 0.5 + 0.05 * e, "alphas_frozen": e < 2, "skip_normal": e % 3,
             "entropy": {"normal": 1 - 0.1 * e, "reduce": 1 - 0.05 * e},
             "genotype": {"normal": cell, "reduce": cell}, "seconds": float(rng.uniform(1, 2))}
            for e in range(epochs)]


def _alphas(epochs: int = 7, nodes: int = 2, n_ops: int = 8) -> list[dict]:
    rng = np.random.default_rng(1)
    n_edges = nodes * (nodes + 3) // 2
    rows = []
    for e in range(epochs):
        w = {t: rng.dirichlet(np.ones(n_ops) * 20 / (1 + e), size=n_edges).tolist()
             for t in ("normal", "reduce")}
        rows.append({"epoch": e, **w})
    return rows


def _retrain_history(epochs: int = 5) -> list[dict]:
    return [{"epoch": e, "train_loss": 1 / (e + 1), "train_accuracy": 0.6 + 0.05 * e,
             "val": {"loss": 1 / (e + 2), "accuracy": 0.55 + 0.05 * e,
                     "auc": None if e == 0 else 0.6 + 0.05 * e}, "best": True}
            for e in range(epochs)]


def _trials() -> list[dict]:
    return [{"number": 0, "state": "COMPLETE", "value": 0.7, "val": {"accuracy": 0.7}},
            {"number": 1, "state": "PRUNED", "value": 0.5, "val": None},
            {"number": 2, "state": "FAIL", "value": None, "error": "out of memory"},
            {"number": 3, "state": "COMPLETE", "value": 0.8, "val": {"accuracy": 0.8}}]


def _predictions(n: int = 120, k: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.2
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, p


PLOTS = {
    "search loss": lambda: plots.search_loss_plot(_search_history()),
    "search accuracy": lambda: plots.search_accuracy_plot(_search_history()),
    "entropy": lambda: plots.entropy_plot(_search_history()),
    "skip count": lambda: plots.skip_count_plot(_search_history()),
    "normal heatmaps": lambda: plots.alpha_heatmaps(_alphas(), [f"op{i}" for i in range(8)],
                                                    "normal"),
    "reduce heatmaps": lambda: plots.alpha_heatmaps(_alphas(2, nodes=4), [], "reduce"),
    "trials": lambda: plots.trials_plot(_trials(), maximize=True),
    "importances": lambda: plots.importance_plot({"conv": 0.7, "feature": 0.3}),
    "retrain loss": lambda: plots.retrain_loss_plot(_retrain_history(), best_epoch=3),
    "retrain accuracy": lambda: plots.retrain_accuracy_plot(_retrain_history()),
    "confusion": lambda: plots.confusion_plot([[5, 1], [2, 7]], ["benign", "malignant"]),
    "confusion 11 classes": lambda: plots.confusion_plot(np.eye(11, dtype=int) * 3,
                                                         [f"class {i}" for i in range(11)]),
    "roc binary": lambda: plots.roc_plot(*_predictions(), ["a", "b"]),
    "roc 3 classes": lambda: plots.roc_plot(*_predictions(k=3), ["a", "b", "c"]),
    "per class": lambda: plots.per_class_plot(
        {"a": {"precision": 0.5, "recall": 0.7, "f1": 0.6}, "b": {"precision": 0.9}}),
    "compare search": lambda: plots.compare_search_plot(
        [{"label": "darts", "search": [(1.0, 0.6), (2.0, 0.7)]},
         {"label": "tpe", "search": [(3.0, 0.65)]}]),
    "compare retrain": lambda: plots.compare_retrain_plot(
        [{"label": "darts", "retrain": [0.6, 0.7]}, {"label": "tpe", "retrain": [0.5]}]),
    "compare roc": lambda: plots.compare_roc_plot(
        [{"label": "a", "labels": _predictions()[0], "probs": _predictions()[1]}]),
}


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_plot_renders_svg(name: str) -> None:
    svg = PLOTS[name]()
    assert svg is not None and svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    root = ET.fromstring(svg)
    assert root.get("viewBox") and "width" not in root.attrib  # scales with the page
    drawn = sum(1 for el in root.iter() if el.tag in (f"{SVG}path", f"{SVG}use",
                                                      f"{SVG}image", f"{SVG}rect"))
    assert drawn > 5


def test_plots_without_data_return_none() -> None:
    assert plots.search_loss_plot([]) is None
    assert plots.search_accuracy_plot([{"epoch": 0}]) is None
    assert plots.entropy_plot([{"epoch": 0, "train_loss": 1.0}]) is None
    assert plots.skip_count_plot([]) is None
    assert plots.alpha_heatmaps([], [], "normal") is None
    assert plots.trials_plot([]) is None
    assert plots.importance_plot({}) is None
    assert plots.retrain_loss_plot([]) is None
    assert plots.confusion_plot([], []) is None
    assert plots.roc_plot(np.zeros(5, int), np.full((5, 2), 0.5), ["a", "b"]) is None
    assert plots.compare_search_plot([{"label": "x"}]) is None
    assert plots.compare_roc_plot([{"label": "x", "labels": [0, 1], "probs": None}]) is None


def test_plot_helpers_known_answers() -> None:
    assert plots.best_so_far([0.5, math.nan, 0.4, 0.7, 0.6]) == [0.5, 0.5, 0.5, 0.7, 0.7]
    assert plots.best_so_far([0.5, 0.4, 0.6], maximize=False) == [0.5, 0.4, 0.4]
    assert plots.pick_epochs(3, 6) == [0, 1, 2]
    assert plots.pick_epochs(11, 6) == [0, 2, 4, 6, 8, 10]
    assert plots.nodes_for_edges(14) == 4 and plots.nodes_for_edges(5) == 2
    assert plots.nodes_for_edges(6) is None
    assert plots.edge_labels(2) == ["c_{k-2} → n0", "c_{k-1} → n0", "c_{k-2} → n1",
                                    "c_{k-1} → n1", "n0 → n1"]
    data = plots.alpha_slider_data(_alphas(250), ["o"] * 8, max_epochs=50)
    assert len(data["epochs"]) == len(data["normal"]) == 50
    assert data["epochs"][0] == 1 and data["epochs"][-1] == 250
    assert np.asarray(data["reduce"]).shape == (50, 5, 8)


# ----------------------------------------------------------------------------- bootstrap


@pytest.mark.parametrize("k", [2, 3])
def test_bootstrap_point_estimates_equal_metrics_json(k: int) -> None:
    y, p = _predictions(300, k)
    ci = bootstrap_ci(y, p, n_resamples=400, seed=0)
    reference = classification_metrics(y, p)
    for name in ("accuracy", "auc", "loss"):
        assert ci[name].value == pytest.approx(reference[name], abs=1e-12)
        assert ci[name].low < ci[name].value < ci[name].high


def test_weighted_auc_matches_scikit_learn() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 200)
    p = np.round(rng.dirichlet(np.ones(3), 200), 1)  # many ties
    p /= p.sum(1, keepdims=True)
    weights = rng.integers(0, 4, size=(3, 200)).astype(float)
    got = _WeightedAuc(y, p)(weights)
    expected = [np.mean([roc_auc_score(y == c, p[:, c], sample_weight=w) for c in range(3)])
                for w in weights]
    np.testing.assert_allclose(got, expected, atol=1e-12)
    yb = (y == 1).astype(int)
    pb = np.stack([1 - p[:, 1], p[:, 1]], axis=1)
    np.testing.assert_allclose(_WeightedAuc(yb, pb)(weights),
                               [roc_auc_score(yb, pb[:, 1], sample_weight=w) for w in weights],
                               atol=1e-12)


def test_bootstrap_narrower_with_more_samples() -> None:
    widths = {}
    for n in (80, 2000):
        ci = bootstrap_ci(*_predictions(n, 2, seed=1), n_resamples=500, seed=0)
        widths[n] = {m: ci[m].high - ci[m].low for m in ("accuracy", "auc", "loss")}
    for m in ("accuracy", "auc", "loss"):
        assert widths[2000][m] < widths[80][m] / 2, m


def test_bootstrap_seeded() -> None:
    y, p = _predictions(150)
    a = bootstrap_ci(y, p, n_resamples=300, seed=5)
    b = bootstrap_ci(y, p, n_resamples=300, seed=5)
    c = bootstrap_ci(y, p, n_resamples=300, seed=6)
    assert a == b
    assert (a["auc"].low, a["auc"].high) != (c["auc"].low, c["auc"].high)


def test_bootstrap_one_class_has_no_auc_interval() -> None:
    p = np.array([[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]])
    ci = bootstrap_ci(np.array([1, 1, 1]), p, n_resamples=50)
    assert ci["auc"].value is None and ci["auc"].low is None
    assert ci["accuracy"].value == pytest.approx(2 / 3)


# ----------------------------------------------------------------------------- full run


def test_run_writes_report_and_samples(tiny_run: Path) -> None:
    report = tiny_run / "report.html"
    assert report.is_file()
    with np.load(tiny_run / "samples.npz", allow_pickle=False) as s:
        assert s["images"].dtype == np.uint8 and s["images"].shape[1:] == (1, 16, 16)
        assert sorted(np.unique(s["labels"], return_counts=True)[1]) == [6, 6]
        assert [str(n) for n in s["class_names"]] == ["0", "1"]
    page = parse_page(report)
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert float(page.numbers["test-accuracy"][0]) == metrics["test"]["accuracy"]
    assert float(page.numbers["test-auc"][0]) == metrics["test"]["auc"]
    assert float(page.numbers["test-loss"][0]) == metrics["test"]["loss"]
    assert int(page.numbers["params"][0]) == metrics["model"]["params"]
    assert page.images == 12  # the sample grid
    assert page.svgs >= 12  # plots and both cells
    html = report.read_text()
    assert "not available" not in html
    # self-contained: nothing to fetch
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "<link" not in html and "@import" not in html and "url(http" not in html
    assert "run.log" in html and "alpha-data" in html


def test_report_command_rewrites_the_report(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "again.html"
    result = invoke("report", tiny_run, "--out", out)
    assert result.exit_code == 0, result.output
    assert out.is_file() and str(out) in result.output.replace("\n", "")
    assert parse_page(out).numbers.keys() >= {"test-accuracy", "test-auc", "params"}


def test_report_of_not_a_run_folder(tmp_path: Path) -> None:
    result = invoke("report", tmp_path / "missing")
    assert result.exit_code == 2 and "not a folder" in result.output
    (tmp_path / "empty").mkdir()
    result = invoke("report", tmp_path / "empty")
    assert result.exit_code == 2 and "config.yaml" in result.output
    with pytest.raises(ConfigError):
        load_run(tmp_path / "empty")


OPTIONAL = ["metrics.json", "predictions.npz", "samples.npz", "search/alphas.jsonl",
            "search/history.jsonl", "search/result.json", "architecture.json",
            "genotype.json", "retrain/history.jsonl", "model.json", "model_summary.txt",
            "data.json", "environment.json", "status.json", "run.log"]


def test_report_with_only_config(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "bare"
    run.mkdir()
    shutil.copy(tiny_run / "config.yaml", run / "config.yaml")
    html = write_report(run).read_text()
    for phrase in ("dataset summary (data.json) not available", "no sample images",
                   "no search history", "no architecture", "retraining history",
                   "test metrics (metrics.json) not available", "environment.json not available"):
        assert phrase in html, phrase
    assert parse_page(run / "report.html").numbers == {}


def test_report_of_a_search_only_run(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "searched"
    shutil.copytree(tiny_run, run)
    for name in ("metrics.json", "predictions.npz", "model.json", "model.pt",
                 "model_summary.txt", "retrain", "report.html"):
        target = run / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    html = write_report(run).read_text()
    assert "test metrics (metrics.json) not available" in html
    assert "retraining history (retrain/history.jsonl) not available" in html
    assert html.count('class="node"') >= 10  # both cells still drawn (python layout or dot)
    assert "alpha-table-normal" in html


@pytest.mark.parametrize("name", ["predictions.npz", "search/alphas.jsonl", "samples.npz"])
def test_report_without_one_file(tiny_run: Path, tmp_path: Path, name: str) -> None:
    run = tmp_path / "partial"
    shutil.copytree(tiny_run, run)
    (run / name).unlink()
    html = write_report(run).read_text()
    expected = {"predictions.npz": "Confidence intervals not available",
                "search/alphas.jsonl": "architecture weights (search/alphas.jsonl) not available",
                "samples.npz": "no sample images"}[name]
    assert expected in html
    assert "test-accuracy" in html


def test_damaged_files_are_listed_not_fatal(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "damaged"
    shutil.copytree(tiny_run, run)
    (run / "metrics.json").write_text('{"test": {"accuracy": 0.5')
    (run / "predictions.npz").write_bytes(b"not a zip file")
    with (run / "search" / "history.jsonl").open("a") as f:
        f.write('{"epoch": 99, "train_lo')  # a line cut by a kill is simply dropped
    loaded = load_run(run)
    assert len(loaded.search_history) == 2
    assert {p.split(":")[0] for p in loaded.problems} == {"metrics.json", "predictions.npz"}
    html = write_report(run).read_text()
    assert "Unreadable files" in html and "metrics.json" in html


def test_strings_from_files_are_escaped(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "hostile"
    shutil.copytree(tiny_run, run)
    data = json.loads((run / "data.json").read_text())
    data["class_names"] = ["<script>alert(1)</script>", "b&b"]
    data["name"] = '"><img src=x onerror=alert(2)>'
    (run / "data.json").write_text(json.dumps(data))
    html = write_report(run).read_text()
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    assert "<img src=x" not in html
    assert html.count("<script") == 2  # the slider's data and code only


# ----------------------------------------------------------------------------- other runs


def _multitrial_run(root: Path, n_trials: int, tiny_run: Path) -> Path:
    optuna = pytest.importorskip("optuna")
    run = root / "trials"
    (run / "search").mkdir(parents=True)
    shutil.copy(tiny_run / "config.yaml", run / "config.yaml")
    shutil.copy(tiny_run / "data.json", run / "data.json")
    study = optuna.create_study(study_name="trials", direction="maximize",
                                storage=f"sqlite:///{run / 'search' / 'study.db'}",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    rows = []

    def objective(trial):
        block = trial.suggest_categorical("block", ["simple", "bigger", "depth3"])
        feature = trial.suggest_categorical("feature", [64, 128])
        value = {"simple": 0.6, "bigger": 0.7, "depth3": 0.9}[block] + feature / 10000
        state = "FAIL" if trial.number == 1 else "COMPLETE"
        rows.append({"number": trial.number, "state": state,
                     "arch": {"block": block, "feature": feature},
                     "value": None if state == "FAIL" else value,
                     "val": {"accuracy": value, "auc": value}, "params": 1000 + feature,
                     "flops": 20000, "latency_ms": 0.5, "seconds": 1.5,
                     "error": "boom" if state == "FAIL" else None})
        if state == "FAIL":
            raise RuntimeError("boom")
        return value

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the failing trial is on purpose
    try:
        study.optimize(objective, n_trials=n_trials, catch=(RuntimeError,))
    finally:
        optuna.logging.set_verbosity(verbosity)
    (run / "search" / "trials.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "search" / "result.json").write_text(json.dumps(
        {"strategy": "tpe", "stopped": "completed", "epochs": n_trials,
         "study_name": "trials", "architecture": {"block": "depth3", "feature": 128}}))
    (run / "architecture.json").write_text(json.dumps(
        {"space": "medmnist-cnn", "arch": {"convolution_block": 2, "feature": 128}}))
    return run


def test_multi_trial_report(tiny_run: Path, tmp_path: Path) -> None:
    run = _multitrial_run(tmp_path, 10, tiny_run)
    html = write_report(run).read_text()
    assert "optimisation history" in html
    assert "9 complete" in html and "1 fail" in html
    assert html.count("<tr><td class=\"num\">") >= 10  # one table row per trial
    assert "boom" in html
    assert "parameter importances</text>" in html  # the plot's title
    assert "parameter importances not available" not in html
    # the user-space architecture is a table of choices (and the space's own description),
    # not a cell drawing
    assert "<td>convolution_block</td><td><code>2</code>" in html
    assert "convolution_block=Depth3ConvolutionBlock, feature=128" in html
    assert 'class="cell"' not in html


def test_multi_trial_report_with_too_few_trials(tiny_run: Path, tmp_path: Path) -> None:
    run = _multitrial_run(tmp_path, 3, tiny_run)
    html = write_report(run).read_text()
    assert "parameter importances not available: 2 completed trials" in html


def test_compare(tiny_run: Path, tmp_path: Path) -> None:
    other = tmp_path / "runs" / "other"
    shutil.copytree(tiny_run, other)
    metrics = json.loads((other / "metrics.json").read_text())
    metrics["test"]["accuracy"] = 0.123
    (other / "metrics.json").write_text(json.dumps(metrics))
    trials = _multitrial_run(tmp_path, 5, tiny_run)
    out = tmp_path / "cmp" / "compare.html"
    result = invoke("compare", tiny_run, other, trials, "--out", out)
    assert result.exit_code == 0, result.output
    page = parse_page(out)
    original = json.loads((tiny_run / "metrics.json").read_text())
    assert [float(v) for v in page.numbers["test-accuracy"]] == [
        original["test"]["accuracy"], 0.123]
    html = out.read_text()
    for name in ("run", "other", "trials"):
        assert f'data-run="{name}"' in html
    assert html.count("<svg") == 3  # search progress, retraining, test ROC
    assert 'href="../../' in html  # relative links to the runs' reports
    assert write_comparison([trials], tmp_path / "one.html").is_file()
    result = invoke("compare", tmp_path / "nope", "--out", out)
    assert result.exit_code == 2


# ----------------------------------------------------------------------------- tensorboard


@pytest.mark.skipif(not HAS_TENSORBOARD, reason="tensorboard is not installed")
def test_tensorboard_scalars(tiny_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tiny_run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"search/train_loss", "search/val_accuracy", "search/entropy/normal",
            "retrain/train_loss", "retrain/val/accuracy", "retrain/val/auc"} <= tags
    history = [json.loads(line) for line in
               (tiny_run / "retrain" / "history.jsonl").read_text().splitlines()]
    got = [(e.step, e.value) for e in events.Scalars("retrain/val/accuracy")]
    assert got == [(r["epoch"], pytest.approx(r["val"]["accuracy"])) for r in history]


def test_tensorboard_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import now fails
    result = invoke("search", "--data", tmp_path / "x.npz", "--tensorboard",
                    "--out", tmp_path / "r")
    assert result.exit_code == 2
    assert "autonas[tensorboard]" in result.output
    assert not (tmp_path / "r").exists()
