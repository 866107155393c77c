"""Runtime descriptors and toolchain detection."""
