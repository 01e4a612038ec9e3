"""dev_display_dl_classifier_heatmap: on a tiny classifier whose class is decided by one region
of the image, the heatmap must peak in that region; the pure parts against loop references."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import dlcls
from dlcls import errors
from dlcls.procedures.heatmap import (
    conv_layer,
    dev_display_dl_classifier_heatmap,
    grad_cam_heatmap,
    occlusion_heatmap,
    unit_range,
)

SIZE, SQUARE = 32, 7


def square_images(rng, labels):
    """Mid-gray noise with one bright square: class 0 'top_left' has it in the top-left quadrant,
    class 1 'elsewhere' in one of the other three."""
    images = rng.normal(0, 20, (len(labels), SIZE, SIZE, 3)).astype(np.float32)
    for image, label in zip(images, labels):
        quadrant = 0 if label == 0 else int(rng.integers(1, 4))
        top, left = (quadrant // 2) * 16 + int(rng.integers(2, 8)), (quadrant % 2) * 16 + int(rng.integers(2, 8))
        image[top : top + SQUARE, left : left + SQUARE] = 120
    return images


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tensors this small run fastest on one thread; several wait on each other on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(one_thread):
    dlcls.set_seed(0)
    handle = dlcls.read_dl_classifier("compact")
    for name, value in [("classes", ["top_left", "elsewhere"]), ("image_dimensions", [SIZE, SIZE, 3]),
                        ("batch_size", 16), ("learning_rate", 0.01), ("runtime", "cpu")]:
        dlcls.set_dl_classifier_param(handle, name, value)
    rng = np.random.default_rng(0)
    for _ in range(40):
        labels = rng.integers(0, 2, 16)
        dlcls.train_dl_classifier_batch(square_images(rng, labels), handle, labels.tolist())
    test_labels = np.array([0] * 6 + [1] * 6)
    images = square_images(rng, test_labels)
    accuracy = (dlcls.apply_dl_classifier(images, handle).confidences.argmax(1) == test_labels).mean()
    assert accuracy == 1.0, "the tiny classifier did not learn the task; the heatmap tests would mean nothing"
    return handle, images[:6]


def in_top_left(heatmap):
    row, col = np.unravel_index(np.argmax(heatmap), heatmap.shape)
    return row < 16 and col < 16


def test_occlusion_heatmap_peaks_where_the_class_is_decided(trained):
    handle, images = trained
    for image in images:
        heatmap = dev_display_dl_classifier_heatmap(image, handle, ["feature_size", "sampling_size"], [8, 2])
        assert heatmap.shape == (SIZE, SIZE) and heatmap.dtype == np.float32
        assert in_top_left(heatmap)


def test_occlusion_defaults_and_target_class_by_name_or_index(trained):
    handle, images = trained
    default = dev_display_dl_classifier_heatmap(images[0], handle)  # feature 30, sampling 10, top-1 class
    assert default.shape == (SIZE, SIZE) and np.isfinite(default).all()
    by_name = dev_display_dl_classifier_heatmap(images[0], handle, "target_class", "top_left")
    assert np.array_equal(by_name, default)
    other = dev_display_dl_classifier_heatmap(images[0], handle, ["target_class"], [1])
    assert np.allclose(other, -default, atol=1e-5)  # two classes: one's drop is the other's gain


def test_grad_cam_on_the_tiny_classifier(trained):
    # The compact net's last layers see the whole 32x32 image, so its late maps carry no position;
    # an 8x8 layer does (see the constructed network below for the default, last, layer).
    handle, images = trained
    grads = [None if p.grad is None else p.grad.clone() for p in handle.network.parameters()]
    for image in images:
        heatmap = dev_display_dl_classifier_heatmap(image, handle, ["method", "target_conv_layer"],
                                                    ["grad_cam", "features.1.3"])
        assert heatmap.min() >= 0 and heatmap.max() == pytest.approx(1.0)
        assert in_top_left(heatmap)
    for module in handle.network.modules():
        assert not module._forward_hooks
    for before, p in zip(grads, handle.network.parameters()):  # the training state is left alone
        assert (before is None and p.grad is None) or torch.equal(before, p.grad)


def bright_region_network():
    """Class 0's score is the mean brightness after a blurring convolution, class 1's its negative."""
    conv = nn.Conv2d(3, 2, 3, padding=1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0].fill_(1 / 27)
        conv.weight[1].fill_(-1 / 27)
        conv.bias.zero_()
    head = nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        head.bias.zero_()
    return nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)


@pytest.mark.parametrize("corner", [(2, 3), (20, 22), (4, 24)])
def test_grad_cam_default_layer_on_a_constructed_network(corner):
    network = bright_region_network()
    image = torch.full((1, 3, SIZE, SIZE), -100.0)
    image[:, :, corner[0] : corner[0] + 6, corner[1] : corner[1] + 6] = 120
    layer = conv_layer(network, None)
    assert layer is network[0]
    heatmap = grad_cam_heatmap(network, image, 0, layer)
    row, col = np.unravel_index(np.argmax(heatmap), heatmap.shape)
    assert corner[0] <= row < corner[0] + 6 and corner[1] <= col < corner[1] + 6
    assert heatmap[0, 31] == 0.0 and not layer._forward_hooks


def loop_occlusion(image, predict_fn, target, size, stride):
    height, width = image.shape[:2]
    size = min(size, height, width)
    rows = sorted(set(list(range(0, height - size + 1, stride)) + [height - size]))
    cols = sorted(set(list(range(0, width - size + 1, stride)) + [width - size]))
    base = predict_fn(image[None])[0, target]
    sums, counts = np.zeros((height, width)), np.zeros((height, width))
    for y in rows:
        for x in cols:
            occluded = image.copy()
            occluded[y : y + size, x : x + size] = 0
            drop = base - predict_fn(occluded[None])[0, target]
            for r in range(y, y + size):
                for c in range(x, x + size):
                    sums[r, c] += drop
                    counts[r, c] += 1
    return sums / counts


def softmax_of_region(batch):
    """A stand-in classifier: confidence of class 0 grows with the brightness of rows 3..8."""
    score = batch[:, 3:9, :, :].mean(axis=(1, 2, 3)) / 50
    logits = np.stack([score, -score], axis=1)
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


@pytest.mark.parametrize("shape, size, stride, batch", [((20, 17, 3), 5, 3, 4), ((12, 12, 1), 4, 4, 100),
                                                        ((9, 14, 3), 30, 10, 2), ((16, 16, 3), 1, 1, 64)])
def test_occlusion_matches_the_loop_reference(shape, size, stride, batch):
    image = np.random.default_rng(1).uniform(-127, 128, shape).astype(np.float32)
    expected = loop_occlusion(image, softmax_of_region, 0, size, stride)
    assert occlusion_heatmap(image, softmax_of_region, 0, size, stride, batch) == pytest.approx(expected, abs=1e-6)


def test_feature_size_is_clamped_to_the_image():
    image = np.random.default_rng(2).uniform(-127, 128, (12, 12, 3)).astype(np.float32)
    heatmap = occlusion_heatmap(image, softmax_of_region, 0, 100, 10, 8)
    base, gray = softmax_of_region(image[None])[0, 0], softmax_of_region(np.zeros((1, 12, 12, 3)))[0, 0]
    assert np.allclose(heatmap, base - gray, atol=1e-6)  # one square, the whole image


def test_unit_range():
    assert unit_range(np.array([[2.0, 4.0], [3.0, 2.0]])).tolist() == [[0.0, 1.0], [0.5, 0.0]]
    assert unit_range(np.full((2, 2), 7.0)).tolist() == [[0.0, 0.0], [0.0, 0.0]]


@pytest.mark.parametrize("method", ["occlusion", "grad_cam"])
def test_overlay_png(trained, tmp_path, method):
    handle, images = trained
    output = tmp_path / f"{method}.png"
    dev_display_dl_classifier_heatmap(images[0], handle, ["method", "feature_size", "sampling_size"],
                                      [method, 8, 2], output=str(output))
    with Image.open(output) as picture:
        assert picture.mode == "RGB" and picture.size == (256, 256)


@pytest.mark.parametrize("names, values, error, text", [
    ("feature_size", 0, errors.WrongParamValueError, "feature_size"),
    ("sampling_size", 2.5, errors.WrongParamValueError, "sampling_size"),
    ("method", "saliency", errors.WrongParamValueError, "method"),
    ("target_class", "cat", errors.WrongParamValueError, "target_class"),
    ("target_class", 2, errors.WrongParamValueError, "target_class"),
    (["method", "target_conv_layer"], ["grad_cam", "features.9"], errors.WrongParamValueError, "Conv2d"),
    ("patch", 3, errors.UnknownParamError, "patch"),
    (["feature_size"], [], errors.WrongParamValueError, "one value per name"),
])
def test_heatmap_parameter_errors(trained, names, values, error, text):
    handle, images = trained
    with pytest.raises(error, match=text):
        dev_display_dl_classifier_heatmap(images[0], handle, names, values)


def test_heatmap_image_errors(trained):
    handle, images = trained
    with pytest.raises(errors.ImageWidthError):
        dev_display_dl_classifier_heatmap(np.zeros((SIZE, 30, 3), np.float32), handle)
    with pytest.raises(errors.ImageTypeError):
        dev_display_dl_classifier_heatmap(images[0].astype(np.uint8), handle)
    with pytest.raises(errors.WrongParamValueError, match="one image"):
        dev_display_dl_classifier_heatmap(images[:2], handle)
    with pytest.raises(errors.WrongParamValueError, match=".png"):
        dev_display_dl_classifier_heatmap(images[0], handle, output="heat.jpg")
    with pytest.raises(errors.WrongHandleTypeError):
        dev_display_dl_classifier_heatmap(images[0], "handle")
