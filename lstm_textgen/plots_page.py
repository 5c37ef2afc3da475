"""The page `dvc plots show` and `dvc plots diff` fill in, with its plotting code inside it.

    lstm-textgen plots-page            # (re)writes .dvc/plots_page.html, which .dvc/config names
    lstm-textgen plots-page --check    # exit 1 if that file is not what this command makes

Not a stage: the page is committed (about 900 kB), so a fresh clone draws its plots offline with
no step of its own. DVC's default page loads Vega, Vega-Lite and vega-embed from a CDN: without
the internet it stays a blank white page, with no error. This one carries the three libraries
inline, bundled by vl-convert-python (the `plots` extra, pinned in requirements.lock) from the versions it ships,
Vega-Lite 5 as DVC's specs declare. DVC replaces `{plot_divs}` with one <div> per plot whose
script calls `vegaEmbed('#id', spec)`; here vegaEmbed draws SVG (crisp, and what tests can read
back), and its menu keeps the exports that work offline (SVG, PNG) and the spec's source.
"""

import argparse
import sys
from pathlib import Path

from lstm_textgen.errors import UserError
from lstm_textgen.files import write_text

PAGE = Path(".dvc/plots_page.html")  # .dvc/config: [plots] html_template = plots_page.html
VEGA_LITE = "5.21"  # DVC's templates are Vega-Lite v5 specs

# Run inside the bundle, where vegaEmbed, vega and vegaLite are the libraries. Epochs are whole
# numbers counted from 1: an x axis over a quantitative `epoch` field spans the epochs logged
# (not padded down to 0) and is labelled at the first epoch and at round steps (1, 5, 10, ...;
# every epoch when there are few), never at 1.5.
SNIPPET = """
const options = {renderer: "svg", actions: {export: true, source: true, compiled: false, editor: false}};
const epochTicks = (first, last) => {
  const step = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000].find((s) => (last - first) / s <= 8) || 1000;
  const ticks = [first];
  for (let t = (Math.floor(first / step) + 1) * step; t <= last; t += step) ticks.push(t);
  return ticks;
};
const wholeEpochs = (spec) => {
  const epochs = ((spec.data || {}).values || []).map((d) => Number(d.epoch)).filter(Number.isFinite);
  const axis = {format: "d", tickMinStep: 1};
  if (epochs.length && epochs.every(Number.isInteger)) {
    axis.values = epochTicks(Math.min(...epochs), Math.max(...epochs));
  }
  const visit = (node) => {
    if (Array.isArray(node)) { node.forEach(visit); return; }
    if (node === null || typeof node !== "object") return;
    const x = node.x;
    if (x && x.field === "epoch" && x.type === "quantitative") {
      x.axis = {...axis, ...(x.axis || {})};
      x.scale = {nice: false, ...(x.scale || {})};
    }
    for (const [key, value] of Object.entries(node)) if (key !== "data") visit(value);
  };
  visit(spec);
};
window.vegaEmbed = (el, spec, opts) => {
  wholeEpochs(spec);
  return vegaEmbed(el, spec, {...options, ...opts});
};
window.vega = vega;
window.vegaLite = vegaLite;
"""

TEMPLATE = """<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    REFRESH
    <title>DVC Plot</title>
    <!-- Made by `lstm-textgen plots-page`: do not edit. Vega @VEGA@, Vega-Lite @VL@ and vega-embed
         @EMBED@, bundled by vl-convert-python @CONVERT@. No script here loads anything from the network. -->
    <script>
BUNDLE
    </script>
    <style>
        body { font-family: sans-serif; }
        table { border-spacing: 15px; }
    </style>
</head>
<body>
    PLOTS
</body>
</html>
"""


def page() -> str:
    """The HTML template: DVC fills in {plot_divs} (and {refresh_tag}); {scripts}, where DVC's
    default page puts its CDN links, is left out on purpose."""
    try:
        import vl_convert
    except ImportError:
        raise UserError("the page is bundled by vl-convert-python, which is not installed: "
                        "pip install -c requirements.lock -e '.[plots]'")

    bundle = vl_convert.javascript_bundle(SNIPPET, vl_version=VEGA_LITE)
    # The bundle is inlined in a classic script: nothing in it may close the tag or look like
    # a placeholder DVC would replace; its top-level names stay inside a function scope.
    if "</script" in bundle.lower() or any(f"{{{p}}}" in bundle for p in ("plot_divs", "scripts", "refresh_tag")):
        raise SystemExit("the vl-convert bundle cannot be inlined as it is; check its version")
    versions = {"VEGA": vl_convert.get_vega_version(), "VL": VEGA_LITE, "EMBED": vl_convert.get_vega_embed_version(),
                "CONVERT": getattr(vl_convert, "__version__", "?")}
    text = TEMPLATE
    for key, value in versions.items():
        text = text.replace(f"@{key}@", value)
    return (text.replace("REFRESH", "{refresh_tag}").replace("PLOTS", "{plot_divs}")
            .replace("BUNDLE", "(function () {\n" + bundle + "\n})();"))


def main(argv=None, prog=None) -> None:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="examples:\n" + __doc__.split("\n\n")[1])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    parser.add_argument("--out", type=Path, default=PAGE, help=f"where to write it (default {PAGE})")
    args = parser.parse_args(argv)
    text = page()
    if args.check:
        if not args.out.is_file() or args.out.read_text(encoding="utf-8") != text:
            raise UserError(f"{args.out} is not what the installed vl-convert-python makes: run "
                            "`lstm-textgen plots-page`")
        return
    write_text(args.out, text)
    print(f"wrote {args.out} ({len(text.encode()) / 1e3:.0f} kB)", file=sys.stderr)
