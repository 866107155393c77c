"""A container instance as the backend hands it out: a bwrap sandbox running the agent (the
sandbox, cgroups and kill path are NamespacedInstance's), which a standby or pre-started claim
turns into an instance of a function."""

from __future__ import annotations

import time

from nova.sandbox.base import InstanceSpec
from nova.sandbox.instance_code import instance_code_dir, replace_code_dir
from nova.sandbox.linux.cgroups import CgroupLimits
from nova.sandbox.linux.namespaced import NamespacedInstance
from nova.sandbox.network.networks import InstanceNetwork


class ContainerInstance(NamespacedInstance):
    network: InstanceNetwork | None = None  # network: true only; closed once the sandbox is gone

    def adopt(self, spec: InstanceSpec, limits: CgroupLimits) -> None:
        """Become an instance of ``spec``'s function (standby claim; blocking, in a thread):
        its code into the bind source of /code, its limits onto this instance's cgroups."""
        placing = time.perf_counter()
        replace_code_dir(spec.code_dir, instance_code_dir(self._spec.instance_id))
        self.code_ms = (time.perf_counter() - placing) * 1000
        self._name = spec.instance_id
        if self._cgroup is not None:
            self._cgroup.set_limits(limits)

    def _after_stop(self) -> None:
        if self.network is not None:  # after the sandbox: see InstanceNetwork.close
            self.network.close()
