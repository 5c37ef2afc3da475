"""Only train-lstm imports TensorFlow: the stages that move data, and the sampler, start fast."""

import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.parametrize("stage", ["download_gutenberg", "strip_boilerplate", "encode_vocab", "window", "sample",
                                   "tokenize_headlines"])
def test_data_stages_do_not_import_tensorflow(stage):
    code = (f"import sys; sys.path.insert(0, 'stages'); import {stage}; "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
