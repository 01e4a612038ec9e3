"""Every parameter of HALCON's table: defaults, set/get, validation, error codes."""

import numpy as np
import pytest
import torch

import dlcls
from dlcls import classifier, errors
from dlcls.core import params
from dlcls.core.models import ARCHITECTURES
from dlcls.core.runtime import out_of_memory

SETTABLE = {
    "batch_size": 7, "batch_size_multiplier": 3, "classes": ["ok", "nok"], "gpu": 0, "image_width": 40,
    "image_height": 50, "image_num_channels": 1, "learning_rate": 0.05, "momentum": 0.5, "weight_prior": 1e-4,
    "runtime": "cpu",
}
BAD = [
    ("batch_size", 0, errors.WrongParamValueError), ("batch_size", 2.5, errors.WrongParamValueError),
    ("batch_size", "8", errors.WrongParamValueError), ("batch_size_multiplier", 0, errors.BatchMultiplierError),
    ("batch_size_multiplier", -2, errors.BatchMultiplierError), ("classes", [], errors.WrongParamValueError),
    ("classes", ["a", "b", "a"], errors.DuplicateClassesError), ("classes", ["a", ""], errors.WrongParamValueError),
    ("classes", [1, 2], errors.WrongParamValueError), ("gpu", -1, errors.WrongParamValueError),
    ("image_width", 14, errors.ImageSizeTooSmallError), ("image_num_channels", 2, errors.ChannelCountError),
    ("image_num_channels", 4, errors.ChannelCountError), ("learning_rate", 0, errors.WrongParamValueError),
    ("learning_rate", float("nan"), errors.WrongParamValueError), ("momentum", 1.0, errors.WrongParamValueError),
    ("momentum", -0.1, errors.WrongParamValueError), ("weight_prior", -1, errors.WrongParamValueError),
    ("runtime", "tpu", errors.WrongParamValueError), ("runtime_init", "later", errors.WrongParamValueError),
    ("image_dimensions", [32, 32], errors.WrongParamValueError),
    ("image_dimensions", [32, 32, 5], errors.ChannelCountError),
]


@pytest.fixture
def handle():
    return dlcls.read_dl_classifier("compact")


def test_table_covers_every_halcon_parameter():
    assert set(params.NAMES) == set(SETTABLE) | {"image_range_min", "image_range_max", "runtime_init",
                                                 "image_dimensions"}


def test_defaults(handle):
    get = dlcls.get_dl_classifier_param
    assert (get(handle, "batch_size"), get(handle, "batch_size_multiplier"), get(handle, "classes")) == (160, 1, [])
    assert (get(handle, "learning_rate"), get(handle, "momentum"), get(handle, "weight_prior")) == (0.001, 0.9, 0.0)
    assert get(handle, "gpu") == 0
    assert get(handle, "runtime") == ("gpu" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("name,value", sorted(SETTABLE.items()))
def test_set_then_get_returns_the_value(handle, name, value):
    dlcls.set_dl_classifier_param(handle, name, value)
    assert dlcls.get_dl_classifier_param(handle, name) == value


def test_one_element_tuples_stand_for_their_element(handle):
    dlcls.set_dl_classifier_param(handle, "learning_rate", [0.01])
    dlcls.set_dl_classifier_param(handle, "batch_size", (12,))
    assert dlcls.get_dl_classifier_param(handle, "learning_rate") == 0.01
    assert dlcls.get_dl_classifier_param(handle, "batch_size") == 12


@pytest.mark.parametrize("name,value,error", BAD)
def test_bad_values_are_refused_with_halcon_codes_and_change_nothing(handle, name, value, error):
    before = {n: dlcls.get_dl_classifier_param(handle, n) for n in SETTABLE}
    with pytest.raises(error) as e:
        dlcls.set_dl_classifier_param(handle, name, value)
    assert e.value.code == error.code and isinstance(e.value, ValueError)
    assert {n: dlcls.get_dl_classifier_param(handle, n) for n in SETTABLE} == before


def test_unknown_read_only_and_set_only_names_give_7713(handle):
    for call in [lambda: dlcls.set_dl_classifier_param(handle, "batchsize", 1),
                 lambda: dlcls.get_dl_classifier_param(handle, "nope"),
                 lambda: dlcls.set_dl_classifier_param(handle, "image_range_min", 0),
                 lambda: dlcls.get_dl_classifier_param(handle, "runtime_init"),
                 lambda: dlcls.set_dl_classifier_param(handle, ["batch_size"], 1),
                 lambda: dlcls.get_dl_classifier_param(handle, ["classes"])]:
        with pytest.raises(errors.UnknownParamError) as e:
            call()
        assert e.value.code == 7713 and "batch_size" in str(e.value)


def test_numpy_numbers_and_arrays_are_taken_and_stored_as_python_values(handle):
    for name, value in [("batch_size", np.int64(4)), ("learning_rate", np.float32(0.01)),
                        ("momentum", np.array([0.5])), ("classes", np.array(["ok", "nok"])),
                        ("image_dimensions", np.array([40, 48, 1])), ("runtime", np.str_("cpu"))]:
        dlcls.set_dl_classifier_param(handle, name, value)
    got = {n: dlcls.get_dl_classifier_param(handle, n) for n in
           ("batch_size", "learning_rate", "momentum", "classes", "image_dimensions", "runtime")}
    assert got == {"batch_size": 4, "learning_rate": float(np.float32(0.01)), "momentum": 0.5,
                   "classes": ["ok", "nok"], "image_dimensions": [40, 48, 1], "runtime": "cpu"}
    types = [type(got["batch_size"]), type(got["learning_rate"]), type(got["momentum"]), type(got["runtime"])]
    assert types == [int, float, float, str]
    assert {type(v) for v in got["classes"]} == {str} and {type(v) for v in got["image_dimensions"]} == {int}
    with pytest.raises(errors.ChannelCountError):  # a numpy bool is no channel count, in a list either
        dlcls.set_dl_classifier_param(handle, "image_num_channels", [np.True_])
    dlcls.set_dl_classifier_param(handle, "batch_size", [np.array(8)])
    assert dlcls.get_dl_classifier_param(handle, "batch_size") == 8


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_image_sizes_above_the_network_maximum_are_refused_with_1302(name):
    handle = dlcls.read_dl_classifier(name)
    limit = ARCHITECTURES[name].max_size
    for param in ("image_width", "image_height"):
        with pytest.raises(errors.WrongParamValueError, match=f"maximum of {limit} pixels") as e:
            dlcls.set_dl_classifier_param(handle, param, limit + 1)
        assert e.value.code == 1302
    assert dlcls.get_dl_classifier_param(handle, "image_dimensions") == [224, 224, 3]


def test_a_failed_allocation_is_4104_naming_what_to_change():
    with pytest.raises(errors.DeviceOutOfMemoryError, match="use less") as e:
        with out_of_memory(errors.DeviceOutOfMemoryError, "use less"):
            torch.empty(2**50)  # 4 PiB: a real allocation failure
    assert e.value.code == 4104 and "allocate" in str(e.value)


def test_running_out_of_memory_while_building_the_network_is_4104_and_changes_nothing(handle, monkeypatch):
    def no_memory(*args):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 137438953472 bytes.")

    network = handle.network
    monkeypatch.setattr(classifier, "create_network", no_memory)
    with pytest.raises(errors.DeviceOutOfMemoryError, match="smaller 'image_width'") as e:
        dlcls.set_dl_classifier_param(handle, "image_dimensions", [640, 480, 3])
    assert e.value.code == 4104
    assert dlcls.get_dl_classifier_param(handle, "image_dimensions") == [224, 224, 3] and handle.network is network


def test_image_dimensions_sets_width_height_channels_together(handle):
    dlcls.set_dl_classifier_param(handle, "image_dimensions", [48, 40, 1])
    get = dlcls.get_dl_classifier_param
    assert (get(handle, "image_width"), get(handle, "image_height"), get(handle, "image_num_channels")) == (48, 40, 1)
    assert get(handle, "image_dimensions") == [48, 40, 1]


def test_runtime_init_immediately_initialises_the_cpu_runtime(handle):
    dlcls.set_dl_classifier_param(handle, "runtime", "cpu")
    dlcls.set_dl_classifier_param(handle, "batch_size", 2)
    dlcls.set_dl_classifier_param(handle, "runtime_init", "immediately")
    assert handle._device == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")
def test_gpu_runtime_without_cuda_fails_at_initialisation_with_a_fix(handle):
    dlcls.set_dl_classifier_param(handle, "runtime", "gpu")
    with pytest.raises(errors.NoGPUError, match="'runtime', 'cpu'") as e:
        dlcls.set_dl_classifier_param(handle, "runtime_init", "immediately")
    assert e.value.code == 7708 and isinstance(e.value, RuntimeError)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_runtime_uses_the_chosen_device(handle):
    dlcls.set_dl_classifier_param(handle, "runtime", "gpu")
    dlcls.set_dl_classifier_param(handle, "gpu", torch.cuda.device_count() - 1)
    dlcls.set_dl_classifier_param(handle, "runtime_init", "immediately")
    assert next(handle.network.parameters()).device == torch.device("cuda", torch.cuda.device_count() - 1)
    dlcls.set_dl_classifier_param(handle, "gpu", torch.cuda.device_count())
    with pytest.raises(errors.GPUDeviceError):
        dlcls.set_dl_classifier_param(handle, "runtime_init", "immediately")
