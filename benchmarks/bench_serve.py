"""`dlcls serve` (Ray Serve, HTTP on localhost) against apply_dl_classifier in-process on the same
JPEG files, in one run: latency (p50, p99) and throughput at 1, 8 and 32 concurrent clients; and at
32 clients dynamic batching (max_batch_size = the model's batch_size) against batching switched off
(max_batch_size 1). Target: batching >= 1.5x the throughput of no batching.

In-process, a client is a thread calling apply_dl_classifier(preprocess_dl_classifier_images(bytes))
on one image at a time, as a caller without a service would (torch on 2 threads). Over HTTP, a
client is an asyncio task posting one file per request (Content-Type image/jpeg, keep-alive) and
waiting for the answer. Each app has one replica reserving 2 CPUs (torch on 2 threads); Ray is
given 4 logical CPUs so that the batched and the unbatched app are deployed side by side (only the
one under test is busy). Clients, Serve's proxy and the replica share this machine's cores.

The network is AlexNet (HALCON ships it) at 128x128: its wide fully connected layers make one
image on the CPU cost about a third of a batch of eight, the case batching exists for.

    .venv/bin/python benchmarks/bench_serve.py [--arch alexnet] [--size 128] [--batch-size 16] [--requests 384]
"""

import argparse
import asyncio
import io
import itertools
import socket
import statistics
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ["good", "crack", "dent", "scratch", "stain"]
LOCAL, SERVE, UNBATCHED = "apply_dl_classifier in-process", "dlcls serve (HTTP)", "dlcls serve, batching off"


def jpeg_files(count: int, size: tuple[int, int]) -> list[bytes]:
    """Smooth random images of camera-like content, each different."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        base = rng.integers(0, 256, (size[1] // 16 + 1, size[0] // 16 + 1, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(base).resize(size, Image.BICUBIC).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def write_model(path: Path, arch: str, size: int, batch_size: int) -> str:
    import dlcls

    handle = dlcls.read_dl_classifier(arch)
    for name, value in [("classes", CLASSES), ("image_dimensions", [size, size, 3]), ("batch_size", batch_size),
                        ("runtime", "cpu")]:
        dlcls.set_dl_classifier_param(handle, name, value)
    dlcls.write_dl_classifier(handle, str(path))
    return str(path)


def in_process(model: str, first: bytes):
    """A call classifying one image's bytes, as the local procedure does."""
    import dlcls

    handle = dlcls.read_dl_classifier(model)

    def classify(data: bytes) -> None:
        dlcls.apply_dl_classifier(dlcls.preprocess_dl_classifier_images(data, handle), handle)

    classify(first)  # the handle initialises its runtime on first use: once, before the threads
    return classify


def run_threads(call, files: list[bytes], clients: int, requests: int) -> tuple[list[float], float]:
    """`clients` threads share `requests` calls; returns per-call latencies (s) and the wall time."""
    counter, latencies = itertools.count(), []

    def client() -> None:
        while (i := next(counter)) < requests:
            start = time.perf_counter()
            call(files[i % len(files)])
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    return latencies, time.perf_counter() - start


def run_http(url: str, files: list[bytes], clients: int, requests: int) -> tuple[list[float], float]:
    """`clients` asyncio tasks share `requests` POSTs; every answer must be a 200."""
    import aiohttp

    async def main() -> tuple[list[float], float]:
        counter, latencies = itertools.count(), []
        connector = aiohttp.TCPConnector(limit=clients)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def client() -> None:
                while (i := next(counter)) < requests:
                    start = time.perf_counter()
                    async with session.post(url, data=files[i % len(files)],
                                            headers={"Content-Type": "image/jpeg"}) as response:
                        await response.read()
                        if response.status != 200:
                            raise RuntimeError(f"HTTP {response.status}: {await response.text()}")
                    latencies.append(time.perf_counter() - start)

            start = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(clients)))
            return latencies, time.perf_counter() - start

    return asyncio.run(main())


def measure(candidates: dict, clients: int, requests: int, rounds: int) -> dict:
    """Per candidate (a call (clients, requests) -> (latencies, wall time)): the latencies of every
    round and the median throughput over the rounds; the candidates take turns within a round, in
    alternating order."""
    results = {name: ([], []) for name in candidates}
    names = list(candidates)
    for name in names:  # warm-up: connections, the model's first batches
        candidates[name](clients, min(requests, 4 * clients))
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            latencies, wall = candidates[name](clients, requests)
            results[name][0].extend(latencies)
            results[name][1].append(len(latencies) / wall)
    return {name: (lat, statistics.median(rates)) for name, (lat, rates) in results.items()}


def report(clients: int, results: dict, baseline: str) -> dict[str, float]:
    base = results[baseline][1]
    for name, (latencies, rate) in results.items():
        p50, p99 = np.percentile(np.array(latencies) * 1000, [50, 99])
        print(f"  {clients:>3}  {name:<40} {p50:8.1f} {p99:8.1f} {rate:9.1f}   {rate / base:6.2f}")
    return {name: rate for name, (_, rate) in results.items()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=64, help="distinct JPEG files (default: %(default)s)")
    parser.add_argument("--image-size", type=int, nargs=2, default=(320, 240), metavar=("WIDTH", "HEIGHT"))
    parser.add_argument("--arch", default="alexnet", help="network (default: %(default)s)")
    parser.add_argument("--size", type=int, default=128, help="network input side (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=16, help="the model's batch_size (default: %(default)s)")
    parser.add_argument("--replica-cpus", type=float, default=2, help="CPUs (torch threads) of a replica")
    parser.add_argument("--requests", type=int, default=384, help="requests per candidate and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import ray
    import torch

    from dlcls.ray.serve import start

    torch.set_num_threads(2)
    ray.init(num_cpus=4, log_to_driver=False, include_dashboard=False, logging_level="WARNING")
    files = jpeg_files(args.images, tuple(args.image_size))
    with tempfile.TemporaryDirectory() as tmp:
        model = write_model(Path(tmp) / "model.hdl", args.arch, args.size, args.batch_size)
        port, common = _free_port(), {"model_uri": model, "num_cpus_per_replica": args.replica_cpus, "min_replicas": 1,
                                      "max_replicas": 1, "max_ongoing_requests": 64, "max_queued_requests": 256}
        base = start(common, port=port, name="batched", route_prefix="/batched").rsplit("/", 1)[0]
        start({**common, "max_batch_size": 1}, port=port, name="unbatched", route_prefix="/unbatched")
        local = partial(run_threads, in_process(model, files[0]), files)
        batched = partial(run_http, f"{base}/batched/v1/classify", files)
        unbatched = partial(run_http, f"{base}/unbatched/v1/classify", files)
        width, height = args.image_size
        print(f"\n{args.images} JPEG {width}x{height} -> {args.arch} {args.size}x{args.size}x3, batch_size "
              f"{args.batch_size}; {args.requests} requests per candidate and round, median of {args.rounds} rounds")
        print(f"  {'clients':>3}  {'candidate':<40} {'p50 ms':>8} {'p99 ms':>8} {'img/s':>9}   ratio")
        rates = {}
        for clients in (1, 8, 32):
            candidates = {LOCAL: local, SERVE: batched, **({UNBATCHED: unbatched} if clients == 32 else {})}
            rates[clients] = report(clients, measure(candidates, clients, args.requests, args.rounds), LOCAL)
    ray.shutdown()
    gain = rates[32][SERVE] / rates[32][UNBATCHED]
    print(f"\ndynamic batching / batching off at 32 clients: {gain:.2f}x (target >= 1.5)")
    return 0 if gain >= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
