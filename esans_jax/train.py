"""ESANS (and every sampler it is compared with) trained through the common loop.

The functional pieces, usable without the loop:

- ``runs.load_data(config)`` -> ``RecDataset``;
- ``config.validate(config)`` -> ``(TwoTowerConfig, SamplerConfig)`` (the one config check);
- ``build(config, ds)`` -> ``(model, consts)``: the towers (no parameters yet) and the step
  constants (item/user feature arrays, the fused multimodal vectors, training popularity);
- ``make_init_state(config, model, consts)`` -> the pure, jittable ``rng -> EsansState``;
- ``make_train_step(model, sampler, num_items)`` -> the pure per-device step
  ``(state, batch, rng, consts) -> (state, metrics)``;
- ``make_refresh(config, model, sampler)`` -> the per-device ``(state, consts) -> state`` that
  re-clusters the items (MSAC's two-level k-means) and rebuilds the sampling tables;
- ``models.towers(model)`` + ``common.recsys.evaluation`` for sharded full-ranking metrics.

A training example is (history, next item) for every training event with at least
``input.min_history`` items before it (``common.data.TwoTowerBatches``). Evaluation is
leave-one-out next-item retrieval over the whole catalogue, history excluded; with one held-out
item per user, Recall@K equals HR@K (both are reported).
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import jax
from jax import lax
import jax.numpy as jnp
import ml_collections
import numpy as np

from common import data as data_lib
from common import metric_writers
from common import parallel
from common import plots
from common import run_services
from common import train_loop
from common import train_state as ts
from common.checkpoints import Checkpointer
from common.recsys import embedders
from common.recsys import evaluation
from common.recsys import metrics as metrics_lib
from common.recsys import runs
from esans_jax import config as config_lib
from esans_jax import kmeans
from esans_jax import modalities
from esans_jax import models
from esans_jax import samplers


class EsansState(ts.TrainState):
  """The train state plus MSAC's sampling tables (refreshed every ``sampler.refresh_every``)."""
  msac: Any = None


def get_default_config() -> ml_collections.ConfigDict:
  """Every key the ESANS trainer reads (``configs/esans/defaults.py``)."""
  return config_lib.default_config()


# -- model and constants --------------------------------------------------------------------------

def _user_fields(config, ds) -> tuple:
  if not config.model.use_user_features or not ds.user_field_specs:
    return ()
  specs = [s for s in ds.user_field_specs if s.name != "user_id"]
  names = tuple(config.model.user_fields)
  if names:
    by_name = {s.name: s for s in specs}
    missing = [n for n in names if n not in by_name]
    if missing:
      raise config_lib.ConfigError(
          "model.user_fields", f"names {missing}, which the data set does not have",
          f"use some of {sorted(by_name)}, or () for all of them")
    specs = [by_name[n] for n in names]
  return tuple(s for s in specs if s.kind in ("categorical", "numeric", "multi", "dense"))


def build(config: ml_collections.ConfigDict, ds: data_lib.RecDataset,
          model_config: config_lib.TwoTowerConfig, sampler: samplers.SamplerConfig
          ) -> tuple[models.TwoTower, dict, dict]:
  """The towers for ``ds``, the step constants, and a report of the multimodal vectors.

  Raises:
    ConfigError: a field, modality or cluster count the data set cannot serve.
  """
  config_lib.check_data(config, ds, sampler)
  try:
    fields = embedders.resolve_fields(ds.field_specs, model_config.field_names)
  except ValueError as e:
    raise config_lib.ConfigError("model.fields", str(e), "name fields the data set has, or use "
                                 "() for every usable one") from e
  user_fields = _user_fields(config, ds)
  needs_mm = model_config.use_mm or (sampler.msac and config.sampler.representation != "tower")
  report: dict = {}
  features = {k: np.asarray(v) for k, v in
              embedders.select_features(fields, ds.item_features, ds.num_items).items()}
  if needs_mm:
    modalities.check_config(config.mm, ds)  # a ConfigError naming the mm key and the fix
    fused, report = modalities.build(ds, config.mm, seed=config.seed)
    features[models.MM_KEY] = np.asarray(fused, np.float32)
  user_features = {s.name: np.asarray(ds.user_features[s.name],
                                      np.float32 if s.kind == "dense" else np.int32)
                   for s in user_fields}
  counts = np.asarray(ds.item_counts("train"), np.float64)
  counts[0] = 0.0
  popularity = counts / max(counts.sum(), 1.0)
  pop_log = np.where(counts > 0, np.log(np.maximum(popularity, 1e-30)), -1e9)
  pop_log[0] = -1e9
  consts = {"features": features, "user_features": user_features,
            "popularity": popularity.astype(np.float32), "popularity_log": pop_log.astype(
                np.float32)}
  mm_dim = features[models.MM_KEY].shape[1] if model_config.use_mm and needs_mm else 0
  model = models.TwoTower(model_config, num_items=ds.num_items, fields=fields,
                          num_users=ds.num_users, user_fields=user_fields, mm_dim=mm_dim)
  return model, consts, report


def _shapes(tree):
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype), tree)


def make_init_state(config: ml_collections.ConfigDict, model: models.TwoTower, consts: dict,
                    sampler: samplers.SamplerConfig):
  """The pure, jittable ``rng -> EsansState`` of a fresh run (features enter as zeros)."""
  tx = ts.make_optimizer(config.optim, config.train.num_steps)
  shapes = _shapes({"features": consts["features"], "user_features": consts["user_features"]})
  k1, k2 = (config.sampler.k1, config.sampler.k2) if sampler.msac else (1, 1)
  length = config.model.max_len

  def init_state(rng):
    params_rng, state_rng = jax.random.split(rng)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    one = jnp.ones((1,), jnp.int32)
    params = model.init(params_rng, jnp.ones((1, length), jnp.int32), one, one,
                        zeros["features"], zeros["user_features"])["params"]
    return EsansState.create(apply_fn=model.apply, params=params, tx=tx, rng=state_rng,
                             msac=samplers.MsacTables.empty(model.num_items, k1, k2))

  return jax.jit(init_state)


# -- the step -------------------------------------------------------------------------------------

def make_loss_fn(model: models.TwoTower, sampler: samplers.SamplerConfig, num_items: int):
  """``loss(params, batch, consts, tables, rng, train) -> (loss, stats)`` on one device's rows.

  Inside ``dp.wrap`` (an axis named ``parallel.DATA_AXIS``) the in-batch pool is the whole global
  batch's positives (``all_gather``, differentiable); outside it, this device's rows.
  """
  def loss_fn(params, batch, consts, tables, rng, train=True, in_axis=True):
    draw_rng, drop_rng, edis_rng = jax.random.split(rng, 3)
    positive_ids = batch["positive_ids"].astype(jnp.int32)
    b = positive_ids.shape[0]
    negs = samplers.draw(draw_rng, sampler, positive_ids, consts["popularity_log"], num_items,
                         tables)
    features = consts["features"]
    apply = lambda *a, **kw: model.apply({"params": params}, *a, rngs={"dropout": drop_rng},
                                         **kw)
    user = apply(batch["history_ids"], batch["user_ids"], features, consts["user_features"],
                 train, method=models.TwoTower.embed_users)
    row_flat = negs.row_ids.reshape(-1)
    ids = jnp.concatenate([positive_ids, negs.shared_ids, negs.hard_pool, row_flat])
    emb = apply(ids, features, method=models.TwoTower.embed_items)
    s, p = negs.shared_ids.shape[0], negs.hard_pool.shape[0]
    positive = emb[:b]
    drawn = emb[b:b + s]
    pool = emb[b + s:b + s + p]
    rows = emb[b + s + p:].reshape(b, negs.row_ids.shape[1], emb.shape[-1])
    shared_emb, shared_ids, in_batch = drawn, negs.shared_ids, 0
    if sampler.in_batch:
      gather = ((lambda x: lax.all_gather(x, parallel.DATA_AXIS, tiled=True)) if in_axis
                else (lambda x: x))
      shared_emb = jnp.concatenate([gather(positive), drawn])
      shared_ids = jnp.concatenate([gather(positive_ids), negs.shared_ids])
      in_batch = shared_ids.shape[0] - s
    log_count = None
    if sampler.logq and shared_ids.shape[0]:
      log_count = samplers.pool_log_count(shared_ids, consts["popularity"], num_items, in_batch,
                                          sampler.num_uniform, sampler.num_popularity)
    temperature = apply(method=models.TwoTower.temperature)
    total, count, stats = samplers.softmax_loss(
        edis_rng, sampler, user, positive, positive_ids, jnp.ones((b,), bool), shared_emb,
        shared_ids, log_count, rows, negs.row_valid, pool, negs.hard_pool, temperature)
    stats["temperature"] = temperature
    return total / jnp.maximum(count, 1.0), stats

  return loss_fn


def make_train_step(model: models.TwoTower, sampler: samplers.SamplerConfig, num_items: int):
  """The pure per-device step ``(state, batch, rng, consts) -> (state, metrics)``."""
  loss_fn = make_loss_fn(model, sampler, num_items)

  def train_step(state, batch, rng, consts):
    (loss, stats), grads = jax.value_and_grad(
        lambda p: loss_fn(p, batch, consts, state.msac, rng), has_aux=True)(state.params)
    grads = parallel.pmean(grads)
    metrics = {"loss": loss, **stats}
    if sampler.msac:
      metrics["msac/inertia_l1"] = state.msac.inertia[0]
      metrics["msac/inertia_l2"] = state.msac.inertia[1]
      metrics["msac/largest_cluster"] = jnp.max(state.msac.counts1).astype(jnp.float32)
      metrics["msac/empty_clusters"] = jnp.sum(state.msac.counts1 == 0).astype(jnp.float32)
    return state.apply_gradients(grads=grads), metrics

  return train_step


# -- MSAC refresh ---------------------------------------------------------------------------------

def cluster_points(config, model: models.TwoTower, params, consts) -> jax.Array:
  """``[N, D]``: what MSAC clusters (``sampler.representation``) for items ``1..N``."""
  ids = jnp.arange(1, model.num_items + 1)
  rep = config.sampler.representation
  parts = []
  if rep in ("multimodal", "both"):
    parts.append(consts["features"][models.MM_KEY][1:].astype(jnp.float32))
  if rep in ("tower", "both"):
    tower = model.apply({"params": params}, ids, consts["features"],
                        method=models.TwoTower.embed_items)
    parts.append(config.sampler.tower_weight * tower if rep == "both" else tower)
  return jnp.concatenate(parts, axis=1)


def make_refresh(config: ml_collections.ConfigDict, model: models.TwoTower,
                 sampler: samplers.SamplerConfig):
  """Per-device ``(state, consts) -> state`` rebuilding MSAC's tables from the current items.

  The key is ``fold_in(state.rng, step)`` of the refresh, so a resumed run clusters exactly as an
  uninterrupted one (and the tables are state: they are checkpointed).
  """
  k1, k2, iters = config.sampler.k1, config.sampler.k2, config.sampler.kmeans_iters

  def refresh(state, consts):
    points = lax.stop_gradient(cluster_points(config, model, state.params, consts))
    key = jax.random.fold_in(jax.random.fold_in(state.rng, 0x3e5a), state.step)
    result = kmeans.residual_kmeans(points, k1, k2, key, max_iter=iters, tol=1e-4)
    inertia = jnp.stack([result.level1.inertia, result.level2.inertia])
    tables = samplers.build_tables(result.level1.assignments.astype(jnp.int32),
                                   result.level2.assignments.astype(jnp.int32),
                                   result.level1.centroids, k2, sampler.cluster_temperature,
                                   inertia, state.step)
    return state.replace(msac=tables)

  return refresh


# -- the task -------------------------------------------------------------------------------------

def with_recall(metrics: dict, ks) -> dict:
  """``metrics`` plus ``recall@K`` = ``hr@K`` (one held-out item per user)."""
  return {**metrics, **{f"recall@{k}": metrics[f"hr@{k}"] for k in ks}}


def popularity_test(config, ds) -> dict:
  """The popularity baseline's test metrics, with recall."""
  ks = tuple(int(k) for k in config.eval.ks)
  return with_recall(metrics_lib.popularity_metrics(
      ds, "test", mask_history=config.eval.mask_history, ks=ks), ks)


def make_task(config: ml_collections.ConfigDict, ds: data_lib.RecDataset):
  """The loop's ``Task`` and extras (model, consts, multimodal report, per-user ranks)."""
  model_config, sampler = config_lib.validate(config)
  model, consts, report = build(config, ds, model_config, sampler)
  user_fn, item_fn = models.towers(model)
  eval_consts = {"features": consts["features"], "user_features": consts["user_features"]}
  ks = tuple(int(k) for k in config.eval.ks)
  last_ranks: dict = {}
  evaluate_ranks = runs.make_evaluator(ds, user_fn, item_fn, eval_consts, config.eval,
                                       config.model.max_len, last_ranks, ks=ks,
                                       keys=evaluation.EVAL_KEYS + ("user_ids",))

  def evaluate(dstate, dp, split):
    return with_recall(evaluate_ranks(dstate, dp, split), ks)

  train_iter = data_lib.TwoTowerBatches(ds, max_len=config.model.max_len,
                                        global_batch_size=config.train.batch_size,
                                        seed=config.seed, min_history=config.input.min_history)
  refresh, refresh_every = None, 0
  if sampler.msac:
    refresh = make_refresh(config, model, sampler)
    refresh_every = config.sampler.refresh_every or config.train.num_steps
  task = train_loop.Task(
      init_state=make_init_state(config, model, consts, sampler),
      train_step=make_train_step(model, sampler, ds.num_items),
      train_iter=train_iter, evaluate=evaluate,
      best_metric=f"recall@{50 if 50 in ks else ks[0]}",
      consts=consts, refresh=refresh, refresh_every=refresh_every)
  return task, {"model": model, "consts": consts, "report": report, "last_ranks": last_ranks,
                "sampler": sampler, "eval_consts": eval_consts}


# -- export ---------------------------------------------------------------------------------------

def export_embeddings(workdir: str, model: models.TwoTower, params, eval_consts: dict,
                      ds: data_lib.RecDataset, max_len: int, batch_size: int = 1024) -> str:
  """Writes item and user embeddings with their id maps to ``<workdir>/export`` (ANN serving).

  Files (written to a temporary folder, then renamed into place: never half-written):
  ``item_embeddings.npy`` ``[N, d]`` float32 (row r = item id r + 1), ``item_ids.json`` (the raw
  id of each row), ``user_embeddings.npy`` ``[U, d]`` from each user's whole train+valid history
  (the test query), ``user_ids.json``, ``test_targets.npy`` (each user's held-out item row, -1 if
  none) and ``seen.npz`` (each user's history rows, to exclude), ``meta.json``.
  """
  user_fn, item_fn = models.towers(model)
  item_fn_j = jax.jit(lambda p, c, ids: item_fn(p, c, ids))
  user_fn_j = jax.jit(lambda p, c, b: user_fn(p, c, b))
  ids = np.arange(1, ds.num_items + 1)
  items = np.concatenate([np.asarray(item_fn_j(params, eval_consts, ids[i:i + batch_size]))
                          for i in range(0, len(ids), batch_size)]).astype(np.float32)
  batches = data_lib.EvalBatches(ds, split="test", max_len=max_len, global_batch_size=batch_size,
                                 process_index=0, process_count=1)
  users, user_rows, targets, seen_rows, seen_offsets = [], [], [], [], [0]
  for batch in batches:
    v = batch["valid"]
    emb = np.asarray(user_fn_j(params, eval_consts, {"history_ids": batch["history_ids"],
                                                     "user_ids": batch["user_ids"]}))
    users.append(emb[v])
    user_rows.extend(batch["user_ids"][v].tolist())
    targets.extend((batch["target_ids"][v] - 1).tolist())
    for seen in batch["seen_ids"][v]:
      rows = seen[seen > 0] - 1
      seen_rows.append(rows)
      seen_offsets.append(seen_offsets[-1] + len(rows))
  user_emb = np.concatenate(users).astype(np.float32) if users else np.zeros((0, items.shape[1]))
  raw = lambda arr, idx: [str(arr[i]) for i in idx]
  out_dir = os.path.join(workdir, "export")
  tmp = out_dir + ".tmp"
  os.makedirs(tmp, exist_ok=True)
  np.save(os.path.join(tmp, "item_embeddings.npy"), items)
  np.save(os.path.join(tmp, "user_embeddings.npy"), user_emb)
  np.save(os.path.join(tmp, "test_targets.npy"), np.asarray(targets, np.int64))
  np.savez(os.path.join(tmp, "seen.npz"), rows=np.concatenate(seen_rows) if seen_rows
           else np.zeros((0,), np.int64), offsets=np.asarray(seen_offsets, np.int64))
  with open(os.path.join(tmp, "item_ids.json"), "w") as f:
    json.dump(raw(ds.item_raw_ids, ids), f)
  with open(os.path.join(tmp, "user_ids.json"), "w") as f:
    json.dump(raw(ds.user_raw_ids, user_rows), f)
  with open(os.path.join(tmp, "meta.json"), "w") as f:
    json.dump({"num_items": int(ds.num_items), "num_users": len(user_rows),
               "dim": int(items.shape[1]), "score": "dot product of unit vectors",
               "user_query": "train+valid history, for the test item"}, f, indent=2)
  old = out_dir + ".old"
  if os.path.exists(out_dir):
    os.replace(out_dir, old)
  os.replace(tmp, out_dir)
  shutil.rmtree(old, ignore_errors=True)
  return out_dir


# -- the whole run --------------------------------------------------------------------------------

def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains ESANS (or the configured sampler) on ``config.data``; resumes from ``workdir``."""
  config_lib.validate(config)  # before loading any data
  ds = runs.load_data(config)
  main = jax.process_index() == 0
  if main:
    print(data_lib.format_summary(data_lib.summarize(ds)), flush=True)
  task, extras = make_task(config, ds)
  if main and extras["report"]:
    print("multimodal item vectors: " + json.dumps(run_report(extras["report"])), flush=True)
  results = train_loop.run(config, workdir, task)
  _finish(config, workdir, ds, task, extras, results)
  return results


def run_report(report: dict) -> dict:
  return json.loads(json.dumps(report, default=lambda o: np.asarray(o).tolist()))


def _finish(config, workdir, ds, task, extras, results) -> None:
  main = jax.process_index() == 0
  if config.eval.save_ranks and main and "test" in results:
    runs.save_ranks(workdir, extras["last_ranks"])
  if config.eval.popularity_baseline:
    results["popularity_test"] = popularity_test(config, ds)
  state = results.get("state")
  if state is not None and getattr(state, "msac", None) is not None and extras["sampler"].msac:
    results["msac"] = {"inertia_l1": float(state.msac.inertia[0]),
                       "inertia_l2": float(state.msac.inertia[1]),
                       "cluster_sizes_l1": np.asarray(state.msac.counts1).tolist(),
                       "code_sizes_l2": np.asarray(state.msac.counts2).tolist(),
                       "refreshed_at": int(state.msac.refreshed_at)}
  if main and "test" in results:
    if config.export.enabled:
      params = _best_params(workdir, task, config) or state.params
      results["export_dir"] = export_embeddings(workdir, extras["model"], params,
                                                extras["eval_consts"], ds, config.model.max_len)
    public = {k: v for k, v in results.items() if k != "state"}
    metric_writers.atomic_write_text(os.path.join(workdir, "results.json"),
                                     json.dumps(run_services.jsonable(public), indent=2,
                                                sort_keys=True))
    plots.learning_curves(workdir, ("loss",), ("recall@50", "ndcg@10"))
    print(results_table(config, results), flush=True)


def _best_params(workdir: str, task, config):
  """The best validation state's params (what the test metrics are of), or None."""
  best = Checkpointer(os.path.join(workdir, "best"), every=0, keep=1, async_save=False)
  try:
    if best.latest_step() is None:
      return None
    template = jax.eval_shape(task.init_state, jax.random.PRNGKey(config.seed))
    saved, _ = best.restore(ts.state_dict(template))
    return ts.restore_from_dict(template, saved).params
  finally:
    best.close()


RESULT_KEYS = ("recall@50", "recall@200", "hr@10", "ndcg@10", "ndcg@50")


def results_table(config: ml_collections.ConfigDict, results: dict) -> str:
  """Valid/test Recall@50/200, HR@10, NDCG@10/50 beside the popularity baseline."""
  keys = [k for k in RESULT_KEYS if k in results.get("test", {})]
  rows = [dict(model=f"esans[{config.sampler.name}]", split=s,
               **{k: results[s][k] for k in keys}) for s in ("valid", "test") if s in results]
  if "popularity_test" in results:
    rows.append(dict(model="popularity", split="test",
                     **{k: results["popularity_test"].get(k, float("nan")) for k in keys}))
  return metric_writers.format_table(rows, ["model", "split", *keys])


def evaluate_workdir(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Tests the best state of a finished or stopped run in ``workdir`` (scripts/evaluate.py)."""
  config_lib.validate(config)
  ds = runs.load_data(config)
  task, extras = make_task(config, ds)
  results = train_loop.evaluate_checkpoint(config, workdir, task)
  if jax.process_index() == 0:
    if config.eval.save_ranks:
      runs.save_ranks(workdir, extras["last_ranks"])
    shown = dict(results)
    if config.eval.popularity_baseline:
      shown["popularity_test"] = popularity_test(config, ds)
    print(results_table(config, shown), flush=True)
  return results

