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


def tree_rss_bytes(root_pid: int) -> int:
    """Resident memory of a process and all its descendants (Ray's raylet, workers, object store
    server are children of a driver that started a local Ray), read from /proc."""
    import os

    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        children.setdefault(int(fields[1]), []).append(pid)
        rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


class PeakMemory:
    """Samples tree_rss_bytes of this process every `interval` seconds in a thread."""

    def __init__(self, interval: float = 0.2):
        import os
        import threading

        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._run, args=(os.getpid(), interval), daemon=True)

    def _run(self, pid: int, interval: float) -> None:
        while not self._stop.wait(interval):
            self.peak = max(self.peak, tree_rss_bytes(pid))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
