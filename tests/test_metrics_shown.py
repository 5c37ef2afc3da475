"""What `dvc metrics show` and `dvc exp show` list: the headline scores only, each in a short
column of its own (nested under its branch's name), before the params. The rest of each run's
record is in run.json beside its metrics.json, and the data stages' counts stay committed
outputs that no table lists."""

import csv
import io
import json

import pytest
import yaml

from conftest import sh

HEADLINE = {"metrics/train/char/metrics.json": {"char": ["val_loss", "val_bits_per_char", "val_perplexity"]},
            "metrics/sample/char/metrics.json": {"char": ["known_word_share", "distinct_3"]},
            "metrics/train/headlines/metrics.json": {"headlines": ["val_loss", "val_bits_per_word", "val_perplexity"]},
            "metrics/sample/headlines/metrics.json": {"headlines": ["distinct_2", "copied_share"]}}
COLUMNS = {f"{branch}.{key}" for keys in HEADLINE.values() for branch, names in keys.items() for key in names}
DATA_COUNTS = ["metrics/corpus.json", "metrics/vocab.json", "metrics/headlines.json"]


@pytest.fixture(scope="module")
def project(tmp_path_factory, reproduced_project):
    return reproduced_project(tmp_path_factory.mktemp("shown") / "repo")


def dotted(sections: dict, prefix: str = "") -> set[str]:
    return set().union(*[dotted(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}"}
                         for k, v in sections.items()])


def test_dvc_shows_the_headline_scores_and_nothing_else(project):
    repo, env = project
    shown = json.loads(sh(["dvc", "metrics", "show", "--json"], repo, env).stdout)[""]["data"]
    assert {path: {branch: list(keys) for branch, keys in entry["data"].items()}
            for path, entry in shown.items()} == HEADLINE

    # Ten columns, one row per file: 276 characters. The header is the widest line: the values,
    # rounded to 4 decimals, are narrower than the column names.
    table = sh(["dvc", "metrics", "show"], repo, env).stdout.splitlines()
    assert set(table[0].split()) == {"Path"} | COLUMNS
    assert max(map(len, table)) < 280, table[0]

    header = next(csv.reader(io.StringIO(sh(["dvc", "exp", "show", "--csv"], repo, env).stdout)))
    params = dotted(yaml.safe_load((repo / "params.yaml").read_text()))
    first_param = min(header.index(column) for column in header if column in params)
    scores = [c for c in header[:first_param] if c not in ("Experiment", "rev", "typ", "Created", "parent", "State",
                                                           "Executor")]
    assert scores[0] == "char.val_loss" and set(scores) == COLUMNS  # the scores, then the params
    counts = set().union(*[dotted(json.loads((repo / path).read_text())) for path in DATA_COUNTS])
    assert not counts & set(header) and not [column for column in header if column.startswith("metrics/")]


def test_run_json_holds_the_whole_record_and_metrics_json_its_headline(project):
    repo, env = project
    for branch, unit in (("char", "char"), ("headlines", "word")):
        run = json.loads((repo / f"metrics/train/{branch}/run.json").read_text())
        assert {"best_val_loss", f"best_val_bits_per_{unit}", "best_val_perplexity", "best_epoch", "epochs_run",
                "train_seconds", "tokens_trained", "tokens_per_second", "device", "precision", "lstm_kernel"} <= set(run)
        headline = json.loads((repo / f"metrics/train/{branch}/metrics.json").read_text())  # the stage's, not DVCLive's
        assert headline == {branch: {"val_loss": round(run["best_val_loss"], 4),
                                     f"val_bits_per_{unit}": round(run[f"best_val_bits_per_{unit}"], 4),
                                     "val_perplexity": round(run["best_val_perplexity"], 4)}}
        assert (repo / f"metrics/train/{branch}/plots/metrics/eval/loss.tsv").is_file()  # DVCLive's log, still there

        run = json.loads((repo / f"metrics/sample/{branch}/run.json").read_text())
        assert run["tokens_per_second"] > 0 and ("repetition_rate" in run or "unknown_share" in run)
        headline = json.loads((repo / f"metrics/sample/{branch}/metrics.json").read_text())
        keys = HEADLINE[f"metrics/sample/{branch}/metrics.json"][branch]
        assert headline == {branch: {key: round(run[key], 4) for key in keys}}
    for path in DATA_COUNTS:  # still written, and committed (cache: false), by their stages
        assert json.loads((repo / path).read_text())
    assert "up to date" in sh(["dvc", "status"], repo, env).stdout
