"""Preprocess a labelled image data set (a local folder or an fsspec URL such as s3://bucket/prefix)
into Parquet shards for training, on all cores or nodes of a Ray cluster.

Labels come from the folder or the file name, with the rules of read_dl_classifier_data_set.
Writes SHARDS/listing.parquet, SHARDS/shards/shard-*.parquet, SHARDS/errors.parquet and, last,
SHARDS/manifest.json.

example:
  dlcls preprocess ./images ./shards --model pretrained_dl_classifier_compact.hdl --image-dimensions 64 64 3
  ray job submit --working-dir . -- python jobs/preprocess.py s3://bucket/images s3://bucket/shards
"""

import argparse

from ..core.decode import DEFAULT_MAX_PIXELS
from .common import add_ray_arguments, print_outputs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="image folder or URL")
    parser.add_argument("output", help="where the shards go (folder or URL)")
    parser.add_argument("--model", default="pretrained_dl_classifier_compact.hdl",
                        help="network (built-in name or model file) whose image size, channels and range to use")
    parser.add_argument("--image-dimensions", type=int, nargs=3, metavar=("WIDTH", "HEIGHT", "CHANNELS"),
                        help="override the network's image_dimensions")
    parser.add_argument("--label-source", default="last_folder",
                        choices=["last_folder", "file_name", "file_name_remove_index"])
    parser.add_argument("--train-percent", type=float, default=70)
    parser.add_argument("--validation-percent", type=float, default=15)
    parser.add_argument("--seed", type=int, default=42, help="seed of the split (default: %(default)s)")
    parser.add_argument("--rows-per-shard", type=int, default=256)
    parser.add_argument("--max-error-ratio", type=float, default=None,
                        help="fail when more than this fraction of the files cannot be read (default: never)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="refuse images with more pixels (decompression bombs; default: %(default)s)")
    parser.add_argument("--contrast-normalization", action="store_true")
    add_ray_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..ray.data import preprocess
    from ..ray.session import ray_session

    with ray_session(args.address, args.num_cpus):
        manifest = preprocess(args.source, args.output, args.model, args.label_source, args.train_percent,
                              args.validation_percent, args.seed, args.rows_per_shard, args.max_error_ratio,
                              args.image_dimensions, contrast_normalization=args.contrast_normalization,
                              max_pixels=args.max_pixels)
    _summary(manifest)
    return 0


def _summary(manifest: dict) -> None:
    rate = manifest["listed"] / manifest["seconds"] if manifest["seconds"] else 0.0
    print(f"\n{manifest['listed']} files listed, {manifest['rows']} preprocessed, {manifest['errors']} errors, "
          f"{manifest['seconds']:.1f} s ({rate:.0f} files/s)")
    classes = manifest["classes"]
    width = max(len(c) for c in classes + ["class"])
    print(f"  {'class':<{width}}  {'train':>7} {'validation':>10} {'test':>7}")
    for c in classes:
        print(f"  {c:<{width}}  " + " ".join(f"{manifest['counts'][s][c]:>{w}}" for s, w in
                                             [("train", 7), ("validation", 10), ("test", 7)]))
    out = manifest["output"]
    print_outputs("outputs:", {"shards": f"{out}/shards/ ({len(manifest['shards'])} files)",
                               "errors": f"{out}/errors.parquet", "listing": f"{out}/listing.parquet",
                               "manifest": f"{out}/manifest.json"})
