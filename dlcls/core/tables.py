"""Parquet tables in and out of any fsspec location, written atomically."""

import io

import pyarrow as pa
import pyarrow.parquet as pq

from . import storage


def write_parquet(table: pa.Table, uri: str, row_group_size: int | None = None) -> None:
    """Write `table` so that no reader ever sees a half-written file under `uri`."""
    with storage.open_atomic(uri) as f:
        pq.write_table(table, f, row_group_size=row_group_size, compression="zstd")


def read_parquet(uri: str) -> pa.Table:
    return pq.read_table(io.BytesIO(storage.read_bytes(uri)))


def parquet_file(uri: str) -> pq.ParquetFile:
    """A Parquet file opened for reading row groups one at a time."""
    fs, path = storage.filesystem(uri)
    return pq.ParquetFile(fs.open(path, "rb"))
