"""Arguments and output shared by the commands that run on Ray."""

import argparse
import os
import sys


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", default=os.environ.get("RAY_ADDRESS"),
                        help="Ray cluster to use (default: RAY_ADDRESS, else a local Ray started for this command)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")


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
