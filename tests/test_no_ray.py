"""The core and the operators work where ray cannot be imported."""

import subprocess
import sys

SCRIPT = """
import sys
sys.modules["ray"] = None  # any `import ray` now raises ImportError
import numpy as np
import dlcls, dlcls.core.predict, dlcls.core.train_step, dlcls.procedures
h = dlcls.read_dl_classifier("compact")
dlcls.set_dl_classifier_param(h, "classes", ["a", "b"])
dlcls.set_dl_classifier_param(h, "image_dimensions", [16, 16, 3])
dlcls.set_dl_classifier_param(h, "batch_size", 2)
dlcls.train_dl_classifier_batch(np.zeros((2, 16, 16, 3), np.float32), h, ["a", "b"])
print(len(dlcls.apply_dl_classifier(np.zeros((3, 16, 16, 3), np.float32), h)))
assert not any(m == "ray" or m.startswith("ray.") for m in sys.modules if sys.modules[m] is not None)
"""


def test_core_and_operators_import_and_run_without_ray():
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3"


NO_TORCH = """
import sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
import dlcls
from dlcls.ray import data, sharding
from dlcls.procedures import read_dl_classifier_data_set, split_dl_classifier_data_set
print(data.shard_name(3), sharding.shares(5, 2), callable(read_dl_classifier_data_set))
"""


def test_the_modules_ray_data_tasks_run_import_without_torch():
    """Preprocessing shard tasks and the row selection feeding Ray Train workers run in fresh Ray
    worker processes: without torch they start in a fraction of a second instead of one or more."""
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", NO_TORCH], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "shard-00003.parquet [3, 2] True"
