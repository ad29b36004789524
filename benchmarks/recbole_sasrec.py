"""Trains RecBole's SASRec or SASRecF (cross-entropy) and writes timings and metrics as JSON.

The RecBole side of the SASRec/HeterRec benchmark. It runs in the separate RecBole environment
(``.venv-recbole``, see benchmarks/README.md), usually as a subprocess of the benchmark script:

  .venv-recbole/bin/python benchmarks/recbole_sasrec.py --epochs 200 --seed 0 \
      --threads 2 --out workdirs/bench/recbole_sasrec_seed0.json
  .venv-recbole/bin/python benchmarks/recbole_sasrec.py --dataset amazon-toys --model SASRecF \
      --threads 1 --out workdirs/bench/recbole_toys_sasrecf_seed0.json

Data sets. ``ml-100k`` (the default) reads RecBole atomic files under ``--data_path``.
``amazon-toys`` (or any name with ``--seq_file``) reads a one-line-per-user sequence file and an
item2attributes JSON (default: ``../shared/data/amazon-toys/`` relative to the repository root)
and writes RecBole atomic files for them into the run's temporary folder
(``recbole_atomic.py``): the ``.inter`` timestamps are the events' indices in the file, so the
time order is the file order, and the ``.item`` file holds the ``attributes`` ``token_seq``
field, each item's first ``--attribute_slots`` (8) distinct values, as
``configs/heterrec/amazon_toys.py`` keeps them. ``--model SASRecF`` gives that field to RecBole's
feature-aware SASRec (``selected_features``, ``pooling_mode``).

Protocol for ML-100K (matching ``configs/data/ml100k.py``): every rating is an interaction,
5-core on users and items, leave-one-out by timestamp (``eval_args`` split LS valid_and_test,
order TO), full ranking over the whole catalogue without history masking (RecBole masks only the
padding item for sequential models), HR/NDCG/MRR at 5, 10, 20, early stopping on valid NDCG@10,
CE loss over the full catalogue, no negative sampling. For Amazon Toys (``configs/data/
amazon_toys.py``): the same, without k-core filtering (the file is already 5-core), in file order,
and with the user's history masked from the ranking (see below).

History masking. RecBole 1.2.1 cannot mask the history of a sequential model: its full-ranking
loader passes no history index for sequential models, and its config refuses ``repeatable:
False`` for them. With ``--mask_history on`` (the default for sequence-file data sets, as the
project's ``eval.mask_history``) this runner's trainer sets the scores of each user's earlier
items (the whole history before the target, not only the last ``--max_len``; never the target)
to -inf before RecBole's own metrics rank them, in validation (so early stopping sees masked
NDCG@10) and in test; the JSON's ``test`` is then masked and ``test_unmasked`` is RecBole's stock
evaluation of the same checkpoint.

Split check: the JSON's ``data.split_fingerprint`` (``benchmarks/split_fingerprint.py``) is
computed from RecBole's own train/valid/test rows. For sequence files it is compared with the
leave-one-out split the project's data layer makes of the same file
(``recbole_atomic.expected_splits``), and with ``--expect_fingerprint`` for any data set; a
mismatch writes the JSON with ``data.split_fingerprint_match: false`` and stops with an error
before training.

Time order: RecBole stores float fields as float32, so it sorts events by a rounded timestamp
(with RecBole's ml-100k defaults, min-max normalised then float32: about 1 s resolution; without
normalisation 64 s) and events closer than that fall back to file order. ``--time_order exact``
(the default) replaces the timestamps by their dense rank before that conversion, which keeps the
order exact and gives the same split as the project's data layer (a stable sort by timestamp,
ties in file order); the JSON's ``data.split_fingerprint`` lets a caller check that
(``benchmarks/split_fingerprint.py``). ``--time_order recbole`` keeps RecBole's own behaviour.

Speed: importing RecBole's sequential models turns on torch's autograd anomaly detection for the
whole process (a module-level call in RecBole 1.2.1's sine.py), which about doubles SASRec's step
time; this runner turns it off again (``--anomaly_detection`` keeps it, as stock RecBole runs).

RecBole's log, tensorboard and checkpoint folders go to a temporary folder next to ``--out``,
removed at the end unless ``--keep_tmp`` (kept, and named on stderr, when the run fails). Stdout
gets one line per epoch; ``--verbose`` also streams RecBole's log to stderr.
"""

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO_ROOT = os.path.dirname(_HERE)
_DEFAULT_DATA_PATH = os.path.join(_REPO_ROOT, "..", "shared", "data")
TOYS = "amazon-toys"
# Repository-relative defaults for the Amazon Toys files (configs/data/amazon_toys.py's).
TOYS_SEQ_FILE = os.path.join("..", "shared", "data", "amazon-toys", "Toys_and_Games.txt")
TOYS_ATTRIBUTES_FILE = os.path.join("..", "shared", "data", "amazon-toys",
                                    "Toys_and_Games_item2attributes.json")
# configs/heterrec/amazon_toys.py's ATTRIBUTE_SLOTS: attribute values kept per item.
TOYS_ATTRIBUTE_SLOTS = 8
MODELS = ("SASRec", "SASRecF")
SCHEMA = "recbole_sasrec/v1"

if _HERE not in sys.path:
  sys.path.insert(0, _HERE)
import recbole_atomic  # pylint: disable=g-import-not-at-top,wrong-import-position
import split_fingerprint  # pylint: disable=g-import-not-at-top,wrong-import-position
TOPK = (5, 10, 20)


def parse_args(argv=None):
  """Parses the command line."""
  p = argparse.ArgumentParser(
      description=__doc__.split("\n\n", 1)[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  p.add_argument("--data_path", default=None,
                 help="RecBole data_path: a folder holding <dataset>/<dataset>.inter; relative to "
                 "the current folder. Default: ../shared/data relative to the repository root.")
  p.add_argument("--dataset", default="ml-100k",
                 help=f"RecBole dataset name (the subfolder). {TOYS!r}: Amazon Toys and Games "
                 "from its sequence file and item2attributes JSON (--seq_file, "
                 "--attributes_file), converted to atomic files for the run.")
  p.add_argument("--model", choices=MODELS, default="SASRec",
                 help="RecBole model: SASRec (ids only) or SASRecF (ids plus the attribute "
                 "field, selected_features).")
  p.add_argument("--seq_file", default=None,
                 help="One line per user, 'user item item ...' oldest first; relative to the "
                 f"current folder. Default for {TOYS!r}: {TOYS_SEQ_FILE} relative to the "
                 "repository root. Given with another --dataset, that data set is read from it.")
  p.add_argument("--attributes_file", default=None,
                 help="item2attributes JSON ({\"item\": [attr, ...]}) for --seq_file. Default "
                 f"for {TOYS!r}: {TOYS_ATTRIBUTES_FILE} relative to the repository root.")
  p.add_argument("--attribute_slots", type=int, default=TOYS_ATTRIBUTE_SLOTS,
                 help="Keep each item's first this many distinct attributes (0: all), as "
                 "configs/heterrec/amazon_toys.py's ATTRIBUTE_SLOTS.")
  p.add_argument("--pooling_mode", choices=("mean", "sum", "max"), default="mean",
                 help="SASRecF's pooling of an item's attribute embeddings. mean matches the "
                 "project's pooled multi-valued field (a masked mean); RecBole's default is sum.")
  p.add_argument("--mask_history", choices=("auto", "on", "off"), default="auto",
                 help="Exclude each user's earlier items (not the target) from the ranking. "
                 "auto: on for sequence-file data sets (the project's protocol there), off for "
                 "ml-100k (as before, and as RecBole does).")
  p.add_argument("--expect_fingerprint", default=None,
                 help="Expected split_fingerprint (benchmarks/split_fingerprint.py); a mismatch "
                 "stops the run before training.")
  p.add_argument("--atomic_dir", default=None,
                 help="Sequence-file data sets: write the atomic files here (kept) instead of "
                 "into the run's temporary folder.")
  p.add_argument("--out", required=True, help="JSON file to write (atomically, also after "
                 "every epoch with \"complete\": false).")
  p.add_argument("--epochs", type=int, default=200, help="Most training epochs.")
  p.add_argument("--stopping_step", type=int, default=10,
                 help="Stop after this many epochs without a better valid NDCG@10.")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--hidden", type=int, default=64, help="hidden_size (embedding width).")
  p.add_argument("--inner", type=int, default=None,
                 help="Feed-forward width (inner_size); default 4 * hidden, RecBole's 256 at 64.")
  p.add_argument("--layers", type=int, default=2)
  p.add_argument("--heads", type=int, default=2)
  p.add_argument("--max_len", type=int, default=50, help="MAX_ITEM_LIST_LENGTH.")
  p.add_argument("--dropout", type=float, default=0.5,
                 help="hidden_dropout_prob (RecBole's SASRec default 0.5).")
  p.add_argument("--attn_dropout", type=float, default=0.5,
                 help="attn_dropout_prob (RecBole's SASRec default 0.5).")
  p.add_argument("--batch", type=int, default=256, help="train_batch_size (training targets).")
  p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate.")
  p.add_argument("--eval_batch", type=int, default=4096, help="eval_batch_size (users).")
  p.add_argument("--threads", type=int, default=None,
                 help="torch.set_num_threads; default: leave torch's default.")
  p.add_argument("--time_order", choices=("exact", "recbole"), default="exact",
                 help="exact: order events by exact timestamps (ties in file order), as the "
                 "project's data layer does; recbole: RecBole's float32 timestamps.")
  p.add_argument("--anomaly_detection", action="store_true",
                 help="Keep torch's autograd anomaly detection on, as importing RecBole's models "
                 "leaves it (recbole/model/sequential_recommender/sine.py turns it on globally); "
                 "it about doubles the step time. Off by default.")
  p.add_argument("--machine", default="2-core CPU sandbox",
                 help="Description of the machine, copied into the JSON.")
  p.add_argument("--keep_tmp", action="store_true",
                 help="Keep RecBole's log/checkpoint folder next to --out.")
  p.add_argument("--verbose", action="store_true",
                 help="Stream RecBole's log and library warnings to stderr.")
  args = p.parse_args(argv)
  for name in ("epochs", "hidden", "layers", "heads", "max_len", "batch", "eval_batch"):
    if getattr(args, name) < 1:
      p.error(f"--{name} must be at least 1, got {getattr(args, name)}.")
  if args.stopping_step < 0:
    p.error("--stopping_step must be >= 0.")
  if args.hidden % args.heads:
    p.error(f"--hidden ({args.hidden}) must be divisible by --heads ({args.heads}).")
  if args.threads is not None and args.threads < 1:
    p.error("--threads must be at least 1.")
  if args.attribute_slots < 0:
    p.error("--attribute_slots must be >= 0 (0: keep all).")
  if args.inner is None:
    args.inner = 4 * args.hidden
  args.from_sequences = args.dataset == TOYS or args.seq_file is not None
  if args.from_sequences:
    if args.data_path is not None:
      p.error("--data_path is for atomic-file data sets; with a sequence file the atomic files "
              "are written for the run (--atomic_dir to keep them).")
    if args.seq_file is None:
      args.seq_file = os.path.join(_REPO_ROOT, TOYS_SEQ_FILE)
    if args.attributes_file is None and args.dataset == TOYS:
      args.attributes_file = os.path.join(_REPO_ROOT, TOYS_ATTRIBUTES_FILE)
  elif args.attributes_file is not None or args.atomic_dir is not None:
    p.error("--attributes_file and --atomic_dir go with a sequence file (--dataset "
            f"{TOYS} or --seq_file).")
  if args.model == "SASRecF" and not (args.from_sequences and args.attributes_file):
    p.error("--model SASRecF needs an attribute field: use --dataset amazon-toys (or --seq_file "
            "with --attributes_file).")
  args.history_masking = (args.mask_history == "on" or
                          (args.mask_history == "auto" and args.from_sequences))
  return args


def _display_path(path):
  """``path`` relative to the repository root when it is inside its parent folder (so the JSON
  names no machine-specific absolute path), else as given."""
  rel = os.path.relpath(os.path.abspath(path), _REPO_ROOT)
  return rel if not rel.startswith(os.path.join("..", "..")) else path


def protocol_notes(args):
  """Plain-language differences from the project's evaluation that a reader of the JSON needs."""
  notes = []
  if args.history_masking:
    notes.append("History masked by this runner, not by RecBole (RecBole 1.2.1 cannot for "
                 "sequential models): each user's earlier items, other than the target, are set "
                 "to -inf before RecBole ranks; valid (early stopping) and test are masked; "
                 "test_unmasked is RecBole's stock evaluation of the same checkpoint.")
  else:
    notes.append("History not masked (RecBole's default for sequential models): compare with "
                 "the project's evaluation with eval.mask_history off.")
  notes.append("RecBole's CE softmax includes the padding item 0; ranking ties follow "
               "torch.topk (the project counts ties optimistically); both rarely matter.")
  if args.model == "SASRecF":
    notes.append(f"SASRecF: the attribute field pooled with '{args.pooling_mode}' and "
                 "concatenated with the id embedding (RecBole's concat_layer); the output "
                 "layer scores items by their id embeddings only.")
  return notes


def write_json_atomic(path, obj):
  """Writes ``obj`` as JSON to ``path`` via a temporary file and a rename."""
  folder = os.path.dirname(path) or "."
  fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=".json", dir=folder)
  try:
    with os.fdopen(fd, "w") as f:
      json.dump(obj, f, indent=1, sort_keys=False)
      f.write("\n")
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def rename_metrics(result):
  """RecBole's result dict (``hit@10``, ``ndcg@10``, ...) -> ``hr@10``, ``ndcg@10``, floats."""
  out = {}
  for key, value in result.items():
    name, _, k = key.partition("@")
    name = "hr" if name == "hit" else name
    out[f"{name}@{k}"] = float(value)
  order = {"hr": 0, "ndcg": 1, "mrr": 2}
  return dict(sorted(out.items(), key=lambda kv: (order.get(kv[0].split("@")[0], 9),
                                                  int(kv[0].split("@")[1]))))


def build_config_dict(args, data_path):
  """RecBole parameters for SASRec(F)-CE on a leave-one-out, full-ranking split."""
  config = {
      # Environment.
      "data_path": data_path,
      "checkpoint_dir": "saved",  # Relative to the temporary working folder.
      "seed": args.seed,
      "reproducibility": True,
      "use_gpu": False,
      "worker": 0,
      "show_progress": False,
      "state": "INFO",
      "log_wandb": False,
      # Data: user/item/timestamp only; every rating counts; 5-core users and items.
      "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
      "USER_ID_FIELD": "user_id",
      "ITEM_ID_FIELD": "item_id",
      "TIME_FIELD": "timestamp",
      "rm_dup_inter": None,
      "val_interval": None,
      "user_inter_num_interval": "[5,inf)",
      "item_inter_num_interval": "[5,inf)",
      "MAX_ITEM_LIST_LENGTH": args.max_len,
      # Model.
      "hidden_size": args.hidden,
      "inner_size": args.inner,
      "n_layers": args.layers,
      "n_heads": args.heads,
      "hidden_dropout_prob": args.dropout,
      "attn_dropout_prob": args.attn_dropout,
      "hidden_act": "gelu",
      "layer_norm_eps": 1e-12,
      "initializer_range": 0.02,
      "loss_type": "CE",
      # Training.
      "epochs": args.epochs,
      "train_batch_size": args.batch,
      "learner": "adam",
      "learning_rate": args.lr,
      "weight_decay": 0.0,
      "train_neg_sample_args": None,
      "eval_step": 1,
      "stopping_step": args.stopping_step,
      # Evaluation.
      "eval_args": {"split": {"LS": "valid_and_test"}, "group_by": "user", "order": "TO",
                    "mode": "full"},
      "metrics": ["Hit", "NDCG", "MRR"],
      "topk": list(TOPK),
      "valid_metric": "NDCG@10",
      "valid_metric_bigger": True,
      "eval_batch_size": args.eval_batch,
      "metric_decimal_place": 6,
  }
  if args.from_sequences:
    # Every event of the file, in file order (the .inter timestamps are file positions); no
    # k-core (the project's sequence-file configs filter nothing).
    config.update({"user_inter_num_interval": None, "item_inter_num_interval": None})
    if args.model == "SASRecF":
      config["load_col"] = {"inter": ["user_id", "item_id", "timestamp"],
                            "item": ["item_id", recbole_atomic.ATTRIBUTE_FIELD]}
  if args.model == "SASRecF":
    config.update({"selected_features": [recbole_atomic.ATTRIBUTE_FIELD],
                   "pooling_mode": args.pooling_mode})
  return config


def reconstruct_splits(train_ds, valid_ds, test_ds, uid_tokens, iid_tokens):
  """Per-user raw item sequences and split sizes, rebuilt from RecBole's augmented data sets.

  Each row of RecBole's sequential data set is (user, prefix of up to MAX_ITEM_LIST_LENGTH
  items, target); a user's rows are in time order. Every prefix is checked against the
  sequence rebuilt so far.

  Returns:
    (raw user id -> (raw items, n_train, n_valid), number of inconsistent rows, internal user
    id -> (internal item ids, n_train, n_valid)).
  """
  seqs, counts = {}, {}
  bad = 0
  for part, ds in enumerate((train_ds, valid_ds, test_ds)):
    feat = ds.inter_feat
    users = feat["user_id"].numpy()
    prefixes = feat["item_id_list"].numpy()
    lengths = feat["item_length"].numpy()
    targets = feat["item_id"].numpy()
    for u, prefix, n, t in zip(users, prefixes, lengths, targets):
      seq = seqs.setdefault(u, [])
      prefix = [int(x) for x in prefix[:n]]
      if not seq:
        seq.extend(prefix)
      elif seq[len(seq) - n:] != prefix:
        bad += 1
      seq.append(int(t))
      counts.setdefault(u, [0, 0, 0])[part] += 1
  splits, internal = {}, {}
  for u, seq in seqs.items():
    _, n_valid, n_test = counts[u]
    n_train = len(seq) - n_valid - n_test
    splits[str(uid_tokens[u])] = ([str(iid_tokens[i]) for i in seq], n_train, n_valid)
    internal[int(u)] = (seq, n_train, n_valid)
  return splits, bad, internal


class HistoryMask:
  """Each user's items before the valid and the test target, to exclude from the ranking.

  RecBole 1.2.1 masks nothing but the padding item for sequential models, and has no setting
  for it. This holds, per phase, the user's whole history in RecBole's internal ids (CSR form):
  for ``valid`` the train segment, for ``test`` train and valid; not only the last
  MAX_ITEM_LIST_LENGTH items the model reads.
  """

  def __init__(self, internal, user_num):
    import numpy as np  # pylint: disable=g-import-not-at-top
    self.csr = {}
    for phase in ("valid", "test"):
      lengths = np.zeros(user_num, dtype=np.int64)
      chunks = []
      for u in sorted(internal):
        seq, n_train, n_valid = internal[u]
        hist = seq[:n_train] if phase == "valid" else seq[:n_train + n_valid]
        lengths[u] = len(hist)
        chunks.append(np.asarray(hist, dtype=np.int64))
      indptr = np.zeros(user_num + 1, dtype=np.int64)
      np.cumsum(lengths, out=indptr[1:])
      # Users in increasing id order, those without rows have length 0: the chunks in order.
      indices = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
      self.csr[phase] = (indptr, indices)

  def apply(self, phase, users, targets, scores):
    """Sets ``scores[b, h] = -inf`` for each item ``h`` in user ``users[b]``'s history.

    The target keeps its score even when it is also in the history (a repeat), as in the
    project's evaluation, which excludes the seen items other than the target.
    """
    import numpy as np  # pylint: disable=g-import-not-at-top
    import torch  # pylint: disable=g-import-not-at-top
    indptr, indices = self.csr[phase]
    u = users.cpu().numpy().astype(np.int64)
    lens = indptr[u + 1] - indptr[u]
    rows = np.repeat(np.arange(len(u)), lens)
    offsets = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
    cols = indices[np.repeat(indptr[u], lens) + offsets]
    batch = torch.arange(len(u), device=scores.device)
    targets = targets.to(scores.device)
    target_scores = scores[batch, targets].clone()
    scores[torch.from_numpy(rows).to(scores.device),
           torch.from_numpy(cols).to(scores.device)] = -float("inf")
    scores[batch, targets] = target_scores
    return scores


def main(argv=None):
  """Trains, evaluates and writes the JSON record; ``argv`` defaults to the command line."""
  args = parse_args(argv)
  out_path = os.path.abspath(args.out)
  t_start = time.perf_counter()
  seqs = attributes = expected_fingerprint = None
  if args.from_sequences:
    data_path = None  # The atomic files are written below, into the run's folder.
    try:
      seqs = recbole_atomic.read_sequences(args.seq_file)
      if args.attributes_file:
        attributes = recbole_atomic.read_item_attributes(args.attributes_file)
    except recbole_atomic.AtomicDataError as e:
      sys.exit(f"recbole_sasrec: {e}")
    # The split the project's data layer makes of this file (leave-one-out in file order).
    expected_fingerprint = split_fingerprint.fingerprint(recbole_atomic.expected_splits(seqs))
  else:
    data_path = os.path.abspath(args.data_path or _DEFAULT_DATA_PATH)
    inter_file = os.path.join(data_path, args.dataset, f"{args.dataset}.inter")
    if not os.path.isfile(inter_file):
      # RecBole would try to download a missing dataset; fail clearly instead.
      sys.exit(f"recbole_sasrec: {inter_file} not found. --data_path must hold "
               f"{args.dataset}/{args.dataset}.inter (RecBole atomic files).")
  if args.expect_fingerprint:
    if expected_fingerprint and expected_fingerprint != args.expect_fingerprint:
      sys.exit(f"recbole_sasrec: --expect_fingerprint {args.expect_fingerprint} differs from "
               f"the leave-one-out split of {args.seq_file} ({expected_fingerprint}).")
    expected_fingerprint = args.expect_fingerprint
  out_dir = os.path.dirname(out_path)
  os.makedirs(out_dir, exist_ok=True)

  if not args.verbose:
    # Known noise: pandas FutureWarnings inside RecBole, pkg_resources and tensor-copy notes.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
  load_at_start = os.getloadavg()

  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import recbole  # pylint: disable=g-import-not-at-top
  from recbole.config import Config  # pylint: disable=g-import-not-at-top
  from recbole.data import data_preparation  # pylint: disable=g-import-not-at-top
  from recbole.data.dataset import SequentialDataset  # pylint: disable=g-import-not-at-top
  from recbole.model import sequential_recommender  # pylint: disable=g-import-not-at-top
  from recbole.trainer import Trainer  # pylint: disable=g-import-not-at-top
  from recbole.utils import init_logger, init_seed  # pylint: disable=g-import-not-at-top

  if args.threads:
    torch.set_num_threads(args.threads)
  # Importing recbole.model.sequential_recommender runs SINE's module-level
  # torch.autograd.set_detect_anomaly(True), which NaN-checks every backward op and records a
  # Python stack per forward op: a debugging mode, not part of SASRec. Off unless asked for.
  anomaly_as_imported = bool(torch.is_anomaly_enabled())
  torch.autograd.set_detect_anomaly(args.anomaly_detection)

  class ExactTimeSequentialDataset(SequentialDataset):
    """RecBole's SequentialDataset, with timestamps replaced by their dense rank.

    RecBole turns float fields into float32 tensors before sorting by time; ranks (< 2**24)
    survive that exactly, so the order is the exact timestamp order with ties in file order.
    """

    def _change_feat_format(self):
      times = self.inter_feat[self.time_field].to_numpy(dtype=np.float64)
      _, rank = np.unique(times, return_inverse=True)
      self.inter_feat[self.time_field] = rank.astype(np.float64)
      super()._change_feat_format()

  # SASRecF's checkpoint pickles its feature layer, which holds the data set: the class must be
  # reachable by name, as a module-level one is.
  ExactTimeSequentialDataset.__qualname__ = "ExactTimeSequentialDataset"
  globals()["ExactTimeSequentialDataset"] = ExactTimeSequentialDataset

  class TimedTrainer(Trainer):
    """RecBole's Trainer, timing each training epoch and each evaluation."""

    def __init__(self, config, model):
      super().__init__(config, model)
      self.pending = None  # The epoch being trained and validated.
      self.history_mask = None  # A HistoryMask: exclude each user's history from the ranking.
      self.phase = "valid"  # Which history the next full-ranking evaluation masks.

    def _full_sort_batch_eval(self, batched_data):
      interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
      if self.history_mask is not None:
        # Sequential rows: one target per row, positive_u = 0..B-1, positive_i the targets.
        scores = self.history_mask.apply(self.phase, interaction["user_id"], positive_i, scores)
      return interaction, scores, positive_u, positive_i

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
      start = time.perf_counter()
      loss = super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)
      seconds = time.perf_counter() - start
      loss_sum = float(sum(loss) if isinstance(loss, tuple) else loss)
      self.pending = {"epoch": epoch_idx + 1, "train_seconds": seconds,
                      "train_loss": loss_sum / max(len(train_data), 1),
                      "train_loss_sum": loss_sum}
      return loss

    def _valid_epoch(self, valid_data, show_progress=False):
      self.phase = "valid"
      start = time.perf_counter()
      score, result = super()._valid_epoch(valid_data, show_progress)
      seconds = time.perf_counter() - start
      self.pending.update(eval_seconds=seconds, valid=rename_metrics(result))
      return score, result

  work_dir = tempfile.mkdtemp(prefix=".recbole_sasrec_", dir=out_dir)
  atomic_info = None
  if args.from_sequences:
    data_path = os.path.abspath(args.atomic_dir or os.path.join(work_dir, "atomic"))
    try:
      atomic_info = recbole_atomic.write_atomic(
          data_path, args.dataset, seqs, attributes,
          attribute_slots=args.attribute_slots or None)
    except recbole_atomic.AtomicDataError as e:
      shutil.rmtree(work_dir, ignore_errors=True)
      sys.exit(f"recbole_sasrec: {e} ({args.seq_file}, {args.attributes_file})")
    del seqs, attributes
  old_cwd = os.getcwd()
  os.chdir(work_dir)
  ok = False
  try:
    # RecBole's Config also reads "--key=value" pairs from sys.argv: hide ours from it.
    saved_argv, sys.argv = sys.argv, sys.argv[:1]
    try:
      config = Config(model=args.model, dataset=args.dataset,
                      config_dict=build_config_dict(args, data_path))
    finally:
      sys.argv = saved_argv
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = logging.getLogger()  # init_logger configures the root logger.
    for handler in logger.handlers:
      if not isinstance(handler, logging.FileHandler):
        handler.setLevel(logging.INFO if args.verbose else logging.WARNING)
    logger.info(config)

    dataset_cls = (ExactTimeSequentialDataset if args.time_order == "exact"
                   else SequentialDataset)
    dataset = dataset_cls(config)
    logger.info(dataset)
    num_users, num_items = dataset.user_num - 1, dataset.item_num - 1  # Less [PAD].
    num_inters = int(dataset.inter_num)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    n_train_targets = len(train_data.dataset)
    n_valid, n_test = len(valid_data.dataset), len(test_data.dataset)
    splits, bad_rows, internal = reconstruct_splits(
        train_data.dataset, valid_data.dataset, test_data.dataset,
        dataset.field2id_token["user_id"], dataset.field2id_token["item_id"])
    fingerprint = split_fingerprint.fingerprint(splits) if not bad_rows else None
    data_info = {
        "users": num_users, "items": num_items, "interactions": num_inters,
        "train_targets": n_train_targets,
        "train_events": int(sum(s[1] for s in splits.values())),
        "valid_users": n_valid, "test_users": n_test,
        "split_fingerprint": fingerprint,
        "expected_split_fingerprint": expected_fingerprint,
        "split_fingerprint_match": (None if expected_fingerprint is None
                                    else fingerprint == expected_fingerprint),
        "inconsistent_prefix_rows": bad_rows,
    }
    if atomic_info is not None:
      data_info["atomic_files"] = atomic_info
    print(f"[recbole] {args.dataset}: {num_users} users, {num_items} items, {num_inters} "
          f"interactions; train targets {n_train_targets}, valid {n_valid}, test {n_test}; "
          f"time_order={args.time_order}", flush=True)

    history_mask = HistoryMask(internal, dataset.user_num) if args.history_masking else None
    del internal

    init_seed(config["seed"], config["reproducibility"])
    model_cls = getattr(sequential_recommender, args.model)
    model = model_cls(config, train_data.dataset).to(config["device"])
    logger.info(model)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_item_emb = model.item_embedding.weight.numel()
    n_feature_emb = (sum(p.numel() for p in model.feature_embed_layer.parameters())
                     if args.model == "SASRecF" else 0)
    setup_seconds = time.perf_counter() - t_start

    record = {
        "schema": SCHEMA,
        "complete": False,
        "system": f"RecBole {args.model} (CE)",
        "machine": args.machine,
        "command": [os.path.basename(sys.argv[0])] + sys.argv[1:],
        "versions": {
            "python": platform.python_version(), "torch": torch.__version__,
            "recbole": recbole.__version__, "numpy": np.__version__,
            "pandas": sys.modules["pandas"].__version__,
        },
        "threads": torch.get_num_threads(),
        "load_average_at_start": list(load_at_start),
        "autograd_anomaly_detection": bool(torch.is_anomaly_enabled()),
        "autograd_anomaly_detection_as_imported": anomaly_as_imported,
        "device": str(config["device"]),
        "config": {
            "dataset": args.dataset, "data_path": args.data_path, "model": args.model,
            "seq_file": args.seq_file and _display_path(args.seq_file),
            "attributes_file": args.attributes_file and _display_path(args.attributes_file),
            "attribute_slots": (args.attribute_slots or None) if args.from_sequences else None,
            "selected_features": config["selected_features"] if args.model == "SASRecF" else None,
            "pooling_mode": args.pooling_mode if args.model == "SASRecF" else None,
            "seed": args.seed,
            "epochs": args.epochs, "stopping_step": args.stopping_step,
            "hidden": args.hidden, "inner": args.inner, "layers": args.layers,
            "heads": args.heads, "max_len": args.max_len, "dropout": args.dropout,
            "attn_dropout": args.attn_dropout, "batch": args.batch, "lr": args.lr,
            "eval_batch": args.eval_batch, "loss_type": "CE", "optimizer": "adam",
            "weight_decay": 0.0, "train_neg_sample_args": None,
            "eval_args": config["eval_args"], "metrics": ["hr", "ndcg", "mrr"],
            "topk": list(TOPK), "valid_metric": "ndcg@10", "rating_threshold": None,
            "user_core": 0 if args.from_sequences else 5,
            "item_core": 0 if args.from_sequences else 5, "time_order": args.time_order,
            "history_masking": args.history_masking,
        },
        "protocol_notes": protocol_notes(args),
        "data": data_info,
        "model": {"parameters": int(n_params), "item_embedding_parameters": int(n_item_emb),
                  "feature_embedding_parameters": int(n_feature_emb),
                  "non_embedding_parameters": int(n_params - n_item_emb - n_feature_emb)},
        "setup_seconds": setup_seconds,
        "epochs": [],
    }
    if data_info["split_fingerprint_match"] is False or (expected_fingerprint and bad_rows):
      record["error"] = (f"RecBole's split (fingerprint {fingerprint}, {bad_rows} inconsistent "
                         f"prefix rows) is not the expected one ({expected_fingerprint}); "
                         "nothing was trained.")
      write_json_atomic(out_path, record)
      raise SystemExit(f"recbole_sasrec: SPLIT MISMATCH: {record['error']} Wrote {args.out}.")
    if expected_fingerprint:
      print(f"[recbole] split fingerprint {fingerprint[:16]}... matches the expected split",
            flush=True)
    epochs = record["epochs"]
    cum = {"train": 0.0, "eval": 0.0}

    def on_epoch(epoch_idx, valid_score):
      """fit() callback after each validation: stores and prints the epoch."""
      del epoch_idx, valid_score
      entry = trainer.pending
      cum["train"] += entry["train_seconds"]
      cum["eval"] += entry["eval_seconds"]
      entry["cum_train_seconds"] = cum["train"]
      entry["cum_eval_seconds"] = cum["eval"]
      entry["train_targets_per_second"] = n_train_targets / entry["train_seconds"]
      entry["eval_users_per_second"] = n_valid / entry["eval_seconds"]
      entry["valid_ndcg@10"] = entry["valid"]["ndcg@10"]
      entry["valid_hr@10"] = entry["valid"]["hr@10"]
      best_before = max((e["valid_ndcg@10"] for e in epochs), default=-1.0)
      is_best = entry["valid_ndcg@10"] > best_before
      epochs.append(entry)
      print(f"[recbole] epoch {entry['epoch']:3d}  train {entry['train_seconds']:7.1f}s "
            f"(cum {cum['train']:8.1f}s, {entry['train_targets_per_second']:7.0f} targets/s)  "
            f"loss {entry['train_loss']:.4f}  valid ndcg@10 {entry['valid_ndcg@10']:.4f} "
            f"hr@10 {entry['valid_hr@10']:.4f}  eval {entry['eval_seconds']:.2f}s"
            f"{'  *' if is_best else ''}", flush=True)
      write_json_atomic(out_path, record)

    trainer = TimedTrainer(config, model)
    trainer.history_mask = history_mask
    fit_start = time.perf_counter()
    trainer.fit(train_data, valid_data, verbose=True, saved=True,
                show_progress=False, callback_fn=on_epoch)
    fit_seconds = time.perf_counter() - fit_start

    # Best epoch: the first to reach the highest valid NDCG@10. RecBole's checkpoint is the
    # last epoch with a valid score >= the best so far (equal only on an exact tie).
    best = max(epochs, key=lambda e: (e["valid_ndcg@10"], -e["epoch"]))
    checkpoint = torch.load(trainer.saved_model_file, map_location=config["device"],
                            weights_only=False)
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    trainer.phase = "test"
    test_start = time.perf_counter()
    test_result = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    test_seconds = time.perf_counter() - test_start
    unmasked = None
    if history_mask is not None:
      # RecBole's stock evaluation of the same checkpoint (history not masked), for reference.
      trainer.history_mask = None
      start = time.perf_counter()
      unmasked = dict(rename_metrics(trainer.evaluate(test_data, load_best_model=False,
                                                      show_progress=False)),
                      eval_seconds=time.perf_counter() - start)
      trainer.history_mask = history_mask

    total_train = sum(e["train_seconds"] for e in epochs)
    total_eval = sum(e["eval_seconds"] for e in epochs)
    early = len(epochs) < args.epochs
    record.update({
        "complete": True,
        "stopped": "early_stopping" if early else "max_epochs",
        "epochs_run": len(epochs),
        "best": {
            "epoch": best["epoch"],
            "checkpoint_epoch": int(checkpoint["epoch"]) + 1,
            "valid_ndcg@10": best["valid_ndcg@10"],
            "valid": best["valid"],
            "time_to_best_train_seconds": best["cum_train_seconds"],
            "time_to_best_train_plus_eval_seconds": (best["cum_train_seconds"]
                                                     + best["cum_eval_seconds"]),
        },
        "test": dict(rename_metrics(test_result), eval_seconds=test_seconds, users=n_test,
                     eval_users_per_second=n_test / test_seconds),
        "throughput": {
            "train_targets_per_epoch": n_train_targets,
            "train_targets_per_second": n_train_targets * len(epochs) / total_train,
            "train_targets_per_second_median": statistics.median(
                e["train_targets_per_second"] for e in epochs),
            "eval_users_per_second": n_valid * len(epochs) / total_eval,
            "eval_users_per_second_median": statistics.median(
                e["eval_users_per_second"] for e in epochs),
            "test_eval_users_per_second": n_test / test_seconds,
        },
        "timing": {
            "setup_seconds": setup_seconds,
            "train_seconds": total_train,
            "valid_eval_seconds": total_eval,
            "fit_seconds": fit_seconds,
            "test_eval_seconds": test_seconds,
            "total_seconds": time.perf_counter() - t_start,
        },
        "load_average_at_end": list(os.getloadavg()),
    })
    if unmasked is not None:
      record["test_unmasked"] = unmasked
    write_json_atomic(out_path, record)
    t = record["test"]
    print(f"[recbole] best epoch {best['epoch']} (valid ndcg@10 {best['valid_ndcg@10']:.4f}, "
          f"reached after {best['cum_train_seconds']:.1f}s of training); test ndcg@10 "
          f"{t['ndcg@10']:.4f} hr@10 {t['hr@10']:.4f} mrr@10 {t['mrr@10']:.4f}"
          f"{' (history masked; unmasked ndcg@10 %.4f)' % unmasked['ndcg@10'] if unmasked else ''}"
          f"; wrote {args.out}", flush=True)
    ok = True
  finally:
    os.chdir(old_cwd)
    logging.shutdown()
    if ok and not args.keep_tmp:
      shutil.rmtree(work_dir, ignore_errors=True)
    else:
      print(f"[recbole] RecBole's logs and checkpoints: {work_dir}", file=sys.stderr)


if __name__ == "__main__":
  main()
