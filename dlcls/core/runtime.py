"""Where the network runs: HALCON's `runtime` ('cpu' | 'gpu') and `gpu` index -> a torch device."""

import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .. import errors


def default_runtime() -> str:
    """HALCON defaults to 'gpu'; on a machine without a usable CUDA device dlcls defaults to 'cpu'."""
    return "gpu" if torch.cuda.is_available() else "cpu"


def resolve_device(runtime: str, gpu: int) -> torch.device:
    if runtime == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise errors.NoGPUError("runtime 'gpu' needs a CUDA device and none is usable here; "
                                "set_dl_classifier_param(handle, 'runtime', 'cpu') to run on the CPU")
    count = torch.cuda.device_count()
    if gpu >= count:
        raise errors.GPUDeviceError(f"'gpu' is {gpu} but only {count} CUDA device(s) exist (0..{count - 1})")
    return torch.device("cuda", gpu)


@contextmanager
def out_of_memory(error: type, advice: str) -> Iterator[None]:
    """Running out of device or host memory inside the block raises `error` with `advice` (what
    to change) instead of torch's bare RuntimeError. A failed CPU allocation is a plain
    RuntimeError naming the bytes it tried to allocate; CUDA raises torch.OutOfMemoryError."""
    try:
        yield
    except errors.HalconError:
        raise
    except (MemoryError, RuntimeError) as e:
        if not isinstance(e, (MemoryError, torch.OutOfMemoryError)) and "allocate" not in str(e):
            raise
        reason = str(e).strip().partition("\n")[0] or type(e).__name__  # torch's first line names the bytes
        # The failed call's frames hold its activations: free them now, so that a caller who
        # catches the error and retries with a smaller batch (HALCON's pattern) has the memory.
        traceback.clear_frames(e.__traceback__)
        raise error(f"{advice} ({reason})") from None
