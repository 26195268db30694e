"""The CRM JSON API under /api/v1 (flask-smorest: marshmallow schemas, OpenAPI)."""

from __future__ import annotations

from flask import Flask, request
from flask_smorest import Api

from addin.api import activities, admin, companies, contacts, suggest, users
from addin.auth import require_principal

BLUEPRINTS = (companies.blp, contacts.blp, activities.blp, suggest.blp, users.blp, admin.blp)


def init_api(app: Flask) -> Api:
    app.config.update(
        API_TITLE="Meeting-to-CRM API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_REDOC_PATH="/docs",
        # Served from our own static folder: no third-party CDN.
        OPENAPI_REDOC_URL="/static/vendor/redoc.standalone.js",
        API_SPEC_OPTIONS={
            "components": {
                "securitySchemes": {
                    "bearer": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "An admin API key (mtc_...) or an add-in access token.",
                    }
                }
            },
            "security": [{"bearer": []}],
        },
    )
    api = Api(app)
    for blueprint in BLUEPRINTS:
        api.register_blueprint(blueprint, url_prefix=f"/api/v1{blueprint.url_prefix or ''}")
    # Blueprints are module-level and shared by every app the factory builds, so the
    # authentication hook is attached to the app, for exactly these blueprints.
    protected = {blueprint.name for blueprint in BLUEPRINTS}

    @app.before_request
    def _authenticate() -> None:
        if request.blueprint in protected:
            require_principal()

    return api
