"""The daemon's image service: background builds with status, and the port backends use.

On-demand policy: a cold start that needs a debian image that is not built yet does *not*
wait for it. It starts the build (single flight per runtime, the daemon logs its progress) and
fails at once with ImageNotReady (503) saying how far the build is. Waiting would park the
request behind a ~40 s debootstrap, longer than the pool's queue timeout, which would then
answer with a misleading "at max_replicas" 429. The daemon also starts the builds its policy
needs when it starts (:meth:`ImageService.prebuild`), so usually no request ever sees one.
A failed build is retried by a cold start only after ``retry_failed_after_s``, so a broken
mirror does not run debootstrap on every request; ``nova image build`` retries at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from nova.core.errors import NovaError, SandboxError
from nova.images.errors import (
    ImageBuildFailed,
    ImageNotFound,
    ImageNotReady,
    VmDrivesUnavailable,
)
from nova.images.manifest import ImageManifest
from nova.images.ports import ImageRoot, VmDrives
from nova.images.progress import BuildProgress
from nova.images.recipe import ImageKind, ImagePolicy
from nova.images.store import ImageStore

logger = logging.getLogger(__name__)


class BuildState(StrEnum):
    ABSENT = "absent"  # never built, no build running
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"  # no image, and the last build failed (``error`` says why)


@dataclass(frozen=True, slots=True)
class BuildStatus:
    """GET /images/{runtime}."""

    runtime: str
    selected: ImageKind  # what the runtime's instances run on, per policy
    state: BuildState
    image: ImageManifest | None  # the current debian image, when one is built
    progress: BuildProgress | None
    error: str | None  # why the last build failed (also when an older image is READY)
    started_at: str | None
    finished_at: str | None
    vm: str | None = None  # what the last `--vm` build made (kernel, initramfs, rootfs drive)

    def to_json(self) -> dict[str, Any]:
        progress = self.progress
        return {
            "runtime": self.runtime,
            "selected": self.selected.value,
            "state": self.state.value,
            "image": self.image.to_json() if self.image else None,
            "progress": None
            if progress is None
            else {
                "phase": progress.phase,
                "fraction": progress.fraction,
                "message": progress.message,
                "done": progress.done,
                "total": progress.total,
            },
            "error": self.error,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "vm": self.vm,
        }


@dataclass(frozen=True, slots=True)
class ImageView:
    """One row of GET /images."""

    id: str
    runtime: str
    kind: str
    size_bytes: int | None  # None for host: it is the host's own /usr, not a copy
    built_at: str | None
    current: bool  # built from the runtime's current recipe (older images are kept, unused)
    selected: bool  # new instances of the runtime start on this image
    instances: int  # running instances on it

    @classmethod
    def of(
        cls, manifest: ImageManifest, *, current: bool, selected: bool, instances: int
    ) -> ImageView:
        """The row of a built debian image."""
        return cls(
            manifest.id,
            manifest.runtime,
            manifest.kind,
            manifest.size_bytes,
            manifest.built_at,
            current=current,
            selected=selected,
            instances=instances,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "runtime": self.runtime,
            "kind": self.kind,
            "size_bytes": self.size_bytes,
            "built_at": self.built_at,
            "current": self.current,
            "selected": self.selected,
            "in_use": self.instances > 0,
            "instances": self.instances,
        }


@dataclass(slots=True)
class _Build:
    """Per runtime. ``progress`` is replaced (never mutated) from the build thread; reading a
    reference is atomic, so the event loop may look at it at any time."""

    task: asyncio.Task[None] | None = None
    progress: BuildProgress | None = None
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    failed_at: float | None = None  # monotonic
    cancel: threading.Event = field(default_factory=threading.Event)
    vm: str | None = None


class ImageService:
    def __init__(
        self,
        store: ImageStore,
        policy: ImagePolicy,
        host_image_id: str | None,
        *,
        retry_failed_after_s: float = 300.0,
    ) -> None:
        self._store = store
        self._policy = policy
        self._host_image_id = host_image_id
        self._retry_failed_after_s = retry_failed_after_s
        self._builds = {runtime: _Build() for runtime in store.runtimes}
        self._vm: VmDrives | None = None
        # Read once here (start-up), then kept current by builds: resolve() is a dict hit.
        self._current: dict[str, ImageManifest] = {}
        for runtime in store.runtimes:
            manifest = store.current(runtime)
            if manifest is not None:
                self._current[runtime] = manifest

    # -- the port backends use ------------------------------------------------------------

    async def resolve(self, runtime: str) -> ImageRoot | None:
        if self._policy.kind_for(runtime) is ImageKind.HOST:
            return None
        return await self.resolve_debian(runtime)

    async def resolve_debian(self, runtime: str) -> ImageRoot:
        """The runtime's debian image whatever the policy says (a VM cannot use the host's
        root); ImageNotReady, starting its build, while there is none."""
        manifest = self._current.get(runtime)
        if manifest is None:
            try:
                # Built by another process since start-up (`nova image build` with the daemon
                # stopped elsewhere, a daemon sharing the data dir): use it, build nothing.
                manifest = self._store.current(runtime)
            except NovaError as exc:
                raise ImageNotReady(f"{exc.message} (sandbox.image is debian)") from exc
            if manifest is not None:
                self._current[runtime] = manifest
        if manifest is not None:
            return ImageRoot(manifest.id, self._store.rootfs(manifest.id), manifest.interpreter)
        build = self._builds[runtime]
        retry_due = (
            build.failed_at is not None
            and time.monotonic() - build.failed_at >= self._retry_failed_after_s
        )
        if build.error is None or retry_due:
            self.start_build(runtime)
        raise ImageNotReady(self._not_ready_message(runtime))

    def _not_ready_message(self, runtime: str) -> str:
        build = self._builds[runtime]
        watch = f"`nova image build {runtime}`"
        if build.task is None and build.error is not None:
            return (
                f"the debian image for {runtime} failed to build: {build.error.splitlines()[0]}"
                f" — fix the cause and run {watch} (`nova image status {runtime}` shows the "
                "full error)"
            )
        progress = build.progress
        where = f", {progress.fraction:.0%}: {progress.message}" if progress else ""
        return (
            f"the debian image for {runtime} is being built{where}; retry in a minute, or "
            f"watch it with {watch}"
        )

    # -- builds ----------------------------------------------------------------------------

    def use_vm_drives(self, vm: VmDrives) -> None:
        """What `--vm` builds also build (the daemon passes its microvm backend)."""
        self._vm = vm

    def start_build(self, runtime: str, *, rebuild: bool = False, vm: bool = False) -> BuildStatus:
        """Start a background build unless one runs or (without ``rebuild``) the image is
        there already; return the status either way. ``vm``: then also build what a microVM
        boots from (guest kernel, initramfs, the image's rootfs drive), even when the image
        itself is up to date."""
        self._store.recipe(runtime)  # ImageNotFound for an unknown runtime
        if vm and self._vm is None:
            raise VmDrivesUnavailable(
                "this daemon has no microvm backend, so there is nothing to build for --vm "
                "(`nova runtimes` says why the backend is unavailable)"
            )
        build = self._builds[runtime]
        image_due = runtime not in self._current or rebuild
        if build.task is not None or not (image_due or vm):
            return self.status(runtime)
        build.cancel = threading.Event()
        build.progress = (
            BuildProgress("resolve", 0.0, "starting debootstrap")
            if image_due
            else BuildProgress("vm", 0.0, "the microVM's kernel and drives")
        )
        build.error = None
        build.started_at, build.finished_at = _now(), None
        build.task = asyncio.create_task(
            self._run(runtime, build, rebuild if image_due else None, vm), name=f"image-{runtime}"
        )
        return self.status(runtime)

    def prebuild(self) -> None:
        """Start building every image the policy needs that is not built (daemon start)."""
        for runtime in self._store.runtimes:
            if self._policy.kind_for(runtime) is ImageKind.DEBIAN and runtime not in self._current:
                logger.info("the debian image for %s is not built yet: building it now", runtime)
                self.start_build(runtime)

    async def _run(
        self, runtime: str, build: _Build, rebuild: bool | None, vm: bool = False
    ) -> None:
        """``rebuild`` None: the image is up to date, build only the VM's part."""
        logged = _ProgressLog(runtime)
        # With both parts, the image's progress fills the bar to 90 % and the VM's the rest.
        image_share = 0.0 if rebuild is None else 0.9 if vm else 1.0

        def on_progress(progress: BuildProgress) -> None:
            build.progress = replace(progress, fraction=progress.fraction * image_share)
            logged.maybe_log(build.progress)

        def on_vm_progress(progress: BuildProgress) -> None:
            fraction = image_share + progress.fraction * (1.0 - image_share)
            build.progress = replace(progress, fraction=fraction)
            logged.maybe_log(build.progress)

        try:
            if rebuild is None:
                manifest = self._current[runtime]
            else:
                manifest = await asyncio.to_thread(
                    self._store.build,
                    runtime,
                    rebuild=rebuild,
                    progress=on_progress,
                    cancel=build.cancel,
                )
                self._current[runtime] = manifest  # usable even if the VM's part fails
            if vm and self._vm is not None:
                root = ImageRoot(manifest.id, self._store.rootfs(manifest.id), manifest.interpreter)
                build.vm = await asyncio.to_thread(self._vm.build_drives, root, on_vm_progress)
        except (ImageBuildFailed, OSError, SandboxError) as exc:
            message = exc.message if isinstance(exc, NovaError) else f"{type(exc).__name__}: {exc}"
            build.error, build.failed_at = message, time.monotonic()
            if build.cancel.is_set():  # the daemon is stopping: not a failure worth an ERROR
                logger.info("stopped building the debian image for %s", runtime)
            else:
                logger.error("building the debian image for %s failed: %s", runtime, message)
        except Exception as exc:  # a bug must still end as a failed build, not a stuck one
            build.error, build.failed_at = f"internal error: {exc!r}", time.monotonic()
            logger.exception("building the debian image for %s crashed", runtime)
        else:
            build.failed_at = None
            build.progress = BuildProgress("done", 1.0, "ready")
            logger.info(
                "debian image for %s ready: %s (%.0f MiB, %d packages)%s",
                runtime,
                manifest.id,
                manifest.size_bytes / 2**20,
                len(manifest.packages),
                f"; microVM: {build.vm}" if vm else "",
            )
        finally:
            build.task = None
            build.finished_at = _now()

    async def wait(self, runtime: str) -> BuildStatus:
        """Until the runtime's running build (if any) is over; then its status."""
        task = self._builds[runtime].task if runtime in self._builds else None
        if task is not None:
            await asyncio.shield(task)
        return self.status(runtime)

    # -- views -----------------------------------------------------------------------------

    def status(self, runtime: str) -> BuildStatus:
        self._store.recipe(runtime)
        build = self._builds[runtime]
        current = self._current.get(runtime)
        if build.task is not None:
            state = BuildState.BUILDING
        elif current is not None:
            state = BuildState.READY  # even after a failed rebuild: the image still serves
        elif build.error is not None:
            state = BuildState.FAILED
        else:
            state = BuildState.ABSENT
        return BuildStatus(
            runtime=runtime,
            selected=self._policy.kind_for(runtime),
            state=state,
            image=current,
            progress=build.progress,
            error=build.error,
            started_at=build.started_at,
            finished_at=build.finished_at,
            vm=build.vm,
        )

    async def images(self, in_use: Mapping[str, int]) -> list[ImageView]:
        """Every image: the host root once per runtime, then every debian image on disk."""
        manifests = await asyncio.to_thread(self._store.manifests)
        # The host root is one image shared by every runtime: its count is not per runtime.
        host_instances = in_use.get(self._host_image_id, 0) if self._host_image_id else 0
        views = []
        for runtime in self._store.runtimes:
            kind = self._policy.kind_for(runtime)
            if self._host_image_id is not None:
                views.append(
                    ImageView(
                        self._host_image_id,
                        runtime,
                        ImageKind.HOST.value,
                        None,
                        None,
                        current=True,
                        selected=kind is ImageKind.HOST,
                        instances=host_instances,
                    )
                )
            for manifest in (m for m in manifests if m.runtime == runtime):
                current = self._current.get(runtime)
                is_current = current is not None and current.id == manifest.id
                views.append(
                    ImageView.of(
                        manifest,
                        current=is_current,
                        selected=is_current and kind is ImageKind.DEBIAN,
                        instances=in_use.get(manifest.id, 0),
                    )
                )
        return views

    async def prune(self, in_use: Mapping[str, int]) -> list[ImageView]:
        """Delete every debian image that no runtime uses any more (superseded by a rebuild
        or a recipe change) and no instance runs on; return what was deleted.

        New instances only ever start on a runtime's current image, so an image that is not
        current and has no instance now will not get one. A runtime whose build is running is
        left alone: the image it publishes is on disk a moment before it becomes current.
        """
        current = {manifest.id for manifest in self._current.values()}
        building = {runtime for runtime, build in self._builds.items() if build.task is not None}
        doomed = [
            manifest
            for manifest in await asyncio.to_thread(self._store.manifests)
            if manifest.id not in current
            and manifest.runtime not in building
            and not in_use.get(manifest.id)
        ]
        removed = []
        for manifest in doomed:
            try:
                await asyncio.to_thread(self._store.remove, manifest.id)
            except ImageNotFound:
                continue  # pruned meanwhile by another request
            removed.append(ImageView.of(manifest, current=False, selected=False, instances=0))
        return removed

    async def close(self) -> None:
        """Stop running builds (debootstrap is killed; its partial root removed)."""
        tasks = []
        for build in self._builds.values():
            if build.task is not None:
                build.cancel.set()
                tasks.append(build.task)
        if tasks:
            await asyncio.wait(tasks, timeout=30)


class _ProgressLog:
    """Logs a build's progress at each new phase and every 20 %: enough to follow it in the
    daemon log, few enough lines not to drown it."""

    def __init__(self, runtime: str) -> None:
        self._runtime = runtime
        self._phase = ""
        self._step = -1

    def maybe_log(self, progress: BuildProgress) -> None:
        step = int(progress.fraction * 5)
        if progress.phase == self._phase and step == self._step:
            return
        self._phase, self._step = progress.phase, step
        counts = f" ({progress.done}/{progress.total})" if progress.total else ""
        logger.info(
            "building the debian image for %s: %3.0f%% %s%s",
            self._runtime,
            progress.fraction * 100,
            progress.message,
            counts,
        )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
