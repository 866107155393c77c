"""Asynchronous invocation: a durable queue in the store, workers that claim events under
leases, retries by error kind, dead letters and destinations.

Submitting is :meth:`nova.events.invocations.AsyncInvocations.submit` (the invoke API,
schedules); queue triggers invoke directly and dead-letter through ``AsyncInvocations.bury``.
"""
