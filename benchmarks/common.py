"""Helpers for benchmarks: interleaved timing so both sides see the same machine state."""

import statistics
import time
from collections.abc import Callable


def interleaved(candidates: dict[str, Callable[[], int]], rounds: int = 5, warmup: int = 1) -> dict[str, float]:
    """Items per second of each candidate (a call returns how many items it processed), as the
    median over `rounds`, the candidates taking turns within each round (in alternating order)."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    rates: dict[str, list[float]] = {name: [] for name in candidates}
    names = list(candidates)
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:  # alternate who goes first
            fn = candidates[name]
            start = time.perf_counter()
            items = fn()
            rates[name].append(items / (time.perf_counter() - start))
    return {name: statistics.median(r) for name, r in rates.items()}


def report(title: str, rates: dict[str, float], baseline: str, unit: str = "img/s") -> dict[str, float]:
    print(f"\n{title}")
    for name, rate in rates.items():
        print(f"  {name:<34} {rate:10.1f} {unit}   ratio {rate / rates[baseline]:.3f}")
    return {name: rate / rates[baseline] for name, rate in rates.items()}
