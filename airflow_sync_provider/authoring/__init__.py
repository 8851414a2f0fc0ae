"""DAG building: configs -> DAGs (schedule, pool, params, the admin DAG, reviews). No I/O at
parse time."""
