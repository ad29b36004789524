r"""Paired per-user comparison of two models' full-ranking results (same users, same targets).

    python scripts/paired_test.py \
        --a=workdirs/pair_heterrec/heterrec_seed0,workdirs/pair_heterrec/heterrec_seed1 \
        --b=workdirs/pair_sasrec/sasrec_seed0,workdirs/pair_sasrec/sasrec_seed1 \
        --labels=HeterRec,SASRec [--metric=ndcg@10 --split=test --out=workdirs/paired.json]

Each run's ``ranks_<split>.npz`` (written by ``heterrec_jax.train`` at the end of a run, with
``eval.save_ranks``) holds every evaluated user's id, held-out item, 0-based rank and the item's
training count. Per user, each model's metric is averaged over its runs (its seeds), and the
difference A - B is tested with

- a paired sign-flip randomisation test (two-sided; no normality assumed): under the null the
  sign of each user's difference is a coin flip;
- a paired bootstrap 95% interval of the mean difference (users resampled);
- wins / ties / losses over users;
- the difference per band of the target's popularity (training count; equal-sized bands), which
  says where a model's gain comes from (features should help rare items most).

A seed-by-seed table (run i of A against run i of B) is printed too. Nothing is trained; seconds.
"""

import json

from absl import app
from absl import flags

from common import metric_writers
from common.recsys.paired import compare
from common.recsys.paired import format_markdown
from common.recsys.paired import load_ranks

_A = flags.DEFINE_list("a", None, "Run workdirs (or ranks_*.npz files) of model A.")
_B = flags.DEFINE_list("b", None, "Run workdirs (or ranks_*.npz files) of model B.")
_LABELS = flags.DEFINE_list("labels", ["A", "B"], "Names of A and B in the output.")
_SPLIT = flags.DEFINE_enum("split", "test", ["test", "valid"], "Which saved ranks.")
_METRIC = flags.DEFINE_string("metric", "ndcg@10", "ndcg@K, hr@K or mrr@K; K = all: no cut-off "
                              "(every user counts, a more sensitive but less standard measure).")
_BANDS = flags.DEFINE_integer("bands", 3, "Popularity bands of the target item.")
_RESAMPLES = flags.DEFINE_integer("resamples", 10000, "Bootstrap / sign-flip resamples.")
_SEED = flags.DEFINE_integer("seed", 0, "Resampling seed.")
_OUT = flags.DEFINE_string("out", None, "Optional JSON of the results (written atomically).")
flags.mark_flags_as_required(["a", "b"])


def main(argv):
  del argv
  a_runs = [load_ranks(p, _SPLIT.value) for p in _A.value]
  b_runs = [load_ranks(p, _SPLIT.value) for p in _B.value]
  if len(_LABELS.value) != 2:
    raise app.UsageError(f"--labels: two names, got {_LABELS.value}.")
  res = compare(a_runs, b_runs, _METRIC.value, _BANDS.value, _RESAMPLES.value, _SEED.value)
  print(format_markdown(res, tuple(_LABELS.value)), end="")
  if _OUT.value:
    metric_writers.atomic_write_text(_OUT.value, json.dumps(res, indent=2))


if __name__ == "__main__":
  app.run(main)
