"""The README's promises that can drift from the code: its two commands, its stages and params."""

import re

import pretraining
import yaml

from conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def commands() -> list[str]:
    """The commands of the README's first two shell blocks (comment lines dropped)."""
    blocks = re.findall(r"```bash\n(.*?)```", README, re.DOTALL)[:2]
    return [" ".join(line for line in b.splitlines() if line and not line.startswith("#")) for b in blocks]


def test_the_readme_opens_with_the_pipeline_and_the_test_commands():
    run_pipeline, run_tests = commands()
    assert run_pipeline.endswith("&& dvc repro") and "pip install -r requirements.txt" in run_pipeline
    ci = (ROOT / ".ci/run").read_text().strip().splitlines()[-1]
    assert run_tests == ci  # CI runs exactly what the README tells a person to run


def test_the_stage_reference_names_every_stage_and_param():
    reference = (ROOT / "docs/pipeline.md").read_text(encoding="utf-8")
    assert "docs/pipeline.md" in README
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for stage in dvc["stages"]:
        assert f"`{stage}`" in reference and stage in README, stage
    for section, values in params.items():
        for key in values:
            assert f"`{key}`" in reference, f"{section}.{key}"


def test_the_pipeline_picture_names_every_output():
    """Each output in dvc.yaml appears in the README's picture (by its file or folder name)."""
    picture = README.split("## How the code is laid out")[1].split("```")[1]
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    for name, stage in dvc["stages"].items():
        assert name in picture, name
        for out in stage["outs"]:
            path = next(iter(out)) if isinstance(out, dict) else out
            stem = path.rstrip("/").split("/")[-1].split(".")[0]
            assert stem in picture, (name, path)


def bash_block(title: str) -> list[str]:
    """The commands of the first bash block under a README heading, comments dropped."""
    section = README.split(title, 1)[1].split("\n## ")[0]
    block = re.findall(r"```bash\n(.*?)```", section, re.DOTALL)[0]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.split("  #")[0].strip()]


def test_the_tiny_run_and_the_params_commands_work_as_written(reproduced_project, tmp_path):
    """The README's "one-minute tiny run" and "Changing params" commands, on the tiny project
    (reproduced already: its "everything, the first time" is tests/test_pipeline.py's to check)."""
    from conftest import sh
    repo, env = reproduced_project(tmp_path / "repo")
    for title in ("## A one-minute tiny run", "## Changing params, and experiments"):
        for command in bash_block(title):
            proc = sh(["bash", "-c", command], repo, env)
            assert proc.returncode == 0, command
    assert sh(["dvc", "metrics", "show", "metrics/train/char/metrics.json", "--json"], repo, env).stdout
    assert "best_val_loss" in sh(["dvc", "metrics", "show"], repo, env).stdout
    sh(["dvc", "plots", "show"], repo, env)
    assert (repo / "dvc_plots/index.html").is_file()


def test_the_fine_tuning_recipe_is_the_one_the_pretraining_benchmark_measured():
    """The README's base and fine-tuning params are what benchmarks/pretraining.py ran to get the
    figures the README quotes for them (BASE, SHELF_BOOKS, FINE_TUNE)."""
    section = README.split("## Fine-tuning a base model")[1].split("\n## ")[0]
    base, tuned = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)]
    assert base["download-gutenberg"]["book_ids"] == pretraining.SHELF_BOOKS
    for stage, values in pretraining.BASE.items():
        assert {key: base[stage][key] for key in values} == values, stage
    assert {key: tuned["train-lstm"][key] for key in pretraining.FINE_TUNE["train-lstm"]} == \
        pretraining.FINE_TUNE["train-lstm"]
