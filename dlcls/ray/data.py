"""Distributed ingest and preprocessing: image files (local or object storage) -> Parquet shards.

The listing happens once, on the driver, with the rules and file list of
read_dl_classifier_data_set, and is written as `listing.parquet` with one row group per shard.
Each shard is a Ray task: it reads its row group, fetches the files (concurrently on object
stores), decodes and preprocesses them with the function behind preprocess_dl_classifier_images
and writes `shards/shard-NNNNN.parquet` under a name fixed by its index, so a retried task
rewrites the same file. Bad files become rows of `errors.parquet`; `manifest.json` comes last.

Shard columns: path, relative_path, label, label_index (int32), split ('train' | 'validation' |
'test'), image (fixed-size binary: uint8 height x width x channels at the network size, row-major).
The conversion to the network's real range happens when batches are formed (`to_network_range`),
so shards stay compact.
"""

import asyncio
import contextlib
import json
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass

import fsspec.asyn
import numpy as np
import pyarrow as pa

from .. import errors
from ..core import storage, tables
from ..core.decode import DEFAULT_MAX_PIXELS
from ..core.preprocess import encoded_to_network_bytes
from ..core.split import hash_split
from ..procedures.dataset import read_dl_classifier_data_set
from .session import require_ray

MANIFEST_FORMAT = "dlcls-shards"
_FETCH_CHUNK = 64  # files fetched at a time within a shard: concurrency on S3, bounded memory


@dataclass(frozen=True)
class Geometry:
    """What the shards are preprocessed for (and what training needs to know of them)."""

    width: int
    height: int
    channels: int
    range_min: float
    range_max: float
    contrast_normalization: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    jpeg_draft: bool = True

    @classmethod
    def of(cls, handle, **options) -> "Geometry":
        """The geometry of a DLClassifier handle."""
        width, height, channels = handle.geometry
        return cls(width, height, channels, handle.get_param("image_range_min"),
                   handle.get_param("image_range_max"), **options)


def list_source(source: str, label_source: str, train_percent: float, validation_percent: float,
                seed: int) -> tuple[pa.Table, list[str]]:
    """The listing table (path, relative_path, label, label_index, split) and the classes."""
    files, labels, indices, classes = read_dl_classifier_data_set(source, label_source)
    prefix = str(source).replace("\\", "/").rstrip("/") + "/"
    relative = [f[len(prefix):] if f.startswith(prefix) else f for f in files]
    split = hash_split(relative, labels, train_percent, validation_percent, seed)
    return pa.table({"path": files, "relative_path": relative, "label": labels,
                     "label_index": pa.array(indices, pa.int32()), "split": split}), list(classes)


def preprocess_shard(listing_uri: str, shard: int, output: str, geometry: Geometry) -> dict:
    """Preprocess the files of row group `shard` of the listing; write the shard; return a summary
    with the rows' (label, split) counts and the errors, never raising for a bad file."""
    rows = tables.parquet_file(listing_uri).read_row_group(shard).to_pylist()
    kept, images, failures = prepare_rows(rows, geometry)
    tables.write_parquet(_shard_table(kept, images, geometry), f"{output}/shards/{shard_name(shard)}")
    counts = Counter((r["label"], r["split"]) for r in kept)
    return {"shard": shard, "rows": len(kept), "errors": failures,
            "counts": [[label, split, n] for (label, split), n in sorted(counts.items())]}


def prepare_rows(rows: list[dict], geometry: Geometry) -> tuple[list[dict], list[np.ndarray], list[dict]]:
    """The listing rows whose files could be read and preprocessed, their network bytes, and an
    error row (path, stage, error) for every other file; shared with the batch jobs (ray.batch)."""
    kept, images, failures = [], [], []
    for start in range(0, len(rows), _FETCH_CHUNK):
        chunk = rows[start:start + _FETCH_CHUNK]
        for row, data in zip(chunk, _fetch([r["path"] for r in chunk])):
            image, failure = _prepare(row["path"], data, geometry)
            if failure:
                failures.append(failure)
            else:
                images.append(image)
                kept.append(row)
    return kept, images, failures


def shard_name(shard: int) -> str:
    return f"shard-{shard:05d}.parquet"


def shard_files(shards: str, manifest: dict) -> list[str]:
    """The URIs of the shard files a manifest lists."""
    return [f"{shards.rstrip('/')}/shards/{name}" for name in manifest["shards"]]


def _fetch(paths: list[str]) -> list:
    """The bytes of each file, or the exception that reading it raised; concurrent requests on
    object stores. Each path is read as it is: fsspec's list form (`cat([...])`) would expand
    `[`, `*` and `?` in file names as glob patterns."""
    fs, _ = storage.filesystem(paths[0])
    stripped = [storage.filesystem(p)[1] for p in paths]
    if getattr(fs, "async_impl", False):
        return fsspec.asyn.sync(fs.loop, _gather, fs, stripped)
    return [_read(fs, p) for p in stripped]


async def _gather(fs, paths: list[str]) -> list:
    return await asyncio.gather(*(fs._cat_file(p) for p in paths), return_exceptions=True)


def _read(fs, path: str):
    try:
        return fs.cat_file(path)
    except Exception as e:  # recorded in the errors table by the caller
        return e


def _prepare(path: str, data, geometry: Geometry) -> tuple[np.ndarray | None, dict | None]:
    if isinstance(data, BaseException):
        return None, {"path": path, "stage": "read", "error": f"{type(data).__name__}: {data}"}
    try:
        image = encoded_to_network_bytes(data, geometry.width, geometry.height, geometry.channels,
                                         geometry.contrast_normalization, geometry.max_pixels, geometry.jpeg_draft)
    except errors.ImageDecodeError as e:
        return None, {"path": path, "stage": "decode", "error": e.message}
    except Exception as e:  # one bad file must not stop the job: record it, whatever it was
        return None, {"path": path, "stage": "preprocess", "error": f"{type(e).__name__}: {e}"}
    return image, None


def _shard_table(rows: list[dict], images: list[np.ndarray], geometry: Geometry) -> pa.Table:
    size = geometry.width * geometry.height * geometry.channels
    pixels = np.stack(images).reshape(-1) if images else np.empty(0, np.uint8)
    image = pa.FixedSizeBinaryArray.from_buffers(pa.binary(size), len(images), [None, pa.py_buffer(pixels)])
    columns = {name: pa.array([r[name] for r in rows], type) for name, type in SHARD_SCHEMA.items()}
    return pa.table({**columns, "image": image}).replace_schema_metadata(
        {"dlcls.image_shape": json.dumps([geometry.height, geometry.width, geometry.channels])})


SHARD_SCHEMA = {"path": pa.string(), "relative_path": pa.string(), "label": pa.string(),
                "label_index": pa.int32(), "split": pa.string()}


def images_of(column, geometry: dict) -> np.ndarray:
    """The `image` column of shard rows (fixed-size binary, or a sequence of bytes values) ->
    uint8 N x H x W x C."""
    shape = (geometry["height"], geometry["width"], geometry["channels"])
    size = math.prod(shape)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if isinstance(column, pa.FixedSizeBinaryArray):
        flat = np.frombuffer(column.buffers()[1], np.uint8, len(column) * size, column.offset * size)
        return flat.reshape(-1, *shape)
    return np.frombuffer(b"".join(column), np.uint8).reshape(-1, *shape)


def preprocess(source: str, output: str, model: str = "pretrained_dl_classifier_compact.hdl",
               label_source: str = "last_folder", train_percent: float = 70, validation_percent: float = 15,
               seed: int = 42, rows_per_shard: int = 256, max_error_ratio: float | None = None,
               image_dimensions: list[int] | None = None, parallelism: int | None = None, **options) -> dict:
    """Preprocess the images under `source` into Parquet shards under `output` on the running
    Ray (see session.ray_session); returns the manifest it wrote. `parallelism` caps the shards
    processed at once (default: as many as there are CPUs); `options` go to Geometry
    (contrast_normalization, max_pixels, jpeg_draft)."""
    from ..classifier import DLClassifier  # here, on the driver: the shard tasks never load torch

    ray = require_ray()
    started = time.perf_counter()
    handle = DLClassifier.read(model)
    if image_dimensions:
        handle.set_param("image_dimensions", image_dimensions)
    geometry = Geometry.of(handle, **options)
    source, output = storage.absolute(source), storage.absolute(str(output).rstrip("/"))
    listing, classes = list_source(source, label_source, train_percent, validation_percent, seed)
    # A manifest describes the shards it was written with: once the source is known to be good, the
    # one of an earlier run goes, so that a run that fails or is stopped never leaves an old
    # manifest over new shards.
    storage.remove(f"{output}/manifest.json")
    storage.remove(f"{output}/shards")
    listing_uri = f"{output}/listing.parquet"
    tables.write_parquet(listing, listing_uri, row_group_size=rows_per_shard)
    shards = math.ceil(listing.num_rows / rows_per_shard)
    with _single_stage_context(ray):
        summaries = ray.data.from_items([{"shard": i} for i in range(shards)], override_num_blocks=shards).map_batches(
            _shard_task, fn_args=(listing_uri, output, geometry), batch_size=1, num_cpus=1,
            compute=ray.data.TaskPoolStrategy(size=parallelism)).take_all()
    manifest = _manifest(source, output, model, handle, geometry, listing, classes, summaries,
                         dict(label_source=label_source, train_percent=train_percent,
                              validation_percent=validation_percent, seed=seed, rows_per_shard=rows_per_shard))
    _write_errors(output, summaries)
    _check_errors(manifest, max_error_ratio)
    manifest["seconds"] = round(time.perf_counter() - started, 3)
    storage.write_bytes_atomic(f"{output}/manifest.json", json.dumps(manifest, indent=2).encode())
    return manifest


@contextlib.contextmanager
def _single_stage_context(ray):
    """Ray Data reserves part of the CPUs for each operator; with one map stage behind an
    in-memory source that leaves CPUs idle (measured: 10 half-second tasks on 2 CPUs took 3.7 s
    instead of 2.6 s), so the reservation is off while this pipeline runs."""
    context = ray.data.DataContext.get_current()
    before, context.op_resource_reservation_enabled = context.op_resource_reservation_enabled, False
    try:
        yield
    finally:
        context.op_resource_reservation_enabled = before


def _shard_task(batch: dict, listing_uri: str, output: str, geometry: Geometry) -> dict:
    summary = preprocess_shard(listing_uri, int(batch["shard"][0]), output, geometry)
    return {"summary": [json.dumps(summary)]}


def _manifest(source, output, model, handle, geometry, listing, classes, summaries, settings) -> dict:
    parsed = [json.loads(s["summary"]) for s in summaries]
    counts = {split: dict.fromkeys(classes, 0) for split in ("train", "validation", "test")}
    for summary in parsed:
        for label, split, n in summary["counts"]:
            counts[split][label] += n
    return {
        "format": MANIFEST_FORMAT, "version": 1, "source": str(source), "output": output, "classes": classes,
        "listed": listing.num_rows, "rows": sum(s["rows"] for s in parsed),
        "errors": sum(len(s["errors"]) for s in parsed), "counts": counts,
        "shards": [shard_name(s["shard"]) for s in sorted(parsed, key=lambda s: s["shard"])],
        "image": {**asdict(geometry), "dtype": "uint8", "layout": "HWC"},
        "model": {"file": str(model), "architecture": handle.arch.name}, "settings": settings,
    }


def _write_errors(output: str, summaries: list[dict]) -> None:
    failures = [f for s in summaries for f in json.loads(s["summary"])["errors"]]
    schema = pa.schema([("path", pa.string()), ("stage", pa.string()), ("error", pa.string())])
    tables.write_parquet(pa.Table.from_pylist(failures, schema=schema), f"{output}/errors.parquet")


def _check_errors(manifest: dict, max_error_ratio: float | None) -> None:
    if manifest["rows"] + manifest["errors"] != manifest["listed"]:
        raise errors.RunFailedError(f"{manifest['listed']} files were listed but {manifest['rows']} rows and "
                                    f"{manifest['errors']} errors came back; the output is incomplete: run again")
    ratio = manifest["errors"] / max(manifest["listed"], 1)
    if max_error_ratio is not None and ratio > max_error_ratio:
        raise errors.WrongParamValueError(
            f"{manifest['errors']} of {manifest['listed']} files ({100 * ratio:.1f}%) could not be read, more than "
            f"--max-error-ratio {max_error_ratio}; see {manifest['output']}/errors.parquet")
