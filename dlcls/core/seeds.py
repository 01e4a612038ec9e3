"""Random sources: HALCON's global seed and the generators the procedures draw from.

torch is imported only inside set_seed: the data-set and augmentation code that draws from these
generators runs in Ray tasks that never need torch.
"""

import random

import numpy as np


def set_seed(seed: int) -> None:
    """HALCON's set_system('seed_rand', seed): seeds every random source dlcls uses, so that the
    same calls give bit-identical results on the CPU."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def python_rng(seed: int | None) -> random.Random:
    """A generator for `seed`; with None one seeded from the global state, so set_seed decides."""
    return random.Random(random.getrandbits(64) if seed is None else seed)


def numpy_rng(seed) -> np.random.Generator:
    """A generator for `seed` (an int or a Generator); with None one seeded from the global state."""
    return np.random.default_rng(np.random.randint(2**63 - 1, dtype=np.int64) if seed is None else seed)
