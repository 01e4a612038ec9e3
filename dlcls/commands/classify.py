"""Classify every image under INPUT (a local folder or an fsspec URL such as s3://bucket/prefix, or
the Parquet shards of `dlcls preprocess`) with a trained model, on all cores or nodes of a Ray
cluster: decoding and preprocessing as CPU tasks, prediction in actors that load the model once
(one GPU each where the cluster has GPUs).

Writes OUT/predictions/part-NNNNN.parquet (path, predicted_class, predicted_class_index,
confidence, top_classes, top_confidences, model_id), OUT/errors/part-NNNNN.parquet (path, stage,
error), one of each per input shard, and last OUT/manifest.json. Run the same command again after
an interruption: it computes only the missing shards, and every input ends up in exactly one row.

example:
  dlcls classify model.hdl ./images --out ./predictions
  ray job submit --working-dir . -- python jobs/classify.py s3://bucket/model.hdl s3://bucket/images --out s3://bucket/predictions
"""

import argparse

from ..core.decode import DEFAULT_MAX_PIXELS
from .common import add_ray_arguments, print_outputs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL_URI", help="trained model file (path or URL)")
    parser.add_argument("input", metavar="INPUT", help="image folder or URL, or the output folder of dlcls preprocess")
    parser.add_argument("--out", required=True, metavar="OUTPUT", help="where the results go (folder or URL)")
    parser.add_argument("--split", default=None, choices=["train", "validation", "test"],
                        help="with preprocessed shards: only this split (default: every row)")
    add_job_arguments(parser)


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    """The options classify and evaluate share."""
    parser.add_argument("--top-k", type=int, default=5, help="classes listed per image (default: %(default)s, at most "
                        "the number of classes)")
    parser.add_argument("--rows-per-shard", type=int, default=256,
                        help="images per output part, for image folders (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=None, help="images per forward pass (default: the model's)")
    parser.add_argument("--actors", type=int, default=None,
                        help="model replicas (default: one per GPU, else one per 4 CPUs, at least one)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="refuse images with more pixels (decompression bombs; default: %(default)s)")
    parser.add_argument("--contrast-normalization", action="store_true",
                        help="as preprocess_dl_classifier_images' 'contrast_normalization' (image folders)")
    add_ray_arguments(parser)


def job_options(args: argparse.Namespace) -> dict:
    return dict(top_k=args.top_k, rows_per_shard=args.rows_per_shard, batch_size=args.batch_size, actors=args.actors,
                max_pixels=args.max_pixels, contrast_normalization=args.contrast_normalization)


def run(args: argparse.Namespace) -> int:
    from ..ray.batch import classify
    from ..ray.session import ray_session

    with ray_session(args.address, args.num_cpus):
        manifest = classify(args.model, args.input, args.out, split=args.split, **job_options(args))
    print_run(manifest, "classified")
    out = manifest["output"]
    print_outputs("outputs:", {"predictions": f"{out}/predictions/ ({manifest['shards']} files)",
                               "errors": f"{out}/errors/ ({manifest['shards']} files)",
                               "manifest": f"{out}/manifest.json"})
    return 0


def print_run(manifest: dict, verb: str) -> None:
    rate = manifest["listed"] / manifest["seconds"] if manifest["seconds"] else 0.0
    reused = f", {manifest['reused']} done by an earlier run" if manifest["reused"] else ""
    print(f"\n{manifest['listed']} images, {manifest['rows']} {verb}, {manifest['errors']} errors; "
          f"{manifest['shards']} shards ({manifest['computed']} computed{reused}); {manifest['seconds']:.1f} s "
          f"({rate:.0f} images/s); model {manifest['model']['uri']} (id {manifest['model']['id'][:12]})")
