"""`ray job submit --working-dir . -- python jobs/evaluate.py MODEL_URI DATA --out OUTPUT ...`: the
same arguments as `dlcls evaluate`."""

import sys

from dlcls.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
