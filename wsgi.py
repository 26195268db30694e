"""The Flask app factory, the JSON error shape, health endpoints and the CLI.

gunicorn runs `wsgi:create_app()`; the CLI is `flask --app wsgi ...`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from flask import Flask, Request, Response, current_app, g, jsonify, request
from flask.cli import with_appcontext
from flask.sessions import SessionInterface, SessionMixin
from marshmallow import ValidationError
from sqlalchemy import select, text
from werkzeug.exceptions import HTTPException, UnsupportedMediaType

import bootstrap
from addin import google as addin_google
from addin import web as addin_web
from addin.api import init_api
from addin.auth import api_key_authenticator
from manifest import google as google_manifest
from manifest import outlook
from manifest.web import blueprint as manifest_blueprint
from services import auth, errors, importer, organizations, sample_data
from services.errors import DomainError
from services.tables import Organization
from services.unit_of_work import UnitOfWork
from webhooks import google as google_webhooks
from webhooks import graph as graph_webhooks

log = logging.getLogger("crm.web")

ROOT = Path(__file__).resolve().parent

_STATUS_OF_DOMAIN_ERROR: dict[type[DomainError], int] = {
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.InvalidInput: 422,
    errors.NotAuthenticated: 401,
    errors.Forbidden: 403,
}
_CODE_OF_STATUS = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


def error_response(
    status: int, message: str, *, code: str | None = None, field_errors: Any = None
) -> Response:
    """The one error shape of every 4xx and 5xx: {code, status, message, errors}."""
    body = {
        "code": code or _CODE_OF_STATUS.get(status, "error"),
        "status": status,
        "message": message,
        "errors": field_errors or {},
    }
    response = jsonify(body)
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="meeting-to-crm"'
    return response


def _flatten_webargs(messages: Any) -> Any:
    """webargs nests messages by location ({"json": {...}}); clients want the fields."""
    if isinstance(messages, dict) and set(messages) <= {"json", "query", "form", "view_args"}:
        merged: dict[str, Any] = {}
        for location_messages in messages.values():
            if isinstance(location_messages, dict):
                merged.update(location_messages)
            else:
                merged["_body"] = location_messages
        return merged
    return messages


def _handle_http_error(error: HTTPException) -> Response:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    field_errors = _flatten_webargs(data.get("messages")) if data else None
    if status == 400 and field_errors and "_body" in field_errors:
        return error_response(400, "the request body is not valid JSON", code="malformed_json")
    message = error.description or "error"
    if status == 422:
        message = "the request has invalid fields"
    return error_response(status, message, field_errors=field_errors)


def _handle_domain_error(error: DomainError) -> Response:
    # The nearest mapped class: a subclass (identities.NotConnected) answers as its parent.
    status = next(
        (_STATUS_OF_DOMAIN_ERROR[c] for c in type(error).__mro__ if c in _STATUS_OF_DOMAIN_ERROR),
        400,
    )
    return error_response(status, error.message, code=error.code, field_errors=error.errors)


def _handle_validation_error(error: ValidationError) -> Response:
    return error_response(422, "the request has invalid fields", field_errors=error.messages)


def _handle_unexpected(error: Exception) -> Response:
    log.exception("web.unhandled_error request_id=%s", g.get("request_id"))
    return error_response(500, f"internal error (request id {g.get('request_id', '-')})")


def _require_json_body() -> None:
    """A body must be JSON; anything else is a 415 before any parsing.

    Webhooks check their own envelope: Graph's validation handshake posts text/plain.
    """
    if request.blueprint and request.blueprint.startswith("webhooks_"):
        return
    has_body = request.method in ("POST", "PUT", "PATCH") and bool(request.content_length)
    if has_body and not request.is_json:
        raise UnsupportedMediaType("send the body as application/json")


def _request_id_of(environ: Mapping[str, Any]) -> str:
    """The caller's X-Request-Id (64 characters at most), or a new one."""
    return environ.get("HTTP_X_REQUEST_ID", "")[:64] or uuid.uuid4().hex


def _security_headers(response: Response) -> Response:
    return _secured(response, request_id=g.get("request_id", ""))


def _secured(response: Response, *, request_id: str) -> Response:
    """The headers every answer carries."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers["X-Request-Id"] = request_id
    return response


class _NoCookieSession(SessionInterface):
    """Nobody signs in with a cookie here (API keys, Entra and Google tokens, signed provider
    requests), so no request reads or signs one: Flask's cookie session costs every request,
    webhooks included, about 0.1 ms of CPU for nothing. flask.session is a NullSession, which
    refuses writes."""

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        return None

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        return None


def create_app(settings: bootstrap.Settings | None = None) -> Flask:
    settings = settings or bootstrap.Settings.from_env()
    bootstrap.configure_logging(settings)
    container = bootstrap.build(settings)

    app = Flask(__name__, static_folder=str(ROOT / "addin" / "static"), static_url_path="/static")
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        JSON_SORT_KEYS=False,
        TESTING=settings.environment == "test",
    )
    app.session_interface = _NoCookieSession()
    app.extensions["container"] = container
    app.extensions["authenticators"] = [api_key_authenticator()]
    if settings.ms_client_id:  # the Outlook task pane's Entra access tokens
        from addin.entra import entra_authenticator

        app.extensions["authenticators"].append(entra_authenticator(settings))

    @app.before_request
    def _request_id() -> None:
        g.request_id = _request_id_of(request.environ)

    init_api(app)  # authenticates API requests: who is asking comes before what they send
    app.register_blueprint(graph_webhooks.blueprint)
    app.register_blueprint(google_webhooks.blueprint)
    app.register_blueprint(manifest_blueprint)
    app.register_blueprint(addin_web.blueprint)  # task pane, event runtime, icons
    app.register_blueprint(addin_google.bp)  # Google Workspace add-on (HTTP runtime)
    app.before_request(_require_json_body)
    app.after_request(_security_headers)
    # Registered after flask-smorest's own handler so that ours wins.
    app.register_error_handler(HTTPException, _handle_http_error)
    app.register_error_handler(DomainError, _handle_domain_error)
    app.register_error_handler(ValidationError, _handle_validation_error)
    app.register_error_handler(Exception, _handle_unexpected)

    _register_health(app)
    _register_cli(app)
    # Graph's plain notification batches are recorded and answered before Flask (the hot path).
    app.wsgi_app = graph_webhooks.PlainBatches(  # type: ignore[method-assign]
        app,
        accepted=_secured(Response(status=202), request_id=""),
        request_id=_request_id_of,
    )
    return app


def _register_health(app: Flask) -> None:
    @app.get("/healthz")
    def healthz() -> Response:
        """The process is up (liveness)."""
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> Response:
        """Database and queue reachable (readiness); 503 names what is not."""
        container: bootstrap.Container = current_app.extensions["container"]
        checks: dict[str, str] = {}
        try:
            with container.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as error:  # noqa: BLE001 - readiness reports any failure in words
            checks["database"] = f"unreachable: {type(error).__name__}"
        try:
            checks["queue"] = "ok"
            checks["queue_pending"] = str(container.queue.pending_count())
            heartbeat = container.queue.get("worker-heartbeat", peek=True)
            checks["worker_heartbeat"] = heartbeat if isinstance(heartbeat, str) else "none yet"
        except Exception as error:  # noqa: BLE001
            checks["queue"] = f"unreachable: {type(error).__name__}"
        ready = checks["database"] == "ok" and checks["queue"] == "ok"
        if not ready:
            return error_response(503, "not ready", code="not_ready", field_errors=checks)
        return jsonify(status="ready", checks=checks)


def _container() -> bootstrap.Container:
    return current_app.extensions["container"]  # type: ignore[no-any-return]


def _register_cli(app: Flask) -> None:
    app.cli.add_command(db_group)
    app.cli.add_command(crm_group)
    app.cli.add_command(graph_group)
    app.cli.add_command(google_group)
    app.cli.add_command(manifest_group)
    app.cli.add_command(worker_command)
    app.cli.add_command(serve_command)


# --- CLI ----------------------------------------------------------------------------------


def alembic_config(database_url: str) -> Any:
    from alembic.config import Config

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


@click.group("db", help="Database schema (Alembic migrations).")
def db_group() -> None:
    pass


@db_group.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Migrate the database up to REVISION (default: head)."""
    from alembic import command

    command.upgrade(alembic_config(_container().settings.database_url), revision)
    click.echo(f"database at {revision}")


@db_group.command("downgrade")
@click.argument("revision")
@with_appcontext
def db_downgrade(revision: str) -> None:
    """Migrate the database down to REVISION (e.g. base)."""
    from alembic import command

    command.downgrade(alembic_config(_container().settings.database_url), revision)
    click.echo(f"database at {revision}")


@click.group("crm", help="Organizations, users, API keys, imports and sample data.")
def crm_group() -> None:
    pass


def _org_id(uow: UnitOfWork, org: str | None) -> int:
    """--org takes an id or a name; with a single organization it may be left out."""
    organizations = list(uow.session.scalars(select(Organization)))
    if org is None:
        if len(organizations) == 1:
            return organizations[0].id
        raise click.UsageError("name the organization with --org (id or name)")
    for candidate in organizations:
        if str(candidate.id) == org or candidate.name == org:
            return candidate.id
    raise click.UsageError(f"no organization {org!r}")


@crm_group.command("create-org")
@click.argument("name")
@click.option("--domain", "domains", multiple=True, help="The organization's own e-mail domain.")
@click.option("--ms-tenant-id", help="Entra tenant id (GUID) this organization signs in with.")
@click.option("--google-domain", help="Google Workspace primary domain.")
@with_appcontext
def create_org(
    name: str, domains: tuple[str, ...], ms_tenant_id: str | None, google_domain: str | None
) -> None:
    """Create an organization (a tenant)."""
    with _container().uow() as uow:
        org = organizations.create_organization(
            uow,
            name=name,
            own_domains=domains,
            ms_tenant_id=ms_tenant_id,
            google_domain=google_domain,
        )
        uow.commit()
    click.echo(f"organization {org.id}: {org.name}")


@crm_group.command("add-user")
@click.argument("email")
@click.option("--name", "display_name", default="", help="Display name.")
@click.option("--org", help="Organization id or name.")
@with_appcontext
def add_user(email: str, display_name: str, org: str | None) -> None:
    """Add a CRM user."""
    with _container().uow() as uow:
        user = organizations.add_user(
            uow, org_id=_org_id(uow, org), email=email, display_name=display_name
        )
        uow.commit()
    click.echo(f"user {user.id}: {user.email}")


@crm_group.command("create-api-key")
@click.option("--name", required=True, help="What the key is for, e.g. 'ERP integration'.")
@click.option("--user", "user_email", help="Act as this user (sees their private activities).")
@click.option("--org", help="Organization id or name.")
@with_appcontext
def create_api_key(name: str, user_email: str | None, org: str | None) -> None:
    """Create an admin API key. The key is printed once; only its hash is stored."""
    with _container().uow() as uow:
        issued = auth.create_api_key(
            uow, org_id=_org_id(uow, org), name=name, user_email=user_email
        )
        uow.commit()
    click.echo(f"API key {issued.id} created. Send it as 'Authorization: Bearer <key>':")
    click.echo(issued.token)


@crm_group.command("revoke-api-key")
@click.argument("key_id", type=int)
@with_appcontext
def revoke_api_key(key_id: int) -> None:
    """Revoke an API key by its id."""
    with _container().uow() as uow:
        auth.revoke_api_key(uow, key_id)
        uow.commit()
    click.echo(f"API key {key_id} revoked")


def _run_import(kind: str, path: Path, org: str | None) -> None:
    with _container().uow(read_only=True) as uow:
        org_id = _org_id(uow, org)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        total = max(sum(1 for _ in handle) - 1, 0)
    with (
        path.open(newline="", encoding="utf-8-sig") as handle,
        click.progressbar(length=total, label=f"importing {kind}", file=None) as bar,
    ):
        report = importer.import_csv(_container().uow, org_id, kind, handle, progress=bar.update)
    if report.errors:
        click.echo(f"nothing imported: {len(report.errors)} row(s) have errors", err=True)
        for row_error in report.errors[:200]:
            click.echo(f"  line {row_error.line}: {row_error.message}", err=True)
        if len(report.errors) > 200:
            click.echo(f"  ... and {len(report.errors) - 200} more", err=True)
        raise SystemExit(1)
    click.echo(f"imported {report.created} {kind}, updated {report.updated}")


@crm_group.command("import-companies")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--org", help="Organization id or name.")
@with_appcontext
def import_companies(file: Path, org: str | None) -> None:
    """Import companies from CSV (columns: name, domains, website, phone, city, country, notes).

    All or nothing: when any row is bad, nothing is written and every bad row is listed.
    """
    _run_import("companies", file, org)


@crm_group.command("import-contacts")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--org", help="Organization id or name.")
@with_appcontext
def import_contacts(file: Path, org: str | None) -> None:
    """Import contacts from CSV (columns: first_name, last_name, emails, title, phone, company).

    All or nothing: when any row is bad, nothing is written and every bad row is listed.
    """
    _run_import("contacts", file, org)


@crm_group.command("load-sample-data")
@with_appcontext
def load_sample_data() -> None:
    """Load a sample organization (companies, contacts, users, meetings incl. a recurring one)."""
    with _container().uow() as uow:
        result = sample_data.load(uow)
        uow.commit()
    click.echo(result.summary)
    if result.api_key:
        click.echo(f"API key for {result.api_key_user}: {result.api_key}")


@click.group("graph", help="Microsoft 365: connect the tenant, sync health, manual syncs.")
def graph_group() -> None:
    pass


@graph_group.command("connect")
@click.option("--org", help="Organization id or name.")
@with_appcontext
def graph_connect(org: str | None) -> None:
    """Connect the organization to the tenant MS_TENANT_ID and read its mailbox list.

    The subscriptions and the first sync of each mailbox are queued: the worker
    (`flask --app wsgi worker`) must be running for them to happen.
    """
    from services import mailboxes
    from services.ports import ProviderError

    container = _container()
    if not container.settings.graph_configured:
        raise click.ClickException(
            "Microsoft Graph is not configured: set MS_TENANT_ID, MS_CLIENT_ID, MS_CLIENT_SECRET"
        )
    with container.uow(read_only=True) as uow:
        org_id = _org_id(uow, org)
    tenant = container.settings.ms_tenant_id or ""
    mailboxes.connect_tenant(container.uow, org_id=org_id, tenant_id=tenant)
    try:
        report = container.tasks["refresh_mailboxes"].call_local(org_id)
    except ProviderError as failure:
        raise click.ClickException(
            f"tenant {tenant} is connected, but its mailbox list could not be read: {failure} "
            f"({failure.reason}). Fix that and run this command again."
        ) from None
    click.echo(
        f"tenant {tenant} connected: {report['active']} mailboxes watched "
        f"({report['added']} new, {report['deactivated']} no longer watched); "
        f"{len(report['to_subscribe'])} subscriptions queued for the worker"
    )


@graph_group.command("health")
@click.option("--org", help="Organization id or name.")
@with_appcontext
def graph_health(org: str | None) -> None:
    """Per mailbox (Outlook and Google): push expiry, last notification, last sync, last error."""
    _print_health(org)


@graph_group.command("reconcile")
@click.argument("address", required=False)
@click.option("--org", help="Organization id or name.")
@with_appcontext
def graph_reconcile(address: str | None, org: str | None) -> None:
    """Queue a delta reconciliation of one mailbox (by address) or of all of them."""
    _queue_reconcile(address, org, "microsoft")


@click.group("google", help="Google Workspace: connect the domain, sync health, manual syncs.")
def google_group() -> None:
    pass


@google_group.command("connect")
@click.argument("domain")
@click.option("--org", help="Organization id or name.")
@with_appcontext
def google_connect(domain: str, org: str | None) -> None:
    """Connect the organization to a Workspace DOMAIN and read its users (or GOOGLE_WATCH_USERS).

    Each user's Calendar channel, Gmail watch and first sync are queued: the worker
    (`flask --app wsgi worker`) must be running for them to happen.
    """
    from services import mailboxes
    from services.ports import ProviderError

    container = _container()
    if not container.settings.google_configured:
        raise click.ClickException(
            "Google is not configured: set GOOGLE_SERVICE_ACCOUNT_FILE (and GOOGLE_ADMIN_EMAIL "
            "or GOOGLE_WATCH_USERS)"
        )
    with container.uow(read_only=True) as uow:
        org_id = _org_id(uow, org)
    mailboxes.connect_domain(container.uow, org_id=org_id, domain=domain)
    try:
        report = container.tasks["refresh_mailboxes"].call_local(org_id, "google")
    except ProviderError as failure:
        raise click.ClickException(
            f"domain {domain} is connected, but its users could not be read: {failure} "
            f"({failure.reason}). Fix that and run this command again."
        ) from None
    click.echo(
        f"domain {domain.lower()} connected: {report['active']} calendars watched "
        f"({report['added']} new, {report['deactivated']} no longer watched); "
        f"{len(report['to_subscribe'])} channels queued for the worker"
    )


@google_group.command("health")
@click.option("--org", help="Organization id or name.")
@with_appcontext
def google_health(org: str | None) -> None:
    """Per user (Google and Outlook): push expiry, last notification, last sync, last error."""
    _print_health(org)


@google_group.command("reconcile")
@click.argument("address", required=False)
@click.option("--org", help="Organization id or name.")
@with_appcontext
def google_reconcile(address: str | None, org: str | None) -> None:
    """Queue an incremental sync of one Google user's calendar (by address) or of all."""
    _queue_reconcile(address, org, "google")


def _print_health(org: str | None) -> None:
    from services import mailboxes

    container = _container()
    with container.uow(read_only=True) as uow:
        rows = mailboxes.mailbox_health(uow, _org_id(uow, org))

    def when(moment: Any) -> str:
        return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"

    click.echo(f"{'mailbox':<36} {'provider':<9} {'push expires':<16} {'mail watch':<16} "
               f"{'last notification':<17} {'last sync':<16} {'pending':>7}  "
               "last error")  # fmt: skip
    for row in rows:
        name = row.address if row.active else f"{row.address} (not watched)"
        click.echo(
            f"{name:<36} {row.provider:<9} {when(row.subscription_expires_at):<16} "
            f"{when(row.mail_watch_expires_at):<16} {when(row.last_notification_at):<17} "
            f"{when(row.last_sync_at):<16} {row.pending_notifications:>7}  "
            f"{row.last_error or '-'}"
        )


def _queue_reconcile(address: str | None, org: str | None, provider: str) -> None:
    from services import mailboxes

    container = _container()
    with container.uow(read_only=True) as uow:
        rows = mailboxes.mailbox_health(uow, _org_id(uow, org))
    wanted = address.strip().lower() if address else None
    chosen = [
        row
        for row in rows
        if row.active and row.provider == provider and wanted in (None, row.address)
    ]
    if address and not chosen:
        raise click.UsageError(f"no watched mailbox {address!r} at {provider}")
    for row in chosen:
        container.tasks["reconcile_mailbox"](row.mailbox_id)
    click.echo(f"{len(chosen)} reconciliations queued")


@click.group("manifest", help="Add-in manifests to deploy.")
def manifest_group() -> None:
    pass


@manifest_group.command("outlook")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the manifest to this file instead of stdout.",
)
@click.option(
    "--send-mode",
    type=click.Choice(outlook.SEND_POLICIES),
    default=outlook.DEFAULT_SEND_POLICY,
    show_default=True,
    help="Smart Alerts on send: SoftBlock, PromptUser, or off (no OnAppointmentSend).",
)
@with_appcontext
def manifest_outlook(output: Path | None, send_mode: str) -> None:
    """The Outlook add-in XML manifest: the same document GET /manifest.xml serves."""
    try:
        document = outlook.outlook_manifest(
            _container().settings, send_policy=outlook.as_send_policy(send_mode)
        )
    except outlook.ManifestError as error:
        raise click.ClickException(str(error)) from None
    if output is None:
        click.echo(document, nl=False)
    else:
        output.write_text(document, encoding="utf-8")
        click.echo(f"manifest written to {output}", err=True)


@manifest_group.command("google")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write the descriptor to this file instead of stdout.",
)
@with_appcontext
def manifest_google(output: Path | None) -> None:
    """The Google Workspace add-on deployment descriptor (JSON) for `gcloud workspace-add-ons`."""
    try:
        document = google_manifest.deployment_json(_container().settings)
    except google_manifest.ManifestError as error:
        raise click.ClickException(str(error)) from None
    if output is None:
        click.echo(document, nl=False)
    else:
        output.write_text(document, encoding="utf-8")
        click.echo(f"deployment descriptor written to {output}", err=True)


@click.command("worker")
@click.option("--workers", default=2, show_default=True, help="Worker threads.")
@with_appcontext
def worker_command(workers: int) -> None:
    """Run the job queue consumer (and its periodic tasks) until stopped."""
    from huey.consumer import Consumer

    container = _container()
    log.info("worker.start workers=%s queue=%s", workers, type(container.queue).__name__)
    if container.settings.graph_configured:
        # Syncs lost with a previous worker (killed mid-batch) are queued again right away.
        container.tasks["sweep_notifications"](stale_seconds=0)
    # An idle consumer backs off between polls; 1 s keeps a notification's sync prompt.
    Consumer(
        container.queue, workers=workers, worker_type="thread", periodic=True, max_delay=1.0
    ).run()


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--web-workers", default=2, show_default=True, help="gunicorn worker processes.")
@click.option("--sample-data/--no-sample-data", "load_samples", default=True, show_default=True)
@with_appcontext
def serve_command(host: str, port: int, web_workers: int, load_samples: bool) -> None:
    """What `make run` does: migrate, load sample data, run gunicorn and the worker together."""
    import signal
    import subprocess
    import sys
    import time

    container = _container()
    from alembic import command

    command.upgrade(alembic_config(container.settings.database_url), "head")
    if load_samples:
        with container.uow() as uow:
            result = sample_data.load(uow)
            uow.commit()
        click.echo(result.summary)
        if result.api_key:
            click.echo(f"API key (acts as {result.api_key_user}): {result.api_key}")
    container.close()

    python = sys.executable
    processes = [
        subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [python, "-m", "gunicorn", "--workers", str(web_workers), "--bind", f"{host}:{port}",
             "--access-logfile", "-", "wsgi:create_app()"],
            cwd=ROOT,
        ),
        subprocess.Popen([python, "-m", "flask", "--app", "wsgi", "worker"], cwd=ROOT),  # noqa: S603
    ]  # fmt: skip
    base = f"http://{host}:{port}"
    click.echo(
        f"\nMeeting-to-CRM is starting:\n  API docs     {base}/api/docs\n"
        f"  OpenAPI      {base}/api/openapi.json\n  readiness    {base}/readyz\n"
        f"  companies    curl -H 'Authorization: Bearer <API key>' {base}/api/v1/companies\n"
        "Ctrl-C stops the web server and the worker.\n"
    )

    def stop(*_: object) -> None:
        for process in processes:
            if process.poll() is None:
                process.terminate()

    signal.signal(signal.SIGTERM, stop)
    try:
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop()
        for process in processes:
            process.wait(timeout=30)
    codes = [process.returncode for process in processes]
    if any(code not in (0, -signal.SIGTERM) for code in codes):
        raise SystemExit(f"a process stopped unexpectedly (exit codes {codes})")
