"""Rendering with matplotlib: one state to PNG, an episode to GIF.

Every `MultiAgentEnv` draws itself onto an Axes (`env.draw(ax, state)`); this module owns the
figures, the Agg backend (no display needed) and the file formats. States may be wrapped
(`AutoResetWrapper`) or come stacked from `lax.scan`; both are handled here.
"""

from __future__ import annotations

import os
from typing import Any, List, Optional, Sequence, Union

import jax
import numpy as np

from cord_jax.envs import wrappers


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg", force=False)
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def unstack_states(states: Any) -> List[Any]:
  """Splits a pytree of states stacked on axis 0 (e.g. from `lax.scan`) into a list."""
  leaves = jax.tree_util.tree_leaves(states)
  if not leaves:
    return []
  count = int(np.shape(leaves[0])[0])
  return [jax.tree_util.tree_map(lambda x, i=i: x[i], states) for i in range(count)]


def _figure(env: Any, state: Any, figsize: float = 4.0):
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(figsize, figsize), dpi=100)
  wrappers.unwrap_env(env).draw(ax, wrappers.unwrap_state(state))
  fig.tight_layout()
  return fig


def render_rgb(env: Any, state: Any, figsize: float = 4.0) -> np.ndarray:
  """Returns `state` drawn by `env` as an RGB uint8 array of shape (H, W, 3)."""
  plt = _pyplot()
  fig = _figure(env, state, figsize)
  fig.canvas.draw()
  rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
  plt.close(fig)
  return rgb


def save_png(env: Any, state: Any, path: Union[str, os.PathLike], figsize: float = 4.0) -> str:
  """Writes one frame of `state` to a PNG file and returns its path."""
  plt = _pyplot()
  fig = _figure(env, state, figsize)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, format="png")
  plt.close(fig)
  return str(path)


def save_gif(env: Any, states: Union[Sequence[Any], Any], path: Union[str, os.PathLike],
             fps: int = 8, figsize: float = 4.0, max_frames: Optional[int] = None) -> str:
  """Writes an episode (a list of states, or states stacked on axis 0) to an animated GIF.

  Args:
    env: the env (wrappers are looked through) that drew the states.
    states: the states, in order.
    path: output file.
    fps: frames per second.
    figsize: figure side in inches (at 100 dpi).
    max_frames: keep only the first this many frames.

  Returns:
    The path written.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  if not isinstance(states, (list, tuple)):
    states = unstack_states(states)
  if max_frames is not None:
    states = states[:max_frames]
  if not states:
    raise ValueError("save_gif needs at least one state.")
  frames = [Image.fromarray(render_rgb(env, s, figsize)) for s in states]
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:],
                 duration=int(1000 / fps), loop=0)
  return str(path)
