"""Only train-lstm imports TensorFlow: the stages that move data, the sampler and the command
for people start fast."""

import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

LOADED = "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"


@pytest.mark.parametrize("stage", ["download_gutenberg", "strip_boilerplate", "encode_vocab", "window", "sample",
                                   "tokenize_headlines"])
def test_data_stages_do_not_import_tensorflow(stage):
    code = f"import runpy, sys; runpy.run_path('stages/{stage}.py', run_name='imported'); {LOADED}"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("module", ["cli", "generate", "audit", "plots_page", "training"])
def test_the_command_and_the_training_checks_do_not_import_tensorflow(module):
    """training.py loads TensorFlow only once its checks have passed (inside its functions)."""
    code = f"import sys, lstm_textgen.{module}; {LOADED}"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_probe_sees_tensorflow_where_it_is_loaded():
    """The checks above can fail: model.py, which train-lstm imports, loads TensorFlow."""
    code = f"import sys, lstm_textgen.model; {LOADED}"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['keras', 'tensorflow']"


def test_each_stage_runs_the_package_of_the_checkout_it_runs_in(tmp_path):
    """dvc.yaml runs `python -m stages.<script>`: from a copy of the project (as a queued or
    temporary `dvc exp run` makes), a stage imports the copy's lstm_textgen, not the one the
    package was installed from."""
    import yaml
    for folder in ("stages", "lstm_textgen"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        module = stage["cmd"].split()[2]
        assert stage["cmd"].startswith("python -m stages."), name
        code = (f"import runpy, sys; sys.argv = ['x', '--help']; "
                f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True); "
                "print(sys.modules['lstm_textgen'].__file__)")
        out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
        assert out.stdout.splitlines()[-1] == str(tmp_path / "lstm_textgen/__init__.py"), name


def test_the_command_lists_each_subcommand_apart_from_what_it_does():
    from lstm_textgen.cli import COMMANDS
    out = subprocess.run([sys.executable, "-m", "lstm_textgen", "--help"], capture_output=True, text=True, check=True)
    for name, (_, what) in COMMANDS.items():
        assert any(line.split(maxsplit=1) == [name, what] for line in out.stdout.splitlines()), name
