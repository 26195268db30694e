"""/api/v1/admin: connecting the Microsoft 365 tenant or Google Workspace domain, sync health per
mailbox, metrics (E2).

Admin API keys only: an add-in user's token never reaches these.
"""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from addin.context import container, principal
from services import mailboxes, metrics
from services.auth import PrincipalKind
from services.errors import Conflict, Forbidden

blp = Blueprint(
    "admin", __name__, url_prefix="/admin", description="Tenant connection, sync health, metrics"
)


@blp.before_request
def _admins_only() -> None:
    # Runs after authentication (the app-level hook): the principal is known here.
    if principal().kind is not PrincipalKind.API_KEY:
        raise Forbidden("admin endpoints need an admin API key")


class MailboxHealthOut(Schema):
    mailbox_id = fields.Integer()
    provider = fields.String()
    address = fields.String()
    active = fields.Boolean()
    subscription_expires_at = fields.DateTime(
        allow_none=True,
        metadata={"description": "Graph subscription or Google Calendar channel."},
    )
    mail_watch_expires_at = fields.DateTime(
        allow_none=True, metadata={"description": "Google users' Gmail watch (second signal)."}
    )
    last_notification_at = fields.DateTime(allow_none=True)
    last_sync_at = fields.DateTime(allow_none=True)
    last_error = fields.String(allow_none=True, metadata={"description": "In words."})
    last_error_at = fields.DateTime(allow_none=True)
    pending_notifications = fields.Integer()


class MailboxHealthList(Schema):
    items = fields.List(fields.Nested(MailboxHealthOut))


class GoogleConnectIn(Schema):
    domain = fields.String(
        required=True,
        validate=validate.Regexp(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"),
        metadata={"description": "The Workspace primary domain, e.g. contoso.com."},
    )


class GoogleConnectOut(Schema):
    domain = fields.String()
    status = fields.String(metadata={"description": "'queued': the user list is being read."})


class ConnectOut(Schema):
    tenant_id = fields.String()
    status = fields.String(metadata={"description": "'queued': the mailbox list is being read."})


@blp.route("/mailboxes")
class Mailboxes(MethodView):
    @blp.response(200, MailboxHealthList)
    def get(self) -> dict[str, Any]:
        """Per mailbox: subscription expiry, last notification, last sync, last error."""
        with container().uow(read_only=True) as uow:
            return {"items": mailboxes.mailbox_health(uow, principal().org_id)}


@blp.route("/microsoft/connect")
class ConnectMicrosoft(MethodView):
    @blp.response(202, ConnectOut)
    def post(self) -> dict[str, Any]:
        """Connect the organization to the tenant MS_TENANT_ID; mailboxes and subscriptions follow.

        The mailbox list is read, and each mailbox subscribed and synced, by the worker.
        """
        settings = container().settings
        if not settings.graph_configured:
            raise Conflict(
                "Microsoft Graph is not configured: set MS_TENANT_ID, MS_CLIENT_ID and "
                "MS_CLIENT_SECRET"
            )
        tenant_id = settings.ms_tenant_id or ""
        org_id = principal().org_id
        mailboxes.connect_tenant(container().uow, org_id=org_id, tenant_id=tenant_id)
        container().tasks["refresh_mailboxes"](org_id)
        return {"tenant_id": tenant_id, "status": "queued"}


@blp.route("/google/connect")
class ConnectGoogle(MethodView):
    @blp.arguments(GoogleConnectIn)
    @blp.response(202, GoogleConnectOut)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Connect the organization to a Google Workspace domain; calendars and channels follow.

        The user list (Admin SDK Directory, or GOOGLE_WATCH_USERS) is read, and each user's
        Calendar channel, Gmail watch and first sync set up, by the worker.
        """
        if not container().settings.google_configured:
            raise Conflict(
                "Google is not configured: set GOOGLE_SERVICE_ACCOUNT_FILE and GOOGLE_ADMIN_EMAIL"
            )
        org_id = principal().org_id
        domain = body["domain"].lower()
        mailboxes.connect_domain(container().uow, org_id=org_id, domain=domain)
        container().tasks["refresh_mailboxes"](org_id, "google")
        return {"domain": domain, "status": "queued"}


@blp.route("/metrics")
class Metrics(MethodView):
    @blp.doc(responses={200: {"description": "Prometheus text format 0.0.4"}})
    def get(self) -> Response:
        """Counters (notifications, provider errors, syncs) and gauges (queue depth, sync lag)."""
        app_container = container()
        with app_container.uow(read_only=True) as uow:
            counters = metrics.snapshot_counters(uow)
            lag = metrics.sync_lag_seconds(uow)
        gauges = [
            metrics.Gauge(
                "mtc_queue_depth", "Jobs waiting in the queue.", app_container.queue.pending_count()
            ),
            metrics.Gauge(
                "mtc_sync_lag_seconds", "Age of the oldest notification not yet synced.", lag
            ),
        ]
        body = metrics.render(counters, gauges)
        return Response(
            body, mimetype="text/plain", content_type="text/plain; version=0.0.4; charset=utf-8"
        )
