"""The process backend: a plain child process, for development only."""
