"""The model registry: HALCON and short names, defaults, geometry rules, torchvision compatibility."""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import dlcls
from dlcls import errors
from dlcls.core import pretrained
from dlcls.core.models import ARCHITECTURES, create_network

HALCON_BATCH_SIZES = {"compact": 160, "enhanced": 96, "resnet18": 24, "resnet50": 23}
# Parameter counts of torchvision's ImageNet models (torchvision model pages).
TORCHVISION_PARAMS = {"resnet18": 11_689_512, "resnet50": 25_557_032, "alexnet": 61_100_840}
TORCHVISION_KEYS = {"resnet18": 122, "resnet50": 320, "alexnet": 16}


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_network_reads_by_halcon_and_short_name_with_halcon_defaults(name):
    by_file = dlcls.read_dl_classifier(f"pretrained_dl_classifier_{name}.hdl")
    by_name = dlcls.read_dl_classifier(name.upper())
    assert by_file.arch is by_name.arch is ARCHITECTURES[name]
    assert dlcls.get_dl_classifier_param(by_file, "image_dimensions") == [224, 224, 3]
    assert dlcls.get_dl_classifier_param(by_file, "image_range_min") == -127
    assert dlcls.get_dl_classifier_param(by_file, "image_range_max") == 128
    if name in HALCON_BATCH_SIZES:
        assert dlcls.get_dl_classifier_param(by_file, "batch_size") == HALCON_BATCH_SIZES[name]


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_network_runs_at_its_minimum_size_and_refuses_smaller(name):
    arch = ARCHITECTURES[name]
    net = create_network(arch, 4, 3, arch.min_size, arch.min_size).eval()
    assert net(torch.zeros(2, 3, arch.min_size, arch.min_size)).shape == (2, 4)
    handle = dlcls.read_dl_classifier(name)
    with pytest.raises(errors.ImageSizeTooSmallError) as e:
        dlcls.set_dl_classifier_param(handle, "image_width", arch.min_size - 1)
    assert e.value.code == 7722
    assert dlcls.get_dl_classifier_param(handle, "image_width") == 224


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_network_at_its_maximum_size_keeps_every_tensor_under_a_gib(name):
    arch = ARCHITECTURES[name]
    with torch.device("meta"):  # shapes only
        net = create_network(arch, 1000, 3, arch.max_size, arch.max_size)
    assert max(t.numel() for t in net.state_dict().values()) < 2**28


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_buffer_is_saved_so_that_a_model_file_restores_the_whole_network(name):
    with torch.device("meta"):
        net = create_network(ARCHITECTURES[name], 2, 3, 64, 64)
    assert {k for k, _ in net.named_buffers()} <= set(net.state_dict())


def test_compact_is_fully_convolutional_and_enhanced_has_fully_connected_layers():
    def has_linear(name):
        return any(isinstance(m, nn.Linear) for m in create_network(ARCHITECTURES[name], 2, 3, 64, 64).modules())

    assert not has_linear("compact")
    assert has_linear("enhanced")


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "alexnet"])
def test_torchvision_layouts_match_key_count_and_parameter_count(name):
    net = create_network(ARCHITECTURES[name], 1000, 3, 224, 224)
    assert sum(p.numel() for p in net.parameters()) == TORCHVISION_PARAMS[name]
    assert len(net.state_dict()) == TORCHVISION_KEYS[name]


def test_resnet_keys_are_torchvision_keys():
    keys = set(create_network(ARCHITECTURES["resnet18"], 1000, 3, 224, 224).state_dict())
    assert {"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
            "layer4.1.bn2.num_batches_tracked", "fc.weight", "fc.bias"} <= keys


def test_builtin_networks_are_deterministic_and_leave_the_callers_random_state_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = dlcls.read_dl_classifier("enhanced").network.state_dict()
    b = dlcls.read_dl_classifier("enhanced").network.state_dict()
    assert torch.equal(torch.rand(1), expected_next)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_missing_pretrained_weights_are_announced_once(monkeypatch):
    monkeypatch.setattr(pretrained, "_announced", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dlcls.read_dl_classifier("compact")
        dlcls.read_dl_classifier("pretrained_dl_classifier_compact.hdl")
    said = [w for w in caught if issubclass(w.category, dlcls.PretrainedWeightsWarning)]
    assert len(said) == 1 and "DLCLS_WEIGHTS_COMPACT" in str(said[0].message)


def test_image_size_change_keeps_convolutions_and_reinitialises_flatten_dependent_layers():
    for name, changed in [("compact", set()), ("resnet18", set()), ("enhanced", {"classifier.1.weight"})]:
        handle = dlcls.read_dl_classifier(name)
        dlcls.set_dl_classifier_param(handle, "classes", ["x", "y"])
        before = {k: v.clone() for k, v in handle.network.state_dict().items()}
        dlcls.set_dl_classifier_param(handle, "image_dimensions", [64, 96, 3])
        after = handle.network.state_dict()
        differing = {k for k in before if before[k].shape != after[k].shape or not torch.equal(before[k], after[k])}
        assert differing == changed | ({"classifier.1.bias"} if changed else set()), name


def test_setting_classes_reinitialises_only_the_output_layer():
    handle = dlcls.read_dl_classifier("resnet18")
    before = {k: v.clone() for k, v in handle.network.state_dict().items()}
    dlcls.set_dl_classifier_param(handle, "classes", ["ok", "scratch"])
    after = handle.network.state_dict()
    assert after["fc.weight"].shape == (2, 512)
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("fc."))
    dlcls.set_dl_classifier_param(handle, "classes", ["ok", "dent"])  # same count, other names: new head
    assert not torch.equal(after["fc.weight"], handle.network.state_dict()["fc.weight"])


def test_three_to_one_channel_keeps_what_the_network_computes_on_gray_images(small_classifier):
    handle = small_classifier()
    gray = np.random.default_rng(0).uniform(-127, 128, (5, 32, 32, 1)).astype(np.float32)
    as_rgb = dlcls.apply_dl_classifier(np.repeat(gray, 3, axis=3), handle).confidences
    dlcls.set_dl_classifier_param(handle, "image_num_channels", 1)
    np.testing.assert_allclose(dlcls.apply_dl_classifier(gray, handle).confidences, as_rgb, atol=1e-5)
    with pytest.raises(errors.ChannelExpansionError) as e:
        dlcls.set_dl_classifier_param(handle, "image_num_channels", 3)
    assert e.value.code == 7725


def _torchvision_style_file(tmp_path, name="resnet18", classes=1000):
    state = create_network(ARCHITECTURES[name], classes, 3, 224, 224).state_dict()
    path = tmp_path / f"{name}-weights.pth"
    torch.save(state, path)  # what torchvision's resnet18-f37072fd.pth is: a zip-pickled state dict
    return path, state


def test_a_torchvision_weights_file_becomes_the_starting_point_of_a_builtin_name(tmp_path, monkeypatch):
    path, state = _torchvision_style_file(tmp_path)
    monkeypatch.setenv("DLCLS_WEIGHTS_RESNET18", str(path))
    handle = dlcls.read_dl_classifier("pretrained_dl_classifier_resnet18.hdl")
    assert all(torch.equal(handle.network.state_dict()[k], v) for k, v in state.items())
    assert str(path) in handle.origin
    dlcls.set_dl_classifier_param(handle, "classes", [f"n{i}" for i in range(1000)])  # ImageNet names: head kept
    assert torch.equal(handle.network.state_dict()["fc.weight"], state["fc.weight"])


@pytest.mark.parametrize("form", ["torch.save", "safetensors"])
def test_classic_torchvision_weights_without_batch_counters_import(tmp_path, monkeypatch, form):
    from safetensors.torch import save_file

    full = create_network(ARCHITECTURES["resnet18"], 1000, 3, 224, 224).state_dict()
    state = {k: v + 1 for k, v in full.items() if not k.endswith("num_batches_tracked")}
    assert len(state) == 102  # the key count of torchvision's classic resnet18-5c106cde.pth
    path = tmp_path / "resnet18-5c106cde.pth"
    if form == "torch.save":
        torch.save(state, path)
    else:
        save_file(state, path)
    monkeypatch.setenv("DLCLS_WEIGHTS_RESNET18", str(path))
    got = dlcls.read_dl_classifier("resnet18").network.state_dict()
    assert all(torch.equal(got[k], v) for k, v in state.items())
    assert all(got[k] == 0 for k in full.keys() - state.keys())  # the network's own counters


def test_set_pretrained_weights_takes_safetensors_and_refuses_misfits(tmp_path):
    from safetensors.torch import save_file

    state = create_network(ARCHITECTURES["compact"], 1000, 3, 224, 224).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "compact.safetensors")
    dlcls.set_pretrained_weights("compact", tmp_path / "compact.safetensors")
    try:
        got = dlcls.read_dl_classifier("compact").network.state_dict()
        assert all(torch.equal(got[k], v) for k, v in state.items())
        dlcls.set_pretrained_weights("compact", _torchvision_style_file(tmp_path)[0])  # resnet18 weights
        with pytest.raises(errors.WeightsMismatchError, match="does not fit compact"):
            dlcls.read_dl_classifier("compact")
    finally:
        dlcls.set_pretrained_weights("compact", None)
