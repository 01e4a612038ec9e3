"""`ray job submit --working-dir . -- python jobs/serve.py MODEL_URI --detach ...`: the same arguments
as `dlcls serve`."""

import sys

from dlcls.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
