"""Connecting to Ray: an existing cluster (--address or RAY_ADDRESS) or a local one started here.

Token authentication stays on: Ray 2.60 starts local clusters with it, and a client of an
existing cluster sends the token from RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token.
"""

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

# Settings a remote cluster's workers need to reach object storage; secrets are not among them
# (the jobs API echoes runtime environments back): credentials belong in the cluster's own
# environment (a Kubernetes Secret, an instance role).
_FORWARDED = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_REGION")


def require_ray():
    try:
        import ray
    except ImportError as e:
        raise ImportError(f"this needs Ray ({e}); install it with: pip install 'dlcls[ray]'") from None
    return ray


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator:
    """Ray for the duration of a command: joins a running Ray (this process's, or the cluster at
    `address`), else starts a local one and shuts it down afterwards."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    env = {k: os.environ[k] for k in _FORWARDED if k in os.environ}
    ray.init(address=address, num_cpus=None if address else num_cpus, log_to_driver=False,
             logging_level=logging.WARNING, runtime_env={"env_vars": env} if address and env else None)
    _quiet_data(ray)
    try:
        yield ray
    finally:
        ray.shutdown()


def _quiet_data(ray) -> None:
    context = ray.data.DataContext.get_current()
    context.print_on_execution_start = False
