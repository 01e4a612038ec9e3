"""Train a classifier data-parallel on a Ray cluster: N workers (CPU with gloo, GPU with nccl),
checkpoints every epoch on the storage path, resumable.

DATA is the output of `dlcls preprocess`, or an image folder/URL (preprocessed first, into the
run's storage). The model file's parameters apply; the flags below override them. An optimizer
step always sees batch_size * batch_size_multiplier images in total, whatever --workers is.
Running the same command again with the same --run-name resumes the run; a new name starts fresh.

example:
  dlcls train ./shards --model pretrained_dl_classifier_compact.hdl --out ./model.hdl --workers 2 --epochs 10
  ray job submit --working-dir . -- python jobs/train.py s3://bucket/shards --out s3://bucket/models/m.hdl
"""

import argparse

from .common import add_preprocess_arguments, add_ray_arguments, preprocess_options, print_outputs, progress_line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="preprocessed shards (dlcls preprocess) or an image folder/URL")
    parser.add_argument("--model", default="pretrained_dl_classifier_compact.hdl", help="network to start from")
    parser.add_argument("--out", required=True, help="where the trained model file goes (path or URL)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--use-gpu", action="store_true", help="one GPU per worker, nccl")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--classes", nargs="+", metavar="CLASS",
                        help="the classes to train (default: the model file's, else the data's)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--batch-size-multiplier", type=int)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--momentum", type=float)
    parser.add_argument("--weight-prior", type=float)
    parser.add_argument("--strategy", choices=["step", "cosine"], default="step", help="learning-rate schedule")
    parser.add_argument("--step-epochs", type=int, default=0, help="step: multiply the rate every N epochs")
    parser.add_argument("--step-factor", type=float, default=0.5)
    parser.add_argument("--augment", nargs=2, action="append", metavar=("NAME", "VALUE"), default=[],
                        help="augment_images parameter, e.g. --augment mirror rc (repeatable)")
    parser.add_argument("--training-error-percent", type=float, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--run-name", help="the run to create or resume (default: the model file's name)")
    parser.add_argument("--storage", help="checkpoint storage (default: runs/ next to --out)")
    parser.add_argument("--max-failures", type=int, default=3, help="worker failures to recover from")
    parser.add_argument("--cpus-per-worker", type=float)
    add_preprocess_arguments(parser.add_argument_group("when DATA is an image folder: how it is preprocessed"),
                             seed_flag="--split-seed")
    add_ray_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..ray.session import ray_session
    from ..ray.train import PARAM_OVERRIDES, train
    from ..ray.train_loop import Schedule

    schedule = Schedule(args.epochs, args.seed, args.strategy, args.step_epochs, args.step_factor,
                        args.training_error_percent, {name: _value(v) for name, v in args.augment})
    params = {name: getattr(args, name) for name in PARAM_OVERRIDES}
    with ray_session(args.address, args.num_cpus):
        result = train(args.data, args.model, args.out, schedule, workers=args.workers, use_gpu=args.use_gpu,
                       run_name=args.run_name, storage_uri=args.storage, params=params,
                       max_failures=args.max_failures, cpus_per_worker=args.cpus_per_worker,
                       progress=progress_line, **preprocess_options(args))
    best = result["best"]
    print(f"\nbest validation error {100 * best['validation_error']:.1f}% at epoch {best['epoch']}; "
          f"final: {100 * result['history'][-1]['validation_error']:.1f}% after epoch {result['history'][-1]['epoch']}")
    if len(result["attempts"]) > 1:
        print(f"resumed: attempts started at epochs {', '.join(str(e) for e in result['attempts'])}")
    print_outputs("outputs:", {**result["outputs"], "checkpoints": result["run"]})
    return 0


def _value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
