"""Trains RecBole's SASRec (cross-entropy) on ML-100K and writes timings and metrics as JSON.

The RecBole side of the SASRec/HeterRec benchmark. It runs in the separate RecBole environment
(``.venv-recbole``, see benchmarks/README.md), usually as a subprocess of the benchmark script:

  .venv-recbole/bin/python benchmarks/recbole_sasrec.py --epochs 200 --seed 0 \
      --threads 2 --out workdirs/bench/recbole_sasrec_seed0.json

Protocol (matching ``configs/data/ml100k.py``): every rating is an interaction, 5-core on users
and items, leave-one-out by timestamp (``eval_args`` split LS valid_and_test, order TO), full
ranking over the whole catalogue without history masking (RecBole masks only the padding item for
sequential models), HR/NDCG/MRR at 5, 10, 20, early stopping on valid NDCG@10, CE loss over the
full catalogue, no negative sampling.

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
SCHEMA = "recbole_sasrec/v1"
TOPK = (5, 10, 20)


def parse_args(argv=None):
  """Parses the command line."""
  p = argparse.ArgumentParser(
      description=__doc__.split("\n\n", 1)[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  p.add_argument("--data_path", default=None,
                 help="RecBole data_path: a folder holding <dataset>/<dataset>.inter; relative to "
                 "the current folder. Default: ../shared/data relative to the repository root.")
  p.add_argument("--dataset", default="ml-100k", help="RecBole dataset name (the subfolder).")
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
  if args.inner is None:
    args.inner = 4 * args.hidden
  return args


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
  """RecBole parameters for SASRec-CE on a leave-one-out, full-ranking split."""
  return {
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


def reconstruct_splits(train_ds, valid_ds, test_ds, uid_tokens, iid_tokens):
  """Per-user raw item sequences and split sizes, rebuilt from RecBole's augmented data sets.

  Each row of RecBole's sequential data set is (user, prefix of up to MAX_ITEM_LIST_LENGTH
  items, target); a user's rows are in time order. Every prefix is checked against the
  sequence rebuilt so far.

  Returns:
    (raw user id -> (raw items, n_train, n_valid), number of inconsistent rows).
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
  splits = {}
  for u, seq in seqs.items():
    _, n_valid, n_test = counts[u]
    n_train = len(seq) - n_valid - n_test
    splits[str(uid_tokens[u])] = ([str(iid_tokens[i]) for i in seq], n_train, n_valid)
  return splits, bad


def main(argv=None):
  """Trains, evaluates and writes the JSON record; ``argv`` defaults to the command line."""
  args = parse_args(argv)
  out_path = os.path.abspath(args.out)
  data_path = os.path.abspath(args.data_path or _DEFAULT_DATA_PATH)
  inter_file = os.path.join(data_path, args.dataset, f"{args.dataset}.inter")
  if not os.path.isfile(inter_file):
    # RecBole would try to download a missing dataset; fail clearly instead.
    sys.exit(f"recbole_sasrec: {inter_file} not found. --data_path must hold "
             f"{args.dataset}/{args.dataset}.inter (RecBole atomic files).")
  out_dir = os.path.dirname(out_path)
  os.makedirs(out_dir, exist_ok=True)

  if not args.verbose:
    # Known noise: pandas FutureWarnings inside RecBole, pkg_resources and tensor-copy notes.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
  t_start = time.perf_counter()
  load_at_start = os.getloadavg()

  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import recbole  # pylint: disable=g-import-not-at-top
  from recbole.config import Config  # pylint: disable=g-import-not-at-top
  from recbole.data import data_preparation  # pylint: disable=g-import-not-at-top
  from recbole.data.dataset import SequentialDataset  # pylint: disable=g-import-not-at-top
  from recbole.model.sequential_recommender import SASRec  # pylint: disable=g-import-not-at-top
  from recbole.trainer import Trainer  # pylint: disable=g-import-not-at-top
  from recbole.utils import init_logger, init_seed  # pylint: disable=g-import-not-at-top
  if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
  import split_fingerprint  # pylint: disable=g-import-not-at-top

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

  class TimedTrainer(Trainer):
    """RecBole's Trainer, timing each training epoch and each evaluation."""

    def __init__(self, config, model):
      super().__init__(config, model)
      self.pending = None  # The epoch being trained and validated.

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
      start = time.perf_counter()
      score, result = super()._valid_epoch(valid_data, show_progress)
      seconds = time.perf_counter() - start
      self.pending.update(eval_seconds=seconds, valid=rename_metrics(result))
      return score, result

  work_dir = tempfile.mkdtemp(prefix=".recbole_sasrec_", dir=out_dir)
  old_cwd = os.getcwd()
  os.chdir(work_dir)
  ok = False
  try:
    # RecBole's Config also reads "--key=value" pairs from sys.argv: hide ours from it.
    saved_argv, sys.argv = sys.argv, sys.argv[:1]
    try:
      config = Config(model="SASRec", dataset=args.dataset,
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
    splits, bad_rows = reconstruct_splits(
        train_data.dataset, valid_data.dataset, test_data.dataset,
        dataset.field2id_token["user_id"], dataset.field2id_token["item_id"])
    fingerprint = split_fingerprint.fingerprint(splits) if not bad_rows else None
    data_info = {
        "users": num_users, "items": num_items, "interactions": num_inters,
        "train_targets": n_train_targets,
        "train_events": int(sum(s[1] for s in splits.values())),
        "valid_users": n_valid, "test_users": n_test,
        "split_fingerprint": fingerprint,
        "inconsistent_prefix_rows": bad_rows,
    }
    print(f"[recbole] {args.dataset}: {num_users} users, {num_items} items, {num_inters} "
          f"interactions; train targets {n_train_targets}, valid {n_valid}, test {n_test}; "
          f"time_order={args.time_order}", flush=True)

    init_seed(config["seed"], config["reproducibility"])
    model = SASRec(config, train_data.dataset).to(config["device"])
    logger.info(model)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_item_emb = model.item_embedding.weight.numel()
    setup_seconds = time.perf_counter() - t_start

    record = {
        "schema": SCHEMA,
        "complete": False,
        "system": "RecBole SASRec (CE)",
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
            "dataset": args.dataset, "data_path": args.data_path, "seed": args.seed,
            "epochs": args.epochs, "stopping_step": args.stopping_step,
            "hidden": args.hidden, "inner": args.inner, "layers": args.layers,
            "heads": args.heads, "max_len": args.max_len, "dropout": args.dropout,
            "attn_dropout": args.attn_dropout, "batch": args.batch, "lr": args.lr,
            "eval_batch": args.eval_batch, "loss_type": "CE", "optimizer": "adam",
            "weight_decay": 0.0, "train_neg_sample_args": None,
            "eval_args": config["eval_args"], "metrics": ["hr", "ndcg", "mrr"],
            "topk": list(TOPK), "valid_metric": "ndcg@10", "rating_threshold": None,
            "user_core": 5, "item_core": 5, "time_order": args.time_order,
            "history_masking": False,
        },
        "data": data_info,
        "model": {"parameters": int(n_params), "item_embedding_parameters": int(n_item_emb),
                  "non_embedding_parameters": int(n_params - n_item_emb)},
        "setup_seconds": setup_seconds,
        "epochs": [],
    }
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
    test_start = time.perf_counter()
    test_result = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    test_seconds = time.perf_counter() - test_start

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
    write_json_atomic(out_path, record)
    t = record["test"]
    print(f"[recbole] best epoch {best['epoch']} (valid ndcg@10 {best['valid_ndcg@10']:.4f}, "
          f"reached after {best['cum_train_seconds']:.1f}s of training); test ndcg@10 "
          f"{t['ndcg@10']:.4f} hr@10 {t['hr@10']:.4f} mrr@10 {t['mrr@10']:.4f}; "
          f"wrote {args.out}", flush=True)
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
