"""Bytes in and out of any fsspec location: local paths, file://, s3:// (through s3fs), ...

S3-compatible endpoints and credentials come from the standard AWS variables
(AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...); nothing is hard-coded.
"""

import os
import tempfile
import uuid

import fsspec

from .. import errors

# Object stores make a single PUT visible all at once, so writing the final key directly is atomic.
_ATOMIC_PUT = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"}


def storage_options(uri: str) -> dict:
    """fsspec options for `uri`: the S3 endpoint from AWS_ENDPOINT_URL(_S3), retries on."""
    protocol = fsspec.core.split_protocol(str(uri))[0]
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if protocol in ("s3", "s3a") and endpoint:
        return {"client_kwargs": {"endpoint_url": endpoint}}
    return {}


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The file system of `uri` and the path within it."""
    uri = os.fspath(uri)
    try:
        return fsspec.core.url_to_fs(uri, **storage_options(uri))
    except ImportError as e:
        raise ImportError(f"reading {uri!r} needs an fsspec backend that is not installed ({e}); "
                          "for s3:// run: pip install 'dlcls[s3]'") from e


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    try:
        return fs.cat_file(path)
    except FileNotFoundError:
        raise errors.ModelFileNotFoundError(f"no file at {uri!r}") from None
    except IsADirectoryError:
        raise errors.ModelFileNotFoundError(f"{uri!r} is a directory, not a file") from None


def write_bytes_atomic(uri: str, data: bytes) -> None:
    """Write so that no reader ever sees a half-written file under the final name."""
    fs, path = filesystem(uri)
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    if "file" in protocols:
        _write_local(path, data)
    elif protocols & _ATOMIC_PUT:
        fs.pipe_file(path, data)
    else:
        staging = f"{path}.partial-{uuid.uuid4().hex}"
        fs.pipe_file(staging, data)
        fs.mv(staging, path)


def _write_local(path: str, data: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, staging = tempfile.mkstemp(dir=directory, prefix=".partial-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(staging, 0o644)  # mkstemp makes 0600; a model file is meant to be shared
        os.replace(staging, path)
    except BaseException:
        os.unlink(staging)
        raise
