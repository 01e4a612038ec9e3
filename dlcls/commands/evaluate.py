"""Evaluate a trained model on labelled data, on all cores or nodes of a Ray cluster: an image
folder or URL with labels from the folder or file name (the rules of read_dl_classifier_data_set),
or a split of the Parquet shards of `dlcls preprocess` (the test split by default).

Writes under OUT: predictions.parquet (path, ground_truth, predicted, confidence, correct,
top_classes, top_confidences), errors.parquet, confusion_matrix.parquet (ground_truth, predicted,
count, relative), metrics.parquet (one row per class and 'global': top1_error, top5_error with at
least 5 classes, precision, recall, f_score, support), confusion_matrix.png and .html, and last
manifest.json. The figures are those of evaluate_dl_classifier. The per-shard work is kept in
OUT/parts/, so running the same command again after an interruption only does what is missing.

example:
  dlcls evaluate model.hdl ./shards --out ./evaluation
  dlcls evaluate model.hdl s3://bucket/images --label-source last_folder --out s3://bucket/evaluation
"""

import argparse

from .classify import add_job_arguments, job_options, print_run
from .common import print_outputs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL_URI", help="trained model file (path or URL)")
    parser.add_argument("data", metavar="DATA", help="labelled image folder or URL, or the output folder of "
                        "dlcls preprocess")
    parser.add_argument("--out", required=True, metavar="OUTPUT", help="where the results go (folder or URL)")
    parser.add_argument("--label-source", default="last_folder",
                        choices=["last_folder", "file_name", "file_name_remove_index"],
                        help="where an image's label comes from, for image folders (default: %(default)s)")
    parser.add_argument("--split", default="test", choices=["train", "validation", "test"],
                        help="with preprocessed shards: the split to evaluate on (default: %(default)s)")
    add_job_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..ray.batch import EVALUATION_OUTPUTS, evaluate
    from ..ray.session import ray_session

    with ray_session(args.address, args.num_cpus):
        manifest = evaluate(args.model, args.data, args.out, label_source=args.label_source, split=args.split,
                            **job_options(args))
    print_run(manifest, "evaluated")
    _figures(manifest["metrics"][-1], manifest["metrics"][:-1])
    print_outputs("outputs:", {name: f"{manifest['output']}/{name}" for name in EVALUATION_OUTPUTS})
    return 0


def _figures(overall: dict, per_class: list[dict]) -> None:
    top5 = f", top-5 error {100 * overall['top5_error']:.1f}%" if "top5_error" in overall else ""
    print(f"top-1 error {100 * overall['top1_error']:.1f}%{top5}, precision {overall['precision']:.3f}, "
          f"recall {overall['recall']:.3f}, F-score {overall['f_score']:.3f}")
    width = max(len(row["class"]) for row in per_class + [{"class": "class"}])
    print(f"  {'class':<{width}}  {'support':>7} {'top-1 error':>11} {'precision':>9} {'recall':>7} {'F-score':>7}")
    for row in per_class:
        print(f"  {row['class']:<{width}}  {row['support']:>7} {100 * row['top1_error']:>10.1f}% "
              f"{row['precision']:>9.3f} {row['recall']:>7.3f} {row['f_score']:>7.3f}")
