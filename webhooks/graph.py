"""Microsoft Graph change and lifecycle notifications: verify, record, enqueue, 202.

Checks run in a fixed order and the first failure answers: validation handshake; content type
and size (415, 413); schema (400); each item's clientState against its subscription in constant
time (items that fail are dropped and logged; none valid is 403). The valid items are recorded
durably and their mailboxes' syncs enqueued (services.notifications), then 202. No provider call
and no domain work: Graph wants an answer within 3 seconds and drops slow endpoints.

PlainBatches, a WSGI middleware in front of Flask, records Graph's common case, a plainly
valid change batch whose items all verify, and answers its 202 without Flask's per-request
machinery (which cost about as much CPU as recording). Everything else is handed to the Flask
route below, which checks and answers as described.

https://learn.microsoft.com/graph/change-notifications-delivery-webhooks
https://learn.microsoft.com/graph/change-notifications-lifecycle-events
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, NoReturn

from flask import Blueprint, Flask, Response, current_app, request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate
from werkzeug.exceptions import (
    BadRequest,
    Forbidden,
    HTTPException,
    LengthRequired,
    RequestEntityTooLarge,
    UnsupportedMediaType,
)

from services.notifications import Incoming, Recorded, record_notifications
from services.tables import Provider

__all__ = ["PlainBatches", "blueprint"]

log = logging.getLogger(__name__)

blueprint = Blueprint("webhooks_graph", __name__, url_prefix="/webhooks/graph")
NOTIFICATIONS_PATH: Final = "/webhooks/graph/notifications"
# What PlainBatches did with a request it hands to the Flask route: the Recorded of a batch
# with no item verified, or the exception recording raised. The route answers from it.
_HANDED_OVER: Final = "meeting_to_crm.graph_notifications.recorded"

# Graph batches notifications without a documented maximum; a burst for many mailboxes can
# come as thousands of items (~450 bytes each). Refusing a real batch loses it for good, so
# the limits are generous: they only stop bodies no publisher of notifications would send.
MAX_BODY_BYTES: Final = 8 * 1024 * 1024
MAX_ITEMS: Final = 20_000
# Graph's validation tokens are opaque and short; refuse to echo anything unreasonable.
MAX_VALIDATION_TOKEN_CHARS: Final = 1024
CHANGE_TYPES: Final = ("created", "updated", "deleted")
LIFECYCLE_EVENTS: Final = ("reauthorizationRequired", "subscriptionRemoved", "missed")


class _ResourceData(Schema):
    class Meta:
        unknown = EXCLUDE

    id = fields.String(required=True, validate=validate.Length(min=1, max=1024))
    etag = fields.String(data_key="@odata.etag", load_default=None)


class _Notification(Schema):
    """One changeNotification; unknown fields are ignored (Graph adds fields over time)."""

    class Meta:
        unknown = EXCLUDE

    subscriptionId = fields.String(required=True, validate=validate.Length(min=1, max=256))
    clientState = fields.String(load_default="", validate=validate.Length(max=256))
    tenantId = fields.String(load_default=None, validate=validate.Length(max=64))
    subscriptionExpirationDateTime = fields.String(load_default=None)


class _Change(_Notification):
    changeType = fields.String(required=True, validate=validate.OneOf(CHANGE_TYPES))
    resource = fields.String(required=True, validate=validate.Length(min=1, max=2048))
    resourceData = fields.Nested(_ResourceData, required=True)


class _Lifecycle(_Notification):
    lifecycleEvent = fields.String(required=True, validate=validate.OneOf(LIFECYCLE_EVENTS))


class _Collection(Schema):
    class Meta:
        unknown = EXCLUDE

    value = fields.List(
        fields.Dict(), required=True, validate=validate.Length(min=1, max=MAX_ITEMS)
    )


_COLLECTION = _Collection()
_CHANGE = _Change()
_LIFECYCLE = _Lifecycle()


@blueprint.post("/notifications")
def notifications() -> Response:
    """The subscriptions' notificationUrl."""
    return _receive(_CHANGE, _change_incoming, _plain_changes)


@blueprint.post("/lifecycle")
def lifecycle() -> Response:
    """The subscriptions' lifecycleNotificationUrl."""
    return _receive(_LIFECYCLE, _lifecycle_incoming)


def _receive(
    item_schema: Schema,
    to_incoming: Any,
    plain: Callable[[dict[str, Any]], list[Incoming] | None] | None = None,
) -> Response:
    handed_over = request.environ.pop(_HANDED_OVER, None)
    if isinstance(handed_over, Exception):
        raise handed_over  # PlainBatches could not record: answered as an error here
    token = request.args.get("validationToken")
    if token is not None:
        return _validation_answer(token)
    _check_envelope()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        _refuse(BadRequest("the body is not a JSON object"))
    incoming = plain(body) if plain is not None else None
    if incoming is None:  # not a plainly valid batch: the schema decides, and names the errors
        try:
            items = _COLLECTION.load(body)["value"]
            loaded = [item_schema.load(item) for item in items]
        except ValidationError as invalid:
            _refuse(BadRequest("the notification batch is not valid"), invalid.messages)
        incoming = [to_incoming(item) for item in loaded]
    container = current_app.extensions["container"]
    recorded = handed_over if handed_over is not None else _record(container, incoming)
    if not _accepted(container, recorded):
        _refuse(Forbidden("no notification in the batch could be verified"))
    return Response(status=202)


def _record(container: Any, incoming: list[Incoming]) -> Recorded:
    with container.uow() as uow:
        return record_notifications(uow, Provider.MICROSOFT, incoming)


def _accepted(container: Any, recorded: Recorded) -> bool:
    """Enqueue what the recording asks for; False when nothing in the batch verified (403)."""
    if recorded.accepted == 0 and recorded.rejected > 0:
        return False
    _enqueue(container, recorded.mailboxes_to_sync, recorded.lifecycle_ids)
    return True


class PlainBatches:
    """WSGI middleware: a POST to the notificationUrl carrying a plainly valid change batch
    (application/json, a Content-Length within MAX_BODY_BYTES, JSON that _plain_changes reads)
    is recorded here and answered 202, the same answer as the route's. Any other request, a
    batch with no item verified, or a failure to record goes to `wsgi_app` (the Flask app),
    with the body put back and what was done attached (_HANDED_OVER), so the route answers it
    in the app's error shape without recording twice.

    Install it as `app.wsgi_app = PlainBatches(app, ...)`. `accepted` is the app's 202 as its
    hooks finish it; its X-Request-Id is replaced per request by `request_id(environ)`.
    """

    def __init__(
        self,
        app: Flask,
        *,
        accepted: Response,
        request_id: Callable[[Mapping[str, Any]], str],
    ) -> None:
        self.wsgi_app = app.wsgi_app
        self.extensions = app.extensions  # the container, read per request as the route does
        self.request_id = request_id
        self.status = accepted.status
        self.headers = [
            (name, value)
            # As the response would send them (Content-Length is added then); no Location to fix.
            for name, value in accepted.get_wsgi_headers({}).to_wsgi_list()
            if name.lower() != "x-request-id"
        ]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        incoming = self._plain_batch(environ)
        if incoming is not None:
            container = self.extensions["container"]
            try:
                recorded = _record(container, incoming)
            except Exception as error:  # noqa: BLE001 - the route answers it, logged there
                environ[_HANDED_OVER] = error
            else:
                if _accepted(container, recorded):
                    start_response(
                        self.status, [*self.headers, ("X-Request-Id", self.request_id(environ))]
                    )
                    return []
                environ[_HANDED_OVER] = recorded
        return self.wsgi_app(environ, start_response)

    @staticmethod
    def _plain_batch(environ: dict[str, Any]) -> list[Incoming] | None:
        """The items when the request is a plainly valid change batch, None otherwise."""
        if (
            environ.get("PATH_INFO") != NOTIFICATIONS_PATH
            or environ.get("REQUEST_METHOD") != "POST"
            or environ.get("QUERY_STRING")  # the validation handshake, or something unusual
            or environ.get("HTTP_TRANSFER_ENCODING")  # chunked: no length to check (411)
        ):
            return None
        mimetype = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
        length = environ.get("CONTENT_LENGTH", "")
        if not (mimetype == "application/json" and length.isascii() and length.isdigit()):
            return None
        if not 0 < int(length) <= MAX_BODY_BYTES:
            return None
        body = environ["wsgi.input"].read(int(length))
        environ["wsgi.input"] = io.BytesIO(body)  # for the route, if the request goes there
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            return None
        return _plain_changes(parsed) if type(parsed) is dict else None


def _validation_answer(token: str) -> Response:
    """Echo the decoded token as text/plain; Graph fails the subscription otherwise."""
    if not token or len(token) > MAX_VALIDATION_TOKEN_CHARS:
        _refuse(BadRequest("the validationToken is empty or too long"))
    response = Response(token, status=200, mimetype="text/plain")
    response.headers["X-Content-Type-Options"] = "nosniff"  # never rendered as HTML
    return response


def _check_envelope() -> None:
    """Content type, then size, before the body is read."""
    if request.mimetype != "application/json":
        _refuse(UnsupportedMediaType("send notifications as application/json"))
    length = request.content_length
    request.max_content_length = MAX_BODY_BYTES  # the app-wide limit is for the JSON API
    if length is None:
        _refuse(LengthRequired("send Content-Length: Graph always does"))
    if length > MAX_BODY_BYTES:
        _refuse(RequestEntityTooLarge(f"a notification batch is at most {MAX_BODY_BYTES} bytes"))


def _change_incoming(item: dict[str, Any]) -> Incoming:
    return Incoming(
        subscription_id=item["subscriptionId"],
        client_state=item["clientState"],
        payload={
            "event_id": item["resourceData"]["id"],
            "change_type": item["changeType"],
            "etag": item["resourceData"]["etag"],
            "resource": item["resource"],
            "tenant_id": item["tenantId"],
        },
    )


def _plain_changes(body: dict[str, Any]) -> list[Incoming] | None:
    """The batch as _change_incoming(_CHANGE.load(item)) would give it, when every item is
    plainly valid (strings where _Change wants strings, within its lengths); None otherwise.

    Graph's batches always are, and this costs a tenth of the schema's load. Anything else,
    however unusual, returns None and goes through the schema, which accepts or refuses it and
    names the fields: this never accepts an item that _Change refuses.
    """
    items = body.get("value")
    if type(items) is not list or not 1 <= len(items) <= MAX_ITEMS:
        return None
    incoming: list[Incoming] = []
    for item in items:
        if type(item) is not dict:
            return None
        subscription_id = item.get("subscriptionId")
        client_state = item.get("clientState", "")
        tenant_id = item.get("tenantId")
        expiry = item.get("subscriptionExpirationDateTime")
        change_type = item.get("changeType")
        resource = item.get("resource")
        data = item.get("resourceData")
        if not (
            type(subscription_id) is str
            and 1 <= len(subscription_id) <= 256
            and type(client_state) is str
            and len(client_state) <= 256
            and (tenant_id is None or (type(tenant_id) is str and len(tenant_id) <= 64))
            and (expiry is None or type(expiry) is str)
            and change_type in CHANGE_TYPES
            and type(change_type) is str
            and type(resource) is str
            and 1 <= len(resource) <= 2048
            and type(data) is dict
        ):
            return None
        event_id = data.get("id")
        etag = data.get("@odata.etag")
        if not (
            type(event_id) is str
            and 1 <= len(event_id) <= 1024
            and (etag is None or type(etag) is str)
        ):
            return None
        incoming.append(
            Incoming(
                subscription_id=subscription_id,
                client_state=client_state,
                payload={
                    "event_id": event_id,
                    "change_type": change_type,
                    "etag": etag,
                    "resource": resource,
                    "tenant_id": tenant_id,
                },
            )
        )
    return incoming


def _lifecycle_incoming(item: dict[str, Any]) -> Incoming:
    return Incoming(
        subscription_id=item["subscriptionId"],
        client_state=item["clientState"],
        payload={
            "lifecycle_event": item["lifecycleEvent"],
            "subscription_expires": item["subscriptionExpirationDateTime"],
            "tenant_id": item["tenantId"],
            # Graph may raise the same event again later; each occurrence must be handled.
            "request_id": request.headers.get("client-request-id") or uuid.uuid4().hex,
        },
        lifecycle_event=item["lifecycleEvent"],
    )


def _enqueue(container: Any, mailbox_ids: list[int], lifecycle_ids: list[int]) -> None:
    """Recorded is durable: if the queue is down, the sweeper enqueues these syncs later."""
    try:
        for mailbox_id in mailbox_ids:
            container.tasks["sync_mailbox"](mailbox_id)
        for notification_id in lifecycle_ids:
            container.tasks["graph_lifecycle"](notification_id)
    except Exception:
        log.exception("webhook.enqueue_failed mailboxes=%s", len(mailbox_ids))


def _refuse(error: HTTPException, field_errors: Any = None) -> NoReturn:
    """Raise for the app's error handler, which answers in the one JSON error shape."""
    if field_errors is not None:
        error.data = {"messages": field_errors}  # type: ignore[attr-defined]
    raise error
