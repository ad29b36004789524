"""Cross-play evaluation: mixed teams of seeds, scripted partners, the summary."""

import jax
import numpy as np
import pytest

from configs.cord import foraging
from cord_jax import crossplay
from cord_jax import train


def _config():
  c = foraging.get_config("runlocal")
  c.env.kwargs.time_limit = 10
  return c


def test_crossplay_matrix_self_play_and_identical_seeds(tmp_path):
  learner = train.Learner(_config())
  key = jax.random.key(0, impl="threefry2x32")
  params = jax.jit(jax.vmap(learner.init_params))(jax.random.split(key, 2))
  # Scale the actors' outputs up so that the two seeds' policies really differ.
  params["actor"]["out"]["kernel"] = 100.0 * params["actor"]["out"]["kernel"]
  eval_key = jax.random.fold_in(key, 7)
  matrix = crossplay.crossplay_matrix(learner, params, eval_key, 16)
  assert matrix.shape == (2, 2) and np.all(np.isfinite(matrix))
  # The diagonal is each seed's own evaluation, draw for draw.
  own = jax.jit(jax.vmap(lambda p: learner.evaluate_one(p, eval_key, 16)["return"]))(params)
  np.testing.assert_allclose(np.diag(matrix), own, atol=1e-5)
  # Two copies of seed 0: every pairing is seed 0's self-play.
  twins = jax.tree.map(lambda x: x[np.array([0, 0])], params)
  same = crossplay.crossplay_matrix(learner, twins, eval_key, 16)
  np.testing.assert_allclose(same, matrix[0, 0], atol=1e-6)
  assert crossplay.summary(same)["gap"] == 0.0
  assert not np.allclose(matrix, matrix[0, 0])  # different seeds do make different teams
  s = crossplay.summary(np.array([[4.0, 1.0], [2.0, 6.0]]))
  assert (s["self_play"], s["cross_play"], s["gap"]) == (5.0, 1.5, 3.5)
  assert crossplay.save_heatmap(matrix, str(tmp_path / "m.png"), "test")


@pytest.mark.slow
def test_scripted_partner_seats():
  learner = train.Learner(_config())
  key = jax.random.key(0, impl="threefry2x32")
  params = jax.jit(jax.vmap(learner.init_params))(jax.random.split(key, 2))
  partner = crossplay.partner_returns(learner, params, "greedy", key, 16)
  assert partner.shape == (2,) and np.all(np.isfinite(partner))


@pytest.mark.slow
def test_unseen_team_composition():
  c = _config()
  learner = train.Learner(c)
  key = jax.random.key(0, impl="threefry2x32")
  params = jax.jit(jax.vmap(learner.init_params))(jax.random.split(key, 2))
  got = crossplay.composition_returns(c, params, key, 8, agent_levels=(3, 3, 3))
  assert got.shape == (2,) and np.all(np.isfinite(got))
  with pytest.raises(ValueError, match="num_food|obs_dim"):
    crossplay.composition_returns(c, params, key, 8, num_food=2)
