"""Arguments and output shared by the commands that run on Ray."""

import argparse
import os


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", default=os.environ.get("RAY_ADDRESS"),
                        help="Ray cluster to use (default: RAY_ADDRESS, else a local Ray started for this command)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")


def print_outputs(title: str, outputs: dict[str, str]) -> None:
    print(title)
    width = max(len(name) for name in outputs)
    for name, where in outputs.items():
        print(f"  {name:<{width}}  {where}")
