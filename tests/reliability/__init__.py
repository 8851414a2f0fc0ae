"""Reliability and security tests: bad inputs, crash and restart, concurrency on PostgreSQL, secrets.

``docs/reliability.md`` lists every scenario with the test that proves it.
"""
