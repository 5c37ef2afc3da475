"""The command for people: `lstm-textgen COMMAND …`, also `python -m lstm_textgen COMMAND …`.
Each command reads what DVC keeps and writes nothing DVC tracks; the pipeline's stages are
dvc.yaml's, run by `dvc repro`."""

from __future__ import annotations

import importlib
import sys

from lstm_textgen.errors import run

# name: (module, what it does); a command's module is imported only when it runs, so `generate`
# starts without loading what `audit` needs.
COMMANDS = {
    "generate": ("lstm_textgen.generate", "text from a trained model, after your own prompt"),
    "audit": ("lstm_textgen.audit", "which params, data and code produced a sample text or a model"),
    "report": ("lstm_textgen.report", "every run's params, scores, sample texts, audits and curves on one page"),
    "check-remote": ("lstm_textgen.remotes", "check every object on a DVC remote; --remove-bad clears a broken push"),
    "plots-page": ("lstm_textgen.plots_page", "rebuild .dvc/plots_page.html, the offline page `dvc plots` fills in"),
}

USAGE = """usage: lstm-textgen COMMAND [ARGS …]

commands:
{commands}

`lstm-textgen COMMAND --help` lists a command's flags, with examples:
  lstm-textgen generate "alice was"
  lstm-textgen audit metrics/sample/char/samples.txt
  lstm-textgen report --serve
"""


def usage() -> str:
    width = max(map(len, COMMANDS)) + 2
    return USAGE.format(commands="\n".join(f"  {name:<{width}}{what}" for name, (_, what) in COMMANDS.items()))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), end="", file=sys.stdout if argv else sys.stderr)
        sys.exit(0 if argv else 2)
    name, args = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; the commands are {', '.join(COMMANDS)}", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(COMMANDS[name][0])
    run(lambda: module.main(args, prog=f"lstm-textgen {name}"))


if __name__ == "__main__":
    main()
