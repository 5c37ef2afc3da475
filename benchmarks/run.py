"""The benchmarks, each measuring this project and the tutorial's method side by side in one run
on this machine, so that the ratios mean something where absolute times are noise:

    python benchmarks/run.py                  # about 40 minutes; --minutes sets the training budget
    python benchmarks/run.py --only sampling  # a minute: the sampling figures, beside the last run's
    python benchmarks/run.py --only training  # 3 x --minutes: the training figures, the others kept

1. pipeline: a copy of the project (dvc.yaml, params.yaml, stages/, lstm_textgen/) in a temporary git repo;
   `dvc repro` from nothing, with the training epochs cut to --pipeline-epochs so the run stays
   short; `dvc repro` with nothing to do; `dvc repro` after a `window.seq_length` change. Then
   train-lstm alone, for its peak memory on the default corpus.
2. training: the tutorial's method, train-lstm as it was before issue 33, and train-lstm now,
   --minutes of training each, on that copy's Alice data (benchmarks/timed_training.py, one
   process each).
3. sampling: the tutorial's generation loop against this project's sampler (its C step and its
   NumPy one), and `lstm-textgen generate`'s
   time to its first character (benchmarks/sample_speed.py).

Writes metrics/benchmarks.json (keeping the figures of benchmarks/scale.py, quality.py and
pretraining.py, which run on their own) and prints the ratios. The book and the headlines are downloaded
as by `dvc repro`: from the network, or from GUTENBERG_MIRROR when set.
"""

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

import yaml

from lstm_textgen.files import write_json

ROOT = Path(__file__).resolve().parents[1]

# The figures other scripts write into the same file (scale.py, quality.py, pretraining.py,
# cpu_lstm_speed.py, alice_recipe.py, downloads.py, report.py): kept.
OTHER_BENCHMARKS = ("scale", "quality", "pretraining", "cpu_lstm", "alice_recipe", "downloads", "report")
PROJECT_FILES = ["dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", ".dvc/config", ".dvc/.gitignore",
                 ".dvc/plots_page.html", ".dvc/plots/loss.json",
                 "data/base/README.md"]


# Linux carries a process's peak memory across fork and exec, so a command started from here
# would report at least this process's own peak as its own. A small launcher starts it instead,
# and writes down the seconds it ran, the peak wait4 reports for it (its own alone, the
# launcher's few MiB aside) and the CPU seconds it used.
LAUNCHER = """
import os, sys, time

started = time.monotonic()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{time.monotonic() - started} {usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


class Measured(NamedTuple):
    seconds: float      # wall time
    peak_mib: float     # peak resident memory
    cpu_seconds: float  # user + system: unlike wall time, hardly changed by other jobs on the machine


def measured(cmd: list, cwd: Path, env: dict, log: Path) -> Measured:
    """Run `cmd` to completion, its output to `log`; what it cost."""
    with open(log, "w") as out, tempfile.NamedTemporaryFile("r") as figures:
        proc = subprocess.run([sys.executable, "-c", LAUNCHER, figures.name, *map(str, cmd)], cwd=cwd, env=env,
                              stdout=out, stderr=subprocess.STDOUT)
        seconds, peak, cpu = figures.read().split()
    if proc.returncode:
        sys.exit(f"{' '.join(map(str, cmd))} failed (exit {proc.returncode}); its output is in {log}")
    return Measured(float(seconds), int(peak) / (1024 if sys.platform != "darwin" else 1024 ** 2), float(cpu))


@contextlib.contextmanager
def work_folder(prefix: str, keep: bool, holding: str):
    """A temporary folder for a benchmark's files, removed after it unless `keep`, or unless the
    benchmark failed: then its logs are wanted."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    print(f"working in {work}", file=sys.stderr)
    try:
        yield work
    except BaseException:
        keep = True
        raise
    finally:
        if keep:
            print(f"kept {work}: {holding}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def repro(project: Path, env: dict, log: Path) -> tuple[float, list]:
    """`dvc repro` in `project`: its wall seconds and the stages it ran."""
    seconds = measured(["dvc", "repro"], project, env, log).seconds
    return seconds, re.findall(r"Running stage '([^']+)'", log.read_text())


def set_params(project: Path, **sections) -> None:
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for section, values in sections.items():
        params[section].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def machine() -> dict:
    cpu = platform.processor()
    if Path("/proc/cpuinfo").exists():
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), cpu)
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


def benchmark_env() -> dict:
    """The environment benchmarks run dvc and git in: no analytics, this Python first, a git identity."""
    return {**os.environ, "DVC_NO_ANALYTICS": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "GIT_AUTHOR_NAME": "benchmark", "GIT_AUTHOR_EMAIL": "benchmark@127.0.0.1",
            "GIT_COMMITTER_NAME": "benchmark", "GIT_COMMITTER_EMAIL": "benchmark@127.0.0.1"}


def copy_project(project: Path, env: dict, **params) -> Path:
    """A copy of the project (its files as they are here), `params` set, committed in a fresh git repo."""
    for name in PROJECT_FILES:
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, project / name)
    for folder in ("stages", "lstm_textgen"):
        shutil.copytree(ROOT / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__"))
    set_params(project, **params)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "benchmark"]):
        subprocess.run(cmd, cwd=project, env=env, check=True, capture_output=True)
    return project


def pipeline(work: Path, env: dict, epochs: int) -> tuple[Path, dict]:
    project = copy_project(work / "project", env, **{"train-lstm": {"epochs": epochs},
                                                      "train-lstm-headlines": {"epochs": epochs}})

    full, ran = repro(project, env, work / "repro-full.log")
    noop = statistics.median(repro(project, env, work / f"repro-noop-{i}.log")[0] for i in range(3))
    # train-lstm on its own, for its peak memory (epochs do not change it: the data is loaded once)
    train_peak = measured([sys.executable, "stages/train_lstm.py", "char"], project, env,
                          work / "train-lstm.log").peak_mib
    train_metrics = json.loads((project / "metrics/train/char/run.json").read_text())
    return project, {"epochs": epochs, "full_seconds": round(full, 1), "stages_in_full_run": len(ran),
                     "noop_seconds": round(noop, 2), "train_lstm_peak_rss_mib": round(train_peak),
                     "device": train_metrics["device"], "lstm_kernel": train_metrics["lstm_kernel"]}


def seq_length_change(project: Path, result: dict, work: Path, env: dict) -> dict:
    """`dvc repro` after halving window.seq_length, against the full run in `result`."""
    old = yaml.safe_load((project / "params.yaml").read_text())["window"]["seq_length"]
    new = old // 2
    print(f"pipeline benchmark: dvc repro after seq_length {old} -> {new}…", file=sys.stderr)
    set_params(project, window={"seq_length": new})
    seconds, ran = repro(project, env, work / "repro-seq-length.log")
    return {**result, "seq_length_change": f"{old} -> {new}",
            "seq_length_change_seconds": round(seconds, 1), "seq_length_change_reran": ran,
            "noop_vs_full": round(result["noop_seconds"] / result["full_seconds"], 3),
            "seq_length_change_vs_full": round(seconds / result["full_seconds"], 2)}


def training(work: Path, env: dict, minutes: float) -> dict:
    runs = {}
    for method in ("tutorial", "before", "ours"):
        out = work / f"training-{method}.json"
        print(f"training benchmark: {method}, {minutes:g} minutes of training…", file=sys.stderr)
        peak = measured([sys.executable, str(ROOT / "benchmarks/timed_training.py"), method, "--project",
                         str(work / "project"), "--minutes", str(minutes), "--out", str(out)],
                        ROOT, env, work / f"training-{method}.log").peak_mib
        runs[method] = {**json.loads(out.read_text()), "peak_rss_mib": round(peak)}
    tutorial, ours = runs["tutorial"], runs["ours"]
    # Time for ours to reach the tutorial's end-of-budget loss, both probed on the same held-out characters.
    target = tutorial["curve"][-1][1]
    reached = next((seconds for seconds, loss in ours["curve"] if loss <= target), None)
    return {**runs, "held_out_loss_lower_by": round(tutorial["held_out_loss"] - ours["held_out_loss"], 3),
            "tokens_per_second_ratio": round(ours["tokens_per_second"] / tutorial["tokens_per_second"], 1),
            "tokens_per_second_vs_before": round(ours["tokens_per_second"] / runs["before"]["tokens_per_second"], 2),
            "ours_reached_tutorial_loss_after_seconds": reached,
            "ours_reached_tutorial_loss_share_of_budget": reached and round(reached / tutorial["train_seconds"], 3)}


def sampling(work: Path, env: dict) -> dict:
    print("sampling benchmark…", file=sys.stderr)
    out = work / "sampling.json"
    measured([sys.executable, str(ROOT / "benchmarks/sample_speed.py"), "--out", str(out)], ROOT, env,
             work / "sampling.log")
    result = json.loads(out.read_text())
    speed = {(row["model"], row["loop"]): row["chars_per_second"] for row in result["rows"]}
    ours_default = next(model for model, loop in speed if loop == "ours" and model != "ours 1x256")
    result["ours_default_vs_tutorial_model"] = round(
        speed[(ours_default, "ours")] / speed[("tutorial 1x256 (floats in)", "tutorial")], 1)
    return result


def report(results: dict) -> str:
    p, t, s = results["pipeline"], results["training"], results["sampling"]
    tut, ours = t["tutorial"], t["ours"]
    lines = [f"machine: {results['machine']['cpu']}, {results['machine']['cores']} cores; trained on {p['device']}",
             f"training, {tut['budget_seconds'] / 60:g} min each: held-out loss tutorial {tut['held_out_loss']:.3f} "
             f"vs ours {ours['held_out_loss']:.3f} nats/char (lower by {t['held_out_loss_lower_by']:.2f}); "
             f"{tut['held_out_bits_per_char']:.3f} vs {ours['held_out_bits_per_char']:.3f} bits/char",
             f"  ours reached the tutorial's final loss after {t['ours_reached_tutorial_loss_after_seconds']} s "
             f"({t['ours_reached_tutorial_loss_share_of_budget']} of its budget)",
             f"  characters predicted per second: {tut['tokens_per_second']:,} vs {ours['tokens_per_second']:,} "
             f"({t['tokens_per_second_ratio']}x)",
             f"  train-lstm before issue 33, same params: {t['before']['tokens_per_second']:,} chars/s, "
             f"held-out loss {t['before']['held_out_loss']:.3f}; now {t['tokens_per_second_vs_before']}x the chars/s in "
             f"{ours['precision']}",
             f"  training inputs held in memory: {tut['training_data_mib']} vs {ours['training_data_mib']} MiB; "
             f"process peak {tut['peak_rss_mib']} vs {ours['peak_rss_mib']} MiB (TensorFlow itself included)"]
    before = {(row["model"], row["loop"]): row for row in results.get("sampling_before", {}).get("rows", [])}
    for row in s["rows"]:
        extra = f" ({row['speedup_same_model']}x the tutorial's loop)" if "speedup_same_model" in row else ""
        if "c_step_speedup" in row:
            extra += f"; the C step is {row['c_step_speedup']}x this"
        if (old := before.get((row["model"], row["loop"]))) and row["loop"] == "ours":
            extra += f"; the previous sampler: {old['chars_per_second']:,} chars/s"
        spread = f" (median; rounds {row['range'][0]:,}-{row['range'][1]:,})" if "range" in row else ""
        lines.append(f"sampling, batch 1: {row['model']}, {row['loop']} loop: {row['chars_per_second']:,} chars/s"
                     f"{spread}{extra}")
    if first := s.get("generate_seconds_to_first_char"):
        lines.append(f"lstm-textgen generate, start to first generated character: {first['median']} s median, "
                     f"{first['max']} s at most, over {first['runs']} starts")
    lines += [f"pipeline: full run {p['full_seconds']} s (training epochs {p['epochs']}); nothing to do "
              f"{p['noop_seconds']} s ({p['noop_vs_full']} of full); seq_length {p['seq_length_change']}: "
              f"{p['seq_length_change_seconds']} s ({p['seq_length_change_vs_full']} of full), reran "
              f"{', '.join(p['seq_length_change_reran'])}",
              f"train-lstm peak memory on the default corpus: {p['train_lstm_peak_rss_mib']} MiB"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=8.0, help="training budget per method (default 8)")
    parser.add_argument("--pipeline-epochs", type=int, default=1,
                        help="training epochs in the pipeline benchmark's runs (default 1)")
    parser.add_argument("--out", type=Path, default=ROOT / "metrics/benchmarks.json")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, the project copy)")
    parser.add_argument("--only", choices=["sampling", "training"],
                        help="rerun one benchmark; the others' figures are kept from --out (sampling's printed beside)")
    args = parser.parse_args()

    env = benchmark_env()
    with work_folder("lstm-textgen-benchmarks-", args.keep, "the logs and the project copy") as work:
        if args.only == "sampling":
            results = json.loads(args.out.read_text())
            results["sampling_before"] = results.pop("sampling")
            results["sampling"] = sampling(work, env)
        elif args.only == "training":
            results = json.loads(args.out.read_text())
            measured(["dvc", "repro", "window"], copy_project(work / "project", env), env, work / "data.log")
            results["training"] = training(work, env, args.minutes)
        else:
            print("pipeline benchmark: dvc repro from nothing…", file=sys.stderr)
            project, pipe = pipeline(work, env, args.pipeline_epochs)
            previous = json.loads(args.out.read_text()) if args.out.exists() else {}
            kept = {k: v for k, v in previous.items() if k in OTHER_BENCHMARKS}
            results = {"machine": machine(), "training": training(work, env, args.minutes),
                       "sampling": sampling(work, env)} | kept
            results["pipeline"] = seq_length_change(project, pipe, work, env)
    write_json(args.out, results)
    print(report(results))
    print(f"written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
