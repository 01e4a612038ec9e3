"""Arguments and output shared by the commands that run on Ray."""

import argparse
import os
import sys

from ..core.decode import DEFAULT_MAX_PIXELS


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", default=os.environ.get("RAY_ADDRESS"),
                        help="Ray cluster to use (default: RAY_ADDRESS, else a local Ray started for this command)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")


def add_preprocess_arguments(parser: argparse.ArgumentParser, seed_flag: str = "--seed") -> None:
    """How image files become shards: shared by `dlcls preprocess` and `dlcls train` on an image folder."""
    parser.add_argument("--image-dimensions", type=int, nargs=3, metavar=("WIDTH", "HEIGHT", "CHANNELS"),
                        help="override the network's image_dimensions")
    parser.add_argument("--label-source", default="last_folder",
                        choices=["last_folder", "file_name", "file_name_remove_index"])
    parser.add_argument("--train-percent", type=float, default=70)
    parser.add_argument("--validation-percent", type=float, default=15)
    parser.add_argument(seed_flag, dest="split_seed", type=int, default=42,
                        help="seed of the split (default: %(default)s)")
    parser.add_argument("--rows-per-shard", type=int, default=256)
    parser.add_argument("--max-error-ratio", type=float, default=None,
                        help="fail when more than this fraction of the files cannot be read (default: never)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="refuse images with more pixels (decompression bombs; default: %(default)s)")
    parser.add_argument("--contrast-normalization", action="store_true")


def preprocess_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of data.preprocess from the flags of add_preprocess_arguments."""
    return dict(image_dimensions=args.image_dimensions, label_source=args.label_source,
                train_percent=args.train_percent, validation_percent=args.validation_percent, seed=args.split_seed,
                rows_per_shard=args.rows_per_shard, max_error_ratio=args.max_error_ratio, max_pixels=args.max_pixels,
                contrast_normalization=args.contrast_normalization)


def print_outputs(title: str, outputs: dict[str, str]) -> None:
    print(title)
    width = max(len(name) for name in outputs)
    for name, where in outputs.items():
        print(f"  {name:<{width}}  {where}")


def progress_line(m: dict) -> None:
    """One line per trained epoch, on stderr so that stdout stays the summary."""
    print(f"epoch {m['epoch']:>3}: loss {m['loss']:.4f}  train error {100 * m['training_error']:5.1f}%  "
          f"val error {100 * m['validation_error']:5.1f}%  lr {m['learning_rate']:.1e}  "
          f"{m['images_per_second']:.0f} img/s", file=sys.stderr, flush=True)
