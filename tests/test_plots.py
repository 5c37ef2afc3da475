"""The loss curves as a person sees them: `dvc plots show` and `dvc plots diff` pages opened
offline in a real headless Chromium, which must draw them (SVG line marks with a point per epoch,
coloured pixels on the screenshot), with epochs counted from 1, series named train and
validation in colours of their own, a run of one epoch still visible, and axis titles with
units; and train-lstm's console free of TensorFlow's start-up logging."""

import ctypes
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from chromium import chromium_binary, png_pixels
from conftest import ROOT, make_dvc_project, sh
from lstm_textgen import training

PAGE = ".dvc/plots_page.html"
EPOCHS = {"train-lstm": 3, "train-lstm-headlines": 2}
# docs/experiments.md's comparison picture: two experiments' validation curves in one plot.
COMPARE = ["--targets", "metrics/train/char/loss.tsv", "-x", "epoch", "-y", "validation",
           "--y-label", "validation loss (nats/char)", "--title", "Validation loss per epoch, char branch"]


# --- what Chromium drew ------------------------------------------------------------------------

def chromium(binary: str, page: Path, tmp: Path, *mode: str) -> subprocess.CompletedProcess:
    """Open `page` in headless Chromium with no network at all (every host name fails to
    resolve), give its scripts 10 s of virtual time, then dump the DOM or take a screenshot."""
    args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp / 'chromium'}",
            "--virtual-time-budget=10000", "--window-size=1200,900", *mode, page.as_uri()]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


class DrawnPlots(HTMLParser):
    """The plots of a page as Chromium left it: for each DVC plot <div id=...>, its <svg>
    elements, its line marks (aria-label, path), its texts (title, ticks, legend...) and its x
    axis (its aria-label, which names its title and range, and its tick labels)."""

    def __init__(self, ids):
        super().__init__()
        self.plots = {i: {"svgs": 0, "lines": [], "points": 0, "texts": [], "x_axis": "", "x_ticks": []} for i in ids}
        self.current, self.in_text, self.groups = None, False, []  # groups: open <g>s, True for the x axis

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "div" and attrs.get("id") in self.plots:
            self.current = self.plots[attrs["id"]]
        elif self.current is not None:
            if tag == "svg":
                self.current["svgs"] += 1
            elif tag == "path" and attrs.get("aria-roledescription") == "line mark":
                self.current["lines"].append((attrs.get("aria-label", ""), attrs.get("d", ""), attrs.get("stroke")))
            elif tag == "path" and attrs.get("aria-roledescription") == "point":
                self.current["points"] += 1
            elif tag == "g":
                x_axis = (attrs.get("aria-label") or "").startswith("X-axis")
                if x_axis:
                    self.current["x_axis"] = attrs["aria-label"]
                self.groups.append(x_axis or (bool(self.groups) and self.groups[-1]))
            self.in_text = tag == "text"

    def handle_endtag(self, tag):
        self.in_text = False
        if tag == "g" and self.groups:
            self.groups.pop()

    def handle_data(self, data):
        if self.in_text and self.current is not None and data.strip():
            self.current["texts"].append(data.strip())
            if self.groups and self.groups[-1]:
                self.current["x_ticks"].append(data.strip())


def drawn(binary: str, page: Path, tmp: Path) -> dict:
    """Each plot of `page` as drawn, by its div's id."""
    ids = re.findall(r"vegaEmbed\('#([^']+)'", page.read_text(encoding="utf-8"))
    assert ids, f"{page} embeds no plot"
    parser = DrawnPlots(ids)
    parser.feed(chromium(binary, page, tmp, "--dump-dom").stdout)
    return parser.plots


def titled(plots: dict, title: str) -> dict:
    found = [plot for plot in plots.values() if title in plot["texts"]]
    assert len(found) == 1, f"no single plot titled {title!r} among {[p['texts'][:3] for p in plots.values()]}"
    return found[0]


def series(plot: dict) -> dict:
    """The line marks of a plot by series ("rev: x; field: y", from their aria-labels), each
    with the most points any of its paths has (DVC draws a smoothed line and a faint raw one)."""
    out = {}
    for label, path, _ in plot["lines"]:
        name = series_name(label)
        out[name] = max(out.get(name, 0), len(re.findall(r"[ML]", path)))
    return out


def series_name(label: str) -> str:
    """"rev: x; field: y" from a line mark's aria-label, whatever else it names and in which order."""
    parts = dict(part.split(": ", 1) for part in label.split("; ") if ": " in part)
    return "; ".join(f"{key}: {parts[key]}" for key in ("rev", "field") if key in parts)


def colours(plot: dict) -> dict:
    """Each series' line colour (its stroke), by its series_name."""
    return {series_name(label): stroke for label, _, stroke in plot["lines"]}


def coloured_pixels(binary: str, page: Path, tmp: Path, near: str | None = None) -> int:
    """How many pixels of the page's screenshot are strongly coloured: the curves (drawn in
    blue, orange, purple...); text, axes and grid are black or grey on white. With `near` (a
    #rrggbb colour), only the pixels within a small distance of it."""
    shot = tmp / f"{page.parent.name}.png"
    chromium(binary, page, tmp, f"--screenshot={shot}")
    _, _, rows = png_pixels(shot.read_bytes())
    if near:
        want = bytes.fromhex(near.lstrip("#"))
        return sum(1 for row in rows for pixel in row if sum(abs(a - b) for a, b in zip(pixel, want)) < 40)
    return sum(1 for row in rows for r, g, b in row if max(r, g, b) - min(r, g, b) > 60)


# --- a tiny trained project --------------------------------------------------------------------

@pytest.fixture(scope="module")
def project(tmp_path_factory, module_server):
    """Both branches trained for a few epochs through `dvc repro`, committed, with the page."""
    repo, env = make_dvc_project(tmp_path_factory.mktemp("plots") / "repo", module_server)
    shutil.copy2(ROOT / PAGE, repo / PAGE)  # .dvc/config names it
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for stage, epochs in EPOCHS.items():
        params[stage]["epochs"] = epochs
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = sh(["dvc", "repro", "train-lstm", "train-lstm-headlines"], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-q", "-m", "trained"], repo, env)
    return repo, env, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def browser():
    return chromium_binary()


def test_train_lstm_writes_the_loss_per_epoch_from_epoch_1(project):
    repo, _, _ = project
    for branch, stage in (("char", "train-lstm"), ("headlines", "train-lstm-headlines")):
        header, *rows = (repo / f"metrics/train/{branch}/loss.tsv").read_text().splitlines()
        assert header == "epoch\ttrain\tvalidation"
        assert [row.split("\t")[0] for row in rows] == [str(e) for e in range(1, EPOCHS[stage] + 1)]
        logged = (repo / f"metrics/train/{branch}/plots/metrics/eval/loss.tsv").read_text().splitlines()[1:]
        assert [row.split("\t")[2] for row in rows] == [row.split("\t")[1] for row in logged]  # DVCLive's values


def test_the_console_shows_one_device_line_and_none_of_tensorflows_start_up_logging(project):
    _, _, console = project
    assert "training char on CPU with the cpu_loop LSTM kernel" in console
    assert "training headlines on CPU with the cpu_loop LSTM kernel" in console
    assert "absl::InitializeLog" not in console
    assert not re.search(r"^[IW]\d{4} ", console, re.MULTILINE), console
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:  # no CUDA driver: the failed cuInit only means "no GPU", and is not shown
        assert "cuInit" not in console, console


def test_plots_show_draws_both_branches_offline(project, browser, tmp_path):
    repo, env, _ = project
    sh(["dvc", "plots", "show", "-o", str(tmp_path / "show")], repo, env)
    page = tmp_path / "show/index.html"
    html = page.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=", html), "the page loads something from elsewhere"
    plots = drawn(browser, page, tmp_path)
    for title, unit, epochs in (("Loss per epoch, char branch", "nats/char", EPOCHS["train-lstm"]),
                                ("Loss per epoch, headlines branch", "nats/word", EPOCHS["train-lstm-headlines"])):
        plot = titled(plots, title)
        assert plot["svgs"], f"{title}: nothing drawn"
        assert series(plot) == {"rev: workspace; field: train": epochs, "rev: workspace; field: validation": epochs}
        assert {"train", "validation", f"loss ({unit})"} <= set(plot["texts"]), plot["texts"]
        assert plot["x_axis"] == f"X-axis titled 'epoch' for a linear scale with values from 1 to {epochs}"
        assert plot["x_ticks"] == [*map(str, range(1, epochs + 1)), "epoch"]  # whole epochs, from 1
        assert plot["points"] == 2 * epochs  # a mark on every epoch of both curves
        train, validation = (colours(plot)[f"rev: workspace; field: {f}"] for f in ("train", "validation"))
        assert train and validation and train != validation  # told apart by colour, not only by dashes
        for colour in (train, validation):
            assert coloured_pixels(browser, page, tmp_path, near=colour) > 100, colour
    assert coloured_pixels(browser, page, tmp_path) > 500


def test_a_run_of_one_epoch_is_still_drawn(project, browser, tmp_path):
    """One epoch is one point per curve: drawn as a mark inside the plot, not a line of no length
    (`dvc plots diff` shows it beside the workspace's run of EPOCHS)."""
    repo, env, _ = project
    sh(["dvc", "exp", "run", "--temp", "-n", "one-epoch", "-S", "train-lstm-headlines.epochs=1",
        "train-lstm-headlines"], repo, env)
    sh(["dvc", "plots", "diff", "one-epoch", "-o", str(tmp_path / "one")], repo, env)
    page = tmp_path / "one/index.html"
    plot = titled(drawn(browser, page, tmp_path), "Loss per epoch, headlines branch")
    epochs = EPOCHS["train-lstm-headlines"]
    assert series(plot) == {"rev: one-epoch; field: train": 1, "rev: one-epoch; field: validation": 1,
                            "rev: workspace; field: train": epochs, "rev: workspace; field: validation": epochs}
    assert plot["points"] == 2 + 2 * epochs
    train, validation = (colours(plot)[f"rev: one-epoch; field: {f}"] for f in ("train", "validation"))
    assert len({train, validation, *colours(plot).values()}) == 4
    for colour in (train, validation):
        assert coloured_pixels(browser, page, tmp_path, near=colour) > 40, colour  # a mark, not a clipped dot


def test_dvcs_default_page_draws_nothing_offline(project, browser, tmp_path):
    """The check above fails on the page DVC writes by default: its scripts are on a CDN."""
    from dvc_render.html import PAGE_HTML

    repo, env, _ = project
    (tmp_path / "default.html").write_text(PAGE_HTML, encoding="utf-8")
    sh(["dvc", "plots", "show", "-o", str(tmp_path / "cdn"), "--html-template", str(tmp_path / "default.html")],
       repo, env)
    page = tmp_path / "cdn/index.html"
    assert "cdn.jsdelivr.net" in page.read_text(encoding="utf-8")
    plots = drawn(browser, page, tmp_path)
    assert plots and all(not plot["svgs"] and not plot["lines"] for plot in plots.values())
    assert coloured_pixels(browser, page, tmp_path) == 0


def test_plots_diff_overlays_two_experiments_validation_curves(project, browser, tmp_path):
    repo, env, _ = project
    for name, units in (("units-8", 8), ("units-24", 24)):
        sh(["dvc", "exp", "run", "-n", name, "-S", f"train-lstm.units={units}", "train-lstm"], repo, env)
    sh(["dvc", "plots", "diff", "units-8", "units-24", *COMPARE, "-o", str(tmp_path / "compare")], repo, env)
    page = tmp_path / "compare/index.html"
    plots = drawn(browser, page, tmp_path)
    plot = titled(plots, "Validation loss per epoch, char branch")
    assert series(plot) == {"rev: units-8": EPOCHS["train-lstm"], "rev: units-24": EPOCHS["train-lstm"]}
    assert {"units-8", "units-24", "epoch", "validation loss (nats/char)"} <= set(plot["texts"]), plot["texts"]
    assert coloured_pixels(browser, page, tmp_path) > 300

    # The whole diff: each branch's plot, each experiment in its colour, train and validation.
    sh(["dvc", "plots", "diff", "units-8", "units-24", "-o", str(tmp_path / "all")], repo, env)
    char = titled(drawn(browser, tmp_path / "all/index.html", tmp_path), "Loss per epoch, char branch")
    assert set(series(char)) == {f"rev: {rev}; field: {field}" for rev in ("units-8", "units-24")
                                 for field in ("train", "validation")}
    assert len(set(colours(char).values())) == 4  # each run's train and validation in colours of their own


# --- pieces, without a browser -----------------------------------------------------------------

def test_the_committed_page_is_what_vl_convert_makes():
    """.dvc/plots_page.html is `lstm-textgen plots-page`'s output with the installed vl-convert-python:
    its JavaScript comes from that package, nothing else was pasted in."""
    if not os.environ.get("CI"):
        pytest.importorskip("vl_convert", reason="vl-convert-python (the [plots] extra) is not installed")
    proc = subprocess.run([sys.executable, "-m", "lstm_textgen", "plots-page", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    config = (ROOT / ".dvc/config").read_text()
    assert re.search(r"^\s*html_template = plots_page\.html$", config, re.MULTILINE)
    page = (ROOT / PAGE).read_text(encoding="utf-8")
    assert "{plot_divs}" in page and "{scripts}" not in page and "<script src" not in page


def test_loss_table_from_dvclives_logs(tmp_path):

    for split, losses in (("train", ["3.1", "2.5"]), ("eval", ["3.0", "2.7"])):
        log = tmp_path / f"plots/metrics/{split}/loss.tsv"
        log.parent.mkdir(parents=True)
        log.write_text("step\tloss\n" + "".join(f"{i}\t{v}\n" for i, v in enumerate(losses)))
    assert training.loss_table(tmp_path) == "epoch\ttrain\tvalidation\n1\t3.1\t3.0\n2\t2.5\t2.7\n"


START_UP = """WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795454096.753278   23535 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
I0000 00:00:1795454096.890672   23535 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.
W0000 00:00:1795454096.900000   23535 some_file.cc:12] a warning
/x/y.py:3: UserWarning: something Python warned about
  warnings.warn("something")
E0000 00:00:1795454105.199202   23535 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
E0000 00:00:1795454105.2   23535 some_op.cc:99] an error that matters
"""


def test_start_up_logging_keeps_only_what_matters():
    from lstm_textgen import model as lstm

    assert lstm.startup_log_that_matters(START_UP, 2) == (
        "/x/y.py:3: UserWarning: something Python warned about\n  warnings.warn(\"something\")\n"
        "E0000 00:00:1795454105.2   23535 some_op.cc:99] an error that matters\n")
    with_driver = START_UP.replace("Could not find cuda drivers on your machine", "Found a driver")
    assert "failed call to cuInit" in lstm.startup_log_that_matters(with_driver, 2)  # a GPU that does not work
    assert "a warning" in lstm.startup_log_that_matters(START_UP, 1)
    assert "an error that matters" not in lstm.startup_log_that_matters(START_UP, 3)
    assert lstm.startup_log_that_matters(START_UP, 0) == START_UP  # TF_CPP_MIN_LOG_LEVEL=0: everything
