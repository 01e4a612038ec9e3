"""Offline classification and evaluation on Ray Data: Parquet written exactly once, resumable.

Input: an image folder or URL, listed once on the driver into `listing.parquet` with one row group
per shard (as ray.data does), or the shards of `dlcls preprocess` (found by their manifest.json),
one input shard each. The pipeline, per input shard:

  load (CPU task)   read the files, decode + preprocess them with the function behind
                    preprocess_dl_classifier_images (ray.data.prepare_rows), or read the
                    preprocessed shard; emit ONE row holding the whole shard, so that no block
                    boundary can ever split a shard between two actor calls
  predict (actor)   the model is loaded once per actor (one GPU each where the cluster has GPUs);
                    core.predict gives the confidences, as in apply_dl_classifier; the actor writes
                    errors/part-NNNNN.parquet, then predictions/part-NNNNN.parquet

Exactly once: a part's name is fixed by its shard index and its content by the shard, the model
and the settings, and every file is written atomically (storage.open_atomic). Ray Data may run a
task or an actor call more than once (retries, lost actors), and a killed run may have stopped in
the middle of a shard: either way the same complete file lands under the same name, so a shard
never has two outputs and a reader never sees half of one. A shard's predictions part is written
after its errors part, so its presence means the shard is done: a re-run with the same output
lists `predictions/` once and computes only the shards that are missing. `job.json` fixes what the
output holds (input, model id, settings; the listing is reused), so a re-run cannot mix in other
shards. The manifest is written last, after every part's footer has been checked against the
input (rows + errors = listed, per shard, same model id); readers take the part list from it.

Memory: the driver holds the listing only while writing it, then shard indices; each task and
actor call holds one shard; Ray Data's backpressure bounds the shards in flight.
"""

import hashlib
import json
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from .. import errors
from ..classifier import DLClassifier
from ..core import images as img
from ..core import metrics, storage, tables
from ..core.predict import predict, ranking
from ..core.preprocess import to_network_range
from ..procedures.confusion import (
    gen_confusion_matrix,
    gen_interactive_confusion_matrix,
    write_confusion_matrix_parquet,
)
from ..procedures.dataset import read_dl_classifier_data_set
from .data import MANIFEST_FORMAT, Geometry, images_of, prepare_rows, shard_files
from .session import require_ray

PART = re.compile(r"part-([0-9]+)\.parquet")
ERRORS_SCHEMA = pa.schema([("path", pa.string()), ("stage", pa.string()), ("error", pa.string())])
# The load stage's output: one row per shard (the images as one buffer, uint8 N x H x W x C).
_LOADED = pa.schema([("shard", pa.int64()), ("listed", pa.int64()), ("paths", pa.list_(pa.string())),
                     ("labels", pa.list_(pa.string())), ("images", pa.large_binary()), ("errors", pa.string())])


def part_name(shard: int) -> str:
    return f"part-{shard:05d}.parquet"


@dataclass(frozen=True)
class Model:
    """A trained model file: its URI, id (sha256 of its bytes) and the handle read from them."""

    uri: str
    id: str
    handle: DLClassifier

    @classmethod
    def read(cls, uri: str, expected_id: str | None = None) -> "Model":
        try:
            data = storage.read_bytes(uri)
        except FileNotFoundError:
            raise errors.ModelFileNotFoundError(f"no model file at {uri!r}: classify and evaluate take a trained "
                                                "model file (from dlcls train or write_dl_classifier)") from None
        model = cls(str(uri), hashlib.sha256(data).hexdigest(), DLClassifier.from_bytes(data, source=str(uri)))
        if expected_id not in (None, model.id):
            raise errors.ModelFileError(f"{uri} changed while the job ran; run the same command again")
        if not model.handle.get_param("classes"):
            raise errors.ClassesNotSetError(f"{uri} has no classes: set them and train the model first")
        return model


@dataclass(frozen=True)
class Job:
    """What every task and actor needs to know, made from the plan and the model."""

    root: str  # where listing.parquet, job.json, predictions/ and errors/ go
    kind: str  # 'images' | 'shards'
    inputs: list[str]  # images: [listing uri]; shards: one uri per input shard
    geometry: Geometry
    classes: list[str]
    model_id: str
    split: str | None  # shards: only rows of this split (None: all)
    labelled: bool  # parts also get ground_truth and the full confidences (evaluate)
    top_k: int
    batch_size: int

    def part(self, table: str, shard: int) -> str:
        return f"{self.root}/{table}/{part_name(shard)}"


# -- the plan: what an output holds, fixed by the first run ------------------------------------

def make_plan(command: str, model: Model, source: str, root: str, settings: dict) -> dict:
    """The run's plan: read from ROOT/job.json when an earlier run wrote it (then it must be for the
    same command, input, model and settings), else made by listing the input and written there."""
    key = {"command": command, "input": str(source), "model_id": model.id, **settings}
    stored = _read_json(f"{root}/job.json")
    if stored is not None:
        changed = sorted(k for k in key.keys() | stored["key"].keys() if key.get(k) != stored["key"].get(k))
        if changed:
            raise errors.WrongParamValueError(
                f"{root} holds a {stored['key']['command']} run with other settings (changed: {', '.join(changed)}); "
                "re-run with the same ones to complete it, or choose another --out")
        return stored
    manifest = shards_manifest(source)
    made = _planshards(source, manifest, model, settings) if manifest else _planimages(source, root, settings)
    if command == "evaluate":
        check_labels(made, model.handle.get_param("classes"), source)
    made = {"key": key, **made}
    storage.write_bytes_atomic(f"{root}/job.json", json.dumps(made, indent=2).encode())
    return made


def shards_manifest(source: str) -> dict | None:
    """The manifest of `dlcls preprocess` shards at `source`, or None when it is not such an output."""
    manifest = _read_json(f"{str(source).rstrip('/')}/manifest.json")
    return manifest if isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT else None


def _read_json(uri: str):
    try:
        return json.loads(storage.read_bytes(uri))
    except FileNotFoundError:
        return None


def _planimages(source: str, root: str, settings: dict) -> dict:
    """List once; the listing (path, label) goes to ROOT/listing.parquet, one row group per shard."""
    files, labels, _, _ = read_dl_classifier_data_set(source, settings["label_source"] or [])
    listing = pa.table({"path": files, **({"label": labels} if settings["label_source"] else {})})
    uri = f"{root}/listing.parquet"
    tables.write_parquet(listing, uri, row_group_size=settings["rows_per_shard"])
    counts = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return {"kind": "images", "inputs": [uri], "shards": math.ceil(len(files) / settings["rows_per_shard"]),
            "listed": len(files), "labels": counts, "image": None}


def _planshards(source: str, manifest: dict, model: Model, settings: dict) -> dict:
    image = manifest["image"]
    have, want = [image["width"], image["height"], image["channels"]], list(model.handle.geometry)
    if have != want:
        raise errors.WrongParamValueError(
            f"the shards in {source} hold {have[0]}x{have[1]}x{have[2]} images, the model takes "
            f"{want[0]}x{want[1]}x{want[2]}: preprocess again with --model {model.uri} (or --image-dimensions "
            f"{want[0]} {want[1]} {want[2]})")
    split = settings["split"]
    counts = {c: sum(manifest["counts"][s][c] for s in manifest["counts"] if split in (None, s))
              for c in manifest["classes"]}
    return {"kind": "shards", "inputs": shard_files(str(source), manifest),
            "shards": len(manifest["shards"]), "listed": sum(counts.values()),
            "labels": {c: n for c, n in counts.items() if n}, "image": image}


def check_labels(plan: dict, classes: list[str], source: str) -> None:
    """Evaluation needs labels that are the model's classes, and images of every class (as
    evaluate_dl_classifier does); checked before any image is read."""
    unknown = sorted(set(plan["labels"]) - set(classes))
    if unknown:
        raise errors.InvalidLabelsError(f"{source} holds labels {unknown} that are not classes of the model "
                                        f"{classes}; evaluate the model trained on them, or use another --label-source")
    missing = [c for c in classes if not plan["labels"].get(c)]
    if missing:
        raise errors.WrongParamValueError(f"{source} holds no images of the classes {missing}; evaluation needs "
                                          "every class of the model (choose another --split or more data)")


# -- the pipeline ------------------------------------------------------------------------------

def run_shards(job: Job, shards: int, model: Model, actors: int | None = None,
               parallelism: int | None = None) -> list[int]:
    """Compute every shard without a predictions part; returns the shards computed. `actors`:
    model replicas (see _predict_stage); `parallelism` caps the load tasks at once."""
    ray = require_ray()
    missing = sorted(set(range(shards)) - done_shards(job.root))
    if missing:
        stage, use_gpu, threads = _predict_stage(ray, actors)
        ray.data.from_items([{"shard": i} for i in missing], override_num_blocks=len(missing)).map_batches(
            _load_task, fn_args=(job,), batch_size=1, num_cpus=1, compute=ray.data.TaskPoolStrategy(size=parallelism),
        ).map_batches(
            Predictor, fn_constructor_args=(job, model.uri, use_gpu, threads), batch_size=1, batch_format="pyarrow",
            **stage,
        ).take_all()  # one small summary row per shard
    return missing


def _predict_stage(ray, actors: int | None) -> tuple[dict, bool, int]:
    """The actor pool's resources, whether it uses GPUs, and torch threads per actor.

    GPU actors hold a GPU each (one actor per GPU by default). CPU actors (one per 4 CPUs by
    default) reserve no CPU, so the load tasks run on every CPU and the cores stay busy whichever
    stage is slower at the moment; with two torch threads an actor gets about a core's share next
    to the load tasks of a 2-CPU node, and both cores for the shards left once they are done
    (measured: 8% faster than one thread, benchmarks/bench_classify.py). Either way the stages'
    resources differ, which keeps Ray Data from fusing the load tasks into the actors (it fuses
    maps with equal resources), where decoding would run on the actors alone."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return dict(compute=ray.data.ActorPoolStrategy(size=actors or gpus), num_gpus=1, num_cpus=1), True, 1
    size = actors or max(1, int(resources.get("CPU", 1)) // 4)
    return dict(compute=ray.data.ActorPoolStrategy(size=size), num_cpus=0), False, 2


def done_shards(root: str) -> set[int]:
    """Shards whose predictions part exists: one listing request."""
    fs, path = storage.filesystem(f"{root}/predictions")
    fs.invalidate_cache(path)  # parts were written by other processes
    try:
        names = fs.ls(path, detail=False)
    except FileNotFoundError:
        return set()
    return {int(m.group(1)) for name in names if (m := PART.fullmatch(name.rsplit("/", 1)[-1]))}


def _load_task(batch: dict, job: Job) -> pa.Table:
    shard = int(batch["shard"][0])
    loaded = _LOADERS[job.kind](job, shard)
    return pa.Table.from_pylist([{**loaded, "shard": shard, "labels": loaded["labels"] if job.labelled else None,
                                  "images": loaded["images"].tobytes(), "errors": json.dumps(loaded["errors"])}],
                                schema=_LOADED)


def _load_images(job: Job, shard: int) -> dict:
    rows = tables.parquet_file(job.inputs[0]).read_row_group(shard).to_pylist()
    kept, images, failures = prepare_rows(rows, job.geometry)
    return {"listed": len(rows), "paths": [r["path"] for r in kept], "labels": [r.get("label") for r in kept],
            "images": np.stack(images) if images else _no_images(job.geometry), "errors": failures}


def _load_shard(job: Job, shard: int) -> dict:
    table = tables.read_parquet(job.inputs[shard])
    if job.split is not None:
        table = table.filter(pc.equal(table["split"], job.split))
    images = images_of(table["image"], asdict(job.geometry)) if table.num_rows else _no_images(job.geometry)
    return {"listed": table.num_rows, "paths": table["path"].to_pylist(), "labels": table["label"].to_pylist(),
            "images": images, "errors": []}


def _no_images(g: Geometry) -> np.ndarray:
    return np.empty((0, g.height, g.width, g.channels), np.uint8)


_LOADERS = {"images": _load_images, "shards": _load_shard}


class Predictor:
    """An actor of the predict stage: the model is loaded once, then each call takes one shard."""

    def __init__(self, job: Job, model_uri: str, use_gpu: bool, threads: int):
        torch.set_num_threads(threads)  # Ray set OMP_NUM_THREADS=1 (the actor holds no whole CPU); see _predict_stage
        handle = Model.read(model_uri, job.model_id).handle
        handle.set_param("runtime", "gpu" if use_gpu else "cpu")  # Ray shows a GPU actor only its own GPU
        self.job, self.network, self.device = job, handle.network, handle.device

    def __call__(self, batch: pa.Table) -> pa.Table:
        row = batch.to_pylist()[0]
        job, g = self.job, self.job.geometry
        images = np.frombuffer(row["images"], np.uint8).reshape(-1, g.height, g.width, g.channels)
        confidences = self.confidences(images)
        summary = write_shard(job, row["shard"], row["listed"], row["paths"], row["labels"], confidences,
                              json.loads(row["errors"]))
        return pa.Table.from_pylist([summary])

    def confidences(self, images: np.ndarray) -> np.ndarray:
        """uint8 N x H x W x C -> N x classes, batch by batch as apply_dl_classifier computes them."""
        g, size = self.job.geometry, self.job.batch_size
        batches = [predict(self.network, img.to_tensor(to_network_range(images[s:s + size], g.range_min, g.range_max)),
                           self.device) for s in range(0, len(images), size)]
        return np.concatenate(batches) if batches else np.empty((0, len(self.job.classes)), np.float32)


def write_shard(job: Job, shard: int, listed: int, paths: list, labels: list | None, confidences: np.ndarray,
                failures: list[dict]) -> dict:
    """The shard's errors part, then its predictions part, whose presence marks the shard done and
    whose footer holds the summary (returned). Both are written atomically under names fixed by the
    shard: a second run of the same shard (a retry, a resumed job) replaces them with equal files."""
    tables.write_parquet(pa.Table.from_pylist(failures, schema=ERRORS_SCHEMA), job.part("errors", shard))
    table = prediction_table(paths, confidences, job.classes, job.top_k, job.model_id, labels)
    summary = {"shard": shard, "listed": listed, "rows": len(paths), "errors": len(failures), "model_id": job.model_id}
    tables.write_parquet(table.replace_schema_metadata({"dlcls.part": json.dumps(summary)}),
                         job.part("predictions", shard))
    return summary


def prediction_table(paths: list[str], confidences: np.ndarray, classes: list[str], top_k: int, model_id: str,
                     ground_truth: list[str] | None = None) -> pa.Table:
    """One row per image: path, predicted_class, predicted_class_index (int32), confidence (float32),
    top_classes and top_confidences (lists, best first, the k = min(top_k, classes) best), model_id;
    with `ground_truth`, also ground_truth and confidences (all classes, in class order)."""
    n, k = len(paths), min(top_k, len(classes))
    order = ranking(confidences)[:, :k]
    best, names = order[:, 0], np.asarray(classes, dtype=object)
    offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
    columns = {
        "path": pa.array(paths, pa.string()),
        "predicted_class": pa.array(names[best], pa.string()),
        "predicted_class_index": pa.array(best.astype(np.int32)),
        "confidence": pa.array(confidences[np.arange(n), best], pa.float32()),
        "top_classes": pa.ListArray.from_arrays(offsets, pa.array(names[order].ravel(), pa.string())),
        "top_confidences": pa.ListArray.from_arrays(
            offsets, pa.array(np.take_along_axis(confidences, order, 1).ravel(), pa.float32())),
        "model_id": pa.array([model_id] * n, pa.string()),
    }
    if ground_truth is not None:
        all_offsets = pa.array(np.arange(0, n * len(classes) + 1, len(classes), dtype=np.int32))
        columns["ground_truth"] = pa.array(ground_truth, pa.string())
        columns["confidences"] = pa.ListArray.from_arrays(all_offsets, pa.array(confidences.ravel(), pa.float32()))
    return pa.table(columns)


# -- checking and publishing -------------------------------------------------------------------

def part_summaries(job: Job, shards: int, listed: int) -> list[dict]:
    """Every part's footer summary, checked: all shards there, rows + errors = listed, one model."""
    uris = [job.part("predictions", i) for i in range(shards)]
    summaries = _each(_footer, uris)
    for i, s in enumerate(summaries):
        if s is None or s["rows"] + s["errors"] != s["listed"] or s["model_id"] != job.model_id:
            raise RuntimeError(f"{uris[i]} is missing or does not match the input; run the same command again "
                               "to recompute it")
    total = sum(s["listed"] for s in summaries)
    if total != listed:
        raise RuntimeError(f"{listed} inputs were listed but the parts under {job.root} account for {total}; "
                           "the output is incomplete: run the same command again")
    return summaries


def _each(read, uris: list[str]) -> list:
    """read(uri) for every uri, 16 at a time: object stores answer many small requests in parallel."""
    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(read, uris))


def _footer(uri: str) -> dict | None:
    fs, path = storage.filesystem(uri)
    try:
        with fs.open(path, "rb") as f:
            metadata = pq.read_schema(f).metadata or {}
    except FileNotFoundError:
        return None
    return json.loads(metadata[b"dlcls.part"]) if b"dlcls.part" in metadata else None


# -- classify and evaluate ---------------------------------------------------------------------

def classify(model_uri: str, source: str, output: str, *, split: str | None = None, top_k: int = 5,
             rows_per_shard: int = 256, **options) -> dict:
    """Classify every image under `source` (an image folder/URL, or `dlcls preprocess` shards: all
    rows, or those of `split`) into OUTPUT/predictions/part-NNNNN.parquet and errors/part-NNNNN.parquet
    on the running Ray (see session.ray_session). A re-run with the same output completes an
    interrupted one. Writes OUTPUT/manifest.json last and returns it. `options`: batch_size (default
    the model's), actors, parallelism, max_pixels, contrast_normalization."""
    started, output, source = time.perf_counter(), storage.absolute(str(output).rstrip("/")), storage.absolute(source)
    model = Model.read(model_uri)
    job, plan, computed = _predict("classify", model, source, output, dict(
        label_source=None, split=split, top_k=top_k, rows_per_shard=rows_per_shard), options)
    summaries = part_summaries(job, plan["shards"], plan["listed"])
    parts = {t: [f"{t}/{part_name(i)}" for i in range(plan["shards"])] for t in ("predictions", "errors")}
    manifest = {**_manifest("dlcls-predictions", model, source, output, plan, summaries, computed), "tables": parts}
    return _finish(manifest, output, started)


def evaluate(model_uri: str, data: str, output: str, *, label_source: str = "last_folder", split: str = "test",
             top_k: int = 5, rows_per_shard: int = 256, **options) -> dict:
    """Evaluate the model on labelled `data` (an image folder/URL with labels by `label_source`, or
    the `split` of `dlcls preprocess` shards): predictions.parquet, errors.parquet,
    confusion_matrix.parquet, metrics.parquet, confusion_matrix.png and .html under OUTPUT, the
    figures exactly those of evaluate_dl_classifier. Per-shard work goes to OUTPUT/parts/ (so a
    re-run resumes); the driver then holds one row per image. Writes OUTPUT/manifest.json last and
    returns it; `options` as for classify."""
    started, output, data = time.perf_counter(), storage.absolute(str(output).rstrip("/")), storage.absolute(data)
    model = Model.read(model_uri)
    job, plan, computed = _predict("evaluate", model, data, f"{output}/parts", dict(
        label_source=label_source, split=split, top_k=top_k, rows_per_shard=rows_per_shard), options)
    summaries = part_summaries(job, plan["shards"], plan["listed"])
    predictions = _concat(job, "predictions", plan["shards"])
    tables.write_parquet(_concat(job, "errors", plan["shards"]), f"{output}/errors.parquet")
    if predictions.num_rows == 0:
        raise errors.NoImagesFoundError(f"no image of {data} could be read; see {output}/errors.parquet")
    figures = publish_evaluation(predictions, job.classes, output)
    manifest = {**_manifest("dlcls-evaluation", model, data, output, plan, summaries, computed),
                "metrics": figures, "outputs": list(EVALUATION_OUTPUTS)}
    return _finish(manifest, output, started)


def _predict(command: str, model: Model, source: str, root: str, settings: dict, options: dict):
    geometry_options = {k: options.pop(k) for k in ("max_pixels", "contrast_normalization") if k in options}
    batch_size = options.pop("batch_size", None) or model.handle.get_param("batch_size")
    geometry = Geometry.of(model.handle, **geometry_options)
    plan = make_plan(command, model, source, root, {**settings, **asdict(geometry)})
    job = Job(root, plan["kind"], plan["inputs"], geometry, model.handle.get_param("classes"), model.id,
              settings["split"] if plan["kind"] == "shards" else None, command == "evaluate", settings["top_k"],
              batch_size)
    return job, plan, run_shards(job, plan["shards"], model, **options)


def _concat(job: Job, table: str, shards: int) -> pa.Table:
    parts = _each(tables.read_parquet, [job.part(table, i) for i in range(shards)])
    return pa.concat_tables(parts).replace_schema_metadata(None)


def _manifest(kind: str, model: Model, source: str, output: str, plan: dict, summaries: list, computed) -> dict:
    return {"format": kind, "version": 1, "input": str(source), "input_kind": plan["kind"], "output": output,
            "model": {"uri": model.uri, "id": model.id, "architecture": model.handle.arch.name,
                      "classes": model.handle.get_param("classes")},
            "listed": plan["listed"], "rows": sum(s["rows"] for s in summaries),
            "errors": sum(s["errors"] for s in summaries), "shards": plan["shards"], "computed": len(computed),
            "reused": plan["shards"] - len(computed), "settings": plan["key"]}


def _finish(manifest: dict, output: str, started: float) -> dict:
    manifest["seconds"] = round(time.perf_counter() - started, 3)
    storage.write_bytes_atomic(f"{output}/manifest.json", json.dumps(manifest, indent=2).encode())
    return manifest


# -- evaluation outputs ------------------------------------------------------------------------

EVALUATION_OUTPUTS = ("predictions.parquet", "errors.parquet", "confusion_matrix.parquet", "metrics.parquet",
                      "confusion_matrix.png", "confusion_matrix.html", "manifest.json")


def publish_evaluation(parts: pa.Table, classes: list[str], output: str) -> list[dict]:
    """Write the evaluation outputs from the concatenated parts; returns the rows of metrics.parquet."""
    gt_names, predicted = parts["ground_truth"].to_pylist(), parts["predicted_class"].to_pylist()
    index = {c: i for i, c in enumerate(classes)}
    gt = np.array([index[g] for g in gt_names], dtype=np.int64)
    confidences = np.asarray(parts["confidences"].combine_chunks().flatten()).reshape(-1, len(classes))
    table = metrics_table(gt, confidences, classes)
    tables.write_parquet(_evaluation_predictions(parts), f"{output}/predictions.parquet")
    tables.write_parquet(table, f"{output}/metrics.parquet")
    write_confusion_matrix_parquet(metrics.confusion_matrix(gt, metrics.top1(confidences), len(classes)), classes,
                                   f"{output}/confusion_matrix.parquet")
    gen_confusion_matrix(gt_names, predicted, output=f"{output}/confusion_matrix.png", classes=classes)
    gen_interactive_confusion_matrix(parts["path"].to_pylist(), gt_names, predicted, f"{output}/confusion_matrix.html",
                                     classes=classes)
    return table.to_pylist()


def metrics_table(gt: np.ndarray, confidences: np.ndarray, classes: list[str]) -> pa.Table:
    """One row per class, then 'global': top1_error, top5_error (with at least 5 classes), precision,
    recall, f_score, support; each computed by core.metrics as evaluate_dl_classifier computes it."""
    matrix = metrics.confusion_matrix(gt, metrics.top1(confidences), len(classes))
    ks = [1, 5] if len(classes) >= 5 else [1]
    rows = []
    for cls, name in [*enumerate(classes), (None, "global")]:
        precision, recall, f = metrics.precision_recall_f(matrix, cls)
        rows.append({"class": name, **{f"top{k}_error": metrics.topk_error(gt, confidences, k, cls) for k in ks},
                     "precision": precision, "recall": recall, "f_score": f,
                     "support": int(len(gt) if cls is None else (gt == cls).sum())})
    return pa.Table.from_pylist(rows)


def _evaluation_predictions(parts: pa.Table) -> pa.Table:
    return pa.table({"path": parts["path"], "ground_truth": parts["ground_truth"],
                     "predicted": parts["predicted_class"], "confidence": parts["confidence"],
                     "correct": pc.equal(parts["ground_truth"], parts["predicted_class"]),
                     "top_classes": parts["top_classes"], "top_confidences": parts["top_confidences"]})
