"""A toy RL trainer on the scan-chunk driver: many seeds, envs split over devices, one program.

The environment is a chain walk: ``length`` cells, the agent starts in cell 0, moves left or
right, and earns reward 1 on reaching the last cell, which sends it back to cell 0. The best
policy (always right) earns ``1 / (length - 1)`` per step; a uniformly random one far less. A
small MLP policy over the one-hot cell learns it with REINFORCE (discounted reward-to-go inside
each rollout, mean baseline).

It is the template the CORD learner follows, shown on a problem that trains in seconds:

- ``make_train(config)`` returns ``(init_state, chunk)``: pure functions. A chunk is
  ``lax.scan`` over ``updates_per_chunk`` updates, each a ``lax.scan`` rollout of ``rollout_len``
  steps over the device's envs followed by one Adam step, all ``vmap``ped over ``num_seeds``
  independent seeds (each with its own parameters, optimizer state and RNG);
- the env states ``[num_seeds, num_envs]`` are split over devices (``P(None, 'data')``), so each
  device steps different envs; the gradients are averaged over devices (``parallel.pmean``);
- ``common.chunk_loop.run`` drives the chunks with the run services: per-seed and mean metrics,
  checkpoints of the whole runner state (env states included), bit-identical resume.
"""

from __future__ import annotations

import functools

import flax
import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import ml_collections
import numpy as np

from common import chunk_loop
from common import parallel
from common import train_state as ts
from configs.example import defaults_rl

get_default_config = defaults_rl.get_default_config


@flax.struct.dataclass
class Runner:
  """Everything a chunk carries: per-seed training states and env states, nothing else."""
  train: ts.TrainState  # leaves [num_seeds, ...]
  cell: jax.Array  # [num_seeds, num_envs] int32: each env's position
  episodes: jax.Array  # [num_seeds] float32: goals reached so far


class Policy(nn.Module):
  hidden: int
  length: int

  @nn.compact
  def __call__(self, cell):
    x = jax.nn.one_hot(cell, self.length)
    return nn.Dense(2)(nn.tanh(nn.Dense(self.hidden)(x)))


def env_step(cell: jax.Array, action: jax.Array, length: int) -> tuple[jax.Array, jax.Array]:
  """One step of the chain: ``action`` 1 = right, 0 = left; the last cell pays 1 and resets."""
  nxt = jnp.clip(cell + 2 * action - 1, 0, length - 1)
  reward = (nxt == length - 1).astype(jnp.float32)
  return jnp.where(reward > 0, 0, nxt), reward


def state_specs() -> Runner:
  """Parameters replicated, env states split along their env axis."""
  return Runner(train=parallel.REPLICATED, cell=parallel.P(None, parallel.DATA_AXIS),
                episodes=parallel.REPLICATED)


def make_train(config: ml_collections.ConfigDict):
  """``(init_state, chunk)`` for ``config`` (see the module docstring)."""
  e = config.env
  model = Policy(config.model.hidden, e.length)
  tx = ts.make_optimizer(config.optim, config.train.num_steps * e.updates_per_chunk)

  def init_one(rng):
    params_rng, state_rng = jax.random.split(rng)
    params = model.init(params_rng, jnp.zeros((1,), jnp.int32))["params"]
    return ts.create(model.apply, params, tx, state_rng)

  def init_state(rng):
    seeds = jax.random.split(rng, e.num_seeds)
    return Runner(train=jax.vmap(init_one)(seeds),
                  cell=jnp.zeros((e.num_seeds, e.num_envs), jnp.int32),
                  episodes=jnp.zeros((e.num_seeds,), jnp.float32))

  def loss_fn(params, cell, rng):
    def act(carry, key):
      cell = carry
      logits = model.apply({"params": params}, cell)
      action = jax.random.categorical(key, logits)
      logp = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], axis=1)[:, 0]
      cell, reward = env_step(cell, action, e.length)
      return cell, (logp, reward)
    cell, (logp, reward) = lax.scan(act, cell, jax.random.split(rng, e.rollout_len))
    # Discounted reward-to-go within the rollout, [T, envs].
    def back(g, r):
      g = r + e.gamma * g
      return g, g
    _, returns = lax.scan(back, jnp.zeros_like(reward[0]), reward, reverse=True)
    advantage = lax.stop_gradient(returns - returns.mean())
    loss = -jnp.mean(logp * advantage)
    return loss, (cell, reward)

  def update_one(train, cell):
    rng = jax.random.fold_in(jax.random.fold_in(train.rng, train.step),
                             lax.axis_index(parallel.DATA_AXIS))
    (loss, (cell, reward)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        train.params, cell, rng)
    grads = parallel.pmean(grads)
    metrics = {"loss": parallel.pmean(loss), "reward_per_step": parallel.pmean(reward.mean()),
               "goals": parallel.psum(reward.sum())}
    return train.apply_gradients(grads=grads), cell, metrics

  def chunk(runner: Runner):
    def one(runner, _):
      train, cell, m = jax.vmap(update_one)(runner.train, runner.cell)
      return runner.replace(train=train, cell=cell, episodes=runner.episodes + m["goals"]), m
    runner, ms = lax.scan(one, runner, None, length=e.updates_per_chunk)
    metrics = {"loss": ms["loss"].mean(0), "reward_per_step": ms["reward_per_step"].mean(0),
               "episodes": runner.episodes}
    return runner, metrics

  return init_state, chunk


def greedy_reward(config, runner: Runner, dp: parallel.DataParallel) -> dict:
  """Reward per step of each seed's greedy policy over ``4 * (length - 1)`` steps from cell 0."""
  e = config.env
  train = dp.to_host(runner.train)
  model = Policy(config.model.hidden, e.length)

  def one(params):
    def step(cell, _):
      action = jnp.argmax(model.apply({"params": params}, cell[None])[0])
      cell, reward = env_step(cell, action, e.length)
      return cell, reward
    _, rewards = lax.scan(step, jnp.zeros((), jnp.int32), None, length=4 * (e.length - 1))
    return rewards.mean()

  return {"greedy_reward_per_step": jax.jit(jax.vmap(one))(train.params)}


def random_reward(config, steps: int = 20000) -> float:
  """The uniformly random policy's reward per step (a simulated baseline)."""
  rng = np.random.default_rng(config.seed)
  cell, total = 0, 0.0
  for action in rng.integers(0, 2, steps):
    cell = min(max(cell + 2 * int(action) - 1, 0), config.env.length - 1)
    if cell == config.env.length - 1:
      total, cell = total + 1.0, 0
  return total / steps


def make_task(config: ml_collections.ConfigDict) -> chunk_loop.ChunkTask:
  init_state, chunk = make_train(config)
  e = config.env
  return chunk_loop.ChunkTask(
      init_state=init_state, chunk=chunk, state_specs=state_specs(),
      steps_per_chunk=e.num_seeds * e.num_envs * e.rollout_len * e.updates_per_chunk,
      evaluate=functools.partial(greedy_reward, config),
      baselines={"random policy": {"greedy_reward_per_step": random_reward(config)},
                 "best policy": {"greedy_reward_per_step": 1.0 / (e.length - 1)}})


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains ``config.env.num_seeds`` seeds at once; resumes from ``workdir``; returns results."""
  return chunk_loop.run(config, workdir, make_task(config))
