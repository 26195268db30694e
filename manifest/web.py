"""GET /manifest.xml: the Outlook add-in manifest, for an admin to upload or link to.

Admins deploy it in the Microsoft 365 admin center (Settings > Integrated apps > Upload custom
apps); event-based activation works only for admin-deployed add-ins:
https://learn.microsoft.com/office/dev/add-ins/develop/event-based-activation
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import BadRequest, ServiceUnavailable

from manifest import outlook

if TYPE_CHECKING:
    from bootstrap import Container

blueprint = Blueprint("manifest", __name__)


@blueprint.get("/manifest.xml")
def outlook_manifest_xml() -> Response:
    """The manifest; `?send_mode=SoftBlock|PromptUser|off` sets the Smart Alerts policy.

    503 in the JSON error shape when the settings cannot make a manifest (ADDIN_ID unset,
    PUBLIC_BASE_URL not https): the message names the variable to set.
    """
    try:
        policy = outlook.as_send_policy(request.args.get("send_mode", outlook.DEFAULT_SEND_POLICY))
    except ValueError as error:
        raise BadRequest(str(error)) from None
    settings = cast("Container", current_app.extensions["container"]).settings
    try:
        document = outlook.outlook_manifest(settings, send_policy=policy)
    except outlook.ManifestError as error:
        raise ServiceUnavailable(str(error)) from None
    response = Response(document, mimetype="application/xml")
    response.headers["Cache-Control"] = "no-cache"
    return response
