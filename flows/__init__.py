"""Prefect flows: what runs, in what order. Each flow body is the list of its steps."""
