"""`dlcls classify` on a local Ray against a single-process loop (decode, preprocess, forward: the
local procedure apply_dl_classifier_batchwise) over the same 640x480 JPEG files, in one run.
Target: >= 1.6x on 2 cores. Also the peak memory (all processes) while classifying many small
images, to show it stays bounded.

    .venv/bin/python benchmarks/bench_classify.py [--jpegs 2000] [--size 64] [--many 100000]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_ray_preprocess import CLASSES, write_files  # noqa: E402
from common import PeakMemory, tree_rss_bytes  # noqa: E402


def write_model(path: Path, size: int, channels: int, batch_size: int) -> str:
    import dlcls

    handle = dlcls.read_dl_classifier("compact")
    for name, value in [("classes", list(CLASSES)), ("image_dimensions", [size, size, channels]),
                        ("batch_size", batch_size), ("runtime", "cpu")]:
        dlcls.set_dl_classifier_param(handle, name, value)
    dlcls.write_dl_classifier(handle, str(path))
    return str(path)


def local_loop(model: str, paths: list[str]) -> float:
    """The single-process baseline: read the model, then decode, preprocess and classify batch by
    batch with the local procedure (torch on every core)."""
    import dlcls
    from dlcls.procedures.evaluate import apply_dl_classifier_batchwise

    start = time.perf_counter()
    apply_dl_classifier_batchwise(paths, dlcls.read_dl_classifier(model))
    return len(paths) / (time.perf_counter() - start)


def pipeline(model: str, source: Path, out: Path, **options) -> tuple[float, dict]:
    from dlcls.ray.batch import classify

    start = time.perf_counter()
    manifest = classify(model, str(source), str(out), **options)
    return manifest["listed"] / (time.perf_counter() - start), manifest


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jpegs", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64, help="network input side (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--many", type=int, default=100_000, help="small images for the memory run (0: skip)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=2, log_to_driver=False, include_dashboard=False)
    print(f"Ray start-up: {time.perf_counter() - started:.1f} s (not counted below)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = write_files(tmp / "jpeg", args.jpegs, (640, 480), ".jpg")
        model = write_model(tmp / "model.hdl", args.size, 3, args.batch_size)
        pipeline(model, tmp / "jpeg", tmp / "warmup", rows_per_shard=64)  # starts the worker processes once
        loop, ray_rates = [], []
        for round_ in range(args.rounds):  # alternate who goes first
            for side in ("loop", "ray") if round_ % 2 == 0 else ("ray", "loop"):
                if side == "loop":
                    loop.append(local_loop(model, paths))
                else:
                    ray_rates.append(pipeline(model, tmp / "jpeg", tmp / f"out-{round_}")[0])
        ratio = statistics.median(ray_rates) / statistics.median(loop)
        print(f"\n{args.jpegs} JPEG 640x480 -> compact {args.size}x{args.size}x3, batch {args.batch_size}, "
              f"median of {args.rounds}\n  single-process loop (apply_dl_classifier_batchwise) "
              f"{statistics.median(loop):8.1f} img/s   {[round(r) for r in loop]}\n"
              f"  dlcls classify (2 CPUs)                            {statistics.median(ray_rates):8.1f} img/s   "
              f"{[round(r) for r in ray_rates]}   ratio {ratio:.2f}")
        if args.many:
            _memory(tmp, args.many, args.batch_size)
    ray.shutdown()
    print(f"\nclassify / single-process loop: {ratio:.2f}x (target >= 1.6)")
    return 0 if ratio >= 1.6 else 1


def _memory(tmp: Path, count: int, batch_size: int) -> None:
    write_files(tmp / "many", count, (28, 28), ".png", seed=1)
    model = write_model(tmp / "gray.hdl", 28, 1, batch_size)
    idle = tree_rss_bytes(os.getpid())
    with PeakMemory() as peak:
        rate, manifest = pipeline(model, tmp / "many", tmp / "out-many")
    print(f"\n{manifest['listed']} 28x28 PNG files: {rate:.0f} img/s; resident memory of the driver and all Ray "
          f"processes: {idle / 2**30:.2f} GiB before, peak {peak.peak / 2**30:.2f} GiB during the run")


if __name__ == "__main__":
    sys.exit(main())
