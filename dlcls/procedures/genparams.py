"""HALCON's generic parameters (GenParamName, GenParamValue) for the procedures, table-driven.

Each procedure declares one table {name: GenParam(default, check)}; `parse` checks the pairs
against it and returns every setting, defaults filled in.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import errors


@dataclass(frozen=True)
class GenParam:
    default: Any
    check: Callable[[Any], Any]  # value -> normalised value, or raises WrongParamValueError


def as_list(value) -> list:
    """HALCON tuples: None or () -> [], a single value -> [value]."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def one_of(*allowed: str) -> Callable[[Any], str]:
    def check(value):
        if value not in allowed:
            raise errors.WrongParamValueError(f"must be one of {list(allowed)}, got {value!r}")
        return value
    return check


def int_at_least(low: int) -> Callable[[Any], int]:
    def check(value):
        number = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
        if not number or value != int(value) or value < low:
            raise errors.WrongParamValueError(f"must be an integer >= {low}, got {value!r}")
        return int(value)
    return check


def anything(value):
    """Checked later, where the context (the classes, the network's layers) is known."""
    return value


def parse(names, values, table: dict[str, GenParam]) -> dict:
    names, values = as_list(names), as_list(values)
    if len(names) != len(values):
        raise errors.WrongParamValueError(
            f"got {len(names)} generic parameter name(s) but {len(values)} value(s); give one value per name")
    settings = {name: param.default for name, param in table.items()}
    for name, value in zip(names, values):
        if not isinstance(name, str) or name not in table:
            raise errors.UnknownParamError(f"unknown generic parameter {name!r}; known: {sorted(table)}")
        try:
            settings[name] = table[name].check(value)
        except errors.HalconError as e:
            raise type(e)(f"generic parameter {name!r} {e.message}") from None
    return settings
