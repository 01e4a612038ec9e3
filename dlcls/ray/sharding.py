"""Which Ray Train worker trains on which images, and how many of each step it takes.

Kept apart from the training loop (and torch): `select_rows` runs in the Ray Data read tasks
that feed the workers, which then start without loading torch.
"""

import pyarrow as pa

from ..core.split import hash_draw


def shares(batch: int, workers: int) -> list[int]:
    """Images of one optimizer step per worker: b // N, one more for the first b % N workers."""
    return [batch // workers + (1 if r < batch % workers else 0) for r in range(workers)]


def worker_of(relative_path: str, workers: int) -> int:
    return hash_draw(0, relative_path) % workers


def select_rows(batch: pa.Table, rank: int, workers: int) -> pa.Table:
    """The training and validation rows of worker `rank` among shard rows."""
    keep = [s in ("train", "validation") and worker_of(p, workers) == rank for s, p in
            zip(batch.column("split").to_pylist(), batch.column("relative_path").to_pylist())]
    return batch.filter(pa.array(keep, pa.bool_()))
