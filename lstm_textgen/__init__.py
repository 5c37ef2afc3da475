"""lstm-textgen: LSTM text generators from Project Gutenberg books or a CSV of headlines, trained
by a DVC pipeline (dvc.yaml, whose stage scripts in stages/ call this package). The command for
people is `lstm-textgen` (lstm_textgen/cli.py). Keep this file a docstring: every stage imports
it, and dvc.yaml lists only the modules each stage runs."""
