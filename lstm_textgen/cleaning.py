"""Text cleaning: how raw text becomes training text, for both branches. A prompt must be cleaned
the same way as the text its model learnt from, so the switches that were on are recorded in the
vocabulary (`cleaning`), and sample and generate clean prompts with them."""

from __future__ import annotations

import unicodedata

ASCII_PUNCTUATION = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                                   "\u2014": "--", "\u2013": "-", "\u2026": "...", "\u00a0": " "})


def clean_text(text: str, lowercase: bool, ascii_punctuation: bool) -> str:
    """Book text after strip-boilerplate's switches."""
    if ascii_punctuation:
        text = text.translate(ASCII_PUNCTUATION)
    return text.lower() if lowercase else text


JOINING_PUNCTUATION = set("'\u2018\u2019.")


def clean_headline(raw: str, repair_encoding: bool, ascii_fold: bool, lowercase: bool,
                   strip_punctuation: bool) -> tuple[str, bool]:
    """A headline after each cleaning step that is switched on (tokenize-headlines stores the
    switches in the vocabulary, so sample cleans seed phrases the same way), and whether its
    encoding was repaired ("â€™" read back as "’")."""
    import ftfy  # the well-kept mojibake repairer; only the headlines stages load it
    text, repaired = raw, False
    if repair_encoding:
        text = ftfy.fix_encoding(raw)
        repaired = text != raw
    if strip_punctuation:  # every Unicode punctuation mark and symbol, curly quotes included;
        # apostrophes and periods join their word ("trump’s" → "trumps", "u.s." → "us")
        text = "".join("" if c in JOINING_PUNCTUATION else " " if unicodedata.category(c)[0] in "PS" else c
                       for c in text)
    if ascii_fold:  # é → e; what has no ASCII form is dropped
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    if lowercase:
        text = text.lower()
    return " ".join(text.split()), repaired


