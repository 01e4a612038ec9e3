"""The classifier handle: network + weights + classes + geometry + hyper-parameters + runtime.

`DLClassifier` is the Pythonic object behind HALCON's DLClassifierHandle; the operators in
`dlcls.operators` are thin calls onto it.
"""

import numbers
import warnings
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from . import errors
from .core import images as img
from .core import modelfile, params, storage
from .core.models import ARCHITECTURES, IMAGENET_CLASSES, Architecture, create_network, find_architecture
from .core.predict import predict_all
from .core.pretrained import builtin_network
from .core.runtime import out_of_memory, resolve_device
from .core.train_step import make_optimizer, set_hyperparameters, train_step
from .results import DLClassifierResult, DLClassifierTrainResult, Handle


class DLClassifier(Handle):
    def __init__(self, arch: Architecture, values: dict, model: nn.Module, *, trained: bool = False,
                 optimizer_state: dict | None = None, origin: str = ""):
        self.arch = arch
        self._params = values
        self._model = model
        self._optimizer: torch.optim.SGD | None = None
        self._optimizer_state = optimizer_state or {}  # momentum by parameter name, until first used
        self._device: torch.device | None = None  # None: runtime not initialised (HALCON's lazy init)
        self.trained = trained
        self.origin = origin

    # -- creation ---------------------------------------------------------------------------
    @classmethod
    def read(cls, uri: str) -> "DLClassifier":
        """A model file (local path or fsspec URL) or a built-in network by HALCON or short name."""
        arch = find_architecture(uri)
        if arch is not None and not storage.exists(uri):
            model, origin = builtin_network(arch)
            return cls(arch, params.defaults(arch), model, trained=False, origin=origin)
        return cls.from_bytes(storage.read_bytes(uri), source=str(uri))

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>") -> "DLClassifier":
        description, state, optimizer_state = modelfile.loads(data, source)
        arch = ARCHITECTURES.get(description.get("architecture"))
        if arch is None:
            raise errors.ModelFileError(f"{source} names an unknown architecture {description.get('architecture')!r}; "
                                        f"known: {sorted(ARCHITECTURES)}")
        values = params.validate_stored(description.get("params", {}), arch)
        with torch.device("meta"):  # shapes only: no memory, no random numbers
            model = _build(arch, values)
        _check_fit(source, "weights", model.state_dict(), state, complete=True)
        _check_fit(source, "momentum buffers", {f"{n}.momentum_buffer": p for n, p in model.named_parameters()},
                   optimizer_state, complete=False)
        with out_of_memory(errors.ModelFileError, f"{source}: the network it describes does not fit into memory"):
            model = model.to_empty(device="cpu")
        model.load_state_dict(state, strict=True)  # fills every tensor: no network has unsaved buffers
        return cls(arch, values, model, trained=bool(description.get("trained")),
                   optimizer_state=optimizer_state, origin=str(description.get("origin", source)))

    def to_bytes(self, include_optimizer: bool = True) -> bytes:
        """The whole handle as bytes (HALCON's serialize_dl_classifier); `include_optimizer` keeps
        the SGD momentum so that training continues exactly as it would have."""
        self._alive()
        description = {"architecture": self.arch.name, "params": dict(self._params),
                       "trained": self.trained, "origin": self.origin}
        return modelfile.dumps(description, self._model.state_dict(),
                               self._momentum() if include_optimizer else None)

    def write(self, uri: str, include_optimizer: bool = True) -> None:
        storage.write_bytes_atomic(uri, self.to_bytes(include_optimizer))

    # -- parameters -------------------------------------------------------------------------
    def get_param(self, name: str):
        self._alive()
        if isinstance(name, str) and name in params.COMPOSITES:
            return [self._params[n] for n in params.COMPOSITES[name]]
        params.lookup(name, setting=False)
        value = self._params[name]
        return list(value) if isinstance(value, list) else value

    def set_param(self, name: str, value) -> None:
        self._alive()
        if isinstance(name, str) and name in params.COMPOSITES:
            return self._set_composite(name, value)
        params.lookup(name, setting=True)
        value = params.check(name, value, self._context())
        if name == "runtime_init":
            return self._init_runtime()
        with self._unchanged_on_failure():
            old, self._params[name] = self._params[name], value
            if old != value:
                _EFFECTS.get(name, _no_effect)(self, old)

    def _set_composite(self, name: str, value) -> None:
        names = params.COMPOSITES[name]
        value = params.plain(value)
        if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != len(names):
            raise errors.WrongParamValueError(f"{name!r} takes {len(names)} values {list(names)}, got {value!r}")
        context = self._context()
        for n, v in zip(names, value):  # check all before changing any
            context[n] = params.check(n, v, context)
        with self._unchanged_on_failure():
            for n in names:
                self.set_param(n, context[n])

    def _context(self) -> dict:
        return {**self._params, **params.limits(self.arch)}

    @contextmanager
    def _unchanged_on_failure(self):
        """A change whose effect fails (out of memory while building the new network) is undone."""
        saved = dict(self._params), self._model, self._optimizer, self._optimizer_state, self._device
        try:
            yield
        except BaseException:
            self._params, self._model, self._optimizer, self._optimizer_state, self._device = saved
            raise

    # -- training and inference ------------------------------------------------------------
    def train_batch(self, images, labels) -> DLClassifierTrainResult:
        """One SGD update on exactly batch_size * batch_size_multiplier preprocessed images."""
        self._alive()._require_classes()
        images = img.image_list(images)
        expected = self._params["batch_size"] * self._params["batch_size_multiplier"]
        if len(images) != expected:
            raise errors.BatchSizeError(
                f"got {len(images)} images, training takes exactly batch_size * batch_size_multiplier = "
                f"{self._params['batch_size']} * {self._params['batch_size_multiplier']} = {expected}")
        img.check_images(images, *self.geometry)
        targets = torch.as_tensor(self.label_indices(labels, len(images)))
        device = self._runtime()
        optimizer = self.optimizer()
        with out_of_memory(errors.DeviceOutOfMemoryError,
                           f"a training step of {len(images)} images does not fit on {device}: lower 'batch_size' "
                           "(and raise 'batch_size_multiplier' to keep the images per step)"):
            loss = train_step(self._model, optimizer, img.to_tensor(images).to(device), targets.to(device),
                              self._params["batch_size"])
        self.trained = True
        return DLClassifierTrainResult(loss)

    def apply(self, images) -> DLClassifierResult:
        """Confidences for any number of preprocessed images, computed in chunks of batch_size."""
        self._alive()._require_classes()
        images = img.image_list(images)
        img.check_images(images, *self.geometry)
        device, size = self._runtime(), self._params["batch_size"]
        with out_of_memory(errors.DeviceOutOfMemoryError,
                           f"a chunk of batch_size = {size} images does not fit on {device}: lower 'batch_size'"):
            confidences = predict_all(self._model, img.chunks(images, size), device)
        return DLClassifierResult(confidences, self._params["classes"])

    def label_indices(self, labels, count: int) -> list[int]:
        """Labels given as class names or indices -> indices into `classes` (HALCON error 7714)."""
        labels = labels.tolist() if isinstance(labels, np.ndarray) else labels
        try:
            labels = [labels] if isinstance(labels, (str, numbers.Integral)) else list(labels)
        except TypeError:  # None, a float, ...: nothing to iterate over
            raise errors.InvalidLabelsError(
                f"labels must be class names or indices, one per image, got {labels!r}") from None
        if len(labels) != count:
            raise errors.InvalidLabelsError(f"got {len(labels)} labels for {count} images; give one label per image")
        classes = self._params["classes"]
        lookup = {name: i for i, name in enumerate(classes)}
        indices = []
        for label in labels:
            is_index = isinstance(label, numbers.Integral) and not isinstance(label, bool)
            index = int(label) if is_index else lookup.get(label) if isinstance(label, str) else None
            if index is None or not 0 <= index < len(classes):
                raise errors.InvalidLabelsError(
                    f"label {label!r} is neither one of the classes {classes} nor an index 0..{len(classes) - 1}")
            indices.append(index)
        return indices

    @property
    def geometry(self) -> tuple[int, int, int]:
        """(width, height, channels) of the network input."""
        return tuple(self._params[n] for n in params.COMPOSITES["image_dimensions"])

    @property
    def network(self) -> nn.Module:
        """The torch module (for the Ray workers and heatmaps); on the runtime's device once used."""
        return self._alive()._model

    @property
    def device(self) -> torch.device:
        """The runtime's torch device, initialising the runtime if needed."""
        return self._alive()._runtime()

    def clear(self) -> None:
        super().clear()
        self._model = self._optimizer = None
        self._optimizer_state = {}

    # -- internals --------------------------------------------------------------------------
    def _require_classes(self):
        if not self._params["classes"]:
            raise errors.ClassesNotSetError(
                "set the classes first: set_dl_classifier_param(handle, 'classes', ['good', 'defect', ...])")

    def _runtime(self) -> torch.device:
        if self._device is None:
            device = resolve_device(self._params["runtime"], self._params["gpu"])
            with out_of_memory(errors.DeviceOutOfMemoryError, f"the network does not fit on {device}: use a "
                               "smaller network or image size, another 'gpu', or 'runtime' 'cpu'"):
                self._model.to(device)
            self._device = device
        return self._device

    def _init_runtime(self) -> None:
        """runtime_init 'immediately': move the network and run one full batch now, so that a lack
        of device memory shows here (4104) rather than at the first apply."""
        device, size = self._runtime(), self._params["batch_size"]
        width, height, channels = self.geometry
        with out_of_memory(errors.DeviceOutOfMemoryError, f"batch_size {size} does not fit on {device}; "
                           "lower 'batch_size'"), torch.inference_mode():
            self._model.eval()(torch.zeros(size, channels, height, width, device=device))

    def optimizer(self) -> torch.optim.SGD:
        """The SGD optimizer of the network, with the current hyper-parameters and the momentum
        read from the model file (created on first use)."""
        hyper = [self._params[n] for n in ("learning_rate", "momentum", "weight_prior")]
        if self._optimizer is None:
            self._optimizer = make_optimizer(self._model, *hyper)
            for name, p in self._model.named_parameters():
                if f"{name}.momentum_buffer" in self._optimizer_state:
                    self._optimizer.state[p]["momentum_buffer"] = self._optimizer_state[f"{name}.momentum_buffer"].to(p)
            self._optimizer_state = {}
        set_hyperparameters(self._optimizer, *hyper)
        return self._optimizer

    def _momentum(self) -> dict:
        if self._optimizer is None:
            return dict(self._optimizer_state)
        return {f"{name}.momentum_buffer": self._optimizer.state[p]["momentum_buffer"]
                for name, p in self._model.named_parameters()
                if self._optimizer.state.get(p, {}).get("momentum_buffer") is not None}

    def _rebuild(self, reinit_prefix: str | None, transform=None) -> None:
        """A new network for the current classes and geometry, keeping every old tensor that
        still fits (all but `reinit_prefix` and tensors whose shape changed)."""
        old = self._model.state_dict()
        if transform:
            transform(old)
        model = _build(self.arch, self._params)
        fresh = model.state_dict()
        # A layer with any tensor of a new shape starts anew as a whole (weight and bias together).
        lost = {_layer(k) for k, v in fresh.items() if k not in old or old[k].shape != v.shape}
        lost |= {_layer(k) for k in fresh if reinit_prefix and k.startswith(reinit_prefix)}
        model.load_state_dict({k: v for k, v in old.items() if k in fresh and _layer(k) not in lost}, strict=False)
        if self.trained and lost:
            warnings.warn(f"re-initialised {sorted(lost)}: the network must be trained again", stacklevel=4)
        if self._device is not None:
            with out_of_memory(errors.DeviceOutOfMemoryError, f"the new network does not fit on {self._device}"):
                model = model.to(self._device)
        self._model = model
        self._optimizer, self._optimizer_state = None, {}


def _build(arch: Architecture, values: dict) -> nn.Module:
    width, height = values["image_width"], values["image_height"]
    with out_of_memory(errors.DeviceOutOfMemoryError, f"the {arch.name} network for {width}x{height} images does "
                       "not fit into memory: choose a smaller 'image_width'/'image_height'"):
        return create_network(arch, len(values["classes"]) or IMAGENET_CLASSES, values["image_num_channels"],
                              width, height)


def _check_fit(source: str, what: str, expected: dict, tensors: dict, *, complete: bool) -> None:
    """Error 7902 unless every tensor read from a file has a counterpart of its shape in
    `expected` (and, if `complete`, every expected tensor was read)."""
    wrong = [k for k, v in tensors.items() if k not in expected or tuple(v.shape) != tuple(expected[k].shape)]
    missing = [k for k in expected if k not in tensors] if complete else []
    if wrong or missing:
        raise errors.ModelFileError(
            f"{source}: the {what} do not fit the described network ({len(wrong)} unknown or of another shape, "
            f"first {wrong[:3]}; {len(missing)} missing, first {missing[:3]}); write the model file again")


def _layer(key: str) -> str:
    return key.rsplit(".", 1)[0]


def _classes_changed(clf: DLClassifier, old: list) -> None:
    # Naming the classes of a network for the first time keeps its output layer when the count
    # fits (a torchvision ImageNet head for ImageNet's 1000 names); any other change re-initialises it.
    same_size = len(clf._params["classes"]) == clf._model.state_dict()[clf.arch.head + "weight"].shape[0]
    clf._rebuild(None if (not old and same_size) else clf.arch.head)


def _size_changed(clf: DLClassifier, old) -> None:
    clf._rebuild(None)  # only tensors whose shape follows the image size start anew


def _channels_changed(clf: DLClassifier, old) -> None:
    # 3 -> 1: a gray image replicated to 3 channels through the old filters equals the gray image
    # through the filters summed over their input channels, so no accuracy is lost.
    def to_gray(state: dict) -> None:
        state[clf.arch.first_conv] = state[clf.arch.first_conv].sum(dim=1, keepdim=True)
    clf._rebuild(None, to_gray)


def _runtime_changed(clf: DLClassifier, old) -> None:
    # HALCON re-initialises on the next use; the momentum follows the weights to the new device.
    clf._optimizer_state, clf._optimizer, clf._device = clf._momentum(), None, None


def _no_effect(clf: DLClassifier, old) -> None:
    pass


_EFFECTS = {
    "classes": _classes_changed,
    "image_width": _size_changed,
    "image_height": _size_changed,
    "image_num_channels": _channels_changed,
    "runtime": _runtime_changed,
    "gpu": _runtime_changed,
}
