"""HeterRec (and its baselines) trained through the common loop: ``train_and_evaluate``.

The functional pieces, usable without the loop:

- ``load_data(config)`` -> ``RecDataset`` (built in memory, or prepared once under
  ``config.data_dir`` and read back);
- ``init(config, ds, rng)`` -> ``(TrainState, model, features)``;
- ``make_train_step(config, model)`` -> the pure per-device step
  ``(state, batch, rng, consts) -> (state, metrics)``;
- ``evaluation.make_rank_fn`` / ``evaluation.evaluate`` for sharded full-ranking metrics.

``model.max_len`` is the history length L. A training example is a window of L + 1 consecutive
training items (the most recent, or a random one with ``input.random_window``), left-padded; the
model predicts every next item inside it (LMP with ``loss.k`` steps). Evaluation feeds the last L
items of the history, left-padded to width L, and scores the next item from the last position.
The model therefore holds L + 1 position embeddings, and the position that scores at evaluation
(L - 1) is one that predicted a next item in every training window. (With windows of width L
instead, position L - 1 would never receive a gradient, yet be the one read at evaluation.)

Evaluation ranks the held-out item of every user against the whole catalogue (leave-one-out;
``eval.mask_history`` excludes already-seen items).
"""

from __future__ import annotations

import functools
import io
import os
from typing import Any, Optional

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from common import config_checks
from common import data as data_lib
from common import metric_writers
from common import parallel
from common import plots
from common import train_loop
from common import train_state as ts
from heterrec_jax import evaluation
from heterrec_jax import htfl
from heterrec_jax import losses
from heterrec_jax import metrics as metrics_lib
from heterrec_jax import models
from heterrec_jax import objectives


def get_default_config() -> ml_collections.ConfigDict:
  """Every key the HeterRec trainer reads (configs/heterrec/*.py start from this)."""
  c = train_loop.base_config()
  c.method = "heterrec"
  c.data = ml_collections.ConfigDict()  # a data config (configs/data/*.py)
  c.data_dir = ""  # if set, prepare the data set once under it and read it back
  c.model = models.default_model_config()
  c.loss = objectives.default_loss_config()
  # stride 0: one window per user per epoch (its last, or a random one); stride s > 0: windows
  # every s items, each target counted once per epoch (common.data.StridedWindowBatches).
  c.input = ml_collections.ConfigDict(dict(random_window=False, stride=0))
  c.eval = ml_collections.ConfigDict(dict(
      batch_size=256, mask_history=True, max_batches=0, chunk_size=0, popularity_baseline=True,
      # Write <workdir>/ranks_test.npz (and ranks_valid.npz) at the end: each evaluated user's
      # id, held-out item and 0-based rank at the final (best) state, for paired per-user tests
      # (scripts/paired_test.py).
      save_ranks=True))
  c.train.eval_every = 500
  c.train.early_stop_patience = 0
  return c


def check_config(config: ml_collections.ConfigDict) -> None:
  train_loop.check_config(config)
  reference = get_default_config()
  config_checks.check_against(config, reference, sections=("model", "loss", "input", "eval"))
  config_checks.require(config.model.max_len >= 1, "model.max_len",
                        f"must be >= 1 (the history length), got {config.model.max_len}",
                        "set --config.model.max_len=50")
  config_checks.require(0 <= config.input.stride <= config.model.max_len, "input.stride",
                        f"must be in [0, model.max_len = {config.model.max_len}], got "
                        f"{config.input.stride}",
                        "set --config.input.stride=0 (one window per user) or a value in "
                        "[1, model.max_len]")
  config_checks.require(bool(config.data), "data", "is empty",
                        "start from a configs/heterrec/*.py file, which sets a data source")


# -- data ----------------------------------------------------------------------------------------

def load_data(config: ml_collections.ConfigDict) -> data_lib.RecDataset:
  """The data set of ``config.data``: prepared under ``config.data_dir`` once, else in memory."""
  if not config.data_dir:
    return data_lib.build_dataset(config.data)
  name = config.data.name
  if os.path.exists(data_lib.dataset_dir(config.data_dir, name)):
    return data_lib.load(name, config.data_dir)
  if jax.process_index() == 0:
    data_lib.prepare(config.data, config.data_dir)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices("heterrec data prepared")
  return data_lib.load(name, config.data_dir)


class Windows:
  """Training windows of ``model.max_len + 1`` consecutive items (left-padded), resumable.

  Wraps ``common.data.SequenceBatches`` (one window per user per epoch; ``input.stride = 0``) or
  ``common.data.StridedWindowBatches`` (``input.stride = s``: every target counted once per epoch,
  with at least ``L + 1 - s`` items of context) into one ``item_ids`` array, which the model
  reads to predict each next item inside it, and ``target_mask``, the items counted as targets.
  """

  def __init__(self, ds, config):
    common = dict(max_len=config.model.max_len, global_batch_size=config.train.batch_size,
                  seed=config.seed)
    if config.input.stride:
      self._inner = data_lib.StridedWindowBatches(ds, stride=config.input.stride, **common)
    else:
      self._inner = data_lib.SequenceBatches(ds, random_window=config.input.random_window,
                                             **common)

  def __iter__(self):
    return self

  def __next__(self):
    b = next(self._inner)
    # Inputs are items [s, s+L) and targets [s+1, s+L], both left-padded: the window is the
    # inputs plus the last target (taking the first input instead would drop a short row's
    # oldest item, since its padding shifts with the row).
    counted = b.get("target_mask", b["mask"])
    return {"item_ids": np.concatenate([b["input_ids"], b["target_ids"][:, -1:]], axis=1),
            # Window column j + 1 holds target j; column 0 is never a target.
            "target_mask": np.concatenate([np.zeros_like(counted[:, :1]), counted], axis=1)}

  def get_state(self) -> dict:
    return self._inner.get_state()

  def set_state(self, state: dict) -> None:
    self._inner.set_state(state)


# -- model, state, step --------------------------------------------------------------------------

def build_model(config, ds: data_lib.RecDataset):
  """The model of ``config.model`` for ``ds``'s catalogue, and its feature arrays."""
  model_config = ml_collections.ConfigDict(config.model.to_dict())
  model_config.max_len = config.model.max_len + 1  # training windows are L inputs + next item
  model = models.get_model(model_config, num_items=ds.num_items, field_specs=ds.field_specs)
  fields = getattr(model, "fields", ())
  features = {k: np.asarray(v) for k, v in
              htfl.select_features(fields, ds.item_features, ds.num_items).items()}
  return model, features


def init(config, ds, rng) -> tuple[ts.TrainState, Any, dict]:
  """A fresh TrainState (host arrays), the model and its features."""
  model, features = build_model(config, ds)
  params_rng, state_rng = jax.random.split(rng)
  dummy = {"item_ids": jnp.ones((1, config.model.max_len + 1), jnp.int32)}
  params = jax.jit(lambda r: model.init(r, dummy, features))(params_rng)["params"]
  tx = ts.make_optimizer(config.optim, config.train.num_steps)
  return ts.create(model.apply, params, tx, state_rng), model, features


def make_train_step(config, model):
  """The pure per-device step ``(state, batch, rng, consts) -> (state, metrics)``."""
  loss_fn = objectives.make_loss_fn(model, config.loss)

  def train_step(state, batch, rng, consts):
    def objective(params):
      return loss_fn(params, batch, consts["features"], rng,
                     train=True, log_q=consts["log_q"])
    (loss, aux), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    grads = parallel.pmean(grads)
    return state.apply_gradients(grads=grads), {
        "loss": loss, "targets_per_device": aux["num_targets"].astype(jnp.float32)}

  return train_step


def popularity_metrics(ds: data_lib.RecDataset, split: str, batch_size: int = 512,
                       mask_history: bool = True) -> dict[str, float]:
  """The popularity baseline (train-split counts as scores), same ranking rule and users."""
  counts = ds.item_counts("train" if split == "valid" else "train_valid").astype(np.float32)
  sums, n = {}, 0
  for batch in data_lib.EvalBatches(ds, split=split, max_len=1, global_batch_size=batch_size,
                                    process_index=0, process_count=1):
    scores = np.broadcast_to(counts, (len(batch["target_ids"]), len(counts)))
    per_user = metrics_lib.ranking_metrics(
        scores, np.where(batch["valid"], batch["target_ids"], 0),
        batch["seen_ids"] if mask_history else None)
    for k, v in metrics_lib.mean_metrics(per_user).items():
      sums[k] = sums.get(k, 0.0) + float(v) * int(batch["valid"].sum())
    n += int(batch["valid"].sum())
  return {k: v / max(n, 1) for k, v in sorted(sums.items())}


# -- the whole run ------------------------------------------------------------------------------

def make_task(config, ds) -> tuple[train_loop.Task, dict]:
  state_template, model, features = init(config, ds, jax.random.PRNGKey(config.seed))
  del state_template
  log_q = np.asarray(losses.popularity_log_q(jnp.asarray(ds.item_counts("train"))),
                     np.float32)
  consts = {"features": features, "log_q": log_q}
  eval_cache: dict = {}
  last_ranks: dict = {}
  train_counts = np.asarray(ds.item_counts("train"))

  def evaluate(dstate, dp, split):
    if dp not in eval_cache:
      eval_cache[dp] = (evaluation.make_rank_fn(model, dp, mask_history=config.eval.mask_history,
                                                chunk_size=config.eval.chunk_size),
                        dp.replicate(features))
    rank_fn, dfeatures = eval_cache[dp]
    batches = data_lib.EvalBatches(ds, split=split, max_len=config.model.max_len,
                                   global_batch_size=config.eval.batch_size)
    ranks = [] if config.eval.save_ranks else None
    out = evaluation.evaluate(rank_fn, dp, dstate.params, dfeatures, batches,
                              max_batches=config.eval.max_batches, ranks_out=ranks)
    if ranks is None:
      return out
    ranks = np.concatenate(ranks) if ranks else np.zeros((0,), np.int32)
    n = len(ranks)  # fewer than batches.users with eval.max_batches
    targets = ds.items[ds.offsets[batches.users[:n]] + batches.positions[:n]]
    last_ranks[split] = dict(users=batches.users[:n].astype(np.int32),
                             targets=np.asarray(targets, np.int32), ranks=ranks.astype(np.int32),
                             target_train_count=train_counts[targets].astype(np.int32))
    return out

  task = train_loop.Task(
      init_state=lambda rng: init(config, ds, rng)[0],
      train_step=make_train_step(config, model),
      train_iter=Windows(ds, config),
      evaluate=evaluate,
      best_metric="ndcg@10",
      consts=consts)
  return task, {"model": model, "features": features, "last_ranks": last_ranks}


def save_ranks(workdir: str, last_ranks: dict) -> None:
  """Writes each split's per-user ranks to ``<workdir>/ranks_<split>.npz``, atomically."""
  for split, arrays in last_ranks.items():
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    metric_writers.atomic_write_bytes(os.path.join(workdir, f"ranks_{split}.npz"),
                                      buffer.getvalue())


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains ``config.model`` on ``config.data``; resumes from ``workdir``; returns results."""
  check_config(config)
  ds = load_data(config)
  if jax.process_index() == 0:
    print(data_lib.format_summary(data_lib.summarize(ds)), flush=True)
  task, extras = make_task(config, ds)
  results = train_loop.run(config, workdir, task)
  if config.eval.save_ranks and jax.process_index() == 0 and "test" in results:
    save_ranks(workdir, extras["last_ranks"])
  if config.eval.popularity_baseline:
    results["popularity_test"] = popularity_metrics(ds, "test",
                                                    mask_history=config.eval.mask_history)
  if jax.process_index() == 0:
    plots.learning_curves(workdir, ("loss",), ("ndcg@10", "hr@10"))
    rows = [dict(model=config.model.name, split=s, **{k: results[s][k] for k in
                                                     ("hr@10", "ndcg@10", "mrr@10")})
            for s in ("valid", "test") if s in results]
    if "popularity_test" in results:
      p = results["popularity_test"]
      rows.append(dict(model="popularity", split="test", **{k: p[k] for k in
                                                            ("hr@10", "ndcg@10", "mrr@10")}))
    print(metric_writers.format_table(rows), flush=True)
  return results
