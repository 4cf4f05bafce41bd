"""Deprecation runs: the request, the step names, and the run's life in the ledger."""
