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

from .common import add_preprocess_arguments, add_ray_arguments, preprocess_options, print_outputs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="image folder or URL")
    parser.add_argument("output", help="where the shards go (folder or URL)")
    parser.add_argument("--model", default="pretrained_dl_classifier_compact.hdl",
                        help="network (built-in name or model file) whose image size, channels and range to use")
    add_preprocess_arguments(parser)
    add_ray_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..ray.data import preprocess
    from ..ray.session import ray_session

    with ray_session(args.address, args.num_cpus):
        manifest = preprocess(args.source, args.output, args.model, **preprocess_options(args))
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
