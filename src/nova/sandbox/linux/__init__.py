"""Linux isolation pieces the container and gVisor backends share: cgroups, seccomp, namespaced spawning."""
