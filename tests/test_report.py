"""`lstm-textgen report`: a project with a committed run and three tiny experiments (one a second
epoch, one on the headlines branch), its page opened in a real headless Chromium driven by
Selenium, offline; and `--serve`, whose generate box must give what `lstm-textgen generate` gives."""

import json
import re
import subprocess
import sys
import time

import pytest

from chromium import chromium_driver, png_pixels
from conftest import sh
from lstm_textgen.report import page as report_page, page_data

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


@pytest.fixture(scope="module")
def ids(page) -> dict:
    """Each run's id (the page's key for it: its commit), by name."""
    return {run["name"]: run["id"] for run in page_data(page.read_text())["runs"]}


@pytest.fixture(scope="module")
def browser():
    driver = chromium_driver()
    yield driver
    driver.quit()


def wait_for(condition, seconds=20):
    deadline = time.monotonic() + seconds
    while not (result := condition()):
        assert time.monotonic() < deadline, "the page never got there"
        time.sleep(0.1)
    return result


def choose(browser, *runs):
    """Tick exactly these runs (their ids) in the table."""
    for box in browser.find_elements("css selector", "#runs input[type=checkbox]"):
        if box.is_selected() != (box.get_attribute("data-run") in runs):
            box.click()


def test_the_page_lists_every_run_with_the_params_that_differ(page, project):
    data = page_data(page.read_text())
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
    seeds = [s["seed"].lower() for s in runs["headlines-wider"]["branches"]["headlines"]["samples"]]
    assert seeds == ["alice", "the queen"]  # sample-headlines.seeds, set apart from the words generated
    assert all(s["generated"] for s in runs["headlines-wider"]["branches"]["headlines"]["samples"])


def test_the_static_page_loads_offline_with_a_row_per_run(page, ids, browser):
    browser.get_log("browser")  # what earlier tests left: not this page's
    browser.get(page.as_uri())
    rows = wait_for(lambda: browser.find_elements("css selector", "#runs tr.run"))
    assert sorted(r.get_attribute("data-run") for r in rows) == sorted(ids.values())
    assert [h.text for h in browser.find_elements("css selector", "#runs th.param")] == CHANGED
    wider = browser.find_element("css selector", f'#runs tr[data-run="{ids["wider"]}"] td[data-param="train-lstm.units"]')
    assert wider.text == "24"
    # the first text is on screen without a click
    assert browser.find_element("css selector", "#samples .sample .generated").text
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def test_two_chosen_runs_show_their_samples_side_by_side(page, ids, project, browser):
    repo, env = project
    browser.get(page.as_uri())
    wait_for(lambda: browser.find_elements("css selector", "#runs tr.run"))
    choose(browser, ids["wider"], ids["two-epochs"])
    columns = browser.find_elements("css selector", "#samples .column")
    assert sorted(c.get_attribute("data-run") for c in columns) == sorted([ids["wider"], ids["two-epochs"]])
    left, right = (c.rect for c in columns)
    assert abs(left["y"] - right["y"]) < 2 and right["x"] >= left["x"] + left["width"]  # beside, not below
    for column in columns:
        commit = column.get_attribute("data-run")  # a run's id is its commit
        text = sh(["git", "show", f"{commit}:metrics/sample/char/samples.txt"], repo, env).stdout
        for sample in column.find_elements("css selector", ".sample"):
            seed = sample.find_element("css selector", ".seed").get_attribute("textContent")
            generated = sample.find_element("css selector", ".generated").get_attribute("textContent")
            assert f"\n{seed}\ngenerated:\n{generated}\n" in text  # the seed set apart from what the model wrote


@pytest.mark.parametrize("run,rev", [("two-epochs", ["--rev", "two-epochs"]), ("master", ["--rev", "COMMIT"]),
                                     ("workspace", [])])
def test_a_samples_audit_is_what_audit_json_reports(page, ids, project, browser, run, rev):
    repo, env = project
    browser.get(page.as_uri())
    wait_for(lambda: browser.find_elements("css selector", "#runs tr.run"))
    choose(browser, ids[run])
    browser.find_element("css selector", f'#samples .sample[data-run="{ids[run]}"]').click()
    shown = json.loads(browser.find_element("id", "audit").get_attribute("textContent"))
    rev = [ids[run] if arg == "COMMIT" else arg for arg in rev]
    expected = json.loads(sh(["lstm-textgen", "audit", "metrics/sample/char/samples.txt", *rev, "--json"],
                             repo, env).stdout)
    assert shown == expected
    assert shown["stages"]["train-lstm"]["params"]["train-lstm.epochs"] == (2 if run == "two-epochs" else 1)


@pytest.mark.parametrize("branch,runs,epochs", [("char", ["wider", "two-epochs"], 1 + 2),
                                                ("headlines", ["master", "headlines-wider"], 1 + 1)])
def test_the_curves_are_drawn_for_each_chosen_run(page, ids, browser, branch, runs, epochs):
    browser.get(page.as_uri())
    wait_for(lambda: browser.find_elements("css selector", "#runs tr.run"))
    choose(browser, *[ids[r] for r in runs])  # a run of one epoch beside another
    browser.find_element("css selector", f'#branches button[data-branch="{branch}"]').click()
    chart = browser.find_element("id", "curve-chart")
    # a mark per epoch: round for train, square for validation (told apart by more than the dash)
    assert len(chart.find_elements("css selector", "circle.mark")) == epochs
    assert len(chart.find_elements("css selector", "rect.mark")) == epochs
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
    """Fill the served page's generate box (run: "<id>|<branch>"), press Generate, and wait for
    the text (or the error) to be complete."""
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
def test_the_served_generate_box_gives_what_the_cli_gives(project, ids, served, browser, run, branch, prompt):
    repo, env = project
    out = generate_in_page(browser, served, run=f"{ids[run]}|{branch}", prompt=prompt, length="40", seed="5")
    cli = sh(["lstm-textgen", "generate", "--rev", run, "--branch", branch, "--length", "40", "--seed", "5", prompt],
             repo, env).stdout
    assert out.get_attribute("textContent") == cli.rstrip("\n")


@pytest.mark.parametrize("fields,message", [
    ({"temperature": "hot"}, "error: --temperature 'hot' must be a number"),
    ({"top_p": "2"}, "error: --top-p 2.0 must be > 0 and <= 1"),
    ({"prompt": "€€"}, "error: the prompt has characters the model never saw"),
])
def test_bad_input_in_the_box_is_the_clis_one_line_message(served, ids, browser, fields, message):
    out = generate_in_page(browser, served, run=f"{ids['wider']}|char", **fields)
    assert "error" in out.get_attribute("class")
    text = out.get_attribute("textContent")
    assert text.startswith(message) and text.count("\n") <= 1 and "Traceback" not in text


def test_the_text_streams_a_token_at_a_time(served, ids):
    import requests
    with requests.post(served + "generate", json={"run": ids["wider"], "branch": "char", "prompt": "the ",
                                                  "length": "30", "seed": "1"}, stream=True, timeout=60) as response:
        chunks = [chunk.decode() for chunk in response.iter_content(chunk_size=None)]
    assert chunks[0] == "the " and len(chunks) > 10  # the prompt, then the characters as they are drawn


@pytest.mark.parametrize("request_for,message", [
    (lambda ids: {"json": {"run": "nope"}}, "error: unknown run 'nope'; the runs are workspace, master"),
    (lambda ids: {"json": ["a", "list"]}, "error: send the settings as a JSON object"),
    (lambda ids: {"json": {"run": ["a"]}}, "error: unknown run ['a']"),
    (lambda ids: {"data": "run=x", "headers": {"Content-Type": "text/plain"}}, "error: send the settings as a JSON object"),
    (lambda ids: {"json": {"run": ids["wider"], "length": "99999999"}}, "error: --length 99999999 must be at most"),
    (lambda ids: {"json": {"run": ids["wider"], "branch": "words"}}, "error: run wider has no 'words' model"),
])
def test_a_bad_request_is_one_line_not_a_stack_trace(served, ids, request_for, message):
    import requests
    response = requests.post(served + "generate", timeout=30, **request_for(ids))
    assert response.status_code == 400 and response.text.startswith(message), response.text
    assert response.text.count("\n") == 1


def test_a_page_elsewhere_pointing_its_name_here_is_refused(served):
    import requests
    response = requests.get(served, headers={"Host": "attacker.example"}, timeout=30)
    assert response.status_code == 400


def test_whatever_the_texts_hold_the_page_is_whole(browser, tmp_path):
    """Text from files, put on the page: markup in it stays text, and the page's own placeholders,
    a NaN loss or a `</script>` in a sample break nothing."""
    hostile = '</script><!--<script>alert(1)</script> @SCRIPT@ @DATA@ <img src=x onerror=alert(2)>'
    run = {"id": "workspace", "name": hostile, "kind": "workspace", "rev": None, "commit": None, "created": None,
           "params": {"sample.seed_text": hostile},
           "branches": {"char": {"scores": {"val_loss": 1.5}, "ran_on": {}, "audit": {"file": hostile},
                                 "audit_command": "lstm-textgen audit metrics/sample/char/samples.txt --json",
                                 "samples": [{"seed": hostile, "generated": hostile}]}}}
    from lstm_textgen.report import loss_rows
    run["branches"]["char"]["curves"] = loss_rows(b"epoch\ttrain\tvalidation\n1\tnan\t2.0\n")  # a NaN loss
    data = {"project": hostile, "made": "now", "runs": [run], "differing_params": ["sample.seed_text"], "seconds": 0}
    text = report_page(data)
    assert page_data(text)["runs"][0]["branches"]["char"]["samples"][0]["seed"] == hostile
    path = tmp_path / "page.html"
    path.write_text(text)
    browser.get_log("browser")  # what earlier tests left: not this page's
    browser.get(path.as_uri())
    sample = wait_for(lambda: browser.find_elements("css selector", "#samples .sample"))[0]
    assert sample.find_element("css selector", ".seed").get_attribute("textContent") == hostile
    assert not browser.find_elements("css selector", "#samples img")  # markup stayed text
    assert browser.find_element("css selector", "#runs td.param").text == '"' + hostile + '"'
    assert len(browser.find_elements("css selector", "#curve-chart rect.mark")) == 1  # the NaN is left out
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def test_outside_a_project_it_says_where_to_run_it(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lstm_textgen", "report"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.strip().startswith("error: no dvc.yaml here")
