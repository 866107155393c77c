"""Asynchronous invocation: a durable queue in the store, workers that claim events under
leases, retries by error kind, dead letters and destinations.

Submitting is :meth:`nova.events.invocations.AsyncInvocations.submit`; everything that turns
an outside event into an invocation (the invoke API, triggers) goes through it.
"""
