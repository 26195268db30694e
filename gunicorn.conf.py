"""gunicorn settings, read automatically from the working directory (`make run`, production).

Command-line flags override these; `gunicorn 'wsgi:create_app()'` is all a deployment needs.
"""

from __future__ import annotations

import gc
from typing import Any

bind = "127.0.0.1:5000"
workers = 2
timeout = 30


def post_worker_init(worker: Any) -> None:
    """Move everything built at start-up (modules, the app, the engine) out of the garbage
    collector's reach: full collections then scan only per-request objects, which removes the
    tens-of-milliseconds pauses that otherwise land on random requests."""
    gc.freeze()
