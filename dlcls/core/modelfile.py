"""The dlcls model file: safetensors with a JSON description in its metadata. No pickle anywhere.

Layout: tensors "model/<state-dict key>" (weights and buffers) and, optionally,
"optimizer/<state-dict key>" (SGD momentum, so training continues exactly where it stopped);
metadata {"dlcls": JSON} with format, version, architecture, parameters and training state.
safetensors (a JSON header plus raw little-endian buffers, audited, no code paths) is used instead
of torch.save because reading a torch.save/pickle file can run code.
"""

import io
import json
import struct

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .. import errors

FORMAT = "dlcls-classifier"
VERSION = 1
_PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # a pickle protocol header; a torch.save zip archive


def dumps(description: dict, model_state: dict, optimizer_state: dict | None = None) -> bytes:
    tensors = {f"model/{k}": v.detach().cpu().contiguous() for k, v in model_state.items()}
    for k, v in (optimizer_state or {}).items():
        tensors[f"optimizer/{k}"] = v.detach().cpu().contiguous()
    header = {"format": FORMAT, "version": VERSION, **description}
    return st_save(tensors, metadata={"dlcls": json.dumps(header, sort_keys=True)})


def loads(data: bytes, source: str = "<bytes>") -> tuple[dict, dict, dict]:
    """(description, model state, optimizer state) of a model file's bytes; clear errors for
    anything else, and never any unpickling."""
    data = bytes(data)
    if _is_pickle(data):
        raise errors.UnsafeFileError(
            f"{source} is a pickle/torch.save file, which can run code when loaded; dlcls refuses it. "
            "Model files come from write_dl_classifier; to import torchvision weights see the README")
    description = _description(data, source)
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise errors.ModelFileError(f"{source} is truncated or corrupt ({e}); write it again") from None
    model = {k.removeprefix("model/"): v for k, v in tensors.items() if k.startswith("model/")}
    optimizer = {k.removeprefix("optimizer/"): v for k, v in tensors.items() if k.startswith("optimizer/")}
    return description, model, optimizer


def _is_safetensors(data: bytes) -> bool:
    """A safetensors file starts with the length of its JSON header, then the header's '{'."""
    return len(data) >= 9 and struct.unpack("<Q", data[:8])[0] <= len(data) - 8 and data[8:9] == b"{"


def _is_pickle(data: bytes) -> bool:
    # A safetensors header length can start with 0x80 too. A '{' after the length marks a
    # safetensors file even when it is cut short inside its header (then it is reported truncated);
    # bytes taken for safetensors are never unpickled, so a crafted '{' gains nothing.
    return not _is_safetensors(data) and data[8:9] != b"{" and data.startswith(_PICKLE_MAGIC)


def _description(data: bytes, source: str) -> dict:
    if len(data) < 8:
        raise errors.ModelFileError(f"{source} is too short to be a model file ({len(data)} bytes)")
    if not _is_safetensors(data):
        raise errors.ModelFileError(f"{source} is not a dlcls model file (no safetensors header) or is truncated")
    (length,) = struct.unpack("<Q", data[:8])
    try:
        header = json.loads(data[8 : 8 + length])
        description = json.loads(header["__metadata__"]["dlcls"])
    except (ValueError, KeyError, TypeError, RecursionError):
        raise errors.ModelFileError(
            f"{source} is a safetensors file but not a dlcls model file; to use it as pretrained "
            "weights see the README (DLCLS_WEIGHTS_<NAME>)") from None
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        raise errors.ModelFileError(f"{source} is not a dlcls model file (no dlcls description of format {FORMAT!r})")
    if description.get("version") != VERSION:
        raise errors.ModelFileError(f"{source} has model-file version {description.get('version')}; "
                                    f"this dlcls reads version {VERSION}: upgrade dlcls")
    if not isinstance(description.get("architecture"), str) or not isinstance(description.get("params"), dict):
        raise errors.ModelFileError(f"{source} has a damaged description (architecture or params of the wrong kind)")
    return description


def load_weights_file(data: bytes, source: str) -> dict[str, torch.Tensor]:
    """A state dict from a weights file: safetensors (a dlcls model file included), or a
    torch.save state dict such as torchvision's, read with torch's weights-only loader, which
    refuses anything but tensors and plain containers."""
    if _is_pickle(data):
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as e:  # the unpickler's errors are many and unrelated types
            raise errors.UnsafeFileError(f"{source} is not a plain tensor state dict and was refused: {e}") from None
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise errors.WeightsMismatchError(f"{source} does not hold a state dict of tensors")
        return state
    try:
        tensors = st_load(data)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise errors.ModelFileError(f"{source} is neither a safetensors nor a torch state-dict file ({e})") from None
    if any(k.startswith("model/") for k in tensors):
        return {k.removeprefix("model/"): v for k, v in tensors.items() if k.startswith("model/")}
    return tensors
