"""The model file: round trips, determinism, atomic writes, S3, and files that must be refused."""

import json
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from conftest import separable_batch

import dlcls
from dlcls import classifier, errors
from dlcls.core import modelfile, params, storage


def _train(handle, steps: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        images, labels = separable_batch(rng, 8, size=handle.geometry[0])
        dlcls.train_dl_classifier_batch(images, handle, labels)


def _state(handle):
    return {k: v.clone() for k, v in handle.network.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", ["compact", "enhanced"])  # enhanced: dropout draws random numbers
def test_same_seed_same_calls_give_bit_identical_weights_and_results(small_classifier, name):
    runs = []
    for _ in range(2):
        dlcls.set_seed(7)
        handle = small_classifier(name, size=48 if name == "enhanced" else 32)
        _train(handle, 3)
        images, _ = separable_batch(np.random.default_rng(9), 6, size=handle.geometry[0])
        runs.append((_state(handle), dlcls.apply_dl_classifier(images, handle).confidences))
    assert _same(runs[0][0], runs[1][0])
    assert np.array_equal(runs[0][1], runs[1][1])


def test_write_read_and_serialize_deserialize_are_bit_identical(small_classifier, tmp_path):
    handle = small_classifier()
    dlcls.set_dl_classifier_param(handle, "learning_rate", 0.02)
    _train(handle, 2)
    images, _ = separable_batch(np.random.default_rng(5), 10)
    expected = dlcls.apply_dl_classifier(images, handle).confidences
    dlcls.write_dl_classifier(handle, tmp_path / "model.hdl")
    copies = [dlcls.read_dl_classifier(str(tmp_path / "model.hdl")),
              dlcls.deserialize_dl_classifier(dlcls.serialize_dl_classifier(handle))]
    for copy in copies:
        assert np.array_equal(dlcls.apply_dl_classifier(images, copy).confidences, expected)
        for name in ("classes", "image_dimensions", "batch_size", "learning_rate", "momentum", "runtime"):
            assert dlcls.get_dl_classifier_param(copy, name) == dlcls.get_dl_classifier_param(handle, name)


def test_a_round_trip_keeps_every_parameter_of_the_table(small_classifier):
    handle = small_classifier()
    runtime = "cpu" if params.default_runtime() == "gpu" else "gpu"  # read lazily: no device needed
    changed = {"batch_size": 3, "batch_size_multiplier": 2, "classes": ["x", "y"], "gpu": 1, "learning_rate": 0.02,
               "momentum": 0.5, "weight_prior": 0.001, "runtime": runtime, "image_dimensions": [40, 36, 1]}
    for name, value in changed.items():
        dlcls.set_dl_classifier_param(handle, name, value)
    names = [n for n, p in params.TABLE.items() if p.gettable] + list(params.COMPOSITES)
    expected = {n: dlcls.get_dl_classifier_param(handle, n) for n in names}
    fresh = dlcls.read_dl_classifier("compact")
    assert all(expected[n] != dlcls.get_dl_classifier_param(fresh, n) for n in changed)  # all non-defaults
    copy = dlcls.deserialize_dl_classifier(dlcls.serialize_dl_classifier(handle))
    assert {n: dlcls.get_dl_classifier_param(copy, n) for n in names} == expected


def test_stored_values_are_normalised_even_when_they_equal_the_default():
    data = dlcls.serialize_dl_classifier(dlcls.read_dl_classifier("compact"))  # classes never set: []
    copy = dlcls.deserialize_dl_classifier(_rewrite_description(data, lambda d: d["params"].update(batch_size=160.0)))
    assert type(dlcls.get_dl_classifier_param(copy, "batch_size")) is int
    assert dlcls.get_dl_classifier_param(copy, "classes") == []
    with pytest.raises(errors.WrongParamValueError, match="batch_size_multiplier"):
        dlcls.deserialize_dl_classifier(_rewrite_description(
            data, lambda d: d["params"].update(batch_size_multiplier=True)))


def test_momentum_that_does_not_fit_the_network_is_refused_when_read(small_classifier):
    handle = small_classifier()
    _train(handle, 1)
    description, state, momentum = modelfile.loads(dlcls.serialize_dl_classifier(handle))
    key = next(iter(momentum))
    for wrong in ({**momentum, key: torch.zeros(7, 7)}, {**momentum, "nothing.momentum_buffer": torch.zeros(3)}):
        with pytest.raises(errors.ModelFileError, match="momentum buffers do not fit") as e:
            dlcls.deserialize_dl_classifier(modelfile.dumps(description, state, wrong))
        assert e.value.code == 7902


def test_weights_that_do_not_fit_are_refused_before_the_network_is_allocated(small_classifier, monkeypatch):
    data = dlcls.serialize_dl_classifier(small_classifier("enhanced", size=48))
    devices, build = [], classifier.create_network

    def spy(*args):
        devices.append(torch.get_default_device().type)
        return build(*args)

    monkeypatch.setattr(classifier, "create_network", spy)
    with pytest.raises(errors.ModelFileError, match="weights do not fit"):  # at 1024 wide: 0.5 GB of weights
        dlcls.deserialize_dl_classifier(_rewrite_description(data, lambda d: d["params"].update(image_width=1024)))
    assert devices == ["meta"]


def test_a_file_whose_network_does_not_fit_into_memory_is_7902(small_classifier, monkeypatch):
    data = dlcls.serialize_dl_classifier(small_classifier())

    def no_memory(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 4294967296 bytes.")

    monkeypatch.setattr(torch.nn.Module, "to_empty", no_memory)
    with pytest.raises(errors.ModelFileError, match="does not fit into memory") as e:
        dlcls.deserialize_dl_classifier(data)
    assert e.value.code == 7902


def test_training_continues_after_a_round_trip_exactly_as_without(small_classifier):
    dlcls.set_seed(1)
    handle = small_classifier()
    _train(handle, 2)
    copy = dlcls.deserialize_dl_classifier(dlcls.serialize_dl_classifier(handle))
    _train(handle, 2, seed=3)
    _train(copy, 2, seed=3)  # momentum travelled with the file, so the next steps agree
    assert _same(_state(handle), _state(copy))


def test_local_write_is_atomic_and_leaves_no_partial_file(small_classifier, tmp_path, monkeypatch):
    handle = small_classifier()
    target = tmp_path / "m.hdl"
    target.write_bytes(b"previous model")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        dlcls.write_dl_classifier(handle, target)
    assert target.read_bytes() == b"previous model"
    assert os.listdir(tmp_path) == ["m.hdl"]


def test_s3_round_trip(small_classifier, s3_bucket):
    handle = small_classifier()
    _train(handle, 1)
    uri = f"{s3_bucket}/models/run-1/model.hdl"
    dlcls.write_dl_classifier(handle, uri)
    images, _ = separable_batch(np.random.default_rng(2), 4)
    copy = dlcls.read_dl_classifier(uri)
    assert np.array_equal(dlcls.apply_dl_classifier(images, copy).confidences,
                          dlcls.apply_dl_classifier(images, handle).confidences)
    with pytest.raises(errors.ModelFileNotFoundError) as e:
        dlcls.read_dl_classifier(f"{s3_bucket}/models/missing.hdl")
    assert isinstance(e.value, FileNotFoundError) and e.value.code == 5200


def test_an_object_rewritten_by_another_process_reads_back_new_after_a_listing(s3_bucket):
    """Ray workers overwrite checkpoints the driver has listed; a cached listing would hand the
    read a stale ETag and fail it with PreconditionFailed."""
    import s3fs

    uri = f"{s3_bucket}/runs/epoch-0003/state.json"
    storage.write_bytes_atomic(uri, b"first")
    fs, path = storage.filesystem(uri)
    assert fs.glob(f"{path.rsplit('/', 2)[0]}/epoch-*/state.json") == [path]
    other = s3fs.S3FileSystem(skip_instance_cache=True, **storage.storage_options(uri))
    other.pipe_file(path, b"second, longer")
    with fs.open(path, "rb") as f:
        assert f.read() == b"second, longer"
    assert storage.read_bytes(uri) == b"second, longer"


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {_RunsCode.marker}",))


@pytest.mark.parametrize("how", ["pickle", "torch.save"])
def test_a_file_that_tries_to_run_code_is_refused_without_running_it(tmp_path, how):
    _RunsCode.marker = tmp_path / "pwned"
    path = tmp_path / "evil.hdl"
    if how == "pickle":
        path.write_bytes(pickle.dumps({"weights": _RunsCode()}))
    else:
        torch.save({"weights": _RunsCode()}, path)
    with pytest.raises(errors.UnsafeFileError, match="refuses"):
        dlcls.read_dl_classifier(str(path))
    dlcls.set_pretrained_weights("compact", path)  # the weights import refuses it too
    try:
        with pytest.raises(errors.UnsafeFileError):
            dlcls.read_dl_classifier("compact")
    finally:
        dlcls.set_pretrained_weights("compact", None)
    assert not _RunsCode.marker.exists()


def _rewrite_description(data: bytes, change) -> bytes:
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    description = json.loads(header["__metadata__"]["dlcls"])
    change(description)
    header["__metadata__"]["dlcls"] = json.dumps(description)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data[8 + length :]


@pytest.mark.parametrize("change,error", [
    (lambda d: d["params"].update(batch_size=-3), errors.WrongParamValueError),
    (lambda d: d["params"].update(classes=["a", "a", "b"]), errors.DuplicateClassesError),
    (lambda d: d["params"].update(surprise=1), errors.ModelFileError),
    (lambda d: d.update(architecture="vgg99"), errors.ModelFileError),
    (lambda d: d.update(version=99), errors.ModelFileError),
    (lambda d: d["params"].update(image_width=64), errors.ModelFileError),  # weights no longer fit
    (lambda d: d["params"].update(image_width=10**9), errors.WrongParamValueError),  # above enhanced's maximum
])
def test_a_tampered_description_is_refused_clearly(small_classifier, tmp_path, change, error):
    data = _rewrite_description(dlcls.serialize_dl_classifier(small_classifier("enhanced", size=48)), change)
    with pytest.raises(error):
        dlcls.deserialize_dl_classifier(data)


@pytest.mark.parametrize("cut", [0, 5, 100, -1000])
def test_truncated_and_foreign_files_give_clear_errors(small_classifier, tmp_path, cut):
    data = dlcls.serialize_dl_classifier(small_classifier())
    with pytest.raises(errors.ModelFileError, match="truncated|too short|not a dlcls"):
        dlcls.deserialize_dl_classifier(data[:cut])
    for foreign in (b"hello world, not a model", os.urandom(4096)):
        with pytest.raises((errors.ModelFileError, errors.UnsafeFileError)):
            dlcls.deserialize_dl_classifier(foreign)


def test_a_plain_safetensors_file_is_not_taken_for_a_model(tmp_path):
    from safetensors.torch import save

    with pytest.raises(errors.ModelFileError, match="not a dlcls model file"):
        dlcls.deserialize_dl_classifier(save({"w": torch.zeros(2)}))


def test_missing_local_file_is_5200(tmp_path):
    with pytest.raises(errors.ModelFileNotFoundError) as e:
        dlcls.read_dl_classifier(str(tmp_path / "nope.hdl"))
    assert e.value.code == 5200
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(str(tmp_path))


def test_every_header_length_reads_back(small_classifier):
    """A safetensors header length whose low byte is 0x80 must not be taken for a pickle."""
    handle = small_classifier(classes=("a", "b"))
    for extra in range(0, 320, 7):
        dlcls.set_dl_classifier_param(handle, "classes", ["a", "b" + "x" * extra])
        copy = dlcls.deserialize_dl_classifier(dlcls.serialize_dl_classifier(handle))
        assert dlcls.get_dl_classifier_param(copy, "classes")[1] == "b" + "x" * extra


def test_a_file_cut_inside_a_header_whose_length_starts_with_0x80_is_truncated(small_classifier):
    handle = small_classifier(classes=("a", "b"))
    for extra in range(0, 256, 8):  # header lengths are multiples of 8: one of these ends in 0x80
        dlcls.set_dl_classifier_param(handle, "classes", ["a", "b" + "x" * extra])
        data = dlcls.serialize_dl_classifier(handle)
        if data[0] == 0x80:
            break
    assert data[0] == 0x80 and data[8:9] == b"{"
    with pytest.raises(errors.ModelFileError, match="truncated") as e:
        dlcls.deserialize_dl_classifier(data[:200])
    assert e.value.code == 7902


@pytest.mark.parametrize("change", [lambda d: d.update(params=[1]), lambda d: d.update(architecture=["x"]),
                                    lambda d: d.update(params="batch_size")])
def test_a_description_of_the_wrong_shape_is_a_model_file_error(small_classifier, change):
    data = _rewrite_description(dlcls.serialize_dl_classifier(small_classifier()), change)
    with pytest.raises(errors.ModelFileError, match="damaged description"):
        dlcls.deserialize_dl_classifier(data)
