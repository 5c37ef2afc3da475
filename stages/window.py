"""window: cut the encoded corpus into training and validation sequences.

    python stages/window.py      # run by `dvc repro window`

Params: the `window` section of params.yaml (seq_length, step, val_fraction).
Reads:  data/vocab/ids.npy.
Writes: data/windows/train.npz and val.npz: each split's tokens once, plus the window starts.

The validation text is the contiguous tail of the corpus (windows cut at random would overlap
training windows and leak). The ids are read through memory maps, a piece at a time.
"""

from pathlib import Path

import numpy as np

from lstm_textgen.errors import UserError, run_stage
from lstm_textgen.files import MappedVector, write_npz
from lstm_textgen.params import fraction, positive_int, read_params
from lstm_textgen.windows import make_windows

IDS = Path("data/vocab/ids.npy")
OUT = {"train": Path("data/windows/train.npz"), "val": Path("data/windows/val.npz")}
PARAMS = {"seq_length": positive_int, "step": positive_int, "val_fraction": fraction}


def main() -> None:
    params = read_params("window", PARAMS)
    try:
        ids = MappedVector.open(IDS)
    except (OSError, ValueError, EOFError) as err:
        raise UserError(f"cannot read {IDS} ({err}); run `dvc checkout {IDS}` or `dvc repro -f encode-vocab`")
    splits = make_windows(ids, params["seq_length"], params["step"], params["val_fraction"])
    for name, split in splits.items():
        write_npz(OUT[name], seq_length=np.int64(params["seq_length"]), **split)


if __name__ == "__main__":
    run_stage(main)
