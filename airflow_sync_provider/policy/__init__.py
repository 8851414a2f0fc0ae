"""The pure decision core: no Airflow import, no clock, sleep or randomness of its own.

Callers pass ``now`` (epoch seconds) and a ``random.Random``; every function returns new values.
"""
