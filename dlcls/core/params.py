"""The classifier parameters of HALCON, as one table.

Each row says how a value is checked and normalised, its default, whether it can be set and read,
and whether it is stored in the model file. The classifier applies the rows when a parameter is
set, read, written or read back from a file; what a change does to the network (a new output
layer, layers whose shape follows the image size) is its own table of effects.

Values may be Python or numpy numbers, lists, tuples or numpy arrays; what is stored is plain
Python (int, float, str, list), as the model file's JSON needs. `image_width` and `image_height`
lie between the network's minimum (7722 below it) and maximum (1302 above it): 32768, HALCON's
largest image, for compact and the ResNets, whose weights do not depend on the image size; 1024
for enhanced and 512 for alexnet, whose first fully connected layer grows with the image (at
these sizes it holds under 2**28 weights, 1 GiB).
"""

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import errors
from .models import Architecture
from .runtime import default_runtime


@dataclass(frozen=True)
class Param:
    name: str
    check: Callable[[Any, dict], Any]  # (value, current params) -> normalised value, or raises
    default: Callable[[Architecture], Any]
    settable: bool = True
    gettable: bool = True
    stored: bool = True  # part of the model file


def plain(value: Any) -> Any:
    """numpy arrays and numbers as Python lists and numbers, also inside lists and tuples."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value


def _scalar(value: Any) -> Any:
    """HALCON passes tuples; a one-element tuple stands for its element."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        return value[0]
    return value


def _number(value: Any, kind: type) -> Any:
    value = _scalar(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise errors.WrongParamValueError(f"must be a finite number, got {value!r}")
    if kind is int and value != int(value):
        raise errors.WrongParamValueError(f"must be an integer, got {value!r}")
    return kind(value)


def _int_at_least(low: int, error: type = errors.WrongParamValueError) -> Callable:
    def check(value, params):
        value = _number(value, int)
        if value < low:
            raise error(f"must be an integer >= {low}, got {value}")
        return value
    return check


def _float_from(low: float, *, open_low: bool, below: float | None = None) -> Callable:
    """A float in (low, below) or [low, below); no upper bound when `below` is None."""
    def check(value, params):
        value = _number(value, float)
        if (value <= low if open_low else value < low) or (below is not None and value >= below):
            interval = f"{'(' if open_low else '['}{low}, {below if below is not None else 'inf'})"
            raise errors.WrongParamValueError(f"must lie in {interval}, got {value}")
        return value
    return check


def _classes(value: Any, params: dict) -> list[str]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, Sequence) or not names:
        raise errors.WrongParamValueError(f"must be a non-empty list of class names, got {value!r}")
    if any(not isinstance(n, str) or not n.strip() for n in names):
        raise errors.WrongParamValueError(f"every class name must be a non-empty string, got {list(names)!r}")
    duplicates = sorted({n for n in names if list(names).count(n) > 1})
    if duplicates:
        raise errors.DuplicateClassesError(f"duplicate class names {duplicates}; each class must be named once")
    return [str(n) for n in names]


def _image_side(value: Any, params: dict) -> int:
    value = _number(value, int)
    if value < params["_min_size"]:
        raise errors.ImageSizeTooSmallError(f"{value} is below the network's minimum of {params['_min_size']} pixels")
    if value > params["_max_size"]:  # HALCON has no code of its own for this: 1302, a wrong value
        raise errors.WrongParamValueError(
            f"{value} is above the network's maximum of {params['_max_size']} pixels; "
            "preprocess the images to a smaller size")
    return value


def _channels(value: Any, params: dict) -> int:
    value = _scalar(value)
    if value not in (1, 3) or isinstance(value, bool):
        raise errors.ChannelCountError(f"must be 1 or 3, got {value!r}")
    if value == 3 and params.get("image_num_channels") == 1:
        raise errors.ChannelExpansionError("this network was set to 1 channel and cannot go back to 3: read it again")
    return int(value)


def _choice(*allowed: str) -> Callable:
    def check(value, params):
        value = _scalar(value)
        if value not in allowed:
            raise errors.WrongParamValueError(f"must be one of {list(allowed)}, got {value!r}")
        return str(value)
    return check


def _read_only(value: Any, params: dict) -> float:
    return _number(value, float)


TABLE = {
    p.name: p
    for p in [
        Param("batch_size", _int_at_least(1), lambda a: a.batch_size),
        Param("batch_size_multiplier", _int_at_least(1, errors.BatchMultiplierError), lambda a: 1),
        Param("classes", _classes, lambda a: []),
        Param("gpu", _int_at_least(0), lambda a: 0),
        Param("image_width", _image_side, lambda a: 224),
        Param("image_height", _image_side, lambda a: 224),
        Param("image_num_channels", _channels, lambda a: 3),
        Param("image_range_min", _read_only, lambda a: -127.0, settable=False),
        Param("image_range_max", _read_only, lambda a: 128.0, settable=False),
        Param("learning_rate", _float_from(0.0, open_low=True), lambda a: 0.001),
        Param("momentum", _float_from(0.0, open_low=False, below=1.0), lambda a: 0.9),
        Param("weight_prior", _float_from(0.0, open_low=False), lambda a: 0.0),
        Param("runtime", _choice("cpu", "gpu"), lambda a: default_runtime()),
        Param("runtime_init", _choice("immediately"), lambda a: None, gettable=False, stored=False),
    ]
}

# Parameters that stand for several table rows at once, set and read as a list.
COMPOSITES = {"image_dimensions": ("image_width", "image_height", "image_num_channels")}

NAMES = sorted([n for n, p in TABLE.items()] + list(COMPOSITES))


def lookup(name: Any, *, setting: bool) -> Param:
    """The table row for `name`, or error 7713 naming what is allowed."""
    row = TABLE.get(name) if isinstance(name, str) else None
    allowed = [n for n, p in TABLE.items() if (p.settable if setting else p.gettable)] + list(COMPOSITES)
    if row is None or not (row.settable if setting else row.gettable):
        verb = "set" if setting else "read"
        raise errors.UnknownParamError(f"cannot {verb} parameter {name!r}; parameters that can be: {sorted(allowed)}")
    return row


def limits(arch: Architecture) -> dict:
    """The network's size limits, as `check` reads them from the current parameters."""
    return {"_min_size": arch.min_size, "_max_size": arch.max_size}


def check(name: str, value: Any, params: dict) -> Any:
    """The normalised value of parameter `name`, checked against the current `params` (which
    carry the network's `limits`); errors name the parameter."""
    try:
        return TABLE[name].check(plain(value), params)
    except errors.HalconError as e:
        raise type(e)(f"{name!r} {e.message}") from None


def defaults(arch: Architecture) -> dict:
    return {name: p.default(arch) for name, p in TABLE.items() if p.stored}


def validate_stored(stored: dict, arch: Architecture) -> dict:
    """Check and normalise every value read from a model file through the table (a crafted file
    gets the same errors as a bad set_dl_classifier_param). The one exception: classes never set,
    stored as their default [], which no one can set."""
    params = defaults(arch)
    context = limits(arch)
    for name, value in stored.items():
        if name not in params:
            raise errors.ModelFileError(f"the model file names an unknown parameter {name!r}")
        if not (name == "classes" and value == []):
            params[name] = context[name] = check(name, value, context)
    return params
