"""A batch-loop task whose state has an extra, refreshable field: for the whole-state tests.

The example MLP, with a ``TrainState`` subclass carrying ``anchor`` (a copy of the first layer's
first rows, recomputed from the parameters by ``refresh`` every ``REFRESH_EVERY`` steps) and
``refreshes`` (a counter). The loss pulls the weights towards the anchor, so a stale or lost
anchor changes the trajectory: a resume is bit-identical only if the field was saved and the
refresh schedule kept.
"""

import sys

import jax
import jax.numpy as jnp

from common import example_task
from common import parallel
from common import train_loop
from common import train_state as ts
from tests.common import helpers

REFRESH_EVERY = 5


class AnchorState(ts.TrainState):
  anchor: jax.Array = None
  refreshes: jax.Array = None


def config(**train):
  c = helpers.tiny_config(num_steps=16, checkpoint_every=4, log_every=4, **train)
  return c


def make_task(c):
  base = example_task.make_task(c)

  def init_state(rng):
    s = example_task.init(c, rng)
    kernel = s.params["Dense_0"]["kernel"]
    return AnchorState.create(apply_fn=s.apply_fn, params=s.params, tx=s.tx, rng=s.rng,
                              anchor=jnp.zeros_like(kernel[:2]), refreshes=jnp.zeros((), jnp.int32))

  def train_step(state, batch, rng, consts):
    def loss(params):
      ce, metrics = example_task.loss(params, state.apply_fn, batch)
      pull = consts["pull"] * jnp.sum((params["Dense_0"]["kernel"][:2] - state.anchor) ** 2)
      return ce + pull, metrics
    grads, metrics = jax.grad(loss, has_aux=True)(state.params)
    return state.apply_gradients(grads=parallel.pmean(grads)), metrics

  def refresh(state, consts):
    del consts
    return state.replace(anchor=state.params["Dense_0"]["kernel"][:2] + 0.01,
                         refreshes=state.refreshes + 1)

  return train_loop.Task(init_state=init_state, train_step=train_step, train_iter=base.train_iter,
                         evaluate=base.evaluate, best_metric="accuracy", consts={"pull": 0.5},
                         refresh=refresh, refresh_every=REFRESH_EVERY)


def main(workdir, mode, sigkill_at):
  c = config()
  c.parallel.mode = mode
  c.debug.sigkill_at_step = int(sigkill_at)
  train_loop.run(c, workdir, make_task(c))


if __name__ == "__main__":
  main(*sys.argv[1:])
