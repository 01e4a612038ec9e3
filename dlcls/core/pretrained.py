"""The built-in networks: deterministic initialisation, or weights a user points a name at.

No ImageNet weights ship with dlcls. A built-in name gives the architecture initialised from a
fixed seed (the same on every machine) and says so once per process. To start from real
pretrained weights, point the name at a weights file or URL, either with
`dlcls.set_pretrained_weights("resnet18", "s3://models/resnet18-f37072fd.pth")` or with the
environment variable DLCLS_WEIGHTS_RESNET18 (any short name, upper case). A weights file is a
safetensors file or a torch state dict such as torchvision's `resnet18-*.pth`, read weights-only.
"""

import os
import warnings

import torch
from torch import nn

from .. import errors
from . import modelfile, storage
from .models import IMAGENET_CLASSES, Architecture, create_network, find_architecture

_BUILTIN_SEED = 20171201  # HALCON 17.12, where these operators first appeared
_weights: dict[str, str] = {}
_announced: set[str] = set()


class PretrainedWeightsWarning(UserWarning):
    """A built-in network was created without pretrained weights."""


def set_pretrained_weights(name: str, uri: str | None) -> None:
    """Make built-in network `name` start from the weights at `uri` (None: back to the default)."""
    arch = find_architecture(name)
    if arch is None:
        raise errors.ModelFileNotFoundError(f"{name!r} is not a built-in network name")
    if uri is None:
        _weights.pop(arch.name, None)
    else:
        _weights[arch.name] = os.fspath(uri)


def weights_uri(arch: Architecture) -> str | None:
    return _weights.get(arch.name) or os.environ.get(f"DLCLS_WEIGHTS_{arch.name.upper()}") or None


def builtin_network(arch: Architecture) -> tuple[nn.Module, str]:
    """The network for a built-in name and a note on where its weights come from."""
    with torch.random.fork_rng(devices=[]):  # leaves the caller's random state untouched
        torch.manual_seed(_BUILTIN_SEED)
        model = create_network(arch, IMAGENET_CLASSES, 3, 224, 224)
    uri = weights_uri(arch)
    if uri is None:
        if arch.name not in _announced:
            _announced.add(arch.name)
            warnings.warn(
                f"{arch.halcon_file}: no pretrained weights ship with dlcls, so the network starts from a "
                f"deterministic initialisation; set DLCLS_WEIGHTS_{arch.name.upper()} to a weights file to "
                "start from pretrained weights", PretrainedWeightsWarning, stacklevel=4)
        return model, f"initialised (seed {_BUILTIN_SEED})"
    import_weights(model, modelfile.load_weights_file(storage.read_bytes(uri), uri), arch, uri)
    return model, f"weights from {uri}"


def import_weights(model: nn.Module, state: dict, arch: Architecture, source: str) -> None:
    """Load `state` into `model`: every tensor outside the output layer must fit; the output
    layer is taken when its shape fits too and keeps its initialisation otherwise. Batch-norm
    `num_batches_tracked` counters may be missing (torchvision's classic checkpoints predate
    them); the model keeps its own, which only matter for batch norm without momentum."""
    own = model.state_dict()
    misfits = [k for k, v in own.items() if not k.startswith(arch.head) and
               not (k.endswith("num_batches_tracked") and k not in state) and
               (k not in state or tuple(state[k].shape) != tuple(v.shape))]
    if misfits:
        raise errors.WeightsMismatchError(
            f"{source} does not fit {arch.name}: {len(misfits)} of {len(own)} tensors are missing or of another "
            f"shape (first: {misfits[:3]}); is it a {arch.name} state dict?")
    model.load_state_dict({k: v for k, v in state.items() if k in own and state[k].shape == own[k].shape},
                          strict=False)
