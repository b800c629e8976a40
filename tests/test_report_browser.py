"""The report of a real tiny run, opened in headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium), offline, on a wide and on a narrow screen."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from autonas.cli import app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip("chromium and chromium-driver are not installed (apt-get install chromium "
                "chromium-driver)", allow_module_level=True)

ENV = {"AUTONAS_NO_PROGRESS": "1", "AUTONAS_THREADS": "1"}
TINY = [
    "--strategy", "darts",
    "--set", "search.channels=4", "--set", "search.layers=2", "--set", "space_options.nodes=2",
    "--set", "search.batch_size=16", "--set", "network.channels=4",
    "--set", "network.layers=2", "--set", "train.batch_size=16",
    "--set", "search.warmup_epochs=0", "--set", "search.alpha_lr=0.05",
]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync"]


def write_npz(path: Path) -> Path:
    arrays = {}
    for i, (split, n) in enumerate({"train": 48, "val": 24, "test": 24}.items()):
        rng = np.random.default_rng(i)
        x = rng.integers(0, 90, size=(n, 16, 16), dtype=np.uint8)
        y = (np.arange(n) % 2).astype(np.uint8)
        x[y == 1, 4:12, 4:12] = 230
        arrays[f"{split}_images"] = x
        arrays[f"{split}_labels"] = y.reshape(n, 1)
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    out = root / "run"
    result = CliRunner().invoke(app, [str(a) for a in (
        "run", "--data", write_npz(root / "tiny.npz"), *TINY, "--epochs", 2,
        "--retrain-epochs", 1, "--device", "cpu", "--out", out)], env=ENV)
    assert result.exit_code == 0, (result.output, result.exception)
    assert (out / "report.html").is_file()
    return out


@pytest.fixture(scope="module")
def long_names_run(run_dir: Path, tmp_path_factory) -> Path:
    """The same run as seen from a deep checkout: paths and names with no place to break."""
    out = tmp_path_factory.mktemp("deep") / ("run_" + "x" * 90)
    shutil.copytree(run_dir, out)
    env = json.loads((out / "environment.json").read_text())
    env["command"] = ["/" + "/".join(["a-rather-long-folder-name"] * 8) + "/autonas", "run"]
    env["platform"] = "Linux-" + "9" * 80 + "-x86_64-with-glibc2.36"
    (out / "environment.json").write_text(json.dumps(env))
    result = CliRunner().invoke(app, ["report", str(out)], env=ENV)
    assert result.exit_code == 0, (result.output, result.exception)
    return out


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", {  # a report needs no network
        "offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    yield driver
    driver.quit()


def _viewport(driver, width: int, height: int) -> None:
    # Headless windows have a minimum width; device metrics give a true narrow layout.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})


def _open(driver, page: Path, width: int) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    _viewport(driver, width, 900)
    driver.get_log("browser")  # drop earlier messages
    driver.get(page.resolve().as_uri())
    # A cold browser may hand back control before the load event: wait for it, briefly.
    WebDriverWait(driver, 15).until(
        lambda d: d.execute_script("return document.readyState") == "complete")


def _screenshot(driver, path: Path, width: int) -> Path:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    _viewport(driver, width, min(int(height), 16000))
    assert driver.save_screenshot(str(path))
    return path


def _console_errors(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


OVERFLOWING = """
var width = document.documentElement.clientWidth, out = [];
document.querySelectorAll('body *').forEach(function (el) {
  var text_overflows = getComputedStyle(el).overflowX === 'visible' &&
                       el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0;
  if (el.getBoundingClientRect().right <= width + 0.5 && !text_overflows) return;
  for (var p = el.parentElement; p; p = p.parentElement)
    if (getComputedStyle(p).overflowX !== 'visible') return;  // scrolls in its own box
  out.push(el.tagName.toLowerCase() + '.' + el.className + ': ' +
           (el.textContent || '').trim().slice(0, 60));
});
return out;
"""


def _assert_no_sideways_scroll(driver) -> None:
    """Wide tables and figures scroll in place; the page itself never scrolls sideways."""
    overflowing = driver.execute_script(OVERFLOWING)
    assert overflowing == []
    assert driver.execute_script(
        "return document.documentElement.scrollWidth <= document.documentElement.clientWidth")


RENDERED_SIZES = """
return Array.from(document.querySelectorAll('img, svg')).map(function (el) {
  var r = el.getBoundingClientRect();
  var natural = el.tagName.toLowerCase() === 'img' ? el.naturalWidth : 1;
  return [el.tagName.toLowerCase(), r.width, r.height, natural, el.closest('figure, div')
          ? (el.closest('figure, div').className || '') : ''];
});
"""


@pytest.mark.parametrize("width", [1280, 400])
def test_report_in_browser(browser, run_dir: Path, tmp_path: Path, width: int) -> None:
    _open(browser, run_dir / "report.html", width)
    assert _console_errors(browser) == []

    sizes = browser.execute_script(RENDERED_SIZES)
    assert sum(tag == "img" for tag, *_ in sizes) == 12  # 6 samples per class
    assert sum(tag == "svg" for tag, *_ in sizes) >= 10
    for tag, w, h, natural, where in sizes:
        assert w > 0 and h > 0, (tag, where)
        assert natural > 0, (tag, where)  # an <img> that failed to decode has no width
    _assert_no_sideways_scroll(browser)

    metrics = json.loads((run_dir / "metrics.json").read_text())
    expected = {"test-accuracy": metrics["test"]["accuracy"], "test-auc": metrics["test"]["auc"],
                "test-loss": metrics["test"]["loss"]}
    for key, value in expected.items():
        el = browser.find_element("css selector", f'[data-key="{key}"]')
        assert float(el.get_attribute("data-value")) == value, key
        assert el.text == f"{value:.4f}", key
        assert el.is_displayed()
    params = browser.find_element("css selector", '[data-key="params"]')
    assert int(params.get_attribute("data-value")) == metrics["model"]["params"]
    assert params.text == f"{metrics['model']['params']:,}"

    shot = _screenshot(browser, tmp_path / f"report-{width}px.png", width)
    assert shot.stat().st_size > 10_000


def test_weight_slider_shows_each_epoch(browser, run_dir: Path) -> None:
    _open(browser, run_dir / "report.html", 1280)
    alphas = [json.loads(line) for line in
              (run_dir / "search" / "alphas.jsonl").read_text().splitlines()]
    table = browser.find_element("id", "alpha-table-normal")

    def shown() -> list[list[str]]:
        rows = table.find_elements("css selector", "tr")[1:]
        return [[td.text for td in r.find_elements("css selector", "td")] for r in rows]

    label = browser.find_element("id", "alpha-epoch-label")
    assert label.text == str(len(alphas))  # opens on the last epoch
    for epoch, row in enumerate(alphas):
        browser.execute_script("var s = document.getElementById('alpha-epoch');"
                               "s.value = arguments[0];"
                               "s.dispatchEvent(new Event('input'));", epoch)
        assert label.text == str(epoch + 1)
        cells = np.array([[float(t) for t in r] for r in shown()])
        assert cells.shape == np.shape(row["normal"])
        assert np.abs(cells - np.asarray(row["normal"])).max() <= 0.005 + 1e-4
        # the strongest op of each edge is outlined
        outlined = [[td.get_attribute("class") for td in r.find_elements("css selector", "td")]
                    for r in table.find_elements("css selector", "tr")[1:]]
        assert [r.index("max") for r in outlined] == [int(np.argmax(np.round(e, 4)))
                                                      for e in row["normal"]]
    assert _console_errors(browser) == []


def test_long_paths_wrap_on_a_narrow_screen(browser, long_names_run: Path) -> None:
    _open(browser, long_names_run / "report.html", 400)
    assert _console_errors(browser) == []
    _assert_no_sideways_scroll(browser)
