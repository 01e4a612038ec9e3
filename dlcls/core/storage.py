"""Bytes in and out of any fsspec location: local paths, file://, s3:// (through s3fs), ...

S3-compatible endpoints and credentials come from the standard AWS variables
(AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...); nothing is hard-coded.
"""

import contextlib
import io
import os
import tempfile
import uuid
from collections.abc import Iterator
from typing import BinaryIO

import fsspec

from .. import errors

# Object stores make a single PUT visible all at once, so writing the final key directly is atomic.
_ATOMIC_PUT = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"}


def storage_options(uri: str) -> dict:
    """fsspec options for `uri`: the S3 endpoint from AWS_ENDPOINT_URL(_S3), retries on, and no
    listings cache: other processes (Ray workers) write under the same prefixes, and a cached
    listing's stale ETag makes a later read of an overwritten object fail with PreconditionFailed."""
    protocol = fsspec.core.split_protocol(str(uri))[0]
    if protocol not in ("s3", "s3a"):
        return {}
    options = {"use_listings_cache": False}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["client_kwargs"] = {"endpoint_url": endpoint}
    return options


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The file system of `uri` and the path within it."""
    uri = os.fspath(uri)
    try:
        return fsspec.core.url_to_fs(uri, **storage_options(uri))
    except ImportError as e:
        raise ImportError(f"reading {uri!r} needs an fsspec backend that is not installed ({e}); "
                          "for s3:// run: pip install 'dlcls[s3]'") from e


def absolute(uri: str) -> str:
    """`uri` with a local path made absolute: Ray tasks and workers run in other working
    directories (and Ray Train changes into its own), so a relative path means something else there."""
    uri = os.fspath(uri)
    protocol = fsspec.core.split_protocol(uri)[0]
    if protocol in (None, "file", "local"):
        absolute_path = os.path.abspath(fsspec.core.strip_protocol(uri))
        return f"file://{absolute_path}" if protocol else absolute_path
    return uri


def remove(uri: str) -> None:
    """Delete the file or folder at `uri`, if there is one. The path is taken as it is: fsspec's
    `rm` on object stores expands `[`, `*` and `?` as patterns, so their objects go one by one."""
    fs, path = filesystem(uri)
    if is_local(fs):
        if fs.exists(path):
            fs.rm(path, recursive=True)
        return
    for name in fs.find(path):
        fs.rm_file(name)


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    return "file" in protocols


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.exists(path)


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
    with open_atomic(uri) as f:
        f.write(data)


@contextlib.contextmanager
def open_atomic(uri: str) -> Iterator[BinaryIO]:
    """A binary file to write whose content appears under `uri` only once the block ends without
    an error: locally a temporary file renamed into place, on object stores a single PUT, elsewhere
    a temporary name moved into place."""
    fs, path = filesystem(uri)
    protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
    if is_local(fs):
        with _local_atomic(path) as f:
            yield f
        return
    buffer = io.BytesIO()
    yield buffer
    target = path if protocols & _ATOMIC_PUT else f"{path}.partial-{uuid.uuid4().hex}"
    fs.pipe_file(target, buffer.getvalue())
    if target != path:
        fs.mv(target, path)


@contextlib.contextmanager
def _local_atomic(path: str) -> Iterator[BinaryIO]:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, staging = tempfile.mkstemp(dir=directory, prefix=".partial-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(staging, 0o644)  # mkstemp makes 0600; outputs are meant to be shared
        os.replace(staging, path)
    except BaseException:
        os.unlink(staging)
        raise
