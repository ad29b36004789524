r"""Self-play vs cross-play of CORD and its baselines: train or resume each method, then mix seeds.

    python scripts/cord_crossplay.py --config=configs/cord/resource_collection.py --size=quick \
        --methods=cord,mappo --workdir=workdirs/crossplay_rc

For each method, ``WORKDIR/<method>`` holds an ordinary training run of
``<config>:<method>,<size>`` (rerunning resumes it, or just re-evaluates a finished one). Its
``env.num_seeds`` seeds are then evaluated in every pairing: agents of seed a in the even seats,
of seed b in the odd ones (``cord_jax/crossplay.py``), with the env's scripted partner
(``eval.partner``) in the odd seats, and (``--unseen``) on an unseen team composition. Writes
``WORKDIR/crossplay.json``, one heat map per method (``WORKDIR/<method>/crossplay.png``) and
prints the table: self-play (the diagonal), cross-play (off it), the gap, the return with the
scripted partner, the unseen composition's and the random policy's.
"""

import ast
import json
import os
import sys

from absl import app
from absl import flags
from absl import logging
import jax

from common import config_checks
from common import metric_writers
from common import run_services
from cord_jax import crossplay
from cord_jax import train

_CONFIG = flags.DEFINE_string("config", None, "A CORD config file (configs/cord/<env>.py).")
_SIZE = flags.DEFINE_string("size", "quick", "Size argument of the config (quick, runlocal, '').")
_METHODS = flags.DEFINE_list("methods", ["cord", "mappo"], "Methods to train and compare.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Root directory; one run per method inside.")
_UNSEEN = flags.DEFINE_multi_string(
    "unseen", [], "An env.kwargs entry (key=<Python literal>) for an unseen team composition; "
    "repeatable, e.g. --unseen=agent_levels=(1,1,3).")
_NUM_ENVS = flags.DEFINE_integer("num_envs", 64, "Episodes per pairing (0: the config's "
                                 "eval.num_envs).")
flags.mark_flags_as_required(["config", "workdir"])


def evaluate_method(spec: str, workdir: str) -> dict:
  """Trains or resumes the run of ``spec`` in ``workdir``; returns its cross-play results."""
  config = config_checks.load_config_file(spec)
  run_services.prepare_workdir(workdir)
  config_checks.save_run_config(config, workdir)
  results = train.train_and_evaluate(config, workdir)
  params = results["state"].train.params
  learner = train.Learner(config)
  key = jax.random.PRNGKey(config.seed + 3)
  num_envs = _NUM_ENVS.value or config.eval.num_envs
  matrix = crossplay.crossplay_matrix(learner, params, key, num_envs)
  partner = crossplay.partner_returns(learner, params, config.eval.partner, key, num_envs)
  crossplay.save_heatmap(matrix, os.path.join(workdir, "crossplay.png"), spec)
  random = train.baseline_returns(config, learner.raw_env, "random", num_envs)
  out = {"matrix": matrix.tolist(), **crossplay.summary(matrix),
         f"with_{config.eval.partner}_partner": float(partner.mean()),
         "partner_per_seed": [float(x) for x in partner],
         "random_policy": random, "num_seeds": int(matrix.shape[0])}
  if _UNSEEN.value:
    unseen = dict((k, ast.literal_eval(v)) for k, v in (kv.split("=", 1) for kv in _UNSEEN.value))
    per_seed = crossplay.composition_returns(config, params, key, num_envs, **unseen)
    out["unseen_team"] = float(per_seed.mean())
    out["unseen_per_seed"] = [float(x) for x in per_seed]
    out["unseen_kwargs"] = {k: repr(v) for k, v in unseen.items()}
  return out


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)
  out, rows = {}, []
  try:
    for method in _METHODS.value:
      arg = ",".join(filter(None, (method, _SIZE.value)))
      spec = f"{_CONFIG.value}:{arg}"
      out[method] = evaluate_method(spec, os.path.join(_WORKDIR.value, method))
      rows.append({"method": method, **{k: v for k, v in out[method].items()
                                        if not isinstance(v, (list, dict)) and k != "num_seeds"}})
  except (config_checks.ConfigError, run_services.WorkdirError,
          run_services.WorkdirInUseError) as e:
    sys.stderr.write(f"Error: {e}\n")
    sys.exit(2)
  metric_writers.atomic_write_text(os.path.join(_WORKDIR.value, "crossplay.json"),
                                   json.dumps(out, indent=2))
  print(metric_writers.format_table(rows))


if __name__ == "__main__":
  app.run(main)
