"""A stratified split that depends only on the seed and each file's relative path.

The distributed pipeline cannot use split_dl_classifier_data_set's shuffle: its result would
follow the listing order. Here each file draws a number from a seeded hash of its path; within a
class the files sorted by that number take HALCON's floors (the first floor(n * tp / 100) train,
up to floor(n * (tp + vp) / 100) validation, the rest test). The same seed and source give the
same split on any cluster, whatever the number of workers, block layout or listing order.
"""

import hashlib
import math
from collections import defaultdict
from collections.abc import Sequence

from .. import errors

SPLITS = ("train", "validation", "test")


def hash_draw(seed: int, relative_path: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\0{relative_path}".encode()).digest()[:8], "big")


def hash_split(relative_paths: Sequence[str], labels: Sequence[str], train_percent: float,
               validation_percent: float, seed: int) -> list[str]:
    """'train', 'validation' or 'test' for every file, in the order given."""
    if train_percent < 0 or validation_percent < 0 or train_percent + validation_percent > 100:
        raise errors.WrongParamValueError(
            f"percentages must be >= 0 and sum to at most 100, got {train_percent} and {validation_percent}")
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[label].append(i)
    split = [""] * len(labels)
    for members in by_class.values():
        members.sort(key=lambda i: (hash_draw(seed, relative_paths[i]), relative_paths[i]))
        n = len(members)
        first, second = math.floor(n * train_percent / 100), math.floor(n * (train_percent + validation_percent) / 100)
        for rank, i in enumerate(members):
            split[i] = SPLITS[0] if rank < first else SPLITS[1] if rank < second else SPLITS[2]
    return split
