"""UserError: a problem the user can fix, printed as one message; run(), which prints it; and
run_stage(), the same for a pipeline stage's script, which also answers --help."""

import os
import sys


class UserError(Exception):
    """A problem the user can fix (bad param, bad file, no network): printed without a traceback."""


def run(main) -> None:
    """Run main(); a UserError becomes one clear message on stderr and exit code 1. Ctrl-C ends
    it with exit code 130, and a reader that stops early (`| head`) ends it quietly; neither
    prints a traceback."""
    try:
        main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so that the exit's flush is silent
        sys.exit(1)


def run_stage(main) -> None:
    """Run a stage script's main() as run() does; with -h or --help, print the script's docstring
    (what it reads, which params.yaml section, what it writes) and run nothing."""
    if {"-h", "--help"} & set(sys.argv[1:]):
        main = lambda: print(sys.modules["__main__"].__doc__.strip())  # noqa: E731
    run(main)
