"""The floor for the webhook benchmark: a Flask app whose notification route only answers 202.

Served by the same gunicorn configuration as the product (`gunicorn 'bench.bare_app:create_app()'`
from the repository root, so gunicorn.conf.py applies): what is left of a webhook request when
the product does no work at all (HTTP parsing, Flask routing, the worker model).
"""

from __future__ import annotations

from flask import Flask, Response


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/webhooks/graph/notifications")
    def notifications() -> Response:
        return Response(status=202)

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok", mimetype="text/plain")

    return app
