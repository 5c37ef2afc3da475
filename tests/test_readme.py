"""The README's promises that can drift from the code: its two commands, its stages and params."""

import re

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


def test_the_readme_names_every_stage_and_param():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for stage in dvc["stages"]:
        assert f"`{stage}`" in README, stage
    for section, values in params.items():
        for key in values:
            assert f"`{key}`" in README, f"{section}.{key}"
