"""The Anthropic Messages wire format, served over HTTP for any :class:`Responder`.

``sunset model-server`` puts a real local model behind it (``sunset/local_model.py``);
the development harness builds its stand-in on the same app (``sunset_dev``).

Modules, in the order a request meets them: ``app`` (HTTP routes, ids, the
``POST /v1/messages`` endpoint), ``request`` (parsing and validation), ``responder`` (the
protocol a text generator implements, and how its reply is cut to the request), ``replies``
(the message as JSON or as Server-Sent Events), ``errors`` (the API's error bodies),
``tokens`` (the simple token rule), ``server`` (running an app with uvicorn).
"""
