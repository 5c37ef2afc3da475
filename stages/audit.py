"""audit: what produced a sample text? Not a DVC stage: a command for people.

    python stages/audit.py metrics/sample/char/samples.txt                 # as in the workspace
    python stages/audit.py metrics/sample/char/samples.txt --rev HEAD~3    # at a commit, branch or tag
    python stages/audit.py metrics/sample/char/samples.txt --rev exp-name  # in a DVC experiment
    python stages/audit.py ... --json                                      # the same, as JSON

Everything comes from what DVC already records: dvc.lock at that revision names the stage that
wrote the file, the file's hash at the end of that run, and, walking the stage's dependencies
upstream, every param value and data hash that went into it. The file must still hash as
dvc.lock says; an edited file, or one no recorded run wrote, is refused.
"""

import argparse
import hashlib
import json
import subprocess
from pathlib import PurePosixPath

import yaml

from common import UserError, run


def git(*args: str) -> str:
    proc = subprocess.run(["git", *args], capture_output=True, text=True)
    if proc.returncode:
        raise UserError(f"git {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def resolve_rev(rev: str) -> str:
    """A commit for a git revision or a DVC experiment's name (experiments are git refs under
    refs/exps/, ending in their name)."""
    proc = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                          capture_output=True, text=True)
    if proc.returncode == 0:
        return proc.stdout.strip()
    refs = git("for-each-ref", "--format=%(refname) %(objectname)", "refs/exps").splitlines()
    matches = [sha for ref, sha in (line.split() for line in refs) if ref.rsplit("/", 1)[-1] == rev]
    if len(matches) != 1:
        raise UserError(f"{rev!r} is neither a git revision nor {'a unique' if matches else 'an'} experiment name "
                        "(see `dvc exp list --all-commits`)")
    return matches[0]


def read_bytes(path: str, rev: str | None) -> bytes | None:
    """A file in the workspace (rev None) or at a commit; None when it is not there."""
    if rev is None:
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
    proc = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True)
    return proc.stdout if proc.returncode == 0 else None


def inside(path: str, out: str) -> bool:
    return path == out or PurePosixPath(path).is_relative_to(out)


def lineage(lock: dict, stage: str) -> list[str]:
    """`stage` and every stage upstream of it, upstream first."""
    outs = {o["path"]: name for name, s in lock["stages"].items() for o in s.get("outs", [])}
    order, seen = [], set()

    def visit(name):
        if name in seen:
            return
        seen.add(name)
        for dep in lock["stages"][name].get("deps", []):
            for out, producer in outs.items():
                if inside(dep["path"], out):
                    visit(producer)
        order.append(name)

    visit(stage)
    return order


def audit(path: str, lock: dict, content: bytes, read) -> dict:
    """The record of the run that wrote `path`, checked against the file's `content`.
    `read(path)` returns another file's bytes from the same revision, or None."""
    path = PurePosixPath(path).as_posix()
    producer = next((name for name, s in lock.get("stages", {}).items()
                     for o in s.get("outs", []) if o["path"] == path), None)
    if producer is None:
        raise UserError(f"{path} was produced by no recorded run: no stage in dvc.lock lists it as an output")
    recorded = next(o for o in lock["stages"][producer]["outs"] if o["path"] == path)["md5"]
    actual = hashlib.md5(content).hexdigest()
    if actual != recorded:
        raise UserError(f"{path} was edited after the run that dvc.lock records for stage {producer} (md5 {actual}, "
                        f"recorded {recorded}); restore it with `git checkout -- {path}` or rerun "
                        f"`dvc repro {producer}`")
    stages = lineage(lock, producer)
    report = {"file": path, "md5": actual, "stage": producer, "stages": {}}
    for name in stages:
        entry = lock["stages"][name]
        report["stages"][name] = {
            "cmd": entry["cmd"],
            "params": {k: v for values in entry.get("params", {}).values() for k, v in values.items()},
            "code": {d["path"]: d["md5"] for d in entry.get("deps", []) if d["path"].endswith(".py")},
            "outs": {o["path"]: o["md5"] for o in entry.get("outs", [])},
        }
    for name in stages:  # the validation score of the model upstream, from its DVCLive summary
        for out in report["stages"][name]["outs"]:
            if out.startswith("metrics/train/") and (data := read(f"{out}/metrics.json")):
                report["model_score"] = {k: v for k, v in json.loads(data).items() if k.startswith("best_val")}
    return report


def format_report(report: dict) -> str:
    version = report["code_version"]
    where = ("the workspace, on commit " if version["workspace"] else "commit ") + version["commit"]
    if version["experiment"]:
        where += f" (experiment {version['experiment']})"
    lines = [f"{report['file']} (md5 {report['md5']}) was written by stage {report['stage']}; {where}",
             "code: " + ("as it was for that run" if not version["changed_since_run"] else
                         "changed since that run: " + ", ".join(version["changed_since_run"])), ""]
    if "model_score" in report:
        lines += ["model validation score: " + ", ".join(f"{k} {v:.4f}" for k, v in report["model_score"].items()), ""]
    for name, stage in report["stages"].items():
        lines.append(f"{name}: {stage['cmd']}")
        lines += [f"  param {k} = {json.dumps(v)}" for k, v in stage["params"].items()]
        lines += [f"  code  {p} md5 {h}" for p, h in stage["code"].items()]
        lines += [f"  out   {p} md5 {h}" for p, h in stage["outs"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", help="a file a stage wrote, e.g. metrics/sample/char/samples.txt")
    parser.add_argument("--rev", help="a git revision or DVC experiment name (default: the workspace)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    commit = resolve_rev(args.rev) if args.rev else None
    read = lambda p: read_bytes(p, commit)  # noqa: E731
    content = read(args.path)
    if content is None:
        raise UserError(f"{args.path}: no such file" + (f" at {args.rev}" if args.rev else ""))
    lock_bytes = read("dvc.lock")
    if lock_bytes is None:
        raise UserError(f"{args.path} was produced by no recorded run: there is no dvc.lock"
                        + (f" at {args.rev}" if args.rev else ""))
    report = audit(args.path, yaml.safe_load(lock_bytes), content, read)
    code = {p: h for stage in report["stages"].values() for p, h in stage["code"].items()}
    changed = sorted(p for p, h in code.items() if hashlib.md5(read(p) or b"").hexdigest() != h)
    report["code_version"] = {
        "commit": commit or git("rev-parse", "HEAD"), "experiment": args.rev if commit and args.rev != commit else None,
        "workspace": commit is None, "changed_since_run": changed}
    print(json.dumps(report, indent=2) if args.json else format_report(report), end="" if not args.json else "\n")


if __name__ == "__main__":
    run(main)
