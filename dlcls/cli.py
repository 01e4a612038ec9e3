"""The `dlcls` command: parse arguments, call one function, return an exit code.

Exit codes: 0 success, 1 failure (with a one-line reason), 2 bad usage (argparse's own).
"""

import argparse
import importlib
import sys
import warnings

from . import errors

# command -> module with add_arguments(parser) and run(args) -> int; imported only when used, so
# `dlcls --help` stays fast and nothing heavy is loaded for a command that does not need it.
COMMANDS = {
    "preprocess": ("dlcls.commands.preprocess", "preprocess labelled images into Parquet shards on Ray"),
    "train": ("dlcls.commands.train", "train data-parallel with Ray Train, checkpointed and resumable"),
    "evaluate": ("dlcls.commands.evaluate", "evaluate a model on labelled data into Parquet, PNG and HTML"),
    "classify": ("dlcls.commands.classify", "classify every image under a folder or URL into Parquet, exactly once"),
    "serve": ("dlcls.commands.serve", "serve a model over HTTP on Ray Serve: autoscaled, batched, load-shedding"),
    "demo": ("dlcls.commands.demo", "generate a data set, train, evaluate and report, all on this machine"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dlcls", description="HALCON-style image classification on PyTorch and Ray.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, summary) in COMMANDS.items():
        command = importlib.import_module(module)
        p = sub.add_parser(name, help=summary, description=command.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        command.add_arguments(p)
        p.set_defaults(run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.showwarning = _note
    try:
        return args.run(args)
    except (errors.HalconError, OSError, ImportError) as e:
        print(f"dlcls {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"dlcls {args.command}: interrupted", file=sys.stderr)
        return 1


def _note(message, category, *args, **kwargs) -> None:
    """Warnings as one plain line on the terminal, without file and line."""
    print(f"note: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
