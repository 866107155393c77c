"""The container backend: bubblewrap namespaces, cgroups and a seccomp filter."""
