"""params.yaml: each stage declares the keys of its own section with a check per key; the values
themselves live only in params.yaml. A check returns None when the value is fine, or says what
the value must be."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import yaml

from lstm_textgen.errors import UserError

PARAMS_FILE = "params.yaml"


def positive_int(v):
    return None if isinstance(v, int) and not isinstance(v, bool) and v > 0 else "must be a whole number > 0"


def non_negative_int(v):
    return None if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else "must be a whole number >= 0"


def positive_number(v):
    return None if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else "must be a number > 0"


def fraction(v):
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1
    return None if ok else "must be a number between 0 and 1 (exclusive)"


def probability(v):
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1
    return None if ok else "must be a number > 0 and <= 1"


def share(v):
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1
    return None if ok else "must be a number >= 0 and < 1"


def boolean(v):
    return None if isinstance(v, bool) else "must be true or false"


def integer(v):
    return None if isinstance(v, int) and not isinstance(v, bool) else "must be a whole number"


def one_of(*choices):
    def check_choice(v):
        return None if v in choices else "must be one of: " + ", ".join(choices)
    return check_choice


def optional(check):
    def check_optional(v):
        return None if v is None else check(v)
    return check_optional


def non_empty_string(v):
    return None if isinstance(v, str) and v else "must be a non-empty string"


# Where a base model and its vocabulary live (train-lstm.init_from, encode-vocab.base_vocab): a
# folder DVC watches as a dependency of both stages, so bringing in another base reruns them.
BASE_DIR = "data/base"


def base_file(suffix: str, example: str):
    """null, or a file in BASE_DIR whose name ends in `suffix`."""
    def check_base_file(v):
        if v is None:
            return None
        ok = isinstance(v, str) and v.startswith(BASE_DIR + "/") and v.endswith(suffix) and ".." not in v
        return None if ok else (f"must be null or a path in {BASE_DIR}/ ending in {suffix}, such as {example}: "
                                f"DVC watches {BASE_DIR}/ for this stage (docs/own-text.md)")
    return check_base_file


def list_of(check, non_empty=True):
    def check_list(v):
        if not isinstance(v, list) or (non_empty and not v):
            return "must be a non-empty list"
        problems = [f"item {i} {p}" for i, item in enumerate(v) if (p := check(item))]
        return "; ".join(problems) or None
    return check_list


def read_params(section: str, schema: dict, path: str | os.PathLike = PARAMS_FILE) -> dict:
    """Read and check one section of params.yaml; every problem is reported, one per line."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise UserError(f"{path} not found: run the stage from the project root (where dvc.yaml is)")
    except yaml.YAMLError as err:
        raise UserError(f"{path} is not valid YAML: {err}")
    values = doc.get(section)
    if not isinstance(values, dict):
        raise UserError(f"{path} has no '{section}:' section; add it (see docs/pipeline.md)")
    problems = []
    for key in values:
        if key not in schema:
            close = difflib.get_close_matches(key, schema, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(schema)})"
            problems.append(f"{path}: {section}.{key} is not a known param{hint}")
    for key, check in schema.items():
        if key not in values:
            problems.append(f"{path}: {section}.{key} is missing")
        elif (problem := check(values[key])) is not None:
            problems.append(f"{path}: {section}.{key} = {values[key]!r} {problem}")
    if problems:
        raise UserError("\n".join(problems))
    return values
