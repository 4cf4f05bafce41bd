"""Running Sunset in production: Prefect server, work pool, workers, alerts (see README.md)."""
