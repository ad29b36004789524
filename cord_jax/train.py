"""The CORD learner as one pure program: MAPPO below, a role controller above, r_c and r_d.

``make_train(config)`` returns ``(init_state, chunk)``, pure functions in the PureJaxRL style of
``common/example_rl.py``: a chunk is ``lax.scan`` over ``ppo.updates_per_chunk`` updates, each a
``lax.scan`` rollout of ``ppo.rollout_len`` steps in every env followed by ``ppo.num_epochs``
epochs of ``ppo.num_minibatches`` minibatches, all ``vmap``ped over ``env.num_seeds`` independent
seeds. ``common.chunk_loop.run`` drives the chunks (checkpoints, resume, NaN guard, per-seed
metrics, progress bar); ``train_and_evaluate(config, workdir)`` is the entry
``scripts/train.py`` calls for ``method = "cord"``.

One step of the rollout, per env:
  1. where an episode starts or ``roles.T_role`` steps have passed, the controller reads the
     global state and draws a role per agent (``cord_jax.roles``);
  2. the shared actor draws each agent's action from its view, one-hot id and the team's roles
     (``cord_jax.mappo``); the centralised critic values the global state per agent;
  3. r_c (counterfactual roles) and r_d (role discriminator) are computed with the rollout's
     parameters, and each agent's reward is ``r_env + alpha * r_c + beta * r_d``.
The update minimises the clipped PPO losses of the actor/critic (GAE per agent) and of the
controller (GAE over its decision intervals, on the team env reward), minus entropy bonuses, plus
the discriminator's cross-entropy, with one Adam whose learning rate anneals linearly to 0.

Choices where the paper is silent: the discriminator sees (observation, action), not a whole
trajectory; episode ends (terminal or time limit) are not bootstrapped; the controller's open
interval at the end of a rollout is bootstrapped with V_c of the last state.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import flax
import jax
from jax import lax
import jax.numpy as jnp
import ml_collections
import optax

from common import chunk_loop
from common import parallel
from common import train_state as ts
from cord_jax import config as config_lib
from cord_jax import envs
from cord_jax import mappo
from cord_jax import roles as roles_lib


@flax.struct.dataclass
class Runner:
  """Everything a chunk carries. Leaves have a leading seed axis; env-side ones ``[S, E, ...]``."""
  train: ts.TrainState  # params: {actor, critic, controller, disc}
  env_state: Any  # AutoResetState [S, E]
  obs: envs.Observation  # [S, E, ...] the observation the next action is taken in
  first: jax.Array  # [S, E] bool: the next step starts an episode
  roles: jax.Array  # [S, E, N] int32: the roles in force
  since: jax.Array  # [S, E] int32: steps since the roles were assigned
  carry: jax.Array  # [S, E, N, C] the actor's recurrent state
  last_return: jax.Array  # [S] mean team return of the episodes the last rollout finished


class EnvCarry(NamedTuple):
  """The per-seed env side of a ``Runner`` (what a rollout advances)."""
  env_state: Any
  obs: envs.Observation
  first: jax.Array
  roles: jax.Array
  since: jax.Array
  carry: jax.Array


class Traj(NamedTuple):
  """One rollout, ``[T, E, ...]``."""
  view: jax.Array  # [T, E, N, O]
  global_state: jax.Array  # [T, E, S]
  action_mask: jax.Array  # [T, E, N, A]
  first: jax.Array  # [T, E] the step started an episode (recurrent state reset)
  decide: jax.Array  # [T, E] the controller (re)assigned roles at this step
  roles: jax.Array  # [T, E, N]
  action: jax.Array  # [T, E, N]
  logp: jax.Array  # [T, E, N]
  value: jax.Array  # [T, E, N]
  reward: jax.Array  # [T, E, N] r_env + alpha r_c + beta r_d
  env_reward: jax.Array  # [T, E] team env reward (mean over agents)
  done: jax.Array  # [T, E] the episode ended with this step
  ctrl_logits: jax.Array  # [T, E, N, R]
  ctrl_logp: jax.Array  # [T, E] log pi_c(roles | s), summed over agents
  ctrl_value: jax.Array  # [T, E]
  r_c: jax.Array  # [T, E, N]
  r_d: jax.Array  # [T, E, N]
  episode_return: jax.Array  # [T, E] the finished episode's team return where done


NETWORKS = ("actor", "critic", "controller", "disc")  # the keys of the parameter dict


class Batch(NamedTuple):
  traj: Traj
  adv: jax.Array
  target: jax.Array
  ctrl_adv: jax.Array
  ctrl_target: jax.Array


def state_specs() -> Runner:
  """Parameters and per-seed scalars replicated; everything with an env axis split over it."""
  split = parallel.P(None, parallel.DATA_AXIS)
  return Runner(train=parallel.REPLICATED, env_state=split, obs=split, first=split, roles=split,
                since=split, carry=split, last_return=parallel.REPLICATED)


def first_episode_return(team_reward: jax.Array, done: jax.Array) -> jax.Array:
  """``[T, E]`` rewards and episode ends -> ``[E]`` the return of each env's first episode."""
  ended_before = jnp.cumsum(done, axis=0) - done
  return jnp.sum(jnp.where(ended_before == 0, team_reward, 0.0), axis=0)


class Learner:
  """The networks, env and pure functions of one config; ``make_train`` assembles them."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.raw_env = config_lib.check_config(config)
    self.env = envs.AutoResetWrapper(self.raw_env)
    r, m = config.roles, config.model
    self.mode = r.assign
    self.num_agents = self.raw_env.num_agents
    self.num_actions = self.raw_env.num_actions
    self.num_roles = 1 if self.mode == "none" else r.num_roles
    self.gru = m.core == "gru"
    self.carry_size = mappo.carry_size(m.hidden, self.gru)
    self.actor = mappo.Actor(self.num_actions, m.hidden, self.gru)
    self.critic = mappo.Critic(m.hidden)
    self.controller = roles_lib.Controller(self.num_agents, self.num_roles, m.hidden)
    self.disc = roles_lib.Discriminator(self.num_roles, m.hidden)
    p = config.ppo
    self.num_updates = config.train.num_steps * p.updates_per_chunk
    self.tx = make_optimizer(config.optim, self.num_updates * p.num_epochs * p.num_minibatches)

  # -- initialisation -------------------------------------------------------------------------

  def init_params(self, key: jax.Array) -> dict:
    n, o, s = self.num_agents, self.raw_env.obs_dim, self.raw_env.state_dim
    r, a = self.num_roles, self.num_actions
    keys = jax.random.split(key, 4)
    view = jnp.zeros((n, o + n))
    roles = jnp.zeros((n, 2 * r))
    return {
        "actor": self.actor.init(keys[0], view, roles, jnp.zeros((n, self.carry_size)))["params"],
        "critic": self.critic.init(keys[1], jnp.zeros((n, s + n + 2 * r)))["params"],
        "controller": self.controller.init(keys[2], jnp.zeros((s,)))["params"],
        "disc": self.disc.init(keys[3], jnp.zeros((n, o + a)))["params"],
    }

  def reset(self, key: jax.Array, num_envs: int) -> EnvCarry:
    """Fresh envs with no roles yet (the first step assigns them)."""
    env_state, timestep = jax.vmap(self.env.reset)(jax.random.split(key, num_envs))
    n = self.num_agents
    return EnvCarry(env_state=env_state, obs=timestep.observation,
                    first=jnp.ones((num_envs,), bool),
                    roles=jnp.zeros((num_envs, n), jnp.int32),
                    since=jnp.zeros((num_envs,), jnp.int32),
                    carry=jnp.zeros((num_envs, n, self.carry_size)))

  def init_one(self, key: jax.Array, num_envs: int) -> tuple[ts.TrainState, EnvCarry]:
    k_params, k_env, k_rng = jax.random.split(key, 3)
    train = ts.create(None, self.init_params(k_params), self.tx, k_rng)
    return train, self.reset(k_env, num_envs)

  # -- acting ---------------------------------------------------------------------------------

  def act(self, params: dict, c: EnvCarry, key: jax.Array):
    """Roles, actions and intrinsic rewards for one step of ``[E]`` envs (no env step)."""
    r = self.config.roles
    k_role, k_act = jax.random.split(key)
    obs = c.obs
    ctrl_logits, ctrl_value = self.controller.apply({"params": params["controller"]},
                                                    obs.global_state)
    decision = roles_lib.decide(c.first, c.since, r.T_role)
    roles = roles_lib.assign(self.mode, k_role, ctrl_logits, c.roles, decision)
    carry = jnp.where(c.first[:, None, None], 0.0, c.carry)
    actor = {"params": params["actor"]}
    pre = self.actor.apply(actor, mappo.with_agent_ids(obs.agents_view), method=mappo.Actor.embed)

    def team_logits(role_feats):
      return self.actor.apply(actor, pre, role_feats, carry, method=mappo.Actor.head)[1]

    role_feats = mappo.role_features(roles, self.num_roles)
    new_carry, logits = self.actor.apply(actor, pre, role_feats, carry, method=mappo.Actor.head)
    logits = mappo.mask_logits(logits, obs.action_mask)
    action = jax.random.categorical(k_act, logits).astype(jnp.int32)
    value = self.critic.apply({"params": params["critic"]},
                              mappo.critic_inputs(obs.global_state, role_feats))
    r_c = roles_lib.causal_influence(team_logits, roles, self.num_roles, obs.action_mask)
    disc_logits = self.disc.apply({"params": params["disc"]}, roles_lib.discriminator_features(
        obs.agents_view, action, self.num_actions))
    r_d = roles_lib.heterogeneity(disc_logits, roles)
    return dict(roles=roles, decide=decision, carry=new_carry, action=action,
                logp=mappo.log_prob(logits, action), value=value, ctrl_logits=ctrl_logits,
                ctrl_logp=mappo.log_prob(ctrl_logits, roles).sum(-1), ctrl_value=ctrl_value,
                r_c=lax.stop_gradient(r_c), r_d=lax.stop_gradient(r_d))

  def rollout(self, params: dict, c: EnvCarry, key: jax.Array,
              num_steps: int) -> tuple[EnvCarry, Traj]:
    """``num_steps`` steps of every env in ``c`` under ``params``; returns the carry and Traj."""
    r = self.config.roles

    def step(c: EnvCarry, key):
      out = self.act(params, c, key)
      env_state, timestep = jax.vmap(self.env.step)(c.env_state, out["action"])
      done = timestep.last()
      reward = timestep.reward + r.alpha * out["r_c"] + r.beta * out["r_d"]
      traj = Traj(
          view=c.obs.agents_view, global_state=c.obs.global_state,
          action_mask=c.obs.action_mask, first=c.first, decide=out["decide"],
          roles=out["roles"], action=out["action"], logp=out["logp"], value=out["value"],
          reward=reward, env_reward=timestep.reward.mean(-1), done=done,
          ctrl_logits=out["ctrl_logits"], ctrl_logp=out["ctrl_logp"],
          ctrl_value=out["ctrl_value"], r_c=out["r_c"], r_d=out["r_d"],
          episode_return=timestep.extras["episode_return"].mean(-1))
      since = jnp.where(out["decide"], 0, c.since) + 1
      return EnvCarry(env_state, timestep.observation, done, out["roles"], since,
                      out["carry"]), traj

    return lax.scan(step, c, jax.random.split(key, num_steps))

  # -- learning -------------------------------------------------------------------------------

  def advantages(self, params: dict, c: EnvCarry, traj: Traj) -> Batch:
    """GAE for the agents and interval GAE for the controller, from the rollout and its end."""
    p = self.config.ppo
    role_feats = mappo.role_features(c.roles, self.num_roles)
    last_value = self.critic.apply({"params": params["critic"]},
                                   mappo.critic_inputs(c.obs.global_state, role_feats))
    _, last_ctrl_value = self.controller.apply({"params": params["controller"]},
                                               c.obs.global_state)
    done = traj.done.astype(jnp.float32)
    adv, target = mappo.gae(traj.reward, traj.value, done[..., None], last_value, p.gamma,
                            p.gae_lambda)
    ctrl_adv, ctrl_target = roles_lib.interval_gae(traj.env_reward, traj.ctrl_value, done,
                                                   traj.decide, last_ctrl_value, p.gamma,
                                                   p.ctrl_gae_lambda)
    if p.norm_adv:
      adv = mappo.normalize(adv)
      ctrl_adv = mappo.normalize(ctrl_adv, traj.decide)
    return Batch(traj, adv, target, ctrl_adv, ctrl_target)

  def replay_logits(self, params: dict, t: Traj, carry0: jax.Array) -> jax.Array:
    """The actor's masked logits ``[T, B, N, A]`` for stored steps, replayed from ``carry0``."""
    role_feats = mappo.role_features(t.roles, self.num_roles)
    actor = {"params": params["actor"]}

    def step(carry, x):
      first, view, feats = x
      carry = jnp.where(first[:, None, None], 0.0, carry)
      return self.actor.apply(actor, mappo.with_agent_ids(view), feats, carry)

    _, logits = lax.scan(step, carry0, (t.first, t.view, role_feats))
    return mappo.mask_logits(logits, t.action_mask)

  def loss(self, params: dict, batch: Batch, carry0: jax.Array):
    """The total loss of a minibatch ``[T, B, ...]`` (a recurrent actor replays from ``carry0``)."""
    p, t = self.config.ppo, batch.traj
    role_feats = mappo.role_features(t.roles, self.num_roles)
    logits = self.replay_logits(params, t, carry0)
    logp = mappo.log_prob(logits, t.action)
    value = self.critic.apply({"params": params["critic"]},
                              mappo.critic_inputs(t.global_state, role_feats))
    pi_loss = mappo.policy_loss(logp, t.logp, batch.adv, p.clip_eps)
    v_loss = mappo.value_loss(value, t.value, batch.target, p.clip_eps, p.clip_value)
    ent = jnp.mean(mappo.entropy(logits))
    total = pi_loss + p.vf_coef * v_loss - p.ent_coef * ent
    metrics = {"policy_loss": pi_loss, "value_loss": v_loss, "entropy": ent,
               "approx_kl": jnp.mean(t.logp - logp)}
    if self.mode == "learned":
      ctrl_logits, ctrl_value = self.controller.apply({"params": params["controller"]},
                                                      t.global_state)
      ctrl_logp = mappo.log_prob(ctrl_logits, t.roles).sum(-1)
      c_pi = mappo.policy_loss(ctrl_logp, t.ctrl_logp, batch.ctrl_adv, p.clip_eps, t.decide)
      c_v = mappo.value_loss(ctrl_value, t.ctrl_value, batch.ctrl_target, p.clip_eps,
                             p.clip_value, t.decide)
      c_ent = mappo.masked_mean(mappo.entropy(ctrl_logits).mean(-1), t.decide)
      total += p.ctrl_coef * (c_pi + p.vf_coef * c_v - p.ctrl_ent_coef * c_ent)
      metrics.update(ctrl_policy_loss=c_pi, ctrl_value_loss=c_v)
    if self.num_roles > 1:
      disc_logits = self.disc.apply({"params": params["disc"]},
                                    roles_lib.discriminator_features(t.view, t.action,
                                                                     self.num_actions))
      d_loss = roles_lib.discriminator_loss(disc_logits, t.roles)
      total += p.disc_coef * d_loss
      metrics["disc_loss"] = d_loss
    metrics["loss"] = total
    return total, metrics

  def minibatches(self, batch: Batch, carry0: jax.Array, key: jax.Array):
    """Shuffles and splits a batch ``[T, E, ...]`` into ``[M, T', B, ...]`` minibatches.

    A recurrent actor keeps whole env sequences (shuffled over envs); a feed-forward one is
    trained on single steps, shuffled over all T x E of them (T' = 1).
    """
    m = self.config.ppo.num_minibatches
    if not self.gru:
      batch = jax.tree.map(lambda x: x.reshape((1, -1) + x.shape[2:]), batch)
      carry0 = jnp.zeros((batch.adv.shape[1],) + carry0.shape[1:], carry0.dtype)
    units = batch.adv.shape[1]
    perm = jax.random.permutation(key, units)

    def split(x):
      x = jnp.take(x, perm, axis=1)
      x = x.reshape((x.shape[0], m, units // m) + x.shape[2:])
      return jnp.moveaxis(x, 1, 0)

    return jax.tree.map(split, batch), jnp.take(carry0, perm, axis=0).reshape(
        (m, units // m) + carry0.shape[1:])

  def update(self, train: ts.TrainState, c: EnvCarry) -> tuple[ts.TrainState, EnvCarry, dict]:
    """One rollout and its PPO epochs for one seed (per device: pmean over the data axis)."""
    p = self.config.ppo
    rng = jax.random.fold_in(jax.random.fold_in(train.rng, train.step),
                             lax.axis_index(parallel.DATA_AXIS))
    k_roll, k_epochs = jax.random.split(rng)
    carry0 = c.carry
    c, traj = self.rollout(train.params, c, k_roll, p.rollout_len)
    batch = self.advantages(train.params, c, traj)
    grad_fn = jax.value_and_grad(self.loss, has_aux=True)

    def epoch(train, key):
      mbs, carries = self.minibatches(batch, carry0, key)

      def minibatch(train, x):
        (_, metrics), grads = grad_fn(train.params, *x)
        return train.apply_gradients(grads=parallel.pmean(grads)), metrics

      return lax.scan(minibatch, train, (mbs, carries))

    train, metrics = lax.scan(epoch, train, jax.random.split(k_epochs, p.num_epochs))
    metrics = parallel.pmean(jax.tree.map(jnp.mean, metrics))
    done = traj.done.astype(jnp.float32)
    finished = parallel.psum(jnp.stack([jnp.sum(done * traj.episode_return), jnp.sum(done)]))
    metrics.update(
        episodes=finished[1], episode_return_sum=finished[0],
        env_reward=parallel.pmean(jnp.mean(traj.env_reward)),
        r_c=parallel.pmean(jnp.mean(traj.r_c)), r_d=parallel.pmean(jnp.mean(traj.r_d)),
        **parallel.pmean(roles_lib.role_stats(traj.roles, traj.decide, traj.ctrl_logits,
                                              self.num_roles)))
    return train, c, metrics

  # -- evaluation -----------------------------------------------------------------------------

  def evaluate_one(self, params: dict, key: jax.Array, num_envs: int) -> dict:
    """Team return of the first episode of ``num_envs`` fresh envs (stochastic actions)."""
    k_env, k_roll = jax.random.split(key)
    c = self.reset(k_env, num_envs)
    _, traj = self.rollout(params, c, k_roll, self.raw_env.time_limit)
    ret = first_episode_return(traj.env_reward, traj.done)
    return {"return": ret.mean(), "return_std": ret.std()}


def make_optimizer(optim: ml_collections.ConfigDict, total_steps: int):
  """Adam (eps 1e-5, as in MAPPO) with global-norm clipping and a linear anneal to 0.

  The norm is clipped per network (actor, critic, controller, discriminator): one global norm
  over all four would let the controller's or the discriminator's gradients shrink the actor's.
  """
  if optim.name != "adam":
    raise config_lib.ConfigError("optim.name", f"{optim.name!r}: the CORD learner uses adam",
                                 "set --config.optim.name=adam")
  lr = (optax.linear_schedule(optim.learning_rate, 0.0, max(total_steps, 1))
        if optim.schedule == "linear" else optim.learning_rate)
  tx = optax.adam(lr, b1=optim.b1, b2=optim.b2, eps=1e-5)
  if optim.grad_clip_norm:
    clip = optax.multi_transform(
        {k: optax.clip_by_global_norm(optim.grad_clip_norm) for k in NETWORKS},
        lambda params: {k: jax.tree.map(lambda _, k=k: k, v) for k, v in params.items()})
    tx = optax.chain(clip, tx)
  return tx


def make_train(config: ml_collections.ConfigDict, learner: Learner | None = None):
  """``(init_state, chunk)`` for ``config`` (see the module docstring)."""
  learner = learner or Learner(config)
  e, p = config.env, config.ppo

  def init_state(rng):
    # lax.map, not vmap, over seeds: under vmap the orthogonal initialiser's QR is one batched
    # LAPACK call per layer, and jaxlib's CPU QR kernel splits a batch over the intra-op thread
    # pool and waits for it; two such layers running at once on a 2-thread pool each wait for
    # the other's threads, forever (seen for hidden 64 with 2 or more seeds on a 2-core CPU,
    # never when pinned to one core). One seed at a time, each QR is unbatched and runs inline;
    # the values are the same as vmap's (tested: vmap over seeds equals separate runs).
    train, c = lax.map(lambda k: learner.init_one(k, e.num_envs),
                       jax.random.split(rng, e.num_seeds))
    return Runner(train=train, env_state=c.env_state, obs=c.obs, first=c.first, roles=c.roles,
                  since=c.since, carry=c.carry, last_return=jnp.zeros((e.num_seeds,)))

  def chunk(runner: Runner):
    def one(runner, _):
      c = EnvCarry(runner.env_state, runner.obs, runner.first, runner.roles, runner.since,
                   runner.carry)
      train, c, m = jax.vmap(learner.update)(runner.train, c)
      ret = jnp.where(m["episodes"] > 0, m["episode_return_sum"] / jnp.maximum(m["episodes"], 1),
                      runner.last_return)
      return Runner(train, *c, last_return=ret), m

    runner, ms = lax.scan(one, runner, None, length=p.updates_per_chunk)
    metrics = {k: v.mean(0) for k, v in ms.items() if k not in ("episodes",
                                                                 "episode_return_sum")}
    metrics = {"loss": metrics.pop("loss"), "return": runner.last_return, **metrics}
    return runner, metrics

  return init_state, chunk


def baseline_returns(config: ml_collections.ConfigDict, env: envs.MultiAgentEnv,
                     policy_name: str, num_envs: int) -> float:
  """Mean first-episode team return of a scripted policy (``random``, ``greedy``, ...)."""
  wrapped = envs.AutoResetWrapper(env)
  policy = envs.make_scripted_policy(wrapped, policy_name)

  @jax.jit
  def run(key):
    def one(k):
      _, timesteps, _ = envs.rollout(wrapped, policy, k, env.time_limit)
      return first_episode_return(timesteps.reward.mean(-1), timesteps.last())
    return jax.vmap(one)(jax.random.split(key, num_envs)).mean()

  return float(run(jax.random.PRNGKey(config.seed + 1)))


def evaluate(learner: Learner, runner: Runner, dp: parallel.DataParallel) -> dict:
  """Each seed's team return on ``eval.num_envs`` fresh envs."""
  c = learner.config
  train = dp.to_host(runner.train)
  keys = jax.random.split(jax.random.PRNGKey(c.seed + 2), c.env.num_seeds)
  fn = jax.jit(jax.vmap(lambda p, k: learner.evaluate_one(p, k, c.eval.num_envs)))
  return fn(train.params, keys)


def make_task(config: ml_collections.ConfigDict) -> chunk_loop.ChunkTask:
  learner = Learner(config)
  dp = parallel.DataParallel(config.parallel.mode, config.parallel.num_devices)
  config_lib.check_devices(config, dp.num_devices)
  init_state, chunk = make_train(config, learner)
  e, p = config.env, config.ppo
  baselines = {f"{name} policy": {"return": baseline_returns(config, learner.raw_env, name,
                                                             config.eval.num_envs)}
               for name in dict.fromkeys(("random", config.eval.partner))}
  return chunk_loop.ChunkTask(
      init_state=init_state, chunk=chunk, state_specs=state_specs(),
      steps_per_chunk=e.num_seeds * e.num_envs * p.rollout_len * p.updates_per_chunk,
      evaluate=functools.partial(evaluate, learner), baselines=baselines)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains ``config.env.num_seeds`` seeds at once; resumes from ``workdir``; returns results."""
  return chunk_loop.run(config, workdir, make_task(config))
