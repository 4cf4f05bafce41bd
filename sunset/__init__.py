"""Sunset: retire an AI model without closing the door.

This package does the work in plain Python. It never imports Prefect; the Prefect layer
lives in the top-level ``tasks`` and ``flows`` packages and calls in here.
"""

__version__ = "0.1.0"
