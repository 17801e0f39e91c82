"""Many runs as one thing: designs, executors (serial, pool, Dask), the resumable store, sensitivity."""
