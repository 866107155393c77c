"""Function lifecycle: create / update / delete, and making functions runnable (deploying)."""
