"""`lstm-textgen report`: a project with a committed run and three tiny experiments (one a second
epoch, one on the headlines branch), its page opened in a real headless Chromium driven by
Selenium, offline; and `--serve`, whose generate box must give what `lstm-textgen generate` gives."""

import json
import re
import subprocess
import sys
import time

import pytest

from chromium import png_pixels, webdriver
from conftest import sh

EXPERIMENTS = {"wider": ["train-lstm.units=24"],
               "two-epochs": ["train-lstm.epochs=2", "sample.temperature=1.0"],
               "headlines-wider": ["train-lstm-headlines.units=24"]}
RUNS = ["workspace", "master", *EXPERIMENTS]  # the workspace, the commit, its experiments
CHANGED = ["sample.temperature", "train-lstm-headlines.units", "train-lstm.epochs", "train-lstm.units"]


@pytest.fixture(scope="module")
def project(reproduced_project, tmp_path_factory):
    """The tiny project's run committed on master, then each experiment run from that commit."""
    repo, env = reproduced_project(tmp_path_factory.mktemp("report") / "repo")
    sh(["git", "branch", "-M", "master"], repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-q", "-m", "tiny run"], repo, env)
    for name, changes in EXPERIMENTS.items():
        sh(["dvc", "exp", "run", "--temp", "-n", name, *[a for c in changes for a in ("-S", c)]], repo, env)
    return repo, env


@pytest.fixture(scope="module")
def page(project):
    repo, env = project
    sh(["lstm-textgen", "report", "-o", "report.html"], repo, env)
    return repo / "report.html"


def page_data(path) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', path.read_text(),
                                re.S)[1].replace("<\\/", "</"))


@pytest.fixture(scope="module")
def browser():
    driver = webdriver()
    yield driver
    driver.quit()


def wait_for(condition, seconds=20):
    deadline = time.monotonic() + seconds
    while not (result := condition()):
        assert time.monotonic() < deadline, "the page never got there"
        time.sleep(0.1)
    return result


def choose(browser, *runs):
    """Tick exactly these runs in the table."""
    for box in browser.find_elements("css selector", "#runs input[type=checkbox]"):
        if box.is_selected() != (box.get_attribute("data-run") in runs):
            box.click()


def test_the_page_lists_every_run_with_the_params_that_differ(page, project):
    data = page_data(page)
    names = [r["name"] for r in data["runs"]]
    assert names[:2] == ["workspace", "master"] and sorted(names[2:]) == sorted(EXPERIMENTS)
    assert data["differing_params"] == CHANGED
    runs = {r["name"]: r for r in data["runs"]}
    assert runs["wider"]["params"] == {**runs["master"]["params"], "train-lstm.units": 24}
    assert runs["two-epochs"]["params"]["train-lstm.epochs"] == 2
    assert runs["two-epochs"]["params"]["sample.temperature"] == 1.0
    assert runs["headlines-wider"]["params"]["train-lstm-headlines.units"] == 24
    assert [r["kind"] for r in data["runs"]].count("experiment") == 3
    for run in data["runs"]:  # both branches, each with its scores, samples and curves
        assert set(run["branches"]) == {"char", "headlines"}, run["name"]
        assert run["branches"]["char"]["curves"] and run["branches"]["char"]["samples"]
    assert len(runs["two-epochs"]["branches"]["char"]["curves"]) == 2
    assert len(runs["master"]["branches"]["char"]["curves"]) == 1


def test_the_static_page_loads_offline_with_a_row_per_run(page, browser):
    browser.get(page.as_uri())
    rows = wait_for(lambda: browser.find_elements("css selector", "#runs tr.run"))
    assert sorted(r.get_attribute("data-run") for r in rows) == sorted(RUNS)
    assert [h.text for h in browser.find_elements("css selector", "#runs th.param")] == CHANGED
    wider = browser.find_element("css selector", '#runs tr[data-run="wider"] td[data-param="train-lstm.units"]')
    assert wider.text == "24"
    # the first text is on screen without a click
    assert browser.find_element("css selector", "#samples .sample .generated").text
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def test_two_chosen_runs_show_their_samples_side_by_side(page, project, browser):
    repo, env = project
    browser.get(page.as_uri())
    wait_for(lambda: browser.find_elements("css selector", "#runs tr.run"))
    choose(browser, "wider", "two-epochs")
    columns = browser.find_elements("css selector", "#samples .column")
    assert [c.get_attribute("data-run") for c in columns] == ["two-epochs", "wider"]
    left, right = (c.rect for c in columns)
    assert abs(left["y"] - right["y"]) < 2 and right["x"] >= left["x"] + left["width"]  # beside, not below
    commits = {r["name"]: r["commit"] for r in page_data(page)["runs"]}
    for column in columns:
        commit = commits[column.get_attribute("data-run")]
        text = sh(["git", "show", f"{commit}:metrics/sample/char/samples.txt"], repo, env).stdout
        for sample in column.find_elements("css selector", ".sample"):
            seed = sample.find_element("css selector", ".seed").get_attribute("textContent")
            generated = sample.find_element("css selector", ".generated").get_attribute("textContent")
            assert f"\n{seed}\ngenerated:\n{generated}\n" in text  # the seed set apart from what the model wrote


def test_a_samples_audit_is_what_audit_json_reports(page, project, browser):
    repo, env = project
    browser.get(page.as_uri())
    wait_for(lambda: browser.find_elements("css selector", "#runs tr.run"))
    choose(browser, "two-epochs")
    browser.find_element("css selector", '#samples .sample[data-run="two-epochs"]').click()
    shown = json.loads(browser.find_element("id", "audit").get_attribute("textContent"))
    expected = json.loads(sh(["lstm-textgen", "audit", "metrics/sample/char/samples.txt", "--rev", "two-epochs", "--json"],
                             repo, env).stdout)
    assert shown == expected
    assert shown["stages"]["train-lstm"]["params"]["train-lstm.epochs"] == 2


@pytest.mark.parametrize("branch,runs,epochs", [("char", ["wider", "two-epochs"], 1 + 2),
                                                ("headlines", ["master", "headlines-wider"], 1 + 1)])
def test_the_curves_are_drawn_for_each_chosen_run(page, browser, branch, runs, epochs):
    browser.get(page.as_uri())
    wait_for(lambda: browser.find_elements("css selector", "#runs tr.run"))
    choose(browser, *runs)  # a run of one epoch beside another
    browser.find_element("css selector", f'#branches button[data-branch="{branch}"]').click()
    chart = browser.find_element("id", "curve-chart")
    assert len(chart.find_elements("css selector", ".mark")) == 2 * epochs  # train and validation: a mark per epoch
    axis_titles = {t.text for t in chart.find_elements("css selector", "text")}
    assert "epoch" in axis_titles and f"loss (nats per {'character' if branch == 'char' else 'word'})" in axis_titles
    _, _, rows = png_pixels(chart.screenshot_as_png)
    for colour in ("#1f77b4", "#d62728"):  # the two runs' colours, painted
        want = bytes.fromhex(colour[1:])
        assert sum(1 for row in rows for p in row if sum(abs(a - b) for a, b in zip(p, want)) < 40) > 30, colour


@pytest.fixture(scope="module")
def served(project):
    repo, env = project
    proc = subprocess.Popen([sys.executable, "-m", "lstm_textgen", "report", "--serve", "--port", "0"], cwd=repo,
                            env=env, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    url = re.search(r"http://127\.0\.0\.1:\d+/", line)
    assert url, line
    yield url[0]
    proc.terminate()
    proc.wait(timeout=30)


def generate_in_page(browser, url, **fields):
    browser.get(url)
    form = wait_for(lambda: browser.find_element("id", "generate").is_displayed() and browser.find_element("id", "generate"))
    from selenium.webdriver.support.ui import Select
    Select(form.find_element("name", "run")).select_by_value(fields.pop("run"))
    for name, value in fields.items():
        box = form.find_element("name", name)
        box.clear()
        box.send_keys(value)
    form.find_element("tag name", "button").click()
    out = browser.find_element("id", "generated")
    wait_for(lambda: out.get_attribute("data-done") or "error" in out.get_attribute("class"))
    return out


@pytest.mark.parametrize("run,branch,prompt", [("wider", "char", "the "), ("headlines-wider", "headlines", "the")])
def test_the_served_generate_box_gives_what_the_cli_gives(project, served, browser, run, branch, prompt):
    repo, env = project
    out = generate_in_page(browser, served, run=f"{run}|{branch}", prompt=prompt, length="40", seed="5")
    cli = sh(["lstm-textgen", "generate", "--rev", run, "--branch", branch, "--length", "40", "--seed", "5", prompt],
             repo, env).stdout
    assert out.get_attribute("textContent") == cli.rstrip("\n")


@pytest.mark.parametrize("fields,message", [
    ({"temperature": "hot"}, "error: --temperature 'hot' must be a number"),
    ({"top_p": "2"}, "error: --top-p 2.0 must be > 0 and <= 1"),
    ({"prompt": "€€"}, "error: the prompt has characters the model never saw"),
])
def test_bad_input_in_the_box_is_the_clis_one_line_message(served, browser, fields, message):
    out = generate_in_page(browser, served, run="wider|char", **fields)
    assert "error" in out.get_attribute("class")
    text = out.get_attribute("textContent")
    assert text.startswith(message) and text.count("\n") <= 1 and "Traceback" not in text


def test_an_unknown_run_is_one_line_not_a_stack_trace(served):
    import requests
    response = requests.post(served + "generate", json={"run": "nope"}, timeout=30)
    assert response.status_code == 400
    assert response.text.startswith("error: unknown run 'nope'; the runs are workspace, master")


def test_outside_a_project_it_says_where_to_run_it(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lstm_textgen", "report"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.strip().startswith("error: no dvc.yaml here")
