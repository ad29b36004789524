r"""The ceiling of the synthetic data: metrics of ranking by the generator's own law.

  python scripts/synthetic_ceiling.py                                   # the default data
  python scripts/synthetic_ceiling.py --config=configs/data/synthetic.py:small

Prints a markdown table of HR/NDCG/MRR@10 (leave-one-out, history masked, as evaluation does)
for two oracles (``common.data.synthetic.oracle_metrics``): one that knows everything the
generator used (previous item, items seen, the user's hidden tag and price level) and a
first-order one without the user's hidden taste. A model's distance to these says what it has
not learned. A few seconds on one core; nothing is written.
"""

import os
import sys

from absl import app
from ml_collections import config_flags

import configs

from common.data import synthetic

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(configs.__file__), "data", "synthetic.py"), "A synthetic data config.")


def main(argv):
  del argv
  source = dict(_CONFIG.value.source)
  if source.get("format") != "synthetic":
    raise app.UsageError(f"--config: data.source.format is {source.get('format')!r}; the "
                         "ceiling needs the synthetic generator ('synthetic').")
  print(f"| {_CONFIG.value.name} | split | HR@10 | NDCG@10 | MRR@10 | users |")
  print("|---|---|---|---|---|---|")
  for label, know_user in (("oracle (all the generator used)", True),
                           ("first-order oracle (no user taste)", False)):
    for split in ("valid", "test"):
      m = synthetic.oracle_metrics(source, split, know_user=know_user)
      print(f"| {label} | {split} | {m['hr@10']:.4f} | {m['ndcg@10']:.4f} | {m['mrr@10']:.4f} "
            f"| {int(m['num_users'])} |")


if __name__ == "__main__":
  app.run(main)
