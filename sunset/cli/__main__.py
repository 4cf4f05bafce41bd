"""``python -m sunset.cli``: the same command as ``sunset``."""

from sunset.cli.main import app

app()
