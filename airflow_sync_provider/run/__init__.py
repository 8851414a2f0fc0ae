"""One sync at run time: guarded requests, retries, waits, paginators, the page loop, the checkpoint."""
