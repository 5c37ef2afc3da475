"""Only train-lstm imports TensorFlow: the stages that move data, the sampler and the command
for people start fast."""

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


def test_train_lstm_does_import_tensorflow():
    """The check above can fail: the same probe sees TensorFlow where it is loaded."""
    code = f"import sys, lstm_textgen.model; {LOADED}"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['keras', 'tensorflow']"
