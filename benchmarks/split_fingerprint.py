"""A fingerprint of a leave-one-out split, to check that two systems train on the same data.

Plain Python (no numpy, torch or jax), so both the project's environment and the RecBole
environment can import it. Two splits have the same fingerprint exactly when they have the same
users, and per user the same item sequence in the same order with the same train/valid/test
boundaries, all in raw (file) ids:

  from common import data
  from configs.data import ml100k
  import split_fingerprint  # with benchmarks/ on sys.path
  ds = data.build_dataset(ml100k.get_config())
  split_fingerprint.from_rec_dataset(ds)  # equals "split_fingerprint" in recbole_sasrec's JSON
"""

import hashlib
from typing import Iterable, Mapping, Sequence, Tuple

# (raw item ids oldest first, number of train events, number of valid events)
UserSplit = Tuple[Sequence[str], int, int]


def _user_order(raw_ids: Iterable[str]) -> list:
  """Sorts raw ids numerically when all are integers, as strings otherwise."""
  raw_ids = list(raw_ids)
  try:
    return sorted(raw_ids, key=int)
  except ValueError:
    return sorted(raw_ids)


def fingerprint(splits: Mapping[str, UserSplit]) -> str:
  """Returns the sha256 hex digest of a split.

  Args:
    splits: raw user id (str) -> (raw item ids oldest first, n_train, n_valid); the remaining
      ``len(items) - n_train - n_valid`` events are test.

  Returns:
    The hex digest over one line per user, ``user<TAB>n_train<TAB>n_valid<TAB>item item ...``,
    users in raw-id order (numeric when all ids are integers).
  """
  digest = hashlib.sha256()
  for user in _user_order(splits):
    items, n_train, n_valid = splits[user]
    line = f"{user}\t{int(n_train)}\t{int(n_valid)}\t{' '.join(str(i) for i in items)}\n"
    digest.update(line.encode("utf-8"))
  return digest.hexdigest()


def from_rec_dataset(ds) -> str:
  """Fingerprint of a ``common.data.RecDataset`` (the project's data layer)."""
  splits = {}
  for u in range(1, ds.num_users + 1):
    items = [str(ds.item_raw_ids[i]) for i in ds.sequence(u, "all")]
    splits[str(ds.user_raw_ids[u])] = (items, int(ds.n_train[u]), int(ds.n_valid[u]))
  return fingerprint(splits)
