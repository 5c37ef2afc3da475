"""Project Gutenberg's catalogue, pg_catalog.csv: books chosen by what it says of them, for
download-gutenberg's `catalog` param. One row per eBook: its number (Text#), Type, Issued, Title,
Language, Authors, Subjects, LoCC and Bookshelves, the lists in a cell separated by "; ".

    catalog:
      where: {Language: en, Bookshelves: "Category: Novels"}   # every column named must match
      count: 200          # the first 200 by eBook number, or with sample_seed a sample of 200
      sample_seed: null   # a whole number: a random sample drawn with it

Only the rows of Type "Text" are chosen (not sound or images). A column's value matches when it
contains one of the given strings, case-insensitively; Language holds codes ("en; fr"), which
match whole, so that "en" does not also take Middle English ("enm")."""

from __future__ import annotations

import difflib
from pathlib import Path

from lstm_textgen.errors import UserError

CATALOG_URL = "https://www.gutenberg.org/cache/epub/feeds/pg_catalog.csv"
CATALOG_FILE = "pg_catalog.csv"  # its name in a GUTENBERG_MIRROR directory
NUMBER, TYPE = "Text#", "Type"
CODES = ("Language",)  # columns of codes: an item of the cell matches whole
KEYS = {"where": "{<column>: <text or list of texts>}", "count": "a whole number > 0, or null for every match",
        "sample_seed": "null, or a whole number >= 0 and < 2**32", "url": "where pg_catalog.csv is (an http(s) URL or a path)"}
SHAPE = "must be null or {" + ", ".join(f"{k}: {v}" for k, v in KEYS.items()) + "}"


def check_catalog(v) -> str | None:
    """params.yaml's download-gutenberg.catalog: None when fine, else what it must be."""
    if v is None:
        return None
    if not isinstance(v, dict):
        return SHAPE
    problems = [f"has no key {key!r} (known: {', '.join(KEYS)})" for key in v if key not in KEYS]
    where = v.get("where", {})
    if not isinstance(where, dict) or not all(
            isinstance(col, str) and (isinstance(want, str) and want or isinstance(want, list) and want
                                      and all(isinstance(w, str) and w for w in want))
            for col, want in where.items()):
        problems.append(f"where {KEYS['where']}: each a column of pg_catalog.csv and non-empty text(s)")
    elif fixed := [col for col in where if col in (NUMBER, TYPE)]:
        problems.append(f"where cannot filter {' or '.join(fixed)}: the books are Type Text, and book_ids lists "
                        "numbers")
    count = v.get("count")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        problems.append(f"count must be {KEYS['count']}")
    seed = v.get("sample_seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2 ** 32):
        problems.append(f"sample_seed must be {KEYS['sample_seed']}")
    if seed is not None and count is None:
        problems.append("sample_seed needs a count: how many books to sample")
    if not isinstance(v.get("url", CATALOG_URL), str) or not v.get("url", CATALOG_URL):
        problems.append(f"url must be {KEYS['url']}")
    return "; ".join(problems) or None


def read_catalog(path: Path, source: str, columns=()):
    """pg_catalog.csv as a pandas DataFrame of strings: Text#, Type and the `columns` a filter
    names, no others (the catalogue is some 20 MB). A file that is not the catalogue, or a column
    it lacks, is one clear error."""
    import pandas as pd  # only a stage with a catalogue pays for importing it

    def read(**kwargs):
        try:
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", **kwargs)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise UserError(f"the catalogue from {source} is not a CSV file that can be read "
                            f"({str(err).strip().splitlines()[-1]}); check the source, or set "
                            "download-gutenberg.catalog.url to Project Gutenberg's pg_catalog.csv")

    header = list(read(nrows=0).columns)
    missing = [col for col in (NUMBER, TYPE) if col not in header]
    if missing:
        raise UserError(f"the catalogue from {source} has no {' or '.join(missing)} column (its columns: "
                        f"{', '.join(header)}): it is not Project Gutenberg's pg_catalog.csv")
    for column in columns:
        if column not in header:
            close = difflib.get_close_matches(column, header, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UserError(f"params.yaml: download-gutenberg.catalog.where names the column {column!r}{hint}, "
                            f"which the catalogue from {source} does not have; its columns: {', '.join(header)}")
    table = read(usecols=[NUMBER, TYPE, *columns])
    numbers = pd.to_numeric(table[NUMBER], errors="coerce")
    if bad := [i for i, n in enumerate(numbers) if not (n > 0 and n == int(n))][:3]:
        raise UserError(f"the catalogue from {source} has rows whose {NUMBER} is not an eBook number: "
                        + ", ".join(f"line {i + 2} ({table[NUMBER][i]!r})" for i in bad))
    return table.assign(**{NUMBER: numbers.astype("int64")})


def cell_matches(values, wanted: list[str], codes: bool):
    """Which cells of a column (a pandas Series of strings) contain one of `wanted`, case-insensitively;
    with `codes`, which have one of them as a whole item of their "; "-separated list."""
    wanted = [w.lower() for w in wanted]
    if codes:
        items = values.str.lower().str.split(";")
        return items.map(lambda cell: any(item.strip() in wanted for item in cell))
    lowered = values.str.lower()
    return lowered.map(lambda cell: any(w in cell for w in wanted))


def chosen_books(table, where: dict, count: int | None, sample_seed: int | None, source: str) -> tuple[list[int], int]:
    """The eBook numbers of the Text rows that match every column of `where`: the first `count`
    by number, or a sample of `count` drawn with `sample_seed`, in number order; and how many
    matched. `table` is read_catalog's, with the columns `where` names; nothing matching is one
    clear error."""
    keep = table[TYPE].str.lower() == "text"
    for column, wanted in where.items():
        keep &= cell_matches(table[column], [wanted] if isinstance(wanted, str) else wanted, column in CODES)
    matched = table[keep].drop_duplicates(NUMBER).sort_values(NUMBER)
    if matched.empty:
        said = ", ".join(f"{col} {want!r}" for col, want in where.items()) or "no filter"
        raise UserError(f"params.yaml: download-gutenberg.catalog matches no book of Type Text in the catalogue from "
                        f"{source} ({said}); loosen download-gutenberg.catalog.where")
    total = len(matched)
    if count is not None and count < total:
        matched = (matched.sample(count, random_state=sample_seed).sort_values(NUMBER) if sample_seed is not None
                   else matched.head(count))
    return [int(n) for n in matched[NUMBER]], total
