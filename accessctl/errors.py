"""Errors a user can act on.

Every failure that comes from input (a bad path, an odd image, a face that cannot be
enrolled, a locked database) is raised as an :class:`AccessctlError` whose message is
one clear line; the CLI prints that line and exits non-zero instead of a traceback.
"""

from __future__ import annotations


class AccessctlError(Exception):
    """Base class: the message is meant for the person at the keyboard."""


class ImageError(AccessctlError):
    """The file is missing, empty, too large, or not an image we can decode."""


class VideoError(AccessctlError):
    """A video file or camera cannot be opened or read."""


class FaceError(AccessctlError):
    """The image holds no usable face for the requested operation."""


class NoFaceError(FaceError):
    pass


class MultipleFacesError(FaceError):
    pass


class FaceQualityError(FaceError):
    """A face was found but is too small, blurry or turned to enroll safely."""


class GalleryError(AccessctlError):
    """The gallery database refused an operation (locked, conflicting, unknown id)."""


class EncoderError(AccessctlError):
    """The encoder weights are missing, corrupt, or incompatible with the gallery."""
