"""Function code: building bundles from what users send, and the on-disk copy instances use."""
