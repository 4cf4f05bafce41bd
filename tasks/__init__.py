"""Prefect tasks: one thin wrapper per deprecation step around the work in ``sunset``."""
