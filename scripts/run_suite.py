r"""Runs several models x seeds of one experiment config and tabulates mean and std.

    python scripts/run_suite.py --config=configs/heterrec/synthetic.py:small \
        --models=sasrec,fusion_sasrec,heterrec --seeds=0,1,2 --workdir=workdirs/suite_small \
        [--config.train.num_steps=2000 --config.model.dropout=0.2]

Each run is an ordinary ``train_and_evaluate`` in ``<workdir>/<model>_seed<k>``, with its
``config.json`` (so a rerun skips finished runs and resumes interrupted or preempted ones, and
refuses to resume one with a changed config). The table (test metrics at the best validation
step, plus the popularity baseline) is printed and written to ``<workdir>/suite.md`` and
``suite.json``, with the date, the machine and the exact command.

Overrides are ml_collections' own ``--config.key=value`` flags (``config_flags``, the locked config
of ``scripts/train.py``): parsed and type-checked once against the base config, then applied to
each variant's config.
"""

import datetime
import json
import os
import platform
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags
from ml_collections.config_flags import config_path
import numpy as np

from common import config_checks
from common import metric_writers
from common import methods

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file: configs/<method>/<exp>.py[:arg]; override keys with "
    "--config.key=value.", lock_config=True)
_MODELS = flags.DEFINE_list("models", ["sasrec", "fusion_sasrec", "heterrec"],
                            "Variants appended to the config arg (e.g. model names).")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where runs and the table go.")
_METRICS = flags.DEFINE_list("metrics", ["ndcg@10", "hr@10", "mrr@10"], "Columns.")
flags.mark_flags_as_required(["config", "workdir"])


def _config_for(variant: str, seed: int):
  """The config file loaded with ``variant`` appended to its argument, plus the overrides."""
  spec = _config_spec()
  path, _, arg = spec.partition(":")
  config = config_checks.load_config_file(f"{path}:{','.join(a for a in (arg, variant) if a)}")
  for key, value in config_flags.get_override_values(flags.FLAGS["config"]).items():
    config_path.set_value(key, config, value)
  config.seed = seed
  return config


def _config_spec() -> str:
  """``path[:arg]`` as given to ``--config`` (the last one, as absl reads it)."""
  specs = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--config=")]
  return specs[-1] if specs else config_flags.get_config_filename(flags.FLAGS["config"])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  os.makedirs(_WORKDIR.value, exist_ok=True)
  try:
    _run_all()
  except config_checks.ConfigError as e:
    sys.stderr.write(f"Error: {e}\n")
    sys.exit(2)


def _run_all():
  rows, per_run, popularity_row = [], {}, None
  for variant in _MODELS.value:
    scores = {m: [] for m in _METRICS.value}
    pop = {m: [] for m in _METRICS.value}
    for seed in map(int, _SEEDS.value):
      config = _config_for(variant, seed)
      run_dir = os.path.join(_WORKDIR.value, f"{variant}_seed{seed}")
      done = os.path.join(run_dir, "results.json")
      res = None
      if os.path.exists(done):
        with open(done) as f:
          res = json.load(f)
      # Not run yet, or stopped before its end (preempted; or tested by scripts/evaluate.py from a
      # stopped run's best checkpoint, which is not the finished run's result).
      if res is None or "test" not in res or "evaluated_by" in res:
        os.makedirs(run_dir, exist_ok=True)
        config_checks.save_run_config(config, run_dir)
        out = methods.get_trainer(config.method)(config, run_dir)
        res = {k: v for k, v in out.items() if k != "state"}
        if "test" not in res:
          print(f"{run_dir} stopped at step {res.get('step')} ({res.get('stop_reason')}) before "
                f"its test evaluation; rerun the same command to resume it. No table written.",
                flush=True)
          return
        metric_writers.atomic_write_text(done, json.dumps(res, indent=2, sort_keys=True))
      per_run[f"{variant}_seed{seed}"] = res
      for m in _METRICS.value:
        scores[m].append(res["test"][m])
        if "popularity_test" in res:
          pop[m].append(res["popularity_test"][m])
    rows.append({"model": variant, **{m: f"{np.mean(v):.4f} ± {np.std(v):.4f}"
                                      for m, v in scores.items()}})
    if pop[_METRICS.value[0]]:
      popularity_row = {"model": "popularity", **{m: f"{np.mean(v):.4f}" for m, v in pop.items()}}
  if popularity_row is not None:
    rows.append(popularity_row)
  table = metric_writers.format_table(rows, ["model"] + _METRICS.value)
  header = (f"Test metrics (mean ± std over seeds {','.join(_SEEDS.value)}), "
            f"{datetime.date.today()}, {platform.machine()} {os.cpu_count()}-core, command:\n"
            f"    python scripts/run_suite.py " + " ".join(sys.argv[1:]) + "\n\n")
  print(header + table)
  metric_writers.atomic_write_text(os.path.join(_WORKDIR.value, "suite.md"),
                                   header + table + "\n")
  metric_writers.atomic_write_text(os.path.join(_WORKDIR.value, "suite.json"),
                                   json.dumps(per_run, indent=2, sort_keys=True))


if __name__ == "__main__":
  app.run(main, flags_parser=config_checks.parse_flags)
