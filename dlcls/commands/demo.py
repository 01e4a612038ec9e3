"""Run the whole product on this machine, nothing to start by hand: generate a labelled data set
of machined parts (washers) with four kinds of defect, then on a local Ray: preprocess into
Parquet shards -> train data-parallel on 2 workers -> evaluate on the test split (Parquet, PNG,
HTML) -> classify new unlabelled images offline -> answer HTTP requests from a Serve deployment
-> shut down. A run starts over: it removes the outputs of an earlier demo run in the same place.

With --store s3://bucket/prefix the data set, shards, models and results live in object storage
(endpoint and credentials from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).

example:
  dlcls demo --workdir ./dlcls-demo
  dlcls demo --store s3://my-bucket/dlcls-demo
"""

import argparse

from .common import add_ray_arguments, print_outputs, progress_line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", default="dlcls-demo",
                        help="local folder for the generated images and, without --store, every output "
                             "(default: %(default)s)")
    parser.add_argument("--store", default=None, metavar="URI",
                        help="where shards, models and results go, e.g. s3://bucket/demo (default: the workdir)")
    parser.add_argument("--per-class", type=int, default=300, help="images per class (default: %(default)s)")
    parser.add_argument("--incoming", type=int, default=100,
                        help="unlabelled images to classify offline (default: %(default)s)")
    parser.add_argument("--image-size", type=int, default=64, help="network input side (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=16, help="training epochs (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="Ray Train workers (default: %(default)s)")
    parser.add_argument("--requests", type=int, default=5, help="HTTP requests to the service (default: %(default)s)")
    parser.add_argument("--model", default="pretrained_dl_classifier_compact.hdl", help="network to start from")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=42)
    add_ray_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..ray.demo import DemoConfig, run_demo
    from ..ray.session import ray_session

    config = DemoConfig(args.workdir, args.store, args.per_class, args.incoming, args.image_size, args.epochs,
                        args.batch_size, args.learning_rate, args.workers, args.requests, args.seed, args.model)
    with ray_session(args.address, args.num_cpus):
        result = run_demo(config, say=lambda line: print(line, flush=True), progress=progress_line)
    _summary(result)
    return 0


def _summary(result: dict) -> None:
    steps, where = result["steps"], result["outputs"]
    overall = steps["evaluate"]["global"]
    print(f"\ntest accuracy {100 * (1 - overall['top1_error']):.1f}% (top-1 error {100 * overall['top1_error']:.1f}%, "
          f"F-score {overall['f_score']:.3f}); the service answered {steps['serve']['answered']} of "
          f"{steps['serve']['sent']} requests, {steps['serve']['correct']} correctly; "
          f"finished in {result['seconds']:.0f} s")
    train = steps["train"]["outputs"]
    print_outputs("outputs:", {
        "images": where["images"], "shards": where["shards"], "model": train["model"], "best model": train["best"],
        "training metrics": train["metrics"], "training plot": train["plot"], "checkpoints": steps["train"]["run"],
        "evaluation": f"{where['evaluation']}/ (predictions, metrics, confusion_matrix .parquet/.png/.html)",
        "predictions": f"{where['predictions']}/ (predictions/, errors/, manifest.json)",
    })
