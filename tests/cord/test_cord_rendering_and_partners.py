"""Rendering to PNG/GIF, and scripted partners seated beside other policies."""

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from cord_jax import envs


def test_png_and_gif_for_our_envs(tmp_path):
  for name, env in [("rc", envs.ResourceCollection(num_agents=3, num_resources=4)),
                    ("lbf", envs.CooperativeForaging(num_agents=3, num_food=3))]:
    # Three fresh layouts make a (short) animation without compiling a whole rollout.
    states = jax.jit(jax.vmap(env.init_state))(jax.random.split(jax.random.key(0), 3))
    png = envs.save_png(env, jax.tree_util.tree_map(lambda x: x[0], states),
                        tmp_path / f"{name}.png")
    with open(png, "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as im:
      assert im.size[0] > 100 and im.size[1] > 100
    gif = envs.save_gif(env, states, tmp_path / f"{name}.gif", fps=4)
    with Image.open(gif) as im:
      assert im.format == "GIF" and im.n_frames == 3
    # Wrapped envs and wrapped states render the same way.
    wrapped_state = envs.AutoResetState(env_state=jax.tree_util.tree_map(lambda x: x[1], states),
                                        key=jax.random.key(0), episode_return=jnp.zeros(3),
                                        episode_length=jnp.zeros((), jnp.int32))
    rgb = envs.render_rgb(envs.AutoResetWrapper(env), wrapped_state)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[-1] == 3


def test_mixed_team_seats_scripted_partners():
  env = envs.ResourceCollection(num_agents=3, num_resources=4)
  greedy = envs.make_scripted_policy(env, "greedy")
  fixed = lambda key, state, obs: jnp.full((3,), 3, jnp.int32)  # Always "left".
  mixed = envs.mix_policies([fixed, greedy], seats=[1, 0, 1])

  @jax.jit
  def both(key):
    state, ts = env.reset(key)
    return (mixed(key, state, ts.observation),
            greedy(jax.random.split(key, 2)[1], state, ts.observation))

  got, want = map(np.asarray, both(jax.random.key(1)))
  assert got[1] == 3 and got[0] == want[0] and got[2] == want[2]
  assert envs.scripted_policy_names(env) == ["efficient", "greedy", "random"]
