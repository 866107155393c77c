"""The HTTP API: an app factory, thin routes, one error renderer."""
