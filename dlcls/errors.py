"""Errors with HALCON's error codes.

Every error subclasses the fitting builtin (so ``except ValueError`` keeps working) and carries
the HALCON code as ``.code``. Codes 7901-7908 are dlcls's own, for situations HALCON's error table
documents no code for (listed in the README under "Error codes").
"""


class HalconError(Exception):
    """Base of all dlcls errors; ``code`` is the HALCON error number."""

    code = 0

    def __init__(self, message: str):
        super().__init__(f"[{self.code}] {message}")
        self.message = message

    def __reduce__(self):
        # Rebuild from the bare message: the default would pass the coded text to __init__ again
        # ("[7714] [7714] ..."). Ray pickles errors to send them between processes.
        return type(self), (self.message,), self.__dict__


class WrongHandleTypeError(HalconError, TypeError):
    """A handle argument is of the wrong kind (e.g. a result handle where a classifier is due)."""

    code = 1201


class WrongParamValueError(HalconError, ValueError):
    """A parameter value is out of range or of the wrong kind."""

    code = 1302


class ImageWidthError(HalconError, ValueError):
    """Image width differs from the network input width."""

    code = 2106


class ImageHeightError(HalconError, ValueError):
    """Image height differs from the network input height."""

    code = 2107


class ChannelError(HalconError, ValueError):
    """Image channel count differs from the network's."""

    code = 3122


class DeviceOutOfMemoryError(HalconError, MemoryError):
    """The device ran out of memory."""

    code = 4104


class GPUDeviceError(HalconError, RuntimeError):
    """The requested CUDA device does not exist."""

    code = 4201


class ModelFileNotFoundError(HalconError, FileNotFoundError):
    """A model or weights file does not exist."""

    code = 5200


class NoGPUError(HalconError, RuntimeError):
    """runtime 'gpu' was asked for but no CUDA device is usable."""

    code = 7708


class UnknownParamError(HalconError, ValueError):
    """Unknown, read-only or set-only generic parameter name."""

    code = 7713


class InvalidLabelsError(HalconError, ValueError):
    """A training label is not one of the classes."""

    code = 7714


class DuplicateClassesError(HalconError, ValueError):
    """The classes contain duplicates."""

    code = 7716


class TrainingFailedError(HalconError, ArithmeticError):
    """A training step produced a non-finite loss."""

    code = 7720


class ImageSizeTooSmallError(HalconError, ValueError):
    """The image size is below the network minimum."""

    code = 7722


class ResultNotAvailableError(HalconError, LookupError):
    """The requested result does not exist."""

    code = 7723


class ChannelCountError(HalconError, ValueError):
    """image_num_channels must be 1 or 3."""

    code = 7724


class ChannelExpansionError(HalconError, ValueError):
    """A network set to 1 channel cannot go back to 3."""

    code = 7725


class BatchMultiplierError(HalconError, ValueError):
    """batch_size_multiplier must be >= 1."""

    code = 7799


class BatchSizeError(HalconError, ValueError):
    """Training needs exactly batch_size * batch_size_multiplier images."""

    code = 7800


class ImageTypeError(HalconError, TypeError):
    """Images must be of type real (float)."""

    code = 9001


class UndefinedGrayValuesError(HalconError, ValueError):
    """Images contain NaN or infinite gray values."""

    code = 9003


class ClearedHandleError(HalconError, ValueError):
    """The handle was cleared and cannot be used any more."""

    code = 7901


class ModelFileError(HalconError, ValueError):
    """The file is not a readable dlcls model file."""

    code = 7902


class UnsafeFileError(HalconError, ValueError):
    """The file holds pickled objects; dlcls never unpickles model files."""

    code = 7903


class ClassesNotSetError(HalconError, ValueError):
    """'classes' must be set before training or applying."""

    code = 7904


class WeightsMismatchError(HalconError, ValueError):
    """A weights file does not fit the architecture."""

    code = 7905


class ImageDecodeError(HalconError, ValueError):
    """dlcls's own: the bytes are not a readable image (empty, truncated, corrupt, unsupported)."""

    code = 7906


class ImageTooLargeError(ImageDecodeError):
    """dlcls's own: the image has more pixels than allowed (a decompression bomb or simply too large)."""

    code = 7907


class NoImagesFoundError(HalconError, FileNotFoundError):
    """dlcls's own: the image directory does not exist or holds no image file."""

    code = 7908


class RunFailedError(HalconError, RuntimeError):
    """dlcls's own: a distributed run failed as a whole (Ray Train out of retries, an incomplete
    output); the message says what failed and where the partial results are."""

    code = 7909
