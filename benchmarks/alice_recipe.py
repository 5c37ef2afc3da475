"""The default Alice run's training recipe: chosen on a dev slice, then reported once on the tail.

    python benchmarks/alice_recipe.py trial '{"ema": null}'   # one candidate on the dev slice (~10 min)
    python benchmarks/alice_recipe.py ablation                 # the defaults, then each part changed (~45 min)

Both run the product: train-lstm by `dvc repro`, in a copy of the project, its params.yaml's
train-lstm section with the changes given, Alice (eBook 11) from ../shared/corpora as a local
mirror, and read the stage's own best val_loss.
- trial: the dev slice. The text is Alice's training head alone (the cleaned book without the
  held-out tail the default run keeps back), given to the pipeline as a text of your own, so
  `window` holds back that head's last 10%: the dev slice. Candidates are compared there and
  nowhere else; each trial is appended to "alice_recipe" -> "dev_trials" in --out.
- ablation: the held-out tail, with the chosen defaults (params.yaml as committed) and with each
  new part of the recipe changed in turn (ABLATIONS), and the recipe before it (BEFORE): under
  "alice_recipe" -> "held_out" in --out. Every other key of --out is kept.
"""

import argparse
import json
import sys
from pathlib import Path

import yaml

from lstm_textgen.files import write_json
from lstm_textgen.windows import split_tail
from run import benchmark_env, copy_project, machine, measured, set_params, work_folder

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT.parent / "shared" / "corpora"
DEV_TEXT = "alice-training-head.txt"

# train-lstm as it was before issue 33: Keras' loop in float32, a constant rate, the raw weights.
BEFORE = {"ema": None, "clipnorm": None, "unigram_bias": False, "precision": "float32", "max_tokens": None,
          "warmup_tokens": 0, "decay_after_tokens": None, "half_life_tokens": None, "cooldown": 0.0}
# Each new part changed, one at a time, the rest as params.yaml has it: the part the defaults
# took off, and those they left off on.
ABLATIONS = {"no weight average": {"ema": None}, "mixed bfloat16": {"precision": "mixed_bfloat16"},
             "clipping and the bias start": {"clipnorm": 1.0, "unigram_bias": True}}


def project_with(work: Path, name: str, env: dict, dev: bool) -> Path:
    """A copy of the project whose data stages have run on Alice, or on Alice's training head (`dev`)."""
    project = copy_project(work / name, env)
    if dev:
        full = project_with(work, f"{name}-full-text", env, dev=False)
        params = yaml.safe_load((project / "params.yaml").read_text())
        text = (full / "data/clean/corpus.txt").read_text(encoding="utf-8")
        head, _ = split_tail(text, params["window"]["val_fraction"])
        (project / DEV_TEXT).write_text(head, encoding="utf-8")
        set_params(project, **{"download-gutenberg": {"book_ids": [], "texts": [DEV_TEXT]}})
    measured(["dvc", "repro", "window"], project, env, work / f"{name}-data.log")
    return project


def train(project: Path, env: dict, log: Path, changes: dict) -> dict:
    """train-lstm with `changes` to its params (and window's, as "window.step"), by `dvc repro`;
    its run.json."""
    defaults = yaml.safe_load((ROOT / "params.yaml").read_text())
    window = {k.split(".", 1)[1]: v for k, v in changes.items() if k.startswith("window.")}
    train = {k: v for k, v in changes.items() if not k.startswith("window.")}
    set_params(project, **{"train-lstm": defaults["train-lstm"] | train, "window": defaults["window"] | window})
    cost = measured(["dvc", "repro", "train-lstm"], project, env, log)
    metrics = json.loads((project / "metrics/train/char/run.json").read_text())
    keep = ("best_val_loss", "best_epoch", "epochs_run", "train_seconds", "tokens_trained", "tokens_per_second",
            "precision", "lstm_kernel")
    return {"changes": changes, **{k: metrics.get(k) for k in keep}, "wall_seconds": round(cost.seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["trial", "ablation"])
    parser.add_argument("changes", nargs="?", default="{}", help="trial: train-lstm params to change, as JSON")
    parser.add_argument("--out", type=Path, default=ROOT / "metrics/benchmarks.json")
    parser.add_argument("--keep", action="store_true", help="keep the temporary projects")
    parser.add_argument("--corpora", type=Path, default=CORPORA, help="holds pg11.txt (default: %(default)s)")
    parser.add_argument("--only", nargs="+", choices=["defaults", *ABLATIONS, "before issue 33"],
                        help="ablation: these rows alone, the file's other rows kept")
    args = parser.parse_args()
    if not (args.corpora / "pg11.txt").is_file():
        sys.exit(f"{args.corpora} lacks pg11.txt (Alice): point --corpora at the shared corpora")
    env = benchmark_env() | {"GUTENBERG_MIRROR": str(args.corpora.resolve())}
    with work_folder("lstm-textgen-alice-", args.keep, "the projects and their logs") as work:
        if args.what == "trial":
            project = project_with(work, "dev", env, dev=True)
            result = train(project, env, work / "train.log", json.loads(args.changes)) | {"machine": machine()}
            results = json.loads(args.out.read_text()) if args.out.exists() else {}
            recipe = results.setdefault("alice_recipe", {})
            recipe["dev_trials"] = recipe.get("dev_trials", []) + [result]
            write_json(args.out, results)
            print(json.dumps(result))
            return
        project = project_with(work, "held-out", env, dev=False)
        runs = {}
        for name, changes in [("defaults", {}), *ABLATIONS.items(), ("before issue 33", BEFORE)]:
            if args.only is None or name in args.only:
                print(f"alice recipe: {name}…", file=sys.stderr)
                runs[name] = train(project, env, work / f"{name}.log", changes)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    held_out = results.setdefault("alice_recipe", {}).get("held_out", {})
    results["alice_recipe"]["held_out"] = {"machine": machine(), "runs": held_out.get("runs", {}) | runs}
    write_json(args.out, results)
    for name, run in runs.items():
        print(f"{name:<20}{run['best_val_loss']:.4f}  epoch {run['best_epoch']} of {run['epochs_run']}, "
              f"{run['train_seconds']:.0f} s, {run['tokens_per_second']:,} tokens/s, {run['precision']}")


if __name__ == "__main__":
    main()
