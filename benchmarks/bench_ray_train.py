"""`dlcls train` with 2 workers against the one-process training procedure (train_dl_classifier)
on the same shards, network and epochs, in one run. Target: >= 0.85 of the one-process images/s
(training steps only; Ray's start-up and per-run overhead reported separately, with the ratio of
the whole runs' wall times).

    .venv/bin/python benchmarks/bench_ray_train.py [--per-class 200] [--epochs 4] [--size 64]
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import torch


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    import ray

    import dlcls
    from dlcls import synthetic
    from dlcls.core.preprocess import to_network_range
    from dlcls.ray.data import images_of, preprocess
    from dlcls.ray.train import train
    from dlcls.ray.train_loop import Schedule

    started = time.perf_counter()
    ray.init(num_cpus=2, log_to_driver=False, include_dashboard=False)
    print(f"Ray start-up: {time.perf_counter() - started:.1f} s (not counted)")
    tmp = Path(tempfile.mkdtemp())
    synthetic.write_data_set(tmp / "images", args.per_class, size=args.size, seed=1)
    preprocess(str(tmp / "images"), str(tmp / "shards"), "compact", image_dimensions=[args.size, args.size, 3])
    manifest = json.loads((tmp / "shards" / "manifest.json").read_text())
    table = pq.read_table(tmp / "shards" / "shards")
    split = table.column("split").to_numpy()
    arrays = {s: (to_network_range(images_of(table.filter(split == s).column("image"), manifest["image"]), -127, 128),
                  table.filter(split == s).column("label_index").to_numpy()) for s in ("train", "validation")}
    params = {"batch_size": args.batch_size, "learning_rate": 0.01}

    dlcls.set_seed(0)
    handle = dlcls.read_dl_classifier("compact")
    for name, value in [("classes", manifest["classes"]), ("image_dimensions", [args.size, args.size, 3]),
                        ("runtime", "cpu"), *params.items()]:
        handle.set_param(name, value)
    start = time.perf_counter()
    history = dlcls.train_dl_classifier(handle, *arrays["train"], *arrays["validation"], args.epochs, progress=False)
    local_wall = time.perf_counter() - start
    local = statistics.median(history.images_per_second)

    start = time.perf_counter()
    result = train(str(tmp / "shards"), "compact", str(tmp / "model.hdl"), Schedule(args.epochs), workers=2,
                   params=params)
    ray_wall = time.perf_counter() - start
    distributed = statistics.median(h["images_per_second"] for h in result["history"])
    steps_time = sum(len(arrays["train"][1]) / h["images_per_second"] for h in result["history"])
    print(f"\n{len(arrays['train'][1])} training images {args.size}x{args.size}, compact, batch {args.batch_size}, "
          f"{args.epochs} epochs")
    print(f"  one process (train_dl_classifier, {torch.get_num_threads()} threads)  {local:8.1f} img/s   "
          f"wall {local_wall:.1f} s   best val error {min(history.validation_errors):.3f}")
    print(f"  dlcls train, 2 workers (1 thread each)            {distributed:8.1f} img/s   wall {ray_wall:.1f} s   "
          f"best val error {min(h['validation_error'] for h in result['history']):.3f}")
    print(f"  ratio {distributed / local:.2f} (target >= 0.85); Ray Train overhead outside the training steps: "
          f"{ray_wall - steps_time:.1f} s (worker start, data loading, evaluation, checkpoints)")
    print(f"  whole run, wall time against wall time (every cost but Ray's start-up counted): "
          f"{local_wall / ray_wall:.2f}")
    ray.shutdown()
    return 0 if distributed / local >= 0.85 else 1


if __name__ == "__main__":
    sys.exit(main())
