"""Model-based test of the provider's whole promise (issue 10's proof).

``scripted_api`` is an in-process HTTP API on a fake clock, mounted as a ``requests`` transport on the
hook's session; ``driver`` runs real syncs through ``RateLimitedSyncOperator`` (guard, ``SyncRun``,
handlers, hook, ``InMemoryStateStore``) with deferral, resume and crash injection;
``test_sync_promise`` is the hypothesis state machine and its invariants.
"""
