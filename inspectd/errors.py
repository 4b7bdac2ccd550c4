"""The exceptions inspectd raises, each with a message a line engineer can act on."""


class InspectdError(Exception):
    """Base of every error inspectd raises on purpose."""


class ConfigError(InspectdError):
    """The configuration is invalid; the message names the key and the file."""


class ModelNotFoundError(InspectdError):
    """A model's files are missing; the message names the file and the command that fetches it."""


class ModelLoadError(InspectdError):
    """A model's files exist but cannot be loaded (corrupt, wrong architecture, checksum mismatch)."""


class ImageError(InspectdError):
    """An image cannot be read, decoded or accepted (too large, wrong shape)."""


class SourceError(InspectdError):
    """A camera source cannot be opened or read."""


class MessageError(InspectdError):
    """A ZeroMQ message is malformed; it is counted and dropped."""


class InferenceUnavailable(InspectdError):
    """The inference server (models.backend = triton) did not answer within models.triton_deadline_s."""
