"""RecBole atomic files from a one-line-per-user sequence file and an item2attributes JSON.

Plain Python (no numpy, torch or jax), so the RecBole runner (``recbole_sasrec.py``, in RecBole's
environment) uses it and the project's tests check it. The input is the form in which Amazon
Toys and Games and its siblings circulate (S3-Rec): ``user item item ...`` per line, oldest first,
and ``{"item": [attribute, ...]}``. Written:

* ``<name>.inter``: ``user_id:token``, ``item_id:token``, ``timestamp:float``, one row per event,
  where the timestamp is the event's 0-based index in the file. Sorting by it is the file order,
  which is the time order of these files (they carry no timestamps), exactly: the indices are
  integers below 2**24, so RecBole's float32 conversion keeps them distinct.
* ``<name>.item`` (when attributes are given): ``item_id:token``, ``<field>:token_seq``, the
  item's attribute ids separated by spaces, its first ``attribute_slots`` distinct values in list
  order, as the project's data layer keeps them (``configs/heterrec/amazon_toys.py``,
  ``ATTRIBUTE_SLOTS``, and ``common/data/features.py``: repeats dropped, then the first
  ``max_len`` kept).

``expected_splits`` gives the leave-one-out split the project's data layer makes of the same file
(``configs/data/amazon_toys.py``: no filtering, file order, last event test, the one before it
valid; a user with 2 events has train and test, with 1 train only), in the form
``split_fingerprint.fingerprint`` takes, so both sides can be checked against it without the
project's environment.
"""

import collections
import json
import os
import re
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

# The field names the RecBole runner configures (USER_ID_FIELD, ITEM_ID_FIELD, TIME_FIELD).
USER_FIELD = "user_id"
ITEM_FIELD = "item_id"
TIME_FIELD = "timestamp"
ATTRIBUTE_FIELD = "attributes"
_INT_ID = re.compile(r"-?(0|[1-9][0-9]*)")


class AtomicDataError(ValueError):
  """Bad input: the message names the file and what is wrong."""


def read_sequences(path: str) -> "collections.OrderedDict[str, List[str]]":
  """Reads ``user item item ...`` lines: raw user id -> raw item ids, oldest first.

  A user on several lines gets their items concatenated in file order (as the project's
  ``sequence_text`` reader does). Blank lines are skipped.

  Raises:
    AtomicDataError: the file is missing or a line has no items.
  """
  if not os.path.isfile(path):
    raise AtomicDataError(f"{path}: sequence file not found.")
  seqs = collections.OrderedDict()
  with open(path, encoding="utf-8") as f:
    for n, line in enumerate(f, start=1):
      fields = line.split()
      if not fields:
        continue
      if len(fields) < 2:
        raise AtomicDataError(f"{path}, line {n}: no item ids after the user id "
                              f"{fields[0]!r}.")
      seqs.setdefault(fields[0], []).extend(fields[1:])
  if not seqs:
    raise AtomicDataError(f"{path}: no sequences in the file.")
  return seqs


def read_item_attributes(path: str) -> Dict[str, List[str]]:
  """Reads an item2attributes JSON: raw item id -> attribute ids (str), as listed.

  Raises:
    AtomicDataError: a missing file, malformed JSON, a value that is not a non-empty list, or a
      non-integer item or attribute id.
  """
  if not os.path.isfile(path):
    raise AtomicDataError(f"{path}: attributes file not found.")
  with open(path, encoding="utf-8") as f:
    try:
      obj = json.load(f)
    except json.JSONDecodeError as e:
      raise AtomicDataError(f"{path}: malformed JSON ({e}).") from None
  if not isinstance(obj, dict):
    raise AtomicDataError(f"{path}: the top level must be an object {{\"item\": [attr, ...]}}.")
  out = {}
  for item, attrs in obj.items():
    if not _INT_ID.fullmatch(item):
      raise AtomicDataError(f"{path}: item id {item!r} is not an integer.")
    if not isinstance(attrs, list) or not attrs:
      raise AtomicDataError(f"{path}: item {item!r}: the value must be a non-empty list.")
    toks = []
    for a in attrs:
      if isinstance(a, bool) or not (isinstance(a, int) or
                                     (isinstance(a, str) and _INT_ID.fullmatch(a))):
        raise AtomicDataError(f"{path}: item {item!r}: attribute id {a!r} is not an integer.")
      toks.append(str(int(a)))
    out[item] = toks
  return out


def first_distinct(values: Sequence[str], slots: Optional[int]) -> List[str]:
  """The first ``slots`` distinct values in order (all distinct ones when ``slots`` is None)."""
  distinct = list(dict.fromkeys(values))
  return distinct if slots is None else distinct[:slots]


def expected_splits(seqs: Mapping[str, Sequence[str]]) -> Dict[str, Tuple[List[str], int, int]]:
  """The project's leave-one-out split of ``seqs``: user -> (items, n_train, n_valid)."""
  splits = {}
  for user, items in seqs.items():
    n = len(items)
    n_train, n_valid = (n - 2, 1) if n >= 3 else (1, 0)
    splits[user] = (list(items), n_train, n_valid)
  return splits


def write_atomic(out_dir: str, name: str, seqs: Mapping[str, Sequence[str]],
                 attributes: Optional[Mapping[str, Sequence[str]]] = None,
                 attribute_slots: Optional[int] = None,
                 attribute_field: str = ATTRIBUTE_FIELD) -> dict:
  """Writes ``<out_dir>/<name>/<name>.inter`` (and ``.item`` when ``attributes`` are given).

  Args:
    out_dir: RecBole's ``data_path`` (created).
    name: the RecBole dataset name (subfolder and file stem).
    seqs: raw user id -> raw item ids, oldest first (``read_sequences``).
    attributes: raw item id -> attribute ids (``read_item_attributes``); every item of ``seqs``
      must have an entry; items that are in no sequence are left out.
    attribute_slots: keep each item's first this many distinct attributes (None: all distinct).
    attribute_field: the ``token_seq`` column's name.

  Returns:
    Counts: ``users``, ``items``, ``interactions``, and with attributes ``attribute_vocab``
    (distinct attribute ids kept), ``attributes_per_item`` (mean), ``items_capped`` (items that
    had more distinct attributes than ``attribute_slots``), ``max_attributes`` (distinct, before
    the cap).

  Raises:
    AtomicDataError: an item of the sequences has no attributes entry.
  """
  folder = os.path.join(out_dir, name)
  os.makedirs(folder, exist_ok=True)
  items_seen = {}
  n_events = 0
  with open(os.path.join(folder, f"{name}.inter"), "w", encoding="utf-8") as f:
    f.write(f"{USER_FIELD}:token\t{ITEM_FIELD}:token\t{TIME_FIELD}:float\n")
    for user, items in seqs.items():
      for item in items:
        f.write(f"{user}\t{item}\t{n_events}\n")
        items_seen.setdefault(item, None)
        n_events += 1
  info = {"users": len(seqs), "items": len(items_seen), "interactions": n_events}
  if attributes is None:
    return info
  missing = [i for i in items_seen if i not in attributes]
  if missing:
    raise AtomicDataError(f"{len(missing)} of the {len(items_seen)} items in the sequences have "
                          f"no attributes entry (e.g. {missing[:3]}); give the item2attributes "
                          "JSON that belongs to the sequence file.")
  vocab, total, capped, longest = set(), 0, 0, 0
  with open(os.path.join(folder, f"{name}.item"), "w", encoding="utf-8") as f:
    f.write(f"{ITEM_FIELD}:token\t{attribute_field}:token_seq\n")
    for item in sorted(items_seen, key=lambda i: (len(i), i)):
      distinct = first_distinct(attributes[item], None)
      kept = first_distinct(distinct, attribute_slots)
      longest = max(longest, len(distinct))
      capped += len(kept) < len(distinct)
      vocab.update(kept)
      total += len(kept)
      f.write(f"{item}\t{' '.join(kept)}\n")
  info.update(attribute_vocab=len(vocab), attributes_per_item=total / max(len(items_seen), 1),
              items_capped=capped, max_attributes=longest)
  return info
