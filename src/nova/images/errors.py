"""Errors of the image layer, in the NovaError tree (stable codes, HTTP statuses)."""

from __future__ import annotations

from nova.core.errors import NovaError, SandboxError


class ImageNotFound(NovaError):
    """No image recipe exists for the runtime asked about."""

    code = "Image.NotFound"
    status = 404


class ImageBuildFailed(NovaError):
    """debootstrap (or what follows it) failed; the message carries its last lines."""

    code = "Image.BuildFailed"
    status = 502


class ImageNotReady(SandboxError):
    """A cold start needs an image that is still building, or whose build failed."""

    code = "Sandbox.ImageNotReady"
    status = 503


class ImagesUnavailable(NovaError):
    """The daemon runs without an image service (e.g. an app built without the daemon)."""

    code = "Image.Unavailable"
    status = 503


class VmDrivesUnavailable(NovaError):
    """``nova image build --vm`` on a daemon without the microvm backend."""

    code = "Image.VmUnavailable"
    status = 422
