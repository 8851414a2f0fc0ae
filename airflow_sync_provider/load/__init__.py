"""Landing synced items in a destination through dlt (the optional extra ``load``).

Nothing in this package imports dlt at import time: ``loader.Loader`` imports it when a sync first
loads, so DAG parsing never pays for it and a provider without the extra works as before.
"""
