"""UserError: a problem the user can fix, printed as one message; and run(), which prints it."""

import sys


class UserError(Exception):
    """A problem the user can fix (bad param, bad file, no network): printed without a traceback."""


def run(main) -> None:
    """Run a stage's main(); a UserError becomes one clear message on stderr and exit code 1."""
    try:
        main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
