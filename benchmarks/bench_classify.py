"""`dlcls classify` on a local Ray against a single-process loop over the same 640x480 JPEG files,
in one run. The baseline is the plain loop a user would write: Pillow decodes and resizes, numpy
scales to the network range, torch (on every core) runs the network batch by batch. For reference
also the local procedure apply_dl_classifier_batchwise, with torch on every core and on one
thread: it decodes JPEGs with Pillow's draft mode (DCT scaling to about the network size), as the
pipeline does, so "pipeline / procedure" is the like-for-like ratio. Target: >= 1.6x the plain
loop on 2 cores. Also the peak memory (all processes) while classifying many small images, to
show it stays bounded.

    .venv/bin/python benchmarks/bench_classify.py [--jpegs 6000] [--size 64] [--many 100000]
"""

import argparse
import itertools
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_ray_preprocess import CLASSES, write_files  # noqa: E402
from common import PeakMemory, interleaved, report, tree_rss_bytes  # noqa: E402


def write_model(path: Path, size: int, channels: int, batch_size: int) -> str:
    import dlcls

    handle = dlcls.read_dl_classifier("compact")
    for name, value in [("classes", list(CLASSES)), ("image_dimensions", [size, size, channels]),
                        ("batch_size", batch_size), ("runtime", "cpu")]:
        dlcls.set_dl_classifier_param(handle, name, value)
    dlcls.write_dl_classifier(handle, str(path))
    return str(path)


def local_loop(model: str, paths: list[str], threads: int) -> int:
    """The single-process baseline: read the model, then decode, preprocess and classify."""
    import torch

    import dlcls
    from dlcls.procedures.evaluate import apply_dl_classifier_batchwise

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        apply_dl_classifier_batchwise(paths, dlcls.read_dl_classifier(model))
    finally:
        torch.set_num_threads(before)
    return len(paths)


def plain_loop(model: str, paths: list[str], batch_size: int) -> int:
    """Decode, resize, scale and forward with nothing of dlcls but the network it reads."""
    import numpy as np
    import torch
    from PIL import Image

    import dlcls

    handle = dlcls.read_dl_classifier(model)
    width, height = handle.geometry[:2]
    network = handle.network.eval()
    with torch.inference_mode():
        for start in range(0, len(paths), batch_size):
            batch = []
            for path in paths[start:start + batch_size]:
                with Image.open(path) as image:
                    batch.append(np.asarray(image.convert("RGB").resize((width, height), Image.BILINEAR)))
            x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).float() - 127.0  # g * (128 + 127) / 255 - 127
            torch.softmax(network(x), dim=1)
    return len(paths)


def pipeline(model: str, source: Path, out: Path) -> dict:
    from dlcls.ray.batch import classify

    return classify(model, str(source), str(out))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jpegs", type=int, default=6000)
    parser.add_argument("--size", type=int, default=64, help="network input side (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--many", type=int, default=100_000, help="small images for the memory run (0: skip)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import ray
    import torch

    started = time.perf_counter()
    ray.init(num_cpus=2, log_to_driver=False, include_dashboard=False, logging_level="WARNING")
    print(f"Ray start-up: {time.perf_counter() - started:.1f} s (not counted below)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = write_files(tmp / "jpeg", args.jpegs, (640, 480), ".jpg")
        model = write_model(tmp / "model.hdl", args.size, 3, args.batch_size)
        runs = itertools.count()  # every pipeline run writes a fresh output: nothing to resume
        cores = torch.get_num_threads()
        rates = interleaved({
            f"plain loop, torch {cores} threads": lambda: plain_loop(model, paths, args.batch_size),
            f"procedure loop, torch {cores} threads": lambda: local_loop(model, paths, cores),
            "procedure loop, torch 1 thread": lambda: local_loop(model, paths, 1),
            "dlcls classify (Ray, 2 CPUs)": lambda: pipeline(model, tmp / "jpeg", tmp / f"out-{next(runs)}")["listed"],
        }, rounds=args.rounds)
        ratios = report(f"{args.jpegs} JPEG 640x480 -> compact {args.size}x{args.size}x3, batch {args.batch_size} "
                        f"(median of {args.rounds} rounds)", rates, f"plain loop, torch {cores} threads")
        ratio = ratios["dlcls classify (Ray, 2 CPUs)"]
        like_for_like = ratio / ratios[f"procedure loop, torch {cores} threads"]
        if args.many:
            _memory(tmp, args.many, args.batch_size)
    ray.shutdown()
    print(f"\nclassify / plain single-process loop: {ratio:.2f}x (target >= 1.6); "
          f"classify / the procedure loop (same decoding): {like_for_like:.2f}x")
    return 0 if ratio >= 1.6 else 1


def _memory(tmp: Path, count: int, batch_size: int) -> None:
    write_files(tmp / "many", count, (28, 28), ".png", seed=1)
    model = write_model(tmp / "gray.hdl", 28, 1, batch_size)
    idle = tree_rss_bytes(os.getpid())
    start = time.perf_counter()
    with PeakMemory() as peak:
        manifest = pipeline(model, tmp / "many", tmp / "out-many")
    rate = manifest["listed"] / (time.perf_counter() - start)
    print(f"\n{manifest['listed']} 28x28 PNG files -> compact 28x28x1: {rate:.0f} img/s, {manifest['shards']} parts; "
          f"resident memory of the driver and all Ray processes: {idle / 2**30:.2f} GiB before, "
          f"peak {peak.peak / 2**30:.2f} GiB during the run")


if __name__ == "__main__":
    sys.exit(main())
