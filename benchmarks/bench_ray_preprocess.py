"""`dlcls preprocess` on a local Ray against a single-process Pillow decode + resize loop over the
same files, in one run. Target: >= 1.6x on 640x480 JPEG -> 224x224 on 2 cores. Also the peak
memory (all processes) while preprocessing many small images, to show it stays bounded.

    .venv/bin/python benchmarks/bench_ray_preprocess.py [--jpegs 800] [--pngs 5000] [--many 100000]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from common import PeakMemory, tree_rss_bytes  # noqa: E402

CLASSES = ("a", "b", "c", "d")


def write_files(root: Path, count: int, size: tuple[int, int], suffix: str, seed: int = 0) -> list[str]:
    """Smooth random images (JPEG-like content) spread over class folders."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (size[1] // 16 + 1, size[0] // 16 + 1, 3), dtype=np.uint8)
    template = Image.fromarray(base).resize(size, Image.BICUBIC)
    paths = []
    for i in range(count):
        folder = root / CLASSES[i % len(CLASSES)]
        folder.mkdir(parents=True, exist_ok=True)
        shifted = np.roll(np.asarray(template), (i * 7) % size[1], axis=0)
        image = Image.fromarray(shifted if suffix == ".jpg" else shifted[:, :, 0])
        path = folder / f"img_{i:06d}{suffix}"
        image.save(path, quality=90) if suffix == ".jpg" else image.save(path)
        paths.append(str(path))
    return paths


def pillow_loop(paths: list[str], size: tuple[int, int], mode: str) -> float:
    start = time.perf_counter()
    for path in paths:
        with Image.open(path) as image:
            np.asarray(image.convert(mode).resize(size, Image.BILINEAR))
    return len(paths) / (time.perf_counter() - start)


def pipeline(source: Path, out: Path, dims: list[int], **options) -> tuple[float, dict]:
    from dlcls.ray.data import preprocess

    start = time.perf_counter()
    manifest = preprocess(str(source), str(out), "compact", image_dimensions=dims, **options)
    return manifest["listed"] / (time.perf_counter() - start), manifest


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jpegs", type=int, default=2400)
    parser.add_argument("--pngs", type=int, default=5000)
    parser.add_argument("--many", type=int, default=100_000, help="small images for the memory run (0: skip)")
    args = parser.parse_args()
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=2, log_to_driver=False, include_dashboard=False)
    print(f"Ray start-up: {time.perf_counter() - started:.1f} s (not counted below)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        jpegs = write_files(tmp / "jpeg", args.jpegs, (640, 480), ".jpg")
        pngs = write_files(tmp / "png", args.pngs, (28, 28), ".png")
        pipeline(tmp / "png", tmp / "warmup", [28, 28, 1])  # starts the worker processes once
        ratio = _case("640x480 JPEG -> 224x224x3", jpegs, tmp / "jpeg", tmp / "out-jpeg", [224, 224, 3], "RGB")
        _case("640x480 JPEG -> 224x224x3, jpeg_draft=False", jpegs, tmp / "jpeg", tmp / "out-jpeg-full",
              [224, 224, 3], "RGB", jpeg_draft=False)
        _case("28x28 PNG -> 28x28x1", pngs, tmp / "png", tmp / "out-png", [28, 28, 1], "L")
        if args.many:
            _memory(tmp, args.many)
    ray.shutdown()
    print(f"\nJPEG pipeline / single-process loop: {ratio:.2f}x (target >= 1.6)")
    return 0 if ratio >= 1.6 else 1


def _case(title, paths, source, out, dims, mode, **options) -> float:
    loop = pillow_loop(paths, (dims[0], dims[1]), mode)
    rate, _ = pipeline(source, out, dims, **options)
    print(f"\n{title}, {len(paths)} files\n  single-process Pillow loop  {loop:8.1f} img/s\n"
          f"  dlcls preprocess (2 CPUs)   {rate:8.1f} img/s   ratio {rate / loop:.2f}")
    return rate / loop


def _memory(tmp: Path, count: int) -> None:
    write_files(tmp / "many", count, (28, 28), ".png", seed=1)
    idle = tree_rss_bytes(os.getpid())
    with PeakMemory() as peak:
        rate, manifest = pipeline(tmp / "many", tmp / "out-many", [28, 28, 1])
    print(f"\n{manifest['listed']} 28x28 PNG files: {rate:.0f} img/s; resident memory of the driver and all Ray "
          f"processes: {idle / 2**30:.2f} GiB before, peak {peak.peak / 2**30:.2f} GiB during the run")


if __name__ == "__main__":
    sys.exit(main())
