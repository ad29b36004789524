"""A small end-to-end task for the training core: an MLP learns a planted linear teacher.

Inputs are Gaussian, labels come from a fixed random linear "teacher" (plus label noise), so the
reachable accuracy is known (1 - noise + noise / classes) and a working loop must approach it.
It exercises everything a method uses — data parallelism, checkpoints, resume, evaluation,
logging — with a model that trains in seconds on a CPU, and shows the functional API pattern
every method follows: ``init``, ``loss``, ``train_step``, ``evaluate``, ``train_and_evaluate``.
"""

from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from common import distributed
from common import parallel
from common import train_loop
from common import train_state as ts
from configs.example import defaults


def get_default_config() -> ml_collections.ConfigDict:
  """Every key of this task (``configs/example/defaults.py``)."""
  return defaults.get_default_config()


class MLP(nn.Module):
  hidden: Sequence[int]
  num_classes: int

  @nn.compact
  def __call__(self, x):
    for width in self.hidden:
      x = nn.relu(nn.Dense(width)(x))
    return nn.Dense(self.num_classes)(x)


# -- data --------------------------------------------------------------------------------------------

def _teacher(seed: int, dim: int, classes: int) -> np.ndarray:
  return np.random.default_rng([seed, 7919]).normal(size=(dim, classes)).astype(np.float32)


def make_examples(seed: int, index: int, n: int, dim: int, classes: int, noise: float):
  """Example block ``index`` of the stream for ``seed`` (the same on every process)."""
  rng = np.random.default_rng([seed, index])
  x = rng.normal(size=(n, dim)).astype(np.float32)
  y = np.argmax(x @ _teacher(seed, dim, classes), axis=1)
  flip = rng.random(n) < noise
  y = np.where(flip, rng.integers(0, classes, n), y).astype(np.int32)
  return {"x": x, "y": y}


class TeacherStream:
  """Infinite, deterministic batches; each process yields its slice of the global batch."""

  def __init__(self, seed: int, global_batch_size: int, dim: int, classes: int, noise: float):
    self.seed, self.global_batch_size = seed, global_batch_size
    self.dim, self.classes, self.noise = dim, classes, noise
    self.index = 0
    self._rows = distributed.host_slice(global_batch_size)

  def __iter__(self):
    return self

  def __next__(self):
    batch = make_examples(self.seed, self.index, self.global_batch_size, self.dim, self.classes,
                          self.noise)
    self.index += 1
    return {k: v[self._rows] for k, v in batch.items()}

  def get_state(self) -> dict:
    return {"index": self.index}

  def set_state(self, state: dict) -> None:
    self.index = int(state["index"])


# -- the functional API ------------------------------------------------------------------------------

def init(config: ml_collections.ConfigDict, rng: jax.Array) -> ts.TrainState:
  """A fresh TrainState for ``config``; pure and jittable (the loop traces it for shapes)."""
  model = MLP(tuple(config.model.hidden), config.data.num_classes)
  params_rng, state_rng = jax.random.split(rng)
  params = model.init(params_rng, jnp.zeros((1, config.data.dim)))["params"]
  tx = ts.make_optimizer(config.optim, config.train.num_steps)
  return ts.create(model.apply, params, tx, state_rng)


def loss(params, apply_fn, batch) -> tuple[jax.Array, dict]:
  """Mean cross-entropy of a batch, and accuracy."""
  logits = apply_fn({"params": params}, batch["x"])
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
  acc = jnp.mean(jnp.argmax(logits, -1) == batch["y"])
  return ce, {"loss": ce, "accuracy": acc}


def train_step(state: ts.TrainState, batch: dict, rng: jax.Array):
  """One update on one device's shard; gradients averaged over the data axis."""
  del rng  # The MLP is deterministic; methods with dropout use it.
  grads, metrics = jax.grad(loss, has_aux=True)(state.params, state.apply_fn, batch)
  grads = parallel.pmean(grads)
  return state.apply_gradients(grads=grads), metrics


def _eval_sums(state, batch):
  logits = state.apply_fn({"params": state.params}, batch["x"])
  w = batch["w"]
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"])
  return {"loss": jnp.sum(ce * w), "correct": jnp.sum((jnp.argmax(logits, -1) == batch["y"]) * w),
          "count": jnp.sum(w)}


def evaluate(config, state, dp: parallel.DataParallel, split: str) -> dict:
  """Accuracy and loss on a fixed held-out set (``valid`` and ``test`` differ)."""
  d = config.data
  n = -(-d.eval_examples // dp.num_devices) * dp.num_devices
  block = {"valid": 2**31 - 1, "test": 2**31 - 2}[split]  # never a training block
  data = make_examples(config.seed, block, n, d.dim, d.num_classes, d.label_noise)
  data["w"] = (np.arange(n) < d.eval_examples).astype(np.float32)
  data = {k: v[distributed.host_slice(n)] for k, v in data.items()}
  sums = dp.to_host(_eval_fn(dp)(state, dp.shard_batch(data)))
  return {"accuracy": float(sums["correct"] / sums["count"]),
          "loss": float(sums["loss"] / sums["count"])}


@functools.lru_cache(maxsize=None)
def _eval_fn(dp):
  return dp.wrap_eval(_eval_sums)


def make_task(config: ml_collections.ConfigDict) -> train_loop.Task:
  d = config.data
  stream = TeacherStream(config.seed, config.train.batch_size, d.dim, d.num_classes,
                         d.label_noise)
  return train_loop.Task(
      init_state=functools.partial(init, config),
      train_step=train_step,
      train_iter=stream,
      evaluate=functools.partial(evaluate, config),
      best_metric="accuracy")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains and evaluates; resumes from ``workdir``. Returns the results dict of the loop."""
  train_loop.check_config(config)
  return train_loop.run(config, workdir, make_task(config))


def evaluate_workdir(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Tests the best state of a (finished or stopped) run in ``workdir``; writes results.json."""
  results = train_loop.evaluate_checkpoint(config, workdir, make_task(config))
  if jax.process_index() == 0:
    from common import metric_writers  # pylint: disable=g-import-not-at-top
    print(metric_writers.format_table([dict(split=s, **results[s]) for s in ("valid", "test")]))
  return results

