"""HeterRec (and its baselines) trained through the common loop: ``train_and_evaluate``.

The functional pieces, usable without the loop:

- ``load_data(config)`` -> ``RecDataset`` (built in memory, or prepared once under
  ``config.data_dir`` and read back);
- ``config.validate(config)`` -> the model and loss config objects (the one config check);
- ``build_model(config, ds)`` -> ``(model, features)``, no parameters yet;
- ``make_init_state(config, model, features)`` -> the pure, jittable ``rng -> TrainState``;
- ``make_train_step(model, loss_config)`` -> the pure per-device step
  ``(state, batch, rng, consts) -> (state, metrics)``;
- ``common.recsys.evaluation.make_rank_fn`` / ``evaluate`` with ``models.towers(model)`` for
  sharded full-ranking metrics.

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

from collections.abc import Callable
import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from common import data as data_lib
from common import metric_writers
from common import parallel
from common import plots
from common import train_loop
from common import train_state as ts
from common.recsys import embedders
from common.recsys import losses
from common.recsys import metrics as metrics_lib
from common.recsys import packing
from common.recsys import runs
from heterrec_jax import config as config_lib
from heterrec_jax import models
from heterrec_jax import objectives


def get_default_config() -> ml_collections.ConfigDict:
  """Every key the HeterRec trainer reads (``configs/heterrec/defaults.py``)."""
  return config_lib.default_config()


# -- data ----------------------------------------------------------------------------------------

load_data = runs.load_data


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
    # With input.pack, each batch's windows are packed into fewer rows (common.recsys.packing); the
    # row count is a multiple of input.pack_multiple and of this process's devices.
    self._pack = config.input.pack
    devices = config.parallel.num_devices
    devices = jax.device_count() if devices in (0, -1) else devices
    local = max(1, devices // jax.process_count())
    self._row_multiple = int(np.lcm(config.input.pack_multiple, local))
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
    out = {"item_ids": np.concatenate([b["input_ids"], b["target_ids"][:, -1:]], axis=1),
           # Window column j + 1 holds target j; column 0 is never a target.
           "target_mask": np.concatenate([np.zeros_like(counted[:, :1]), counted], axis=1)}
    if not self._pack:
      return out
    packed = packing.pack_windows(out["item_ids"], out["target_mask"], self._row_multiple)
    packed = {k: packed[k] for k in packing.ROW_KEYS}
    if jax.process_count() > 1:  # every process must feed the same number of rows
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      rows = int(np.max(multihost_utils.process_allgather(np.int32(len(packed["item_ids"])))))
      packed = {k: np.pad(v, ((0, rows - len(v)), (0, 0))) for k, v in packed.items()}
    return packed

  def get_state(self) -> dict:
    return self._inner.get_state()

  def set_state(self, state: dict) -> None:
    self._inner.set_state(state)


# -- model, state, step --------------------------------------------------------------------------

def build_model(config: ml_collections.ConfigDict, ds: data_lib.RecDataset,
                model_config: Optional[config_lib.ModelConfig] = None):
  """The model of ``config.model`` for ``ds``'s catalogue, and its feature arrays (numpy).

  ``model_config`` is ``config.model``'s object when the caller has validated it already.
  """
  model_config = model_config or config_lib.model_config(config.model)
  # Training windows are L inputs + the next item: the position table holds L + 1.
  model_config = dataclasses.replace(model_config, max_len=config.model.max_len + 1)
  model = models.get_model(model_config, num_items=ds.num_items, field_specs=ds.field_specs)
  features = {k: np.asarray(v) for k, v in
              embedders.select_features(model.fields, ds.item_features, ds.num_items).items()}
  return model, features


def make_init_state(config: ml_collections.ConfigDict, model, features: dict
                    ) -> Callable[[jax.Array], ts.TrainState]:
  """The pure, jittable ``rng -> TrainState`` of a fresh run.

  The parameters depend on the features' shapes only, so the features enter as zeros made inside
  the program: the catalogue is never baked into it as a constant, and ``jax.eval_shape`` of the
  function gives the state's shapes without computing anything.
  """
  tx = ts.make_optimizer(config.optim, config.train.num_steps)
  shapes = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in features.items()}
  length = config.model.max_len + 1

  def init_state(rng: jax.Array) -> ts.TrainState:
    params_rng, state_rng = jax.random.split(rng)
    dummy = {"item_ids": jnp.ones((1, length), jnp.int32)}
    zeros = {k: jnp.zeros(s.shape, s.dtype) for k, s in shapes.items()}
    params = model.init(params_rng, dummy, zeros)["params"]
    return ts.create(model.apply, params, tx, state_rng)

  # Jitted here too, so that a direct call draws exactly the parameters the loop's jitted call
  # does (op-by-op random draws can differ from compiled ones in the last bit).
  return jax.jit(init_state)


def make_train_step(model, loss_config: config_lib.LossConfig):
  """The pure per-device step ``(state, batch, rng, consts) -> (state, metrics)``."""
  loss_fn = objectives.make_loss_fn(model, loss_config)

  def train_step(state, batch, rng, consts):
    def objective(params):
      return loss_fn(params, batch, consts["features"], rng,
                     train=True, log_q=consts["log_q"])
    (loss, aux), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    grads = parallel.pmean(grads)
    return state.apply_gradients(grads=grads), {
        "loss": loss, "targets_per_device": aux["num_targets"].astype(jnp.float32)}

  return train_step


# -- the whole run ------------------------------------------------------------------------------

def id_only_notice(model) -> str:
  """A one-line notice when a HeterRec model has no item features to make tokens of, else ''."""
  if not isinstance(model, models.HeterRec) or model.fields:
    return ""
  return ("Notice: HeterRec has no item features here (the data set has no usable item field, or "
          "model.fields names none), so an item is its id token alone and HeterRec is an id-only "
          "transformer: both of its levels run over the same one token per item, a deeper "
          "SASRec. Give the data item fields (docs/data.md) for HTFL to tokenize.")


def make_task(config, ds) -> tuple[train_loop.Task, dict]:
  """The loop's ``Task`` for ``config`` on ``ds``, and extras (model, features, per-user ranks).

  Builds the model and features without parameters; ``task.init_state`` makes them.

  Raises:
    ConfigError: a bad config (``config.validate``); ValueError: a config that does not fit the
      data set (a field it lacks).
  """
  model_config, loss_config = config_lib.validate(config)
  model, features = build_model(config, ds, model_config)
  notice = id_only_notice(model)
  if notice and jax.process_index() == 0:
    print(notice, flush=True)
  log_q = np.asarray(losses.popularity_log_q(jnp.asarray(ds.item_counts("train"))),
                     np.float32)
  consts = {"features": features, "log_q": log_q}
  last_ranks: dict = {}
  user_fn, item_fn = models.towers(model)
  # Packed evaluation histories need a causal model (BERT4Rec appends its mask token per row).
  evaluate = runs.make_evaluator(ds, user_fn, item_fn, features, config.eval,
                                 config.model.max_len, last_ranks,
                                 pack=config.eval.pack and model.mask_token_id is None)

  task = train_loop.Task(
      init_state=make_init_state(config, model, features),
      train_step=make_train_step(model, loss_config),
      train_iter=Windows(ds, config),
      evaluate=evaluate,
      best_metric="ndcg@10",
      consts=consts)
  return task, {"model": model, "features": features, "last_ranks": last_ranks}


save_ranks = runs.save_ranks


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains ``config.model`` on ``config.data``; resumes from ``workdir``; returns results."""
  config_lib.validate(config)  # before loading any data
  ds = load_data(config)
  if jax.process_index() == 0:
    print(data_lib.format_summary(data_lib.summarize(ds)), flush=True)
  task, extras = make_task(config, ds)
  results = train_loop.run(config, workdir, task)
  if config.eval.save_ranks and jax.process_index() == 0 and "test" in results:
    save_ranks(workdir, extras["last_ranks"])
  if config.eval.popularity_baseline:
    results["popularity_test"] = metrics_lib.popularity_metrics(
        ds, "test", mask_history=config.eval.mask_history)
  if jax.process_index() == 0:
    plots.learning_curves(workdir, ("loss",), ("ndcg@10", "hr@10"))
    if "test" in results:  # a stopped run printed how to get its results instead
      print(results_table(config, results), flush=True)
  return results


def results_table(config: ml_collections.ConfigDict, results: dict) -> str:
  """The model's valid/test HR, NDCG and MRR@10 beside the popularity baseline."""
  keys = ("hr@10", "ndcg@10", "mrr@10")
  rows = [dict(model=config.model.name, split=s, **{k: results[s][k] for k in keys})
          for s in ("valid", "test") if s in results]
  if "popularity_test" in results:
    p = results["popularity_test"]
    rows.append(dict(model="popularity", split="test", **{k: p[k] for k in keys}))
  return metric_writers.format_table(rows)


def evaluate_workdir(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Tests the best state of a finished or stopped run in ``workdir`` (scripts/evaluate.py).

  Writes ``results.json`` (marked with the step reached and why the run ended) and, with
  ``eval.save_ranks``, the per-user ranks; prints the results table beside popularity.
  """
  config_lib.validate(config)
  ds = load_data(config)
  task, extras = make_task(config, ds)
  results = train_loop.evaluate_checkpoint(config, workdir, task)
  if jax.process_index() == 0:
    if config.eval.save_ranks:
      save_ranks(workdir, extras["last_ranks"])
    shown = dict(results)
    if config.eval.popularity_baseline:
      shown["popularity_test"] = metrics_lib.popularity_metrics(
          ds, "test", mask_history=config.eval.mask_history)
    print(results_table(config, shown), flush=True)
  return results
