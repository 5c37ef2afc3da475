"""report: every experiment's text beside the params that made it, on one page.

    lstm-textgen report                        # writes report.html: the workspace, HEAD and its experiments
    lstm-textgen report --num 5 -o runs.html   # the last 5 commits and their experiments
    lstm-textgen report --serve                # the same page at http://127.0.0.1:8000, with a generate box
    lstm-textgen report --serve --port 0       # on a free port (the address is printed)

The page holds, for each run: the params that differ between the runs (not all of them), the
headline scores, when it ran and on what, every sample text (the seed set apart from what the
model wrote), its audit (what `lstm-textgen audit --json` reports) and its loss curves. It
carries its data, script and style inside it: it opens offline, from a file.

Everything comes from DVC's records: the experiments from DVC's Python API (Repo.experiments),
and each run's dvc.lock, metrics, samples and loss tables from git at its commit. The project keeps no records
of its own. --serve adds a box that streams text from any listed run's model, as
`lstm-textgen generate` does, with the same seed and settings giving the same text.
"""

from __future__ import annotations

import argparse
import csv
import functools
import html
import io
import json
import math
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from lstm_textgen.audit import audit_file, flat, git, parse_lock, read_bytes
from lstm_textgen.branches import BRANCHES, branch_spec
from lstm_textgen.errors import UserError
from lstm_textgen.files import write_text
from lstm_textgen.generate import DEFAULT_TEMPERATURE, check_settings, generate
from lstm_textgen.sampling import read_char_samples
from lstm_textgen.text_measures import headline as sample_headline
from lstm_textgen.training import headline as train_headline


class GitFiles:
    """Files at any commit, through one `git cat-file --batch`: a report reads a dozen files of
    each of many commits, and a `git show` each would take most of its time."""

    def __init__(self):
        self.proc = subprocess.Popen(["git", "cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.read = functools.cache(self._read)  # a commit's files never change: the audits reread dvc.lock

    def _read(self, commit: str, path: str) -> bytes | None:
        self.proc.stdin.write(f"{commit}:{path}\n".encode())
        self.proc.stdin.flush()
        header = self.proc.stdout.readline().split()
        if header[-1] == b"missing" or len(header) != 3:
            return None
        content = self.proc.stdout.read(int(header[2]) + 1)[:-1]  # the object, then a newline
        return content if header[1] == b"blob" else None

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def read_at(files: GitFiles | None, commit: str | None, path: str) -> bytes | None:
    """A file at `commit`, or in the workspace (commit None)."""
    if commit is None:
        try:
            return Path(path).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return None
    return files.read(commit, path)


def runs(num: int) -> list[dict]:
    """The workspace, then each of the last `num` commits (HEAD, HEAD~1, …) followed by its
    experiments, as DVC lists them: {"id" (the commit, unique), "name", "kind", "rev" (what
    --rev takes: the experiment's name, or its commit when the name is not unique), "commit",
    "created"}."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    if subprocess.run(["git", "rev-parse", "--verify", "--quiet", "HEAD"], capture_output=True).returncode:
        raise UserError("this project has no commit yet, so no run is recorded: `dvc repro`, then commit "
                        "(`git add -A && git commit`)")
    commits = git("rev-list", "--first-parent", f"--max-count={num}", "HEAD").split()  # as DVC's num counts
    try:
        with Repo() as repo:
            experiments = repo.experiments.ls(rev="HEAD", num=num)
    except DvcException as err:
        raise UserError(f"cannot list the experiments: {err}")
    branch = git("rev-parse", "--abbrev-ref", "HEAD")
    listed = [{"id": "workspace", "name": "workspace", "kind": "workspace", "rev": None, "commit": None}]
    for number, commit in enumerate(commits):
        name = branch if number == 0 and branch != "HEAD" else commit[:7]
        listed.append({"id": commit, "name": name, "kind": "commit", "rev": commit, "commit": commit})
        listed += [{"id": sha, "name": exp, "kind": "experiment", "rev": exp, "commit": sha, "baseline": name}
                   for exp, sha in experiments.get(commit, []) if sha]
    # a name two experiments share, or a branch or tag also has, would make --rev name another run
    taken = set(git("for-each-ref", "--format=%(refname:short)", "refs/heads", "refs/tags").split())
    names = [run["name"] for run in listed if run["kind"] == "experiment"]
    for run in listed:
        if run["kind"] == "experiment" and (names.count(run["name"]) > 1 or run["name"] in taken):
            run["rev"] = run["commit"]
    dates = dict(line.split(" ", 1) for line in git("log", "--no-walk=unsorted", "--format=%H %cI",
                                                     *[run["commit"] for run in listed[1:]]).splitlines())
    for run in listed:
        run["created"] = dates.get(run["commit"])
    return listed


def load_json(data: bytes | None) -> dict:
    try:
        return json.loads(data) if data else {}
    except ValueError:
        return {}


def finite(value) -> float | None:
    """A number the page can carry: JSON has no NaN or infinity (a diverged run logs them)."""
    value = float(value)
    return value if math.isfinite(value) else None


def loss_rows(data: bytes | None) -> list[dict]:
    """train-lstm's loss.tsv: epoch, train, validation."""
    if not data:
        return []
    return [{k: finite(v) for k, v in row.items()} for row in csv.DictReader(io.StringIO(data.decode()), delimiter="\t")]


def scores_of(branch: str, trained: dict, sampled: dict) -> dict:
    """The headline scores, as DVC lists them; from a run made before they had their own files
    (one flat metrics.json of everything), the same scores picked out of it."""
    if branch not in trained:
        trained = train_headline(trained, branch)
    if branch not in sampled:
        try:
            sampled = sample_headline(sampled, branch)
        except KeyError:
            sampled = {}
    return {k: finite(v) for k, v in {**trained.get(branch, {}), **sampled.get(branch, {})}.items()
            if isinstance(v, (int, float))}


def samples(branch: str, text: bytes | None, provenance: dict) -> list[dict]:
    """Each sample text as {"seed", "generated"}: the seed is what the model was given."""
    if not text:
        return []
    text = text.decode("utf-8")
    if branch == "char":
        return [{"seed": s["seed"], "generated": s["generated"]} for s in read_char_samples(text)]
    seeds = provenance.get("seeds", [])
    out = []
    for line, seed in zip(text.splitlines(), seeds + [None] * len(text.splitlines())):
        words = line.split(" ")
        n = len(seed["words"]) if seed else 0
        out.append({"seed": " ".join(words[:n]), "generated": " ".join(words[n:])})
    return out


def branch_record(run: dict, branch: str, files: GitFiles | None) -> dict | None:
    """What one run holds of a branch: scores, how it ran, samples, audit and curves; None when
    that run never sampled the branch."""
    spec = branch_spec(branch)
    read = lambda path: read_at(files, run["commit"], str(path))  # noqa: E731
    text, trained = read(spec["sample"] / "samples.txt"), read(spec["live"] / "metrics.json")
    if text is None and trained is None:
        return None
    trained = load_json(trained)
    scores = scores_of(branch, trained, load_json(read(spec["sample"] / "metrics.json")))
    ran = load_json(read(spec["live"] / "run.json")) or trained  # before run.json, metrics.json held it all
    sample_path = f"{spec['sample'].as_posix()}/samples.txt"

    def from_git_or_dvc(path: str) -> bytes | None:  # a file git lacks at that commit is a DVC output
        content = files.read(run["commit"], path)
        return read_bytes(path, run["commit"], from_git=False) if content is None else content

    try:
        reader = None if run["commit"] is None else from_git_or_dvc
        audit = audit_file(sample_path, run["rev"], commit=run["commit"], read=reader) if text else None
    except UserError as err:
        audit = {"error": str(err)}
    return {"scores": scores,
            "ran_on": {k: ran[k] for k in ("device", "lstm_kernel", "precision", "train_seconds") if k in ran},
            "samples": samples(branch, text, load_json(read(spec["sample"] / "provenance.json"))),
            "audit": audit, "audit_command": f"lstm-textgen audit {sample_path}"
                                             + (f" --rev {run['rev']}" if run["rev"] else "") + " --json",
            "curves": loss_rows(read(spec["live"] / "loss.tsv"))}


def params_of(run: dict, files: GitFiles | None) -> dict:
    """Every param each stage ran with, as dvc.lock records it: {"train-lstm.units": 256, …}."""
    lock = parse_lock(read_at(files, run["commit"], "dvc.lock"))
    return flat(stage.get("params", {}).get("params.yaml", {}) for stage in lock.get("stages", {}).values())


def differing(params: list[dict]) -> list[str]:
    """The params whose values are not the same in every run (missing counts as a value)."""
    keys = sorted({k for p in params for k in p})
    return [k for k in keys if len({json.dumps(p.get(k, "—"), sort_keys=True) for p in params}) > 1]


def collect(num: int = 1) -> dict:
    """The page's data, from DVC's records."""
    started = time.monotonic()
    listed = runs(num)
    files = GitFiles()
    try:
        for run in listed:
            run["params"] = params_of(run, files)
            run["branches"] = {b: rec for b in BRANCHES if (rec := branch_record(run, b, files)) is not None}
    finally:
        files.close()
    changed = differing([r["params"] for r in listed if r["params"]])  # a commit before any run: left out
    for run in listed:  # a param a run does not have is left out: the page shows "—", not null
        run["params"] = {k: run["params"][k] for k in changed if k in run["params"]}
    return {"project": Path.cwd().name, "made": time.strftime("%Y-%m-%d %H:%M:%S"), "runs": listed,
            "differing_params": changed, "seconds": round(time.monotonic() - started, 2)}


def page(data: dict, served: bool = False) -> str:
    """The whole page: its data as JSON, its script and style inline."""
    # Inside <script> the HTML parser looks for "</script" and "<!--", whatever the JSON says:
    # no "<" may reach it (nor ">" or "&"), so each is written as JSON's \u escape.
    payload = json.dumps({**data, "served": served, "temperature": DEFAULT_TEMPERATURE}, ensure_ascii=False,
                         allow_nan=False)
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    parts = {"TITLE": html.escape(f"{data['project']}: lstm-textgen report"), "STYLE": STYLE, "SCRIPT": SCRIPT,
             "DATA": payload}
    return re.sub(r"@(TITLE|STYLE|SCRIPT|DATA)@", lambda m: parts[m[1]], PAGE)  # one pass: never into what it put


def page_data(text: str) -> dict:
    """The data a page carries (for tests and benchmarks)."""
    return json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S)[1])


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<link rel="icon" href="data:,">
<title>@TITLE@</title>
<style>@STYLE@</style>
</head>
<body>
<header><h1>@TITLE@</h1><p id="made"></p></header>
<section><h2>Runs</h2><p class="hint">Tick runs to compare their texts and curves. Only the params that differ
between the runs are shown.</p><div class="scroll"><table id="runs"></table></div></section>
<nav id="branches"></nav>
<section><h2>Samples</h2><p class="hint">The seed (grey) is what the model was given; the rest it wrote. Click a
sample for its audit.</p><div id="samples"></div></section>
<section id="generate-box" hidden><h2>Generate</h2><form id="generate">
<label>run <select name="run"></select></label>
<label>prompt <input name="prompt" size="40" placeholder="empty: a validation text, as the sample stage does"></label>
<label>length <input name="length" size="5"></label>
<label>temperature <input name="temperature" size="4"></label>
<label>top-k <input name="top_k" size="4"></label>
<label>top-p <input name="top_p" size="4"></label>
<label>seed <input name="seed" size="6" value="1"></label>
<button>Generate</button></form>
<pre id="generated" class="text"></pre></section>
<section><h2>Audit</h2><p class="hint" id="audit-command">Click a sample.</p><pre id="audit"></pre></section>
<section><h2>Loss curves</h2><div id="curves"></div></section>
<script type="application/json" id="data">@DATA@</script>
<script>@SCRIPT@</script>
</body>
</html>
"""

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
.hint, #made { color: #666; font-size: 0.9em; }
.scroll { overflow: auto; max-height: 21em; }  /* fifty runs still leave the texts in view */
th { position: sticky; top: 0; background: white; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
nav button { margin-right: 0.5em; padding: 0.3em 1em; }
nav button.on { font-weight: bold; background: #dde8f5; }
#samples { display: flex; gap: 1em; align-items: flex-start; overflow-x: auto; }
.column { flex: 1 1 0; min-width: 18em; }
.column h3 { font-size: 1em; margin: 0.4em 0; }
.sample { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 0.85em; border: 1px solid #ddd;
          padding: 0.5em; margin-bottom: 0.6em; cursor: pointer; }
.sample.chosen { border-color: #2a6fb0; box-shadow: 0 0 0 1px #2a6fb0; }
.seed { color: #888; background: #f3f3f3; }
.text { white-space: pre-wrap; font-family: ui-monospace, monospace; }
#audit { font-size: 0.8em; max-height: 30em; overflow: auto; background: #f7f7f7; padding: 0.5em; }
.error { color: #b00020; }
form label { margin-right: 0.8em; }
"""

# Plain DOM and SVG: nothing to download, so the page works from a file with no network.
SCRIPT = r"""
const data = JSON.parse(document.getElementById("data").textContent);
const runs = data.runs;
const el = (tag, attrs = {}, ...kids) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const kid of kids) node.append(kid);
  return node;
};
const score = (v) => typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(4)) : "—";
const param = (v) => v === undefined ? "—" : JSON.stringify(v);
let branch = runs.some((r) => r.branches.char) ? "char" : "headlines";
const chosen = new Set(runs.filter((r) => r.branches[branch]).slice(0, 2).map((r) => r.id));
let audited = null;

function scoreKeys(b) {
  const keys = [];
  for (const r of runs) for (const k of Object.keys((r.branches[b] || {}).scores || {})) if (!keys.includes(k)) keys.push(k);
  return keys;
}

function drawRuns() {
  const table = document.getElementById("runs");
  table.replaceChildren();
  const branches = ["char", "headlines"].filter((b) => runs.some((r) => r.branches[b]));
  const head = el("tr", {}, el("th", {}, ""), el("th", {}, "run"));
  for (const b of branches) for (const k of scoreKeys(b)) head.append(el("th", {class: "score"}, `${b} ${k}`));
  for (const p of data.differing_params) head.append(el("th", {class: "param"}, p));
  head.append(el("th", {}, "kind"), el("th", {}, "created"), el("th", {}, "ran on"));
  table.append(head);
  for (const r of runs) {
    const box = el("input", {type: "checkbox", "data-run": r.id});
    box.checked = chosen.has(r.id);
    box.addEventListener("change", () => { box.checked ? chosen.add(r.id) : chosen.delete(r.id); drawSamples(); drawCurves(); });
    const on = Object.entries(r.branches).map(([b, rec]) => {
      const o = rec.ran_on || {};
      return o.device ? `${b}: ${o.device} ${o.precision || ""}, ${Math.round(o.train_seconds || 0)} s` : "";
    }).filter(Boolean).join("; ");
    const row = el("tr", {class: "run", "data-run": r.id}, el("td", {}, box), el("td", {}, r.name));
    for (const b of branches) for (const k of scoreKeys(b)) row.append(el("td", {class: "num score"}, score(((r.branches[b] || {}).scores || {})[k])));
    for (const p of data.differing_params) row.append(el("td", {class: "param", "data-param": p}, param(r.params[p])));
    row.append(el("td", {}, r.kind), el("td", {}, (r.created || "—").replace("T", " ")), el("td", {}, on || "—"));
    table.append(row);
  }
}

function drawBranches() {
  const nav = document.getElementById("branches");
  nav.replaceChildren();
  for (const b of ["char", "headlines"]) {
    if (!runs.some((r) => r.branches[b])) continue;
    const button = el("button", {class: b === branch ? "on" : "", "data-branch": b}, b);
    button.addEventListener("click", () => { branch = b; audited = null; drawBranches(); drawSamples(); drawCurves(); drawAudit(); });
    nav.append(button);
  }
}

function drawSamples() {
  const box = document.getElementById("samples");
  box.replaceChildren();
  for (const r of runs.filter((r) => chosen.has(r.id))) {
    const rec = r.branches[branch];
    const column = el("div", {class: "column", "data-run": r.id}, el("h3", {}, r.name));
    if (!rec || !rec.samples.length) column.append(el("p", {class: "hint"}, `no ${branch} samples in this run`));
    (rec ? rec.samples : []).forEach((s, i) => {
      const node = el("div", {class: "sample", "data-run": r.id, "data-index": i},
                      el("span", {class: "seed"}, s.seed), branch === "headlines" ? " " : "", el("span", {class: "generated"}, s.generated));
      if (audited === r.id) node.classList.add("chosen");
      node.addEventListener("click", () => { audited = r.id; drawSamples(); drawAudit(); });
      column.append(node);
    });
    box.append(column);
  }
}

function drawAudit() {
  const pre = document.getElementById("audit"), command = document.getElementById("audit-command");
  const rec = audited && (runs.find((r) => r.id === audited) || {branches: {}}).branches[branch];
  if (!rec) { pre.textContent = ""; command.textContent = "Click a sample."; return; }
  command.textContent = `${runs.find((r) => r.id === audited).name}: what \`${rec.audit_command}\` reports`;
  pre.className = rec.audit && rec.audit.error ? "error" : "";
  pre.textContent = rec.audit && rec.audit.error ? rec.audit.error : JSON.stringify(rec.audit, null, 2);
}

// One colour per run; train is a solid line with round marks, validation a dashed line with
// square marks, and the legend names both: told apart by more than the dash.
const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"];
function drawCurves() {
  const box = document.getElementById("curves");
  box.replaceChildren();
  const series = [];
  runs.filter((r) => chosen.has(r.id) && r.branches[branch]).forEach((r, i) => {
    for (const [split, dash, mark] of [["train", "", "circle"], ["validation", "6 4", "square"]]) {
      const points = r.branches[branch].curves.map((row) => [row.epoch, row[split]]).filter(([, y]) => Number.isFinite(y));
      // each run's marks and line a little finer than the one before: a run whose curve is the
      // same as another's (the same first epoch, say) still shows its colour around it
      if (points.length) series.push({label: `${r.name} ${split}`, colour: COLOURS[i % COLOURS.length], dash, mark, points, size: 5.5 - 1.5 * (i % 3)});
    }
  });
  if (!series.length) { box.append(el("p", {class: "hint"}, "no loss curves in the chosen runs")); return; }
  const W = 640, H = 320, L = 64, R = 16, T = 16, B = 48;
  const xs = series.flatMap((s) => s.points.map((p) => p[0])), ys = series.flatMap((s) => s.points.map((p) => p[1]));
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const xpad = x0 === x1 ? 0.5 : (x1 - x0) * 0.04; x0 -= xpad; x1 += xpad;  // marks clear of the axes; one epoch mid-chart
  const pad = (y1 - y0 || Math.abs(y0) || 1) * 0.1; y0 -= pad; y1 += pad;
  const X = (x) => L + (x - x0) / (x1 - x0) * (W - L - R), Y = (y) => T + (y1 - y) / (y1 - y0) * (H - T - B);
  const NS = "http://www.w3.org/2000/svg";
  const svg = (tag, attrs, text) => { const n = document.createElementNS(NS, tag); for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v); if (text !== undefined) n.textContent = text; return n; };
  const chart = svg("svg", {width: W, height: H, viewBox: `0 0 ${W} ${H}`, id: "curve-chart"});
  chart.append(svg("rect", {x: 0, y: 0, width: W, height: H, fill: "white"}));
  for (let i = 0; i <= 4; i++) {
    const y = y0 + (y1 - y0) * i / 4;
    chart.append(svg("line", {x1: L, x2: W - R, y1: Y(y), y2: Y(y), stroke: "#eee"}));
    chart.append(svg("text", {x: L - 6, y: Y(y) + 4, "text-anchor": "end", "font-size": 11}, y.toFixed(2)));
  }
  const epochs = [...new Set(xs)].sort((a, b) => a - b), every = Math.ceil(epochs.length / 10);
  epochs.filter((e, i) => i % every === 0).forEach((e) => chart.append(svg("text", {x: X(e), y: H - B + 16, "text-anchor": "middle", "font-size": 11}, e)));
  chart.append(svg("line", {x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: "#888"}));
  chart.append(svg("line", {x1: L, x2: L, y1: T, y2: H - B, stroke: "#888"}));
  const unit = branch === "char" ? "nats per character" : "nats per word";
  chart.append(svg("text", {x: (L + W - R) / 2, y: H - 8, "text-anchor": "middle", "font-size": 12}, "epoch"));
  chart.append(svg("text", {x: 14, y: (T + H - B) / 2, "text-anchor": "middle", "font-size": 12, transform: `rotate(-90 14 ${(T + H - B) / 2})`}, `loss (${unit})`));
  for (const s of series) {
    chart.append(svg("polyline", {points: s.points.map(([x, y]) => `${X(x)},${Y(y)}`).join(" "), fill: "none", stroke: s.colour, "stroke-width": s.size / 2, "stroke-dasharray": s.dash}));
    for (const [x, y] of s.points) chart.append(s.mark === "circle" ? svg("circle", {class: "mark", cx: X(x), cy: Y(y), r: s.size, fill: s.colour})
                                                                    : svg("rect", {class: "mark", x: X(x) - s.size, y: Y(y) - s.size, width: 2 * s.size, height: 2 * s.size, fill: s.colour}));
  }
  box.append(chart);
  const legend = el("p", {class: "legend"});
  for (const s of series) legend.append(el("span", {style: `color:${s.colour}; margin-right:1.2em`}, `${s.mark === "circle" ? "● ——" : "■ - -"} ${s.label}`));
  box.append(legend);
}

function setUpGenerate() {
  if (!data.served) return;
  document.getElementById("generate-box").hidden = false;
  const form = document.getElementById("generate"), out = document.getElementById("generated");
  form.temperature.value = data.temperature;
  for (const r of runs) for (const b of Object.keys(r.branches)) form.run.append(el("option", {value: `${r.id}|${b}`}, `${r.name} (${b})`));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const [run, b] = form.run.value.split("|");
    const body = {run, branch: b};
    for (const k of ["prompt", "length", "temperature", "top_k", "top_p", "seed"]) body[k] = form[k].value;
    out.className = "text"; out.textContent = "";
    const response = await fetch("generate", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    if (!response.ok) { out.className = "text error"; out.textContent = await response.text(); return; }
    const reader = response.body.getReader(), decoder = new TextDecoder();
    for (;;) {
      const {done, value} = await reader.read();
      if (done) break;
      out.textContent += decoder.decode(value, {stream: true});
    }
    out.dataset.done = "1";
  });
}

document.getElementById("made").textContent = `made ${data.made} from DVC's records in ${data.seconds} s; ${runs.length} runs`;
drawSamples(); performance.mark("first-text");  // what a reader waits for: benchmarks/report.py times it
drawRuns(); drawBranches(); drawCurves(); drawAudit(); setUpGenerate();
"""


# The generate box's longest text: the CLI takes any length, but a served page answers anyone
# who reaches it, so one request may not run for minutes.
MAX_LENGTH = 10_000
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve(data: dict, host: str, port: int) -> None:
    """The page, and POST /generate: text streamed from a listed run's model."""
    from flask import Flask, Response, request
    from werkzeug.serving import make_server

    from lstm_textgen.generate import Model

    app = Flask("lstm-textgen report")
    if host in LOOPBACK:  # a web page elsewhere whose name points here (DNS rebinding) is answered 400
        app.config["TRUSTED_HOSTS"] = list(LOOPBACK)
    by_id = {run["id"]: run for run in data["runs"]}
    models: dict[tuple, Model] = {}
    loading: dict[tuple, threading.Lock] = {}
    served_page = page(data, served=True)

    def model(run: dict, branch: str) -> Model:
        key = (run["id"], branch)
        with loading.setdefault(key, threading.Lock()):  # one load per model; others are served meanwhile
            if key not in models:
                models[key] = Model(branch, run["rev"])
            return models[key]

    @app.get("/")
    def index():
        return Response(served_page, mimetype="text/html")

    @app.post("/generate")
    def generate_text():
        try:
            # JSON only: a form another site posts here cannot be JSON without the browser asking
            # first (CORS), which this server never allows
            form = request.get_json(silent=True) if request.is_json else None
            if not isinstance(form, dict):
                raise UserError("send the settings as a JSON object (Content-Type: application/json)")
            run, branch, prompt, settings = checked_request(form, by_id)
            stop = threading.Event()
            chunks = streamed(lambda on_token: generate_until(stop, prompt, model(run, branch), on_token, settings),
                              stop)
            first = next(chunks)  # the prompt; or the one-line error, before any text is sent
        except UserError as err:
            return Response(f"error: {err}\n", status=400, mimetype="text/plain")
        except Exception as err:  # noqa: BLE001 (a page shows one line, never a stack trace)
            return Response(f"error: {type(err).__name__}: {err}\n", status=500, mimetype="text/plain")
        return Response(prepend(first, chunks), mimetype="text/plain; charset=utf-8",
                        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})

    server = make_server(host, port, app, threaded=True)  # a port taken or a wrong --host: werkzeug says so, exit 1
    print(f"serving the report of {len(data['runs'])} runs at http://{host}:{server.server_port}/ (Ctrl-C stops)",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


def checked_request(form: dict, by_id: dict) -> tuple[dict, str, str | None, dict]:
    """The run, branch, prompt and settings a generate request names, each checked as the CLI
    checks it."""
    run, branch, prompt = form.get("run"), form.get("branch", "char"), form.get("prompt") or None
    if not isinstance(run, str) or run not in by_id:
        raise UserError(f"unknown run {run!r}; the runs are {', '.join(r['name'] for r in by_id.values())}")
    run = by_id[run]
    if not isinstance(branch, str) or branch not in run["branches"]:
        raise UserError(f"run {run['name']} has no {branch!r} model; its branches: {', '.join(run['branches'])}")
    if prompt is not None and not isinstance(prompt, str):
        raise UserError("the prompt must be text")
    settings = settings_of(form)
    check_settings(settings["length"] or 1, settings["temperature"], settings["top_k"], settings["top_p"], 1,
                   settings["seed"])
    if settings["length"] is not None and settings["length"] > MAX_LENGTH:
        raise UserError(f"--length {settings['length']} must be at most {MAX_LENGTH:,} here (the CLI takes more)")
    return run, branch, prompt, settings


def settings_of(form: dict) -> dict:
    """generate()'s settings from the form's text fields; a field that is no number is named."""
    def number(name, kind, flag):
        value = form.get(name)
        if value in (None, ""):
            return None
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise UserError(f"{flag} {value!r} must be {'a whole number' if kind is int else 'a number'}")
    settings = {"length": number("length", int, "--length"), "temperature": number("temperature", float, "--temperature"),
                "top_k": number("top_k", int, "--top-k"), "top_p": number("top_p", float, "--top-p"),
                "seed": number("seed", int, "--seed")}
    settings["temperature"] = DEFAULT_TEMPERATURE if settings["temperature"] is None else settings["temperature"]
    return settings


class Stopped(Exception):
    """The reader went away: the text is not wanted any more."""


def generate_until(stop: threading.Event, prompt, model, on_token, settings: dict) -> None:
    def send(text):
        if stop.is_set():
            raise Stopped
        on_token(text)
    try:
        generate(prompt, model=model, on_token=send, **settings)
    except Stopped:
        pass


def streamed(run_with, stop: threading.Event):
    """Iterate the chunks `run_with(on_token)` emits as it runs in a thread; its error, if any,
    is raised where the next chunk would be. Closing the iterator (the server does, when the
    reader goes away) sets `stop`, which ends the thread at its next token."""
    chunks: queue.Queue = queue.Queue()
    done = object()

    def work():
        try:
            run_with(chunks.put)
        except BaseException as err:  # noqa: BLE001 (handed to the reader)
            chunks.put(err)
        chunks.put(done)

    threading.Thread(target=work, daemon=True).start()
    try:
        while (item := chunks.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def prepend(first, rest):
    yield first
    try:
        yield from rest
    except UserError as err:
        yield f"\nerror: {err}\n"
    finally:
        rest.close()


def main(argv=None, prog=None) -> None:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="examples:\n" + __doc__.split("\n\n")[1])
    parser.add_argument("-o", "--out", type=Path, default=Path("report.html"), help="the page (default report.html)")
    parser.add_argument("--num", type=int, default=1, help="how many commits back from HEAD, each with its "
                                                           "experiments (default 1: HEAD)")
    parser.add_argument("--serve", action="store_true", help="serve the page, with a box to generate text")
    parser.add_argument("--host", default="127.0.0.1", help="--serve's address (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="--serve's port (default 8000; 0: a free one)")
    args = parser.parse_args(argv)
    if args.num < 1:
        raise UserError(f"--num {args.num} must be a whole number >= 1")
    if not (0 <= args.port <= 65535):
        raise UserError(f"--port {args.port} must be between 0 and 65535")
    if not Path("dvc.yaml").is_file():
        raise UserError("no dvc.yaml here: run `lstm-textgen report` in the project's folder")
    data = collect(args.num)
    if args.serve:
        serve(data, args.host, args.port)
        return
    write_text(args.out, page(data))
    print(f"wrote {args.out}: {len(data['runs'])} runs, {len(data['differing_params'])} params that differ, "
          f"in {data['seconds']} s", file=sys.stderr)
