"""The results page at 50 experiments: how long `lstm-textgen report` takes to build it, how soon
the opened page shows its first text, and how soon the served generate box streams its first
character, beside the CLI's.

    python benchmarks/report.py     # about 5 minutes on 2 CPU cores; needs Chromium and chromedriver

A copy of the project (Alice and the headlines through GUTENBERG_MIRROR, from ../shared/corpora,
a small model so that the set-up is quick: the page reads records, whose size does not depend on
the model's) is reproduced and committed; then `dvc exp run` makes 49 experiments, each with its
own sampling temperature and seed, so the page lists the workspace, the commit and 49
experiments: 51 runs. Then:
- build: `lstm-textgen report` as a whole process, 5 times, the median (target: under 5 s);
- open: the page opened from its file in headless Chromium, 5 times, the time from navigation to
  its "first-text" mark, set once the samples are on the page (target: under 1 s);
- serve: `lstm-textgen report --serve`, then a POST to its generate box for 5 experiments whose
  models it has not loaded yet, and again for the same ones: the time until the first character
  after the prompt (target: under 1 s, as the CLI's); beside it `lstm-textgen generate --rev`,
  timed the same way on a terminal, for the same experiments.
Writes "report" in metrics/benchmarks.json (keeping the other figures) and prints them.
"""

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from lstm_textgen.files import write_json
from lstm_textgen.report import page_data
from run import benchmark_env, copy_project, machine, measured, work_folder
from sample_speed import seconds_to_first_char

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT.parent / "shared" / "corpora"
EXPERIMENTS = 49
TINY = {"window": {"seq_length": 50, "step": 10},
        "train-lstm": {"layers": 1, "units": 64, "embedding_dim": 16, "epochs": 2},
        "sample": {"length": 300},
        "train-lstm-headlines": {"units": 32, "epochs": 2}}
TARGETS = {"build_seconds": 5.0, "first_text_seconds": 1.0, "first_char_seconds": 1.0}


def run(cmd: list, project: Path, env: dict) -> str:
    proc = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


def build_project(work: Path, env: dict) -> Path:
    project = copy_project(work / "project", env, **TINY)
    print("dvc repro…", file=sys.stderr)
    run(["dvc", "repro"], project, env)
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-q", "-m", "the run"], project, env)
    for number in range(EXPERIMENTS):
        print(f"\rexperiment {number + 1} of {EXPERIMENTS}…", end="", file=sys.stderr)
        run(["dvc", "exp", "run", "-n", f"exp-{number:02d}", "-S", f"sample.temperature={0.5 + number / 50:.2f}",
             "-S", f"sample.seed={number}"], project, env)
    print(file=sys.stderr)
    return project


def seconds_to_first_text(page: Path) -> list[float]:
    sys.path.insert(0, str(ROOT / "tests"))
    from chromium import chromium_driver  # Selenium and Debian's Chromium, as tests/test_report.py drives them

    driver = chromium_driver()
    try:
        times = []
        for _ in range(6):  # the first load warms Chromium's own caches: not counted
            driver.get(page.as_uri())
            times.append(driver.execute_script(
                "return performance.getEntriesByName('first-text')[0].startTime") / 1000)
        return times[1:]
    finally:
        driver.quit()


def served_first_char(url: str, run_id: str) -> float:
    """POST the generate box's request; seconds until the first character after the prompt."""
    import requests
    started = time.monotonic()
    with requests.post(url + "generate", json={"run": run_id, "branch": "char", "prompt": "alice ",
                                               "length": "50", "seed": "1"}, stream=True, timeout=60) as response:
        response.raise_for_status()
        seen = b""
        for chunk in response.iter_content(chunk_size=None):
            seen += chunk
            if len(seen) > len("alice "):
                return time.monotonic() - started
    raise SystemExit(f"{run_id}: the generate box sent nothing after the prompt")


def serve_figures(project: Path, env: dict, experiments: list[str], ids: dict) -> dict:
    proc = subprocess.Popen([sys.executable, "-m", "lstm_textgen", "report", "--serve", "--port", "0"], cwd=project,
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        if not url:
            sys.exit(f"report --serve did not start: {line}")
        cold = [served_first_char(url[0], ids[e]) for e in experiments]
        warm = [served_first_char(url[0], ids[e]) for e in experiments]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    cli = [seconds_to_first_char(project, env, "alice ", "--rev", e) for e in experiments]
    return {"served_cold": cold, "served_warm": warm, "cli": cli}


def summary(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "metrics/benchmarks.json")
    parser.add_argument("--keep", action="store_true", help="keep the project and its experiments")
    parser.add_argument("--corpora", type=Path, default=CORPORA)
    parser.add_argument("--project", type=Path, help="measure this project (one --keep left, say) instead of "
                                                     "building one")
    args = parser.parse_args()
    with work_folder("lstm-textgen-report-", args.keep, "the project and its experiments") as work:
        mirror = work / "mirror"  # the book and the headlines by file name, as GUTENBERG_MIRROR serves them
        mirror.mkdir()
        (mirror / "pg11.txt").symlink_to((args.corpora / "pg11.txt").resolve())
        (mirror / "headlines.csv").symlink_to((args.corpora / "nyt-headlines-avl1.csv").resolve())
        env = {**benchmark_env(), "GUTENBERG_MIRROR": str(mirror)}
        project = args.project.resolve() if args.project else build_project(work, env)
        builds = [measured(["lstm-textgen", "report", "-o", "report.html"], project, env,
                           work / f"report-{i}.log").seconds for i in range(5)]
        data = page_data((project / "report.html").read_text())
        opens = seconds_to_first_text(project / "report.html")
        ids = {run["name"]: run["id"] for run in data["runs"]}
        chars = serve_figures(project, env, [f"exp-{n:02d}" for n in (0, 12, 24, 36, 48)], ids)

    result = {"machine": machine(), "runs_on_the_page": len(data["runs"]),
              "page_kilobytes": round(len(json.dumps(data)) / 1e3), "targets_seconds": TARGETS,
              "build_seconds": summary(builds), "first_text_seconds": summary(opens),
              "first_char_seconds": {k: summary(v) for k, v in chars.items()}}
    result["targets_met"] = {
        "build": result["build_seconds"]["median"] < TARGETS["build_seconds"],
        "first_text": result["first_text_seconds"]["median"] < TARGETS["first_text_seconds"],
        "first_char": max(result["first_char_seconds"]["served_cold"]["median"],
                          result["first_char_seconds"]["served_warm"]["median"]) < TARGETS["first_char_seconds"]}
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results["report"] = result
    write_json(args.out, results)
    print(json.dumps(result, indent=2))
    print(f"written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
