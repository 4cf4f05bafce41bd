"""`sunset model-server`: a real model served from its own files on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sunset.cli.edge import plain_errors
from sunset.cli.output import errors


def model_server(
    weights: Annotated[Path, typer.Option(help="Directory of the model to serve: one .gguf file.")],
    port: Annotated[
        int, typer.Option(help="Port on 127.0.0.1; 0 picks a free one (printed when ready).")
    ] = 0,
) -> None:
    """Serve a real model from its own files as a Messages-compatible API on 127.0.0.1.

    Decoding is greedy, so the same request always gets the same answer; usage counts the
    model's real tokens and stop_reason says whether it ended (end_turn) or ran out of
    max_tokens; one request is generated at a time. Prints "listening on URL" once the
    model is loaded: point the anthropic SDK, or SUNSET_MESSAGES_BASE_URL, at that URL.
    Stops on Ctrl-C. Needs pip install 'sunset[local-model]'.
    """
    from sunset.local_model import LocalModel, LocalModelResponder
    from sunset.messages_api.app import create_app
    from sunset.messages_api.server import serve

    with plain_errors():
        errors.print(f"Loading the model from {weights} (15-30 s on 2 cores) ...")
        loaded = LocalModel.load(weights)
        errors.print(f"Loaded {loaded.files.gguf_file} in {loaded.load_seconds:.1f} s.")
    serve(create_app(LocalModelResponder(loaded)), host="127.0.0.1", port=port)
