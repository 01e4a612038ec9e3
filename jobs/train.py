"""`ray job submit --working-dir . -- python jobs/train.py DATA --out MODEL_URI ...`: the same
arguments as `dlcls train`."""

import sys

from dlcls.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
