"""The statistics summary printed when a data set is prepared (and saved with it)."""

from __future__ import annotations

import numpy as np

from common.data.dataset import RecDataset

QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)


def summarize(ds: RecDataset) -> dict:
  """Computes the data set's statistics as a JSON-friendly dict.

  Returns:
    ``users``, ``items``, ``interactions``, ``density``, ``length`` (mean and quantiles of the
    per-user sequence length), ``split`` (events and users per segment), ``filtering`` (events
    after each preprocessing step), ``item_fields`` and ``user_fields`` (per field: kind,
    cardinality = distinct non-padding values, and kind-specific extras).
  """
  lengths = ds.lengths("all")[1:]
  n_train = ds.n_train[1:].astype(np.int64)
  n_valid = ds.n_valid[1:].astype(np.int64)
  n_test = lengths - n_train - n_valid
  q = np.quantile(lengths, QUANTILES) if len(lengths) else np.zeros(len(QUANTILES))
  return {
      "name": ds.name,
      "users": ds.num_users,
      "items": ds.num_items,
      "interactions": ds.num_interactions,
      "density": ds.num_interactions / max(1, ds.num_users * ds.num_items),
      "length": {"mean": float(lengths.mean()) if len(lengths) else 0.0,
                 **{f"p{int(round(p * 100))}": float(v) for p, v in zip(QUANTILES, q)}},
      "split": {
          "train_events": int(n_train.sum()), "valid_events": int(n_valid.sum()),
          "test_events": int(n_test.sum()), "users_with_valid": int((n_valid > 0).sum()),
          "users_with_test": int((n_test > 0).sum()),
      },
      "filtering": dict(ds.counts),
      "item_fields": _fields(ds.field_specs, ds.item_features),
      "user_fields": _fields(ds.user_field_specs, ds.user_features),
  }


def _fields(specs, arrays) -> dict:
  out = {}
  for spec in specs:
    arr = arrays[spec.name]
    info = {"kind": spec.kind}
    if spec.kind in ("categorical", "numeric"):
      info["cardinality"] = int(len(np.unique(arr[1:][arr[1:] > 0])))
      info["vocab_size"] = spec.vocab_size
      info["missing"] = int((arr[1:] == 0).sum())
    elif spec.kind == "multi":
      info["cardinality"] = int(len(np.unique(arr[1:][arr[1:] > 0])))
      info["vocab_size"] = spec.vocab_size
      info["max_len"] = spec.max_len
      info["mean_values"] = float((arr[1:] > 0).sum(1).mean()) if len(arr) > 1 else 0.0
    elif spec.kind == "dense":
      info["dim"] = spec.dim
      info["missing"] = int((~arr[1:].any(1)).sum())
    else:
      info["cardinality"] = len(set(arr[1:]))
      info["missing"] = sum(1 for t in arr[1:] if not t)
    out[spec.name] = info
  return out


def format_summary(stats: dict) -> str:
  """Renders ``summarize``'s dict as an aligned text table."""
  rows = [
      ("data set", stats["name"]),
      ("users", f"{stats['users']:,}"),
      ("items", f"{stats['items']:,}"),
      ("interactions", f"{stats['interactions']:,}"),
      ("density", f"{stats['density']:.5f}"),
  ]
  ln = stats["length"]
  rows.append(("sequence length", f"mean {ln['mean']:.1f}; " + ", ".join(
      f"{k} {v:g}" for k, v in ln.items() if k != "mean")))
  rows.append(("filtering", ", ".join(f"{k} {v:,}" for k, v in stats["filtering"].items())))
  sp = stats["split"]
  rows.append(("split (events)", f"train {sp['train_events']:,}, valid {sp['valid_events']:,}, "
               f"test {sp['test_events']:,}"))
  rows.append(("split (users)", f"with valid {sp['users_with_valid']:,}, with test "
               f"{sp['users_with_test']:,}"))
  for title, fields in (("item field", stats["item_fields"]), ("user field", stats["user_fields"])):
    for name, info in fields.items():
      extras = ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                         for k, v in info.items() if k != "kind")
      rows.append((f"{title} {name}", f"{info['kind']}: {extras}"))
  width = max(len(k) for k, _ in rows)
  return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
