"""Settings -> one component each: tracing, code and function limits, runtime images, the
master key and auth pepper sources, the JWT checker."""

from __future__ import annotations

import logging
from pathlib import Path

from nova.api.context import Services
from nova.auth.jwt_tokens import JwtPolicy, JwtVerifier, load_jwks
from nova.code.policy import CodePolicy
from nova.config import (
    JwtSettings,
    Settings,
    TracingSettings,
)
from nova.core.auth import Role
from nova.core.errors import ConfigInvalid
from nova.functions.rules import FunctionLimits
from nova.images.debootstrap import DebootstrapBuilder, host_mirror, host_suite
from nova.images.recipe import ImagePolicy, debian_recipes
from nova.images.service import ImageService
from nova.images.store import ImageStore
from nova.observability.tracing import InvocationTracer, tracer_provider
from nova.sandbox.container.backend import ContainerBackend
from nova.sandbox.container.roots import image_mount_points
from nova.sandbox.microvm.backend import MicrovmBackend
from nova.sandbox.registry import BackendUnavailable

logger = logging.getLogger("nova.daemon")


def invocation_tracer(tracing: TracingSettings) -> InvocationTracer | None:
    """Spans exported with OTLP over HTTP when tracing is on (the exporter is imported only
    then)."""
    if not tracing.enabled:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    exporter = OTLPSpanExporter(endpoint=tracing.otlp_endpoint)
    provider = tracer_provider(exporter, tracing.sampling_ratio, tracing.service_name)
    logger.info(
        "tracing on: %g of traces sampled, spans to %s",
        tracing.sampling_ratio,
        tracing.otlp_endpoint,
    )
    return InvocationTracer(provider, tracing.sampling_ratio)


def code_policy(settings: Settings) -> CodePolicy:
    code = settings.code
    limits = code.model_dump(exclude={"allowed_paths", "dependency_build_timeout_s"})
    return CodePolicy(**limits, allowed_paths=tuple(code.allowed_paths))


def function_limits(settings: Settings) -> FunctionLimits:
    return FunctionLimits(**settings.functions.model_dump())


def runtime_images(settings: Settings, services: Services) -> ImageService:
    """Runtime images under <data_dir>/images (nova.images), built with debootstrap from the
    host's Debian mirror; container instances run on the ones the policy picks (gVisor and
    process instances stay on the host root)."""
    policy = ImagePolicy.parse(settings.sandbox.image, dict(settings.sandbox.runtime_images))
    suite = host_suite()
    store = ImageStore(
        settings.daemon.data_dir.resolve() / "images",
        debian_recipes(suite, image_mount_points()),
        DebootstrapBuilder(host_mirror(suite)),
    )
    try:
        microvm = services.sandboxes.get("microvm")
    except BackendUnavailable:
        microvm = None
    try:
        container = services.sandboxes.get("container")
    except BackendUnavailable:
        container = None
    if not isinstance(container, ContainerBackend):
        if isinstance(microvm, MicrovmBackend):  # VMs always boot a debian image
            images = ImageService(store, ImagePolicy(), None)
            microvm.use_images(images)
            images.use_vm_drives(microvm)
            return images
        if policy != ImagePolicy():
            logger.warning("sandbox.image applies to container instances only: ignored")
        return ImageService(store, ImagePolicy(), None)
    images = ImageService(store, policy, container.host_image_id)
    container.use_images(images)
    if isinstance(microvm, MicrovmBackend):
        microvm.use_images(images)
        images.use_vm_drives(microvm)
    images.prebuild()
    return images


def configured_master_key(settings: Settings) -> str | None:
    configured = settings.secrets.master_key
    return configured.get_secret_value() if configured is not None else None


def master_key_file(settings: Settings, data_dir: Path) -> Path:
    return settings.secrets.key_file or data_dir / "master-key"


def configured_pepper(settings: Settings) -> str | None:
    configured = settings.auth.pepper
    return configured.get_secret_value() if configured is not None else None


def jwt_verifier(settings: JwtSettings) -> JwtVerifier | None:
    """The JWT checker when a secret or JWKS file is configured (ConfigInvalid if unusable)."""
    if not settings.enabled:
        return None
    try:
        jwks = load_jwks(settings.jwks_file) if settings.jwks_file is not None else None
    except ValueError as exc:
        raise ConfigInvalid(f"auth.jwt.jwks_file: {exc}") from None
    secret = settings.hs256_secret
    roles = {role.value: role for role in Role}
    policy = JwtPolicy(
        algorithms=tuple(settings.algorithms),
        hs256_secret=secret.get_secret_value().encode() if secret is not None else None,
        jwks=jwks,
        issuer=settings.issuer,
        audience=settings.audience,
        leeway_s=settings.leeway_s,
        role_claim=settings.role_claim,
        scope_claim=settings.scope_claim,
        environment_claim=settings.environment_claim,
        role_map={**roles, **{claim: Role(role) for claim, role in settings.role_map.items()}},
        default_role=Role(settings.default_role) if settings.default_role else None,
    )
    logger.info("JWTs accepted: %s", ", ".join(settings.algorithms))
    return JwtVerifier(policy)
