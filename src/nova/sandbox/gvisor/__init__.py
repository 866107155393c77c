"""The gVisor backend: runsc runs the instance on a user-space kernel."""
