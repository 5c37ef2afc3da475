"""`python -m lstm_textgen …`: the same as the `lstm-textgen` command."""

from lstm_textgen.cli import main

main()
