r"""CORD results across seeds: tables with spreads and tests, and training curves with seeds shaded.

    python scripts/cord_report.py --workdirs=workdirs/cord_rc,workdirs/cord_lbf \
        --out=workdirs/cord_report [--baseline=mappo]

Each workdir is one ``scripts/cord_crossplay.py`` run: its ``crossplay.json`` (every method's
seed-by-seed cross-play matrix, returns with the scripted partner and on the unseen team) and
``<method>/metrics.jsonl`` (the training log, one ``return/seed_k`` per seed). For each workdir
this writes ``<out>/<name>_curves.png`` (mean training return per method, the band spanning the
seeds' min and max) and prints a markdown table with every quantity as mean ± std over seeds:

- self-play: seed s's own team (the matrix diagonal);
- cross-play: seed s's agents with every other seed's, in both seatings (row s and column s of the
  matrix, diagonal excluded);
- gap: self-play minus cross-play, seed by seed;
- with the scripted partner, and on the unseen team composition.

Then, for each method against ``--baseline``, the difference of the means of cross-play and of
the gap, with two tests over seeds: an exact paired sign-flip test (seed k of one method against
seed k of the other; they share the PRNG seed, hence their env draws) and an exact two-sample
permutation test (the seeds as independent runs). Both are exact: 2^S sign patterns and
C(2S, S) splits.
"""

import json
import os
import sys

from absl import app
from absl import flags

from common import metric_writers
from cord_jax.report import plot_curves
from cord_jax.report import report

_WORKDIRS = flags.DEFINE_list("workdirs", None, "cord_crossplay.py workdirs, one per env.")
_OUT = flags.DEFINE_string("out", None, "Where the curves PNGs and report.md/json go.")
_BASELINE = flags.DEFINE_string("baseline", "mappo", "The method every other is tested against.")
flags.mark_flags_as_required(["workdirs", "out"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  os.makedirs(_OUT.value, exist_ok=True)
  out, md = {}, []
  try:
    for workdir in _WORKDIRS.value:
      name = os.path.basename(os.path.normpath(workdir))
      res = report(workdir, _BASELINE.value)
      png = os.path.join(_OUT.value, f"{name}_curves.png")
      plot_curves(workdir, res["methods"], png, name)
      out[name] = res
      md += [f"## {name}", "", metric_writers.format_table(res["rows"]), ""]
      if res["tests"]:
        md += [metric_writers.format_table(res["tests"]), ""]
      md += [f"Curves: {png}", ""]
  except (ValueError, KeyError) as e:
    sys.stderr.write(f"Error: {e}\n")
    sys.exit(2)
  text = "\n".join(md)
  metric_writers.atomic_write_text(os.path.join(_OUT.value, "report.md"), text)
  metric_writers.atomic_write_text(os.path.join(_OUT.value, "report.json"),
                                   json.dumps(out, indent=2))
  print(text)


if __name__ == "__main__":
  app.run(main)
