"""The settings of the Serve app: one table, read by build_app (a Serve config file's `args:`) and
by the `dlcls serve` flags, checked together so that one error names every problem.

Where each setting goes: USER_CONFIG settings travel in the deployment's user_config, so that a
new model or batch setting is applied to the running replicas in place (reconfigure); the others
are deployment options (replicas, queues, resources) or fixed for a replica's life (request limits).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import errors
from ..core.decode import DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class Setting:
    name: str
    kind: type  # int, float, bool or str; an int is also a float
    default: Any  # None: required (model_uri) or computed (max_batch_size: the model's batch_size)
    help: str
    rule: tuple[Callable[[Any], bool], str] | None = None  # (test, what it asks for)


def _at_least(low: float) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v >= low), f"at least {low}"


_POSITIVE = ((lambda v: v > 0), "above 0")

SETTINGS = {s.name: s for s in [
    Setting("model_uri", str, None, "trained model file (path or URL)"),
    Setting("max_batch_size", int, None, "images per forward pass (default: the model's batch_size)", _at_least(1)),
    Setting("batch_wait_timeout_s", float, 0.002, "how long a batch waits to fill up when the predictor is idle",
            _at_least(0)),
    Setting("min_replicas", int, 1, "fewest replicas", _at_least(0)),
    Setting("max_replicas", int, 4, "most replicas", _at_least(1)),
    Setting("target_ongoing_requests", float, 8, "requests per replica the autoscaler aims at", _POSITIVE),
    Setting("upscale_delay_s", float, 30, "load must last this long before a replica is added", _at_least(0)),
    Setting("downscale_delay_s", float, 600, "idleness must last this long before one is removed", _at_least(0)),
    Setting("max_ongoing_requests", int, 32, "requests a replica works on at once (its batches fill from these)",
            _at_least(1)),
    Setting("max_queued_requests", int, 128, "requests waiting for a replica; more are refused with 503",
            _at_least(1)),
    Setting("num_cpus_per_replica", float, 1, "CPUs each replica reserves (and torch threads it uses)",
            _at_least(0)),
    Setting("num_gpus_per_replica", float, 0, "GPUs each replica reserves; above 0 the replica predicts on its GPU",
            _at_least(0)),
    Setting("max_body_bytes", int, 16 * 2**20, "largest request body; larger ones get 413", _at_least(1)),
    Setting("max_images", int, 64, "most images in one request; more get 413", _at_least(1)),
    Setting("max_pixels", int, DEFAULT_MAX_PIXELS, "most pixels in one image (read from its header); more get 413",
            _at_least(1)),
    Setting("top_k", int, 5, "classes listed per image when a request does not ask (top_k=)", _at_least(1)),
    Setting("request_timeout_s", float, 30, "a request not answered by then gets 504", _POSITIVE),
    Setting("contrast_normalization", bool, False, "as preprocess_dl_classifier_images' 'contrast_normalization'"),
]}

USER_CONFIG = ("model_uri", "max_batch_size", "batch_wait_timeout_s")
REPLICA = ("max_body_bytes", "max_images", "max_pixels", "top_k", "request_timeout_s", "contrast_normalization")


def settings(args: dict, names=tuple(SETTINGS), where: str = "args") -> dict:
    """`args` checked against the table (only `names` allowed), with the defaults filled in; all
    problems in one WrongParamValueError."""
    if not isinstance(args, dict):
        raise errors.WrongParamValueError(f"{where} must be a mapping of settings, got {type(args).__name__}")
    problems = [f"unknown setting {k!r}" for k in args if k not in names]
    if problems:
        problems.append(f"valid settings: {', '.join(names)}")
    values = {name: args.get(name, SETTINGS[name].default) for name in names}
    problems += [p for name in names if (p := _problem(SETTINGS[name], values[name]))]
    if {"min_replicas", "max_replicas"} <= set(names) and values["min_replicas"] > values["max_replicas"]:
        problems.append(f"min_replicas ({values['min_replicas']}) is above max_replicas ({values['max_replicas']})")
    if problems:
        raise errors.WrongParamValueError(f"bad Serve {where}: " + "; ".join(problems))
    return values


def _problem(setting: Setting, value) -> str | None:
    if value is None:
        return f"{setting.name} is required" if setting.name == "model_uri" else None
    kinds = (int, float) if setting.kind is float else (setting.kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and setting.kind is not bool):
        return f"{setting.name} must be of type {setting.kind.__name__}, got {value!r}"
    if setting.rule and not setting.rule[0](value):
        return f"{setting.name} must be {setting.rule[1]}, got {value!r}"
    return None


def deployment_options(values: dict) -> dict:
    """The Serve deployment options. The autoscaling config always names max_replicas: without
    it Serve caps a hand-written config at one replica, which never scales."""
    return {
        "autoscaling_config": {name: values[name] for name in (
            "min_replicas", "max_replicas", "target_ongoing_requests", "upscale_delay_s", "downscale_delay_s")},
        "max_ongoing_requests": values["max_ongoing_requests"],
        "max_queued_requests": values["max_queued_requests"],
        "ray_actor_options": {"num_cpus": values["num_cpus_per_replica"], "num_gpus": values["num_gpus_per_replica"]},
        "user_config": {name: values[name] for name in USER_CONFIG},
    }


def replica_settings(values: dict) -> dict:
    return {**{name: values[name] for name in REPLICA}, "use_gpu": values["num_gpus_per_replica"] > 0}
