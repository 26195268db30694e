"""Google push: Calendar channel notifications and Gmail's Pub/Sub pushes. Verify, record, 200.

Calendar (`POST /webhooks/google/calendar`): the notification has no body and no signature;
what authenticates it is the channel's random token and resource id, so the channel id, token
and resource id are checked against the stored channel (token in constant time) before anything
else. `sync` (the channel works) is acknowledged and nothing more; `exists` / `not_exists`
("the calendar changed") are recorded durably and the user's sync enqueued.
https://developers.google.com/workspace/calendar/api/guides/push

Gmail (`POST /webhooks/google/pubsub`): the Pub/Sub OIDC token is verified (signature, issuer,
audience, the push subscription's service account, verified e-mail) before the body is read;
then the message is decoded and recorded, and a look at the user's new mail enqueued.
https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions

Neither does a provider call: Google counts slow answers as failures.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from typing import Any, Final, NoReturn

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import (
    BadRequest,
    Forbidden,
    HTTPException,
    RequestEntityTooLarge,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedMediaType,
)

from gmail.identity import GoogleCertsUnavailable, InvalidGoogleToken
from services.mailboxes import MAIL_WATCH_KIND
from services.notifications import (
    Incoming,
    channel_is_valid,
    record_mail_push,
    record_notifications,
)
from services.tables import Provider

__all__ = ["blueprint"]

log = logging.getLogger(__name__)

blueprint = Blueprint("webhooks_google", __name__, url_prefix="/webhooks/google")

RESOURCE_STATES: Final = ("sync", "exists", "not_exists")
# Calendar notifications have no body; a Pub/Sub push of Gmail's small message is about 1 KB.
MAX_CALENDAR_BODY_BYTES: Final = 4096
MAX_PUSH_BODY_BYTES: Final = 64 * 1024
_HEADER_VALUE: Final = re.compile(r"[\x21-\x7e]{1,256}")
_MESSAGE_NUMBER: Final = re.compile(r"\d{1,20}")
_HISTORY_ID: Final = re.compile(r"\d{1,30}")
_EMAIL: Final = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}")


@blueprint.post("/calendar")
def calendar() -> Response:
    """The Calendar channels' address."""
    channel_id = _header("X-Goog-Channel-ID")
    token = request.headers.get("X-Goog-Channel-Token", "")
    resource_id = _header("X-Goog-Resource-ID")
    state = _header("X-Goog-Resource-State")
    if state not in RESOURCE_STATES:
        _refuse(BadRequest(f"X-Goog-Resource-State must be one of {', '.join(RESOURCE_STATES)}"))
    number = request.headers.get("X-Goog-Message-Number", "")
    if not _MESSAGE_NUMBER.fullmatch(number):
        _refuse(BadRequest("X-Goog-Message-Number must be a number"))
    if (request.content_length or 0) > MAX_CALENDAR_BODY_BYTES:
        _refuse(RequestEntityTooLarge("Calendar notifications have no body"))
    container = current_app.extensions["container"]
    if state == "sync":  # "the channel is set up": nothing changed yet
        with container.uow(read_only=True) as uow:
            valid = channel_is_valid(uow, Provider.GOOGLE, channel_id, token, resource_id)
        if not valid:
            _refuse(Forbidden("the channel could not be verified"))
        return Response(status=200)
    item = Incoming(
        subscription_id=channel_id,
        client_state=token,
        payload={"resource_state": state, "message_number": number, "resource_id": resource_id},
        resource=resource_id,
    )
    with container.uow() as uow:
        recorded = record_notifications(uow, Provider.GOOGLE, [item])
    if recorded.rejected:
        _refuse(Forbidden("the channel could not be verified"))
    _enqueue(container, "sync_mailbox", recorded.mailboxes_to_sync)
    return Response(status=200)


@blueprint.post("/pubsub")
def pubsub() -> Response:
    """The Gmail watch topic's push subscription endpoint."""
    container = current_app.extensions["container"]
    settings = container.settings
    if not (settings.google_pubsub_audience and settings.google_pubsub_service_account):
        _refuse(ServiceUnavailable("Gmail push is not configured on this service"))
    _verify_push_token(
        container, settings.google_pubsub_audience, settings.google_pubsub_service_account
    )
    if request.mimetype != "application/json":
        _refuse(UnsupportedMediaType("send the push as application/json"))
    request.max_content_length = MAX_PUSH_BODY_BYTES
    address, history_id, message_id = _gmail_message(request.get_json(silent=True))
    with container.uow() as uow:
        mailbox_id = record_mail_push(
            uow,
            address=address,
            history_id=history_id,
            message_id=message_id,
            kind=MAIL_WATCH_KIND,
        )
    # An unwatched address or a redelivery is acknowledged too: Pub/Sub would only send it again.
    if mailbox_id is not None:
        _enqueue(container, "gmail_news", [mailbox_id])
    return Response(status=200)


def _verify_push_token(container: Any, audience: str, service_account: str) -> None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        _refuse(Unauthorized("a Pub/Sub push carries an OIDC token: Authorization: Bearer"))
    try:
        container.google_id_tokens.verify(
            token.strip(), audiences=[audience], email=service_account, require_verified_email=True
        )
    except InvalidGoogleToken as invalid:
        log.warning("pubsub.rejected reason=%s", invalid.reason)
        _refuse(Unauthorized(f"the push token is not valid: {invalid.reason}"))
    except GoogleCertsUnavailable:
        # Pub/Sub retries a 503 later; nothing is lost.
        _refuse(ServiceUnavailable("Google's signing certificates cannot be read right now"))


def _gmail_message(body: Any) -> tuple[str, str, str]:
    """(emailAddress, historyId, messageId) of a push envelope, or 400."""
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, dict):
        _refuse(BadRequest("the push has no message"), {"message": ["Missing data."]})
    message_id = message.get("messageId") or message.get("message_id")
    if not isinstance(message_id, str) or not _HEADER_VALUE.fullmatch(message_id):
        _refuse(BadRequest("the message has no messageId"), {"message.messageId": ["Missing."]})
    data = message.get("data")
    try:
        text = base64.urlsafe_b64decode(str(data) + "=" * (-len(str(data)) % 4))
        decoded = json.loads(text)
    except (binascii.Error, ValueError):
        _refuse(BadRequest("message.data is not base64 JSON"), {"message.data": ["Not valid."]})
    if not isinstance(decoded, dict):
        _refuse(BadRequest("message.data is not a JSON object"), {"message.data": ["Not valid."]})
    address = decoded.get("emailAddress")
    history_id = decoded.get("historyId")
    if isinstance(history_id, int):
        history_id = str(history_id)
    errors: dict[str, list[str]] = {}
    if not isinstance(address, str) or not _EMAIL.fullmatch(address):
        errors["message.data.emailAddress"] = ["Not a valid e-mail address."]
    if not isinstance(history_id, str) or not _HISTORY_ID.fullmatch(history_id):
        errors["message.data.historyId"] = ["Not a valid history id."]
    if errors:
        _refuse(BadRequest("the Gmail notification is not valid"), errors)
    return str(address).strip().lower(), str(history_id), message_id


def _header(name: str) -> str:
    value = request.headers.get(name, "")
    if not _HEADER_VALUE.fullmatch(value):
        _refuse(BadRequest(f"{name} is missing or not valid"))
    return value


def _enqueue(container: Any, task: str, mailbox_ids: list[int]) -> None:
    """Recorded is durable: if the queue is down, the sweeper enqueues these jobs later."""
    try:
        for mailbox_id in mailbox_ids:
            container.tasks[task](mailbox_id)
    except Exception:
        log.exception("webhook.enqueue_failed task=%s mailboxes=%s", task, len(mailbox_ids))


def _refuse(error: HTTPException, field_errors: Any = None) -> NoReturn:
    """Raise for the app's error handler, which answers in the one JSON error shape."""
    if field_errors is not None:
        error.data = {"messages": field_errors}  # type: ignore[attr-defined]
    raise error
