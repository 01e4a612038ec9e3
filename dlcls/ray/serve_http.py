"""The HTTP side of the Serve app: request -> named image files, confidences -> JSON, and the
errors a client gets back. No Ray here: this is FastAPI/Starlette only.

A classify request holds its images in one of three forms, told apart by Content-Type:

  image/* or application/octet-stream   the body is one image file
  multipart/form-data                   every file part is an image, in order (named by its file name)
  application/json                      {"images": ["<base64>", {"name": "a.png", "data": "<base64>"}, ...]}

The body size is checked before anything is read (Content-Length) and while reading, the image
count before anything is decoded; the pixel count is checked from each image's header by
core.decode. Every refusal is a RequestError: a status code and a JSON body
{"error": KIND, "message": "what was wrong and how to fix it"}.
"""

import base64
import binascii
import json

import numpy as np
from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from .. import errors
from ..core.predict import ranking

RAW_TYPES = ("image/", "application/octet-stream")
_EMPTY = "the request has no body; send an image (see /docs)"


class RequestError(Exception):
    """An answer other than 200."""

    def __init__(self, status: int, kind: str, message: str):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.kind, "message": self.message}, status_code=self.status)


async def read_images(request: Request, max_body_bytes: int, max_images: int) -> list[tuple[str | None, bytes]]:
    """The (name or None, file bytes) of every image in the request, checked against the limits."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    parse = _PARSERS.get(media_type) or (_raw if media_type.startswith(RAW_TYPES) else None)
    if request.headers.get("content-length") == "0":
        raise RequestError(400, "empty_body", _EMPTY)
    if parse is None:
        raise RequestError(415, "unsupported_media_type", f"Content-Type {media_type or '(none)'!r} is not accepted; "
                           "send an image as the body (Content-Type: image/png, image/jpeg, ...), image files as "
                           "multipart/form-data, or JSON {\"images\": [\"<base64>\", ...]}")
    body = await _read_body(request, max_body_bytes)
    if not body:
        raise RequestError(400, "empty_body", _EMPTY)
    images = await parse(request, body)
    if not images:
        raise RequestError(400, "no_images", "the request holds no image; see /docs for the accepted forms")
    if len(images) > max_images:
        raise RequestError(413, "too_many_images", f"the request holds {len(images)} images, at most {max_images} "
                           "are accepted at once; split it into several requests")
    return images


async def _read_body(request: Request, limit: int) -> bytes:
    too_large = RequestError(413, "body_too_large", f"the request body is larger than {limit} bytes; send fewer or "
                             "smaller images per request")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():  # a client may send more than it announced, or announce nothing
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _raw(request: Request, body: bytes) -> list[tuple[str | None, bytes]]:
    return [(None, body)]


async def _multipart(request: Request, body: bytes) -> list[tuple[str | None, bytes]]:
    async def stream():
        yield body

    try:
        form = await MultiPartParser(request.headers, stream()).parse()
    except MultiPartException as e:
        raise RequestError(400, "bad_multipart", f"the multipart body cannot be read: {e.message}") from None
    try:
        return [(value.filename or key, await value.read()) for key, value in form.multi_items()
                if isinstance(value, UploadFile)]
    finally:
        await form.close()


async def _json(request: Request, body: bytes) -> list[tuple[str | None, bytes]]:
    try:
        items = json.loads(body)["images"]
    except (ValueError, KeyError, TypeError):
        items = None
    if not isinstance(items, list):
        raise RequestError(400, "bad_json", 'the JSON body must be {"images": ["<base64>", ...]}, where an item '
                           'may also be {"name": "a.png", "data": "<base64>"}')
    return [_json_item(i, item) for i, item in enumerate(items)]


def _json_item(index: int, item) -> tuple[str | None, bytes]:
    name, data = (item.get("name"), item.get("data")) if isinstance(item, dict) else (None, item)
    try:
        return name if isinstance(name, str) else None, base64.b64decode(data, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise RequestError(400, "bad_base64", f"images[{index}] is not base64 (standard alphabet, padded) "
                           "image data") from None


_PARSERS = {"multipart/form-data": _multipart, "application/json": _json}


def image_error(index: int, name: str | None, error: errors.HalconError) -> RequestError:
    """A decoding or preprocessing failure of one image -> the client's error."""
    which = f"image {index}" + (f" ({name})" if name else "")
    if isinstance(error, errors.ImageTooLargeError):
        return RequestError(413, "too_many_pixels", f"{which}: {error.message}")
    if isinstance(error, errors.ImageDecodeError):
        return RequestError(400, "undecodable", f"{which}: {error.message}")
    return RequestError(400, "unsupported_image", f"{which}: {error.message}")


def classifications(names: list[str | None], confidences: np.ndarray, classes: list[str], top_k: int) -> list[dict]:
    """Per image, the fields of a row of `dlcls classify`'s predictions (best class first)."""
    order = ranking(confidences)[:, :min(top_k, len(classes))]
    return [{"index": i, "name": name, "predicted_class": classes[row[0]], "predicted_class_index": int(row[0]),
             "confidence": float(confidences[i, row[0]]), "top_classes": [classes[c] for c in row],
             "top_confidences": [float(confidences[i, c]) for c in row]}
            for i, (name, row) in enumerate(zip(names, order))]


# -- the schema shown at /docs -------------------------------------------------------------------

class Classification(BaseModel):
    index: int
    name: str | None
    predicted_class: str
    predicted_class_index: int
    confidence: float
    top_classes: list[str]
    top_confidences: list[float]


class ClassifyResponse(BaseModel):
    model_id: str
    results: list[Classification]


class ErrorResponse(BaseModel):
    error: str
    message: str


ERROR_RESPONSES = {status: {"model": ErrorResponse, "description": text} for status, text in {
    400: "empty body, undecodable image, bad JSON, base64, multipart or query parameter",
    413: "body larger than max_body_bytes, more than max_images images or more than max_pixels pixels",
    415: "unsupported Content-Type",
    503: "overloaded: the request queue is full (from Serve's proxy); retry later",
    504: "not answered within request_timeout_s",
}.items()}

REQUEST_BODY = {"required": True, "content": {
    "image/png": {"schema": {"type": "string", "format": "binary"}},
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
    "application/json": {"schema": {"type": "object", "required": ["images"], "properties": {
        "images": {"type": "array", "items": {"type": "string", "format": "byte"}}}}},
}}
