"""Decoding real image files (core.decode) and HALCON's preprocessing (core.preprocess and
preprocess_dl_classifier_images), against the behaviour in reference/halcon.md section 3."""

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from dlcls import errors
from dlcls.core import decode
from dlcls.core.preprocess import preprocess_arrays, to_network_bytes, to_network_range
from dlcls.procedures.preprocess import preprocess_dl_classifier_images


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def natural_image(seed: int, width: int = 640, height: int = 480) -> Image.Image:
    """Smooth colour fields, blurred ellipses and sensor-like noise: photo-like content."""
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((width, height),
                                                                                    Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y, r = int(rng.integers(0, width)), int(rng.integers(0, height)), int(rng.integers(10, 120))
        draw.ellipse([x - r, y - r, x + r, y + r // 2], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    pixels = np.asarray(image.filter(ImageFilter.GaussianBlur(1.5))).astype(np.float32)
    return Image.fromarray(np.clip(pixels + rng.normal(0, 8, pixels.shape), 0, 255).astype(np.uint8))


class Handle:
    """Only what the procedure reads from a classifier handle."""

    def __init__(self, width=32, height=24, channels=3, low=-127.0, high=128.0):
        self.values = {"image_width": width, "image_height": height, "image_num_channels": channels,
                       "image_range_min": low, "image_range_max": high}

    def get_param(self, name):
        return self.values[name]


# -- decoding ---------------------------------------------------------------------------------

def test_16_bit_png_is_scaled_by_rounding():
    values = np.array([[0, 257, 128, 129, 32896, 65535]], dtype=np.uint16)  # 257 * g is 8-bit g exactly
    out = decode.decode_image(encode(Image.fromarray(values), "PNG"))
    assert out.shape == (1, 6, 1) and out.dtype == np.uint8
    assert out[0, :, 0].tolist() == [0, 1, 0, 1, 128, 255]  # round(v * 255 / 65535)


def _png16(values: np.ndarray, color_type: int) -> bytes:
    """A 16-bit PNG (Pillow writes none in colour): values H x W x samples, color_type 2 (RGB),
    4 (gray + alpha) or 6 (RGBA)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    height, width = values.shape[:2]
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in values)  # filter type 0 per row
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_16_bit_colour_png_keeps_the_high_byte():
    values = np.array([[[0, 255, 256], [257 * 128, 257 * 128 - 1, 65535], [511, 65280, 65279]]], np.uint16)
    out = decode.decode_image(_png16(values, 2))
    assert out.shape == (1, 3, 3) and out.dtype == np.uint8
    assert out.tolist() == (values >> 8).tolist()  # Pillow's high byte, as documented
    assert np.abs(out - np.round(values / 257)).max() == 1  # within 1 gray level of rounding
    stored_8_bit = np.arange(0, 256, 15, dtype=np.uint16).reshape(1, -1, 3) * 257  # 0, 15, ..., 255
    assert decode.decode_image(_png16(stored_8_bit, 2)).tolist() == (stored_8_bit // 257).tolist()  # exact
    rgba = np.concatenate([values, np.full((1, 3, 1), 9, np.uint16)], axis=2)
    assert decode.decode_image(_png16(rgba, 6)).tolist() == out.tolist()  # alpha dropped
    gray_alpha = np.stack([values[..., 2], np.full((1, 3), 65535, np.uint16)], axis=2)
    assert decode.decode_image(_png16(gray_alpha, 4)).tolist() == [[[v >> 8] * 3 for v in [256, 65535, 65279]]]


def test_palette_png_becomes_rgb_or_gray():
    colour = Image.new("P", (4, 2))
    colour.putpalette([0, 0, 0, 200, 30, 10])
    colour.putpixel((1, 0), 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a per-entry alpha table goes without Pillow's RGBA warning
        out = decode.decode_image(encode(colour, "PNG", transparency=bytes([0, 128])))
    assert out.shape == (2, 4, 3) and out[0, 1].tolist() == [200, 30, 10] and out[0, 0].tolist() == [0, 0, 0]
    gray = Image.new("L", (4, 2), 77).convert("P")
    out = decode.decode_image(encode(gray, "PNG"))
    assert out.shape == (2, 4, 1) and (out == 77).all()


def test_alpha_is_dropped_not_composited():
    rgba = Image.new("RGBA", (3, 2), (10, 20, 30, 0))  # fully transparent
    assert decode.decode_image(encode(rgba, "PNG"))[0, 0].tolist() == [10, 20, 30]
    la = Image.new("LA", (3, 2), (90, 128))
    assert decode.decode_image(encode(la, "PNG")).reshape(-1).tolist() == [90] * 6


def test_one_bit_and_cmyk():
    out = decode.decode_image(encode(Image.new("1", (3, 2), 1), "PNG"))
    assert out.shape == (2, 3, 1) and (out == 255).all()
    magenta = decode.decode_image(encode(Image.new("CMYK", (16, 16), (0, 255, 0, 0)), "JPEG", quality=95))
    assert magenta.shape == (16, 16, 3)
    assert np.abs(magenta[8, 8].astype(int) - [255, 0, 255]).max() <= 3


@pytest.mark.parametrize("fmt", ["BMP", "GIF", "PCX", "PPM", "TIFF", "PNG"])
def test_lossless_formats(fmt):
    rgb = Image.new("RGB", (5, 4), (12, 34, 56))
    gray = Image.new("L", (5, 4), 99)
    assert decode.decode_image(encode(rgb, fmt))[0, 0].tolist() == [12, 34, 56]
    assert decode.decode_image(encode(gray, fmt)).reshape(-1).tolist() == [99] * 20


def test_exif_orientation_is_applied():
    stored = Image.new("RGB", (60, 40), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 10, 10))  # red block at the stored top left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    out = decode.decode_image(encode(stored, "JPEG", exif=exif.tobytes(), quality=95))
    assert out.shape == (60, 40, 3)  # displayed upright: 40 wide, 60 high
    assert out[5, 34, 0] > 200 and out[5, 5, 0] < 50  # the red block is now at the top right


def test_pil_image_with_exif_orientation_gives_the_pixels_of_its_path(tmp_path):
    stored = natural_image(3, 60, 40)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    stored.save(path, exif=exif.tobytes(), quality=95)
    handle = Handle(width=16, height=32)  # not square: a missed turn changes the pixels
    with Image.open(path) as opened:
        from_pil = preprocess_dl_classifier_images(opened, handle)
        assert opened.size == (60, 40) and opened.getexif()[0x0112] == 6  # the caller's image is left as it was
    np.testing.assert_array_equal(from_pil, preprocess_dl_classifier_images(str(path), handle))
    plain = Image.new("RGB", (4, 2))
    assert decode.upright(plain) is plain  # no orientation: no copy


def test_draft_respects_orientation():
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(Image.new("RGB", (800, 400), (1, 2, 3)), "JPEG", exif=exif.tobytes())
    # displayed 400x800; for a 100x200 target libjpeg may scale by 4 (not only 2, as without the swap)
    assert decode.decode_image(data, target_size=(100, 200)).shape == (200, 100, 3)


def test_draft_only_when_twice_as_large():
    data = encode(natural_image(0, 300, 300), "JPEG")
    assert decode.decode_image(data, target_size=(160, 160)).shape == (300, 300, 3)
    assert decode.decode_image(data, target_size=(150, 150)).shape == (150, 150, 3)


def test_draft_tolerance():
    """After the resize to the network size, the draft decode stays within the documented mean
    difference of the full decode on photo-like JPEGs."""
    for seed in range(4):
        data = encode(natural_image(seed), "JPEG", quality=90)
        drafted = decode.decode_image(data, target_size=(224, 224))
        assert drafted.shape == (240, 320, 3)  # decoded at half scale
        full = to_network_bytes(decode.decode_image(data), 224, 224, 3).astype(int)
        difference = np.abs(to_network_bytes(drafted, 224, 224, 3).astype(int) - full)
        assert difference.mean() < decode.DRAFT_MEAN_TOLERANCE
        assert np.percentile(difference, 99) <= 8


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with almost no pixel data behind it."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + \
        chunk(b"IEND", b"")


@pytest.mark.parametrize("width, height", [(100_000, 100_000), (8_000, 6_000)])
def test_pixel_limit_from_header(width, height):
    with pytest.raises(errors.ImageTooLargeError) as error:
        decode.decode_image(_png_header_only(width, height))
    assert error.value.code == 7907 and isinstance(error.value, ValueError)


def test_max_pixels_is_the_only_limit(monkeypatch):
    """Pillow refuses more than 2 * Image.MAX_IMAGE_PIXELS (~179 MP) in Image.open, and warns above
    it; max_pixels replaces that limit, both ways. Only headers here: nothing is decoded."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning either
        for width, height in [(20_000, 10_000), (10_000, 10_000)]:  # 200 MP and 100 MP
            assert decode.open_image(_png_header_only(width, height), max_pixels=300_000_000).size == (width, height)
    with pytest.raises(errors.ImageTooLargeError, match="200000000 pixels, more than max_pixels=40000000"):
        decode.open_image(_png_header_only(20_000, 10_000))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # a process-wide setting is not consulted either
    data = encode(Image.new("L", (50, 40), 7), "PNG")
    assert decode.decode_image(data).shape == (40, 50, 1)
    cropped = preprocess_arrays([decode.decode_pil(data)], 4, 2, 1, 0.0, 255.0, domain=[(0, 0, 40, 30)])
    assert (cropped == 7).all()


def test_small_pixel_limit():
    data = encode(Image.new("L", (100, 50)), "PNG")
    with pytest.raises(errors.ImageTooLargeError, match="5000 pixels, more than max_pixels=4999"):
        decode.decode_image(data, max_pixels=4999)
    assert decode.decode_image(data, max_pixels=5000).shape == (50, 100, 1)


@pytest.mark.parametrize("data, match", [
    (b"", "empty"),
    (b"hello, I am a text file\n", "not an image in a supported format"),
    (encode(Image.new("RGB", (8, 8)), "WEBP"), "not an image in a supported format"),
    (encode(natural_image(1, 64, 48), "JPEG")[:600], "truncated or corrupt"),
    (encode(natural_image(1, 64, 48), "PNG")[:300], "truncated or corrupt"),
])
def test_bad_files(data, match):
    with pytest.raises(errors.ImageDecodeError, match=match) as error:
        decode.decode_image(data)
    assert error.value.code in (7906, 7907)


def test_bad_file_names_the_path(tmp_path):
    fake = tmp_path / "photo.png"
    fake.write_text("not a picture")
    with pytest.raises(errors.ImageDecodeError, match=f"{fake}: not an image"):
        preprocess_dl_classifier_images([str(fake)], Handle())
    with pytest.raises(errors.ModelFileNotFoundError):
        preprocess_dl_classifier_images([str(tmp_path / "missing.png")], Handle())


# -- preprocessing ----------------------------------------------------------------------------

def test_byte_to_network_range():
    images = np.array([0, 1, 51, 254, 255], dtype=np.uint8).reshape(1, 1, 5, 1)
    out = preprocess_arrays(images, 5, 1, 1, -127.0, 128.0)
    assert out.dtype == np.float32 and out.reshape(-1).tolist() == [-127, -126, -76, 127, 128]
    assert to_network_range(np.array([0, 255], np.uint8), 0.0, 1.0).tolist() == [0.0, 1.0]
    assert to_network_range(np.array([0, 17, 255], np.uint8), -1.5, 2.25).tolist() == \
        np.array([-1.5, 17 * 3.75 / 255 - 1.5, 2.25], np.float32).tolist()


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("contrast", [False, True])
def test_two_steps_equal_one(channels, contrast):
    rng = np.random.default_rng(channels)
    images = [rng.integers(20, 200, (h, w, c), dtype=np.uint8) for h, w, c in [(30, 40, 3), (24, 32, 1), (50, 20, 3)]]
    boxes = [None, (2, 3, 30, 20), None]
    whole = preprocess_arrays(images, 32, 24, channels, -127.0, 128.0, contrast, boxes)
    steps = np.stack([to_network_bytes(a, 32, 24, channels, contrast, b) for a, b in zip(images, boxes)])
    np.testing.assert_array_equal(whole, to_network_range(steps, -127.0, 128.0))


def test_resize_all_to_network_size_without_keeping_aspect():
    wide = np.tile(np.arange(0, 200, 2, dtype=np.uint8), (50, 1))  # 50 high, 100 wide ramp
    fitting = np.full((24, 32, 3), 9, np.uint8)
    out = preprocess_arrays([wide, fitting], 32, 24, 3, -127.0, 128.0)
    assert out.shape == (2, 24, 32, 3)
    np.testing.assert_array_equal(out[1], 9 - 127)  # already the network size: untouched
    row = out[0, 12, :, 0] + 127
    assert np.all(np.diff(row) > 0) and row[0] < 10 and row[-1] > 185  # the ramp squeezed, not cropped


def test_channels_replicate_and_luminance():
    gray = np.array([[0, 100]], np.uint8)
    np.testing.assert_array_equal(preprocess_arrays(gray, 2, 1, 3, 0.0, 255.0)[0, 0], [[0] * 3, [100] * 3])
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], np.uint8)
    out = preprocess_arrays(rgb, 4, 1, 1, 0.0, 255.0)[0, 0, :, 0]
    assert out.tolist() == [76, 150, 29, 18]  # round(0.299 R + 0.587 G + 0.114 B)
    real = preprocess_arrays(rgb.astype(np.float32), 4, 1, 1, -127.0, 128.0)[0, 0, :, 0]
    np.testing.assert_allclose(real, [76.245, 149.685, 29.07, 18.15], rtol=1e-5)  # real: not rounded


def test_byte_luminance_is_rounded_within_half_a_gray_level_of_halcon_order():
    """HALCON converts byte -> real before 3 -> 1; dlcls takes the luminance on bytes, rounded (the
    documented deviation): at most 0.5 gray level, in the network range 0.5 * (max - min) / 255."""
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    low, high = -127.0, 128.0
    halcon = (rgb * ((high - low) / 255) + low) @ np.array([0.299, 0.587, 0.114])  # real first, then gray
    ours = preprocess_arrays(rgb, 64, 64, 1, low, high)[0, :, :, 0]
    difference = np.abs(ours - halcon)
    assert difference.max() <= 0.5 * (high - low) / 255 + 1e-4 and difference.max() > 0.4
    gray = rgb[:, :, :1]
    np.testing.assert_allclose(preprocess_arrays(gray, 64, 64, 3, low, high)[0],  # 1 -> 3 is exact
                               np.repeat(gray * ((high - low) / 255) + low, 3, axis=2), atol=1e-5)


def test_contrast_normalization():
    image = np.array([[50, 75, 100]], np.uint8)
    assert preprocess_arrays(image, 3, 1, 1, -127.0, 128.0, True).reshape(-1).tolist() == [-127, 1, 128]
    flat = np.full((2, 2), 80, np.uint8)
    assert (preprocess_arrays(flat, 2, 2, 1, -127.0, 128.0, True) == 80 - 127).all()  # constant: unchanged
    real = np.array([[-3.0, 1.0, 5.0]], np.float32)
    assert preprocess_arrays(real, 3, 1, 1, -127.0, 128.0).reshape(-1).tolist() == [-3, 1, 5]  # not rescaled
    assert preprocess_arrays(real, 3, 1, 1, -127.0, 128.0, True).reshape(-1).tolist() == [-127, 0.5, 128]


def test_real_images_are_resized_not_rescaled():
    real = np.full((10, 20, 3), 3.25, np.float64)
    out = preprocess_arrays([real], 5, 4, 3, -127.0, 128.0)
    assert out.dtype == np.float32 and out.shape == (1, 4, 5, 3)
    np.testing.assert_allclose(out, 3.25, rtol=1e-6)


def test_crop_domain_crops_first():
    image = np.zeros((40, 40), np.uint8)
    image[10:20, 5:25] = 200
    out = preprocess_arrays([image], 20, 10, 1, 0.0, 255.0, domain=[(5, 10, 25, 20)])
    assert (out == 200).all()
    with pytest.raises(errors.WrongParamValueError, match="leaves the 40x40 image"):
        preprocess_arrays([image], 20, 10, 1, 0.0, 255.0, domain=[(5, 10, 45, 20)])
    with pytest.raises(errors.WrongParamValueError, match="domain boxes"):
        preprocess_arrays([image, image], 20, 10, 1, 0.0, 255.0, domain=[None])


@pytest.mark.parametrize("images, error, match", [
    ([np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.float32)], errors.ImageTypeError, "cannot be mixed"),
    ([np.zeros((4, 4), np.uint16)], errors.ImageTypeError, "scale it to 8 bit"),
    ([np.zeros((4, 4), np.int64)], errors.ImageTypeError, "astype"),
    ([np.zeros((4, 4, 4), np.uint8)], errors.ChannelError, "alpha"),
    ([np.zeros((4, 4, 2), np.float32)], errors.ChannelError, "1 or 3"),
    ([np.zeros((2, 4, 4, 3, 1), np.uint8)], errors.ImageTypeError, "HxW or HxWxC"),
])
def test_type_and_channel_errors(images, error, match):
    with pytest.raises(error, match=match):
        preprocess_arrays(images, 4, 4, 3, -127.0, 128.0)


def test_procedure_accepts_every_kind_of_image(tmp_path, small_classifier):
    path = tmp_path / "red.png"
    Image.new("RGB", (64, 48), (255, 0, 0)).save(path)
    pil = Image.new("L", (32, 32), 255)
    batch = np.zeros((2, 32, 32, 3), np.uint8)
    images = [str(path), path, path.read_bytes(), pil, batch, np.zeros((10, 10), np.uint8)]
    handle = small_classifier()  # compact, 32x32x3
    out = preprocess_dl_classifier_images(images, handle)
    assert out.shape == (7, 32, 32, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], out[2])
    assert out[0, :, :, 0].min() == 128 and out[0, :, :, 1].max() == -127
    assert (out[3] == 128).all() and (out[4:] == -127).all()
    result = handle.apply(out)  # ready for apply_dl_classifier as it is
    assert len(result.get("all", "predicted_classes")) == 7


def test_procedure_generic_parameters():
    image = np.array([[[50], [100]]], np.uint8)
    handle = Handle(width=2, height=1, channels=1)
    plain = preprocess_dl_classifier_images(image, handle)
    assert plain.reshape(-1).tolist() == [-77, -27]
    stretched = preprocess_dl_classifier_images(image, handle, "contrast_normalization", "true")
    assert stretched.reshape(-1).tolist() == [-127, 128]
    cropped = preprocess_dl_classifier_images(np.zeros((6, 6), np.uint8), handle, ["domain_handling"],
                                              ["crop_domain"], domains=[(0, 0, 2, 1)])
    assert cropped.shape == (1, 1, 2, 1)
    for names, values, error in [("color", "true", errors.UnknownParamError),
                                 ("contrast_normalization", "yes", errors.WrongParamValueError),
                                 (["domain_handling", "contrast_normalization"], ["crop_domain"],
                                  errors.WrongParamValueError)]:
        with pytest.raises(error):
            preprocess_dl_classifier_images(image, handle, names, values)
    with pytest.raises(errors.WrongParamValueError, match="no images"):
        preprocess_dl_classifier_images([], handle)
    with pytest.raises(errors.WrongParamValueError, match="only used with 'domain_handling' 'crop_domain'"):
        preprocess_dl_classifier_images(np.zeros((6, 6), np.uint8), handle, domains=[(0, 0, 2, 1)])


def test_procedure_jpeg_draft_switch(tmp_path):
    path = tmp_path / "photo.jpg"
    natural_image(5).save(path, quality=90)
    handle = Handle(width=224, height=224)
    full = preprocess_dl_classifier_images([path], handle, jpeg_draft=False)
    expected = to_network_range(to_network_bytes(decode.decode_image(path.read_bytes()), 224, 224, 3)[None],
                                -127.0, 128.0)
    np.testing.assert_array_equal(full, expected)
    drafted = preprocess_dl_classifier_images([path], handle)
    assert 0 < np.abs(drafted - full).mean() < decode.DRAFT_MEAN_TOLERANCE
