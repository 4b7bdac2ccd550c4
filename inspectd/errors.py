"""The exceptions inspectd raises, each with a message a line engineer can act on, and the error reasons.

A part that cannot be judged still gets a verdict: ``error`` with one of :class:`ErrorReason`. Exceptions that
end a frame carry their reason, so no code has to guess it from a message.
"""

from enum import StrEnum


class ErrorReason(StrEnum):
    """Why a verdict is ``error``: the values of the verdict's ``reason`` field (see the README's contract)."""

    NO_FOREGROUND = "no_foreground"
    """no part in view (IS-Net found no object); set ``foreground = "full"`` for surfaces that fill the view"""
    OVERLOADED = "overloaded"
    """parts arrive faster than this machine inspects them"""
    SOURCE_FAULT = "source_fault"
    """the camera failed while this part was expected"""
    DECODE_ERROR = "decode_error"
    """the frame or its message could not be read"""
    IMAGE_TOO_LARGE = "image_too_large"
    """the frame exceeds ``pipeline.max_image_pixels``"""
    INTERNAL = "internal"
    """an unexpected fault inside inspectd (logged with its traceback)"""
    SHUTDOWN = "shutdown"
    """the daemon stopped before this part was finished"""
    INFERENCE_UNAVAILABLE = "inference_unavailable"
    """the inference server (``models.backend = "triton"``) did not answer within ``models.triton_deadline_s``"""
    NO_FRAME = "no_frame"
    """a trigger announced this part but the camera delivered no frame within the trigger window"""
    TOO_MANY_PARTS = "too_many_parts"
    """more parts in view than ``pipeline.max_components`` or ``pipeline.tiling.max_tiles_per_frame`` let be
    inspected, and those inspected passed: the rest cannot be called good"""


class InspectdError(Exception):
    """Base of every error inspectd raises on purpose."""

    reason: ErrorReason = ErrorReason.INTERNAL


class ConfigError(InspectdError):
    """The configuration is invalid; the message names the key and the file."""


class ModelNotFoundError(InspectdError):
    """A model's files are missing; the message names the file and the command that fetches it."""


class ModelLoadError(InspectdError):
    """A model's files exist but cannot be loaded (corrupt, wrong architecture, checksum mismatch)."""


class ImageError(InspectdError):
    """An image cannot be read, decoded or accepted (wrong shape, unknown format)."""

    reason = ErrorReason.DECODE_ERROR


class ImageTooLargeError(ImageError):
    """An image has more pixels than ``pipeline.max_image_pixels``; refused before it is decoded."""

    reason = ErrorReason.IMAGE_TOO_LARGE


class SourceError(InspectdError):
    """A camera source cannot be opened or read."""

    reason = ErrorReason.SOURCE_FAULT


class MessageError(InspectdError):
    """A ZeroMQ message is malformed; it is counted and dropped (answered when it names a part id)."""

    reason = ErrorReason.DECODE_ERROR


class InferenceUnavailable(InspectdError):
    """The inference server (models.backend = triton) did not answer within models.triton_deadline_s."""

    reason = ErrorReason.INFERENCE_UNAVAILABLE
