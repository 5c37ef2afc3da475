"""audit: what produced a sample text, or a model? A command for people (`lstm-textgen audit`).

    lstm-textgen audit metrics/sample/char/samples.txt                 # as in the workspace
    lstm-textgen audit metrics/sample/char/samples.txt --rev HEAD~3    # at a commit, branch or tag
    lstm-textgen audit metrics/sample/char/samples.txt --rev exp-name  # in a DVC experiment
    lstm-textgen audit data/models/char.npz                            # a model (DVC-tracked files too)
    lstm-textgen audit ... --json                                      # the same, as JSON

Everything comes from what DVC already records: dvc.lock at that revision names the stage that
wrote the file, the file's hash at the end of that run, and, walking the stage's dependencies
upstream, every param value and data hash that went into it. The file must still hash as
dvc.lock says; an edited file, or one no recorded run wrote, is refused.

A model fine-tuned from a base model (train-lstm.init_from) names the base: its sha256, and the
repo and commit `dvc import` brought it from; the base's own record is then audited there, so a
sample is traced through the fine-tuning to the pretraining.
"""

import argparse
import contextlib
import functools
import hashlib
import io
import json
import subprocess
from pathlib import Path, PurePosixPath

import yaml

from lstm_textgen.errors import UserError


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


def is_remote_url(repo: str) -> bool:
    return "://" in repo or repo.startswith("git@")


def check_repo(repo: str, rev: str | None) -> None:
    """A --repo that cannot be read, and a --rev it does not have, each said plainly (DVC's own
    error for both is that the file is not there)."""
    if is_remote_url(repo):
        return  # git itself says what is wrong with a URL, when DVC clones it
    if not Path(repo).is_dir():
        raise UserError(f"--repo {repo}: no such folder; give the path or git URL of a clone of this project")
    top = subprocess.run(["git", "-C", repo, "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    if top.returncode:
        raise UserError(f"--repo {repo} is not a git repository; give the path or git URL of a clone of this project")
    if rev and subprocess.run(["git", "-C", repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                              capture_output=True).returncode:
        branches = subprocess.run(["git", "-C", repo, "branch", "--format=%(refname:short)"], capture_output=True,
                                  text=True).stdout.split()
        raise UserError(f"--rev {rev} is no commit, branch or tag of {repo} (its branches: "
                        f"{', '.join(branches) or 'none'})")


def has_dvc_remote(repo: str | None) -> bool:
    """Whether the project (or the clone at `repo`) names a DVC remote; a git URL: assumed so."""
    if repo and is_remote_url(repo):
        return True
    from dvc.config import Config
    return bool(Config(dvc_dir=str(Path(repo or ".") / ".dvc"))["remote"])


def read_bytes(path: str, rev: str | None, repo: str | None = None, *, from_git: bool = True) -> bytes | None:
    """The bytes of a file as opened() finds it; None when it is not there."""
    with opened(path, rev, repo, from_git=from_git) as f:
        return None if f is None else f.read()


@contextlib.contextmanager
def opened(path: str, rev: str | None, repo: str | None = None, *, from_git: bool = True):
    """A file in the workspace (rev and repo None), at a commit, or in another clone of the
    project (`repo`, at `rev` or its default branch), open for reading bytes; None when it is
    not there. Files that git does not hold (DVC's outputs) come through dvc.api: from the cache,
    or the DVC remote, read as the reader goes (seek to read a part of a large one). from_git
    False: the caller knows git has no such file at `rev`, and asks DVC alone."""
    if rev is None and repo is None:
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            yield None
            return
        with f:
            yield f
        return
    if repo is None and from_git:
        proc = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True)
        if proc.returncode == 0:
            yield io.BytesIO(proc.stdout)
            return
    import dvc.api  # only here: importing DVC takes half a second
    from dvc.exceptions import DvcException, PathMissingError
    where = " ".join(filter(None, [repo and f"in {repo}", rev and f"at {rev}"]))
    unreachable = (f"cannot read {path} {where}: dvc.lock there lists it, but it is neither in the local cache "
                   "nor on the DVC remote; push it from the clone that made it (`dvc push`)")
    with contextlib.ExitStack() as stack:
        try:
            f = stack.enter_context(dvc.api.open(path, repo=repo, rev=rev, mode="rb"))
        except (PathMissingError, FileNotFoundError):
            # DVC says the same of an output it cannot fetch: tell the two apart by dvc.lock
            lock = parse_lock(read_bytes("dvc.lock", rev, repo)) if path != "dvc.lock" else None
            outs = {o["path"] for stage in (lock or {}).get("stages", {}).values() for o in stage.get("outs", [])}
            if any(inside(path, out) for out in outs):
                if not has_dvc_remote(repo):
                    raise UserError(f"cannot read {path} {where}: dvc.lock there lists it, but it is not in the local "
                                    f"cache, and {'that clone' if repo else 'this project'} has no DVC remote to fetch "
                                    "it from; add one (`dvc remote add -d …`) and `dvc push` from the clone that made it")
                raise UserError(unreachable)
            f = None
        except DvcException as err:
            raise UserError(f"{unreachable} ({err})")
        try:
            yield f
        except DvcException as err:  # reading from the remote broke off
            raise UserError(f"{unreachable} ({err})")


# libyaml's loader where PyYAML has it: a dvc.lock parses ten times faster, which the report
# (lstm-textgen report), reading a few for each of many runs, needs.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.lru_cache(maxsize=4)  # the report parses each run's dvc.lock for its params, then for each audit
def parse_lock(data: bytes | None) -> dict:
    """A dvc.lock's records (empty when there is none). Cached: read it, never change it."""
    return yaml.load(data or b"", Loader=YAML_LOADER) or {}


def inside(path: str, out: str) -> bool:
    """Whether `path` is the output `out` or inside it (dvc.lock's paths are relative, POSIX,
    normalized: a string test, which the report runs tens of thousands of times)."""
    return path == out or path.startswith(out.rstrip("/") + "/")


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


def flat(sections, prefix: str = "") -> dict:
    """Params as dotted keys: dvc.lock records a stage's whole section as a nested dict."""
    out = {}
    for values in sections:
        for key, value in values.items():
            if isinstance(value, dict):
                out |= flat([value], f"{prefix}{key}.")
            else:
                out[f"{prefix}{key}"] = value
    return out


def chain(lock: dict, stage: str) -> tuple[list[str], list[dict]]:
    """The stages whose records in dvc.lock describe the run that made `stage`'s outputs (upstream
    first), and the broken links: where a stage's recorded input is not the output its upstream
    stage last recorded. That stage ran again since, so its record (params included) belongs to
    another run, and so do the records reached only through it."""
    outs = {o["path"]: (name, o.get("md5")) for name, s in lock["stages"].items() for o in s.get("outs", [])}
    order = lineage(lock, stage)
    reached, stale, broken, trusted = {stage}, set(), [], set()
    for name in reversed(order):  # downstream first: every consumer of a stage is judged before it
        if name not in reached or name in stale:
            continue
        trusted.add(name)
        for dep in lock["stages"][name].get("deps", []):
            if dep["path"] not in outs:
                continue
            producer, recorded = outs[dep["path"]]
            if dep.get("md5") == recorded:
                reached.add(producer)
            else:
                stale.add(producer)
                broken.append({"stage": name, "input": dep["path"], "input_md5": dep.get("md5"),
                               "upstream_stage": producer, "upstream_md5": recorded})
    return [s for s in order if s in trusted], broken


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
                        f"recorded {recorded}); rerun `dvc repro -f {producer}` to rewrite it (or, if that run "
                        f"was committed, `git checkout -- {path}`)")
    stages, broken = chain(lock, producer)
    report = {"file": path, "md5": actual, "sha256": hashlib.sha256(content).hexdigest(), "stage": producer,
              "stages": {}, "chain": {"intact": not broken, "broken": broken,
                                      "unverified_stages": [s for s in lineage(lock, producer) if s not in stages]}}
    for name in stages:
        entry = lock["stages"][name]
        report["stages"][name] = {
            "cmd": entry["cmd"],
            "params": flat(entry.get("params", {}).values()),
            "code": {d["path"]: d["md5"] for d in entry.get("deps", []) if d["path"].endswith(".py")},
            "outs": {o["path"]: o["md5"] for o in entry.get("outs", [])},
        }
    for name in stages:  # the validation score of the model upstream, from its run's record
        for out in report["stages"][name]["outs"]:
            if out.startswith("metrics/train/") and (data := read(f"{out}/metrics.json")):
                metrics = json.loads(data)
                # The headline only: the whole record is in run.json. A run committed before run.json
                # has it all in metrics.json (and asking for its run.json would fail as a file missing
                # from the cache would), hence metrics.json first.
                if "best_val_loss" not in metrics:
                    metrics = json.loads(read(f"{out}/run.json") or "{}")
                report["model_score"] = {k: v for k, v in metrics.items() if k.startswith("best_val")}
                report["trained_with"] = {k: metrics[k] for k in TRAINED_WITH if k in metrics}
            init_from = report["stages"][name]["params"].get(f"{name}.init_from")
            if out.startswith("metrics/train/") and init_from:
                record = read(f"{out}/base_model.json")
                report["base_model"] = json.loads(record) if record else {"path": init_from}
    return report


# How the model was trained, from train-lstm's run.json: what no param fixes (precision auto
# chooses by timing; the device and kernel are the machine's).
TRAINED_WITH = ("precision", "device", "lstm_kernel", "tokens_trained")


def format_report(report: dict) -> str:
    version = report["code_version"]
    where = ("the workspace, on commit " if version["workspace"] else "commit ") + str(version["commit"] or "HEAD")
    if version["repo"]:
        where += f" of {version['repo']}"
    if version["experiment"]:
        where += f" (experiment {version['experiment']})"
    lines = [f"{report['file']} (md5 {report['md5']}) was written by stage {report['stage']}; {where}"]
    for link in report["chain"]["broken"]:
        lines.append(f"WARNING: {link['stage']} made its outputs from {link['input']} md5 {link['input_md5']}, but "
                     f"dvc.lock records {link['upstream_stage']}'s {link['input']} as md5 {link['upstream_md5']}, "
                     f"from a run after the one that made it")
    if unverified := report["chain"]["unverified_stages"]:
        lines.append(f"So the records of {', '.join(unverified)} (their params, code and data) are not those of the run "
                     f"that made this file, and are not shown; `dvc repro` makes the file again from them")
    lines += ["code: " + ("as it was for that run" if not version["changed_since_run"] else
                          "changed since that run: " + ", ".join(version["changed_since_run"])), ""]
    if "model_score" in report:
        lines += ["model validation score: " + ", ".join(f"{k} {v:.4f}" for k, v in report["model_score"].items())]
        lines += ["trained with: " + ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}"
                                               for k, v in report.get("trained_with", {}).items()), ""]
    for name, stage in report["stages"].items():
        lines.append(f"{name}: {stage['cmd']}")
        lines += [f"  param {k} = {json.dumps(v)}" for k, v in stage["params"].items()]
        lines += [f"  code  {p} md5 {h}" for p, h in stage["code"].items()]
        lines += [f"  out   {p} md5 {h}" for p, h in stage["outs"].items()]
    if base := report.get("base_model"):
        lines += ["", f"fine-tuned from the base model {base['path']} (sha256 {base.get('sha256', 'not recorded')})"]
        if "val_loss" in base:
            lines.append(f"  its held-out loss here before fine-tuning: {base['val_loss']:.4f}")
        source = base.get("imported_from")
        lines.append(f"  imported from {source['repo']} at {source['rev'] or 'its default branch'}: "
                     f"{source['path']}" if source else
                     "  not brought in by `dvc import`: where it came from is not recorded")
        if "audit" in base and base["audit"]["sha256"] != base.get("sha256"):
            lines.append(f"  WARNING: the file audited there has sha256 {base['audit']['sha256']}: not the base "
                         "model this training used")
        if "audit" in base:
            lines += ["  its own record:"] + ["    " + line if line else "" for line in
                                             format_report(base["audit"]).splitlines()]
        elif "audit_error" in base:
            lines.append(f"  its own record cannot be read: {base['audit_error']}")
    return "\n".join(lines) + "\n"


def audit_file(path: str, rev: str | None = None, repo: str | None = None, *, commit: str | None = None,
               read=None) -> dict:
    """The audit report of `path` in the workspace, at `rev` (a git revision or an experiment's
    name), or in another clone `repo`; with the version of the code it names. A caller that
    reads many revisions (the report) passes `rev`'s `commit`, and `read(path)` for its files."""
    if repo:
        check_repo(repo, rev)
    commit = commit or (resolve_rev(rev) if rev and not repo else rev)
    read = read or (lambda p: read_bytes(p, commit, repo))
    where = (f" in {repo}" if repo else "") + (f" at {rev}" if rev else "")
    content = read(path)
    if content is None:
        raise UserError(f"{path}: no such file{where}")
    lock_bytes = read("dvc.lock")
    if lock_bytes is None:
        raise UserError(f"{path} was produced by no recorded run: there is no dvc.lock{where}")
    report = audit(path, parse_lock(lock_bytes), content, read)
    code = {p: h for stage in report["stages"].values() for p, h in stage["code"].items()}
    changed = sorted(p for p, h in code.items() if hashlib.md5(read(p) or b"").hexdigest() != h)
    report["code_version"] = {
        "commit": commit or (None if repo else git("rev-parse", "HEAD")), "repo": repo,
        "experiment": rev if commit and rev != commit and not repo else None,
        "workspace": commit is None and repo is None, "changed_since_run": changed}
    source = report.get("base_model", {}).get("imported_from")
    if source:  # the pretraining, audited in the repo the base model came from
        try:
            pretraining = audit_file(source["path"], source["rev"], source["repo"])
            report["base_model"]["audit"] = pretraining
            report["base_model"]["is_the_imported_file"] = pretraining["sha256"] == report["base_model"].get("sha256")
        except UserError as err:
            report["base_model"]["audit_error"] = str(err)
    return report


def main(argv=None, prog=None) -> None:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="examples:\n" + __doc__.split("\n\n")[1])
    parser.add_argument("path", help="a file a stage wrote, e.g. metrics/sample/char/samples.txt")
    parser.add_argument("--rev", help="a git revision or DVC experiment name (default: the workspace)")
    parser.add_argument("--repo", help="another clone of the project (a path or git URL); DVC-tracked files "
                                       "come from its DVC remote")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    report = audit_file(args.path, args.rev, args.repo)
    print(json.dumps(report, indent=2) if args.json else format_report(report), end="" if not args.json else "\n")

