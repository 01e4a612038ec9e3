"""`ray job submit --working-dir . -- python jobs/classify.py MODEL_URI INPUT --out OUTPUT ...`: the
same arguments as `dlcls classify`."""

import sys

from dlcls.cli import main

if __name__ == "__main__":
    sys.exit(main(["classify", *sys.argv[1:]]))
