"""`ray job submit --working-dir . -- python jobs/preprocess.py SOURCE OUTPUT ...`: the same
arguments as `dlcls preprocess`."""

import sys

from dlcls.cli import main

if __name__ == "__main__":
    sys.exit(main(["preprocess", *sys.argv[1:]]))
