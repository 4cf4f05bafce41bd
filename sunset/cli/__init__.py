"""The ``sunset`` command line, the top edge of the product (see ``sunset.cli.main``)."""

from sunset.cli.main import app

__all__ = ["app"]
