"""Composition root: settings from the environment, then the engine, queue and services.

This is the only module that reads `os.environ` and the only one that knows concrete classes.
No Flask here: the worker and the CLI build the same container as the web app.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import re
import secrets
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlparse

from huey import Huey, RedisHuey, SqliteHuey, crontab
from huey.exceptions import RetryTask
from sqlalchemy import Engine

from services import jobs, mailboxes, metrics
from services.db import make_engine, make_read_engine, make_session_factory
from services.mailboxes import RetryLater, SyncPolicy
from services.ports import ProviderError
from services.tables import Provider
from services.unit_of_work import UnitOfWorkFactory

log = logging.getLogger(__name__)


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the environment variable."""


_MS_GROUP = ("MS_TENANT_ID", "MS_CLIENT_ID", "MS_CLIENT_SECRET")
_ENVIRONMENTS = ("development", "production", "test")


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, typed. Variable names are the configuration contract (README, DESIGN §5)."""

    database_url: str = "sqlite:///instance/crm.db"
    redis_url: str | None = None
    public_base_url: str = "http://localhost:5000"
    instance_path: Path = Path("instance")
    secret_key: str = field(default="", repr=False)
    environment: str = "development"
    log_level: str = "INFO"
    max_request_bytes: int = 1024 * 1024
    ms_tenant_id: str | None = None
    ms_client_id: str | None = None
    ms_client_secret: str | None = field(default=None, repr=False)
    ms_authority_host: str = "https://login.microsoftonline.com"
    graph_base_url: str = "https://graph.microsoft.com/v1.0"
    ms_api_audience: str | None = None
    addin_id: str | None = None
    # Watch only this Entra group's members (a mail-enabled security group's object id).
    ms_watch_group_id: str | None = None
    graph_max_concurrency: int = 8  # app-wide concurrent Graph requests per process
    sync_window_past_days: int = 90
    sync_window_future_days: int = 730
    google_service_account_file: Path | None = None
    google_calendar_base_url: str = "https://www.googleapis.com/calendar/v3"
    google_gmail_base_url: str = "https://gmail.googleapis.com/gmail/v1"
    google_certs_url: str = "https://www.googleapis.com/oauth2/v1/certs"
    google_addon_service_account: str | None = None
    google_pubsub_audience: str | None = None
    google_pubsub_service_account: str | None = None
    # The add-on's OAuth client id (`gcloud workspace-add-ons get-authorization`): the audience
    # of the user's ID token in every add-on request.
    google_addon_client_id: str | None = None
    google_directory_base_url: str = "https://admin.googleapis.com/admin/directory/v1"
    # A Workspace admin the service account acts as to list the domain's users.
    google_admin_email: str | None = None
    # Or watch exactly these users (comma-separated addresses) instead of the whole directory.
    google_watch_users: tuple[str, ...] = ()
    # projects/<project>/topics/<topic> that Gmail publishes to (users.watch); unset: no Gmail push.
    google_pubsub_topic: str | None = None
    queue_immediate: bool = False  # run jobs in-process (tests only)

    @property
    def graph_configured(self) -> bool:
        return bool(self.ms_tenant_id and self.ms_client_id and self.ms_client_secret)

    @property
    def google_configured(self) -> bool:
        return self.google_service_account_file is not None

    @property
    def sync_policy(self) -> SyncPolicy:
        return SyncPolicy(
            window_past=dt.timedelta(days=self.sync_window_past_days),
            window_future=dt.timedelta(days=self.sync_window_future_days),
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        defaults = cls()

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        environment = get("APP_ENV") or "development"
        if environment not in _ENVIRONMENTS:
            raise ConfigError(f"APP_ENV must be one of {', '.join(_ENVIRONMENTS)}")
        instance_path = Path(get("INSTANCE_PATH") or "instance").resolve()

        public_base_url = (get("PUBLIC_BASE_URL") or defaults.public_base_url).rstrip("/")
        _check_url("PUBLIC_BASE_URL", public_base_url)
        for name in ("MS_AUTHORITY_HOST", "GRAPH_BASE_URL", "GOOGLE_CALENDAR_BASE_URL",
                     "GOOGLE_GMAIL_BASE_URL", "GOOGLE_CERTS_URL",
                     "GOOGLE_DIRECTORY_BASE_URL"):  # fmt: skip
            if get(name):
                _check_url(name, get(name) or "")

        present = [name for name in _MS_GROUP if get(name)]
        if present and len(present) != len(_MS_GROUP):
            missing = next(name for name in _MS_GROUP if not get(name))
            raise ConfigError(
                f"{missing} is required when {present[0]} is set (the Entra app registration "
                "needs MS_TENANT_ID, MS_CLIENT_ID and MS_CLIENT_SECRET together)"
            )

        secret_key = get("SECRET_KEY")
        if environment == "production":
            if secret_key is None:
                raise ConfigError("SECRET_KEY is required when APP_ENV=production")
            if not public_base_url.startswith("https://"):
                raise ConfigError("PUBLIC_BASE_URL must be https:// when APP_ENV=production")
        if secret_key is None:
            secret_key = _instance_secret(instance_path)

        addin_id = get("ADDIN_ID")
        if addin_id is not None and not _is_guid(addin_id):
            # It names the add-in's custom property (cecp-<id>) in every Graph request.
            raise ConfigError(f"ADDIN_ID must be the manifest's GUID, got {addin_id!r}")

        google_key = get("GOOGLE_SERVICE_ACCOUNT_FILE")
        if google_key and not Path(google_key).is_file():
            raise ConfigError(f"GOOGLE_SERVICE_ACCOUNT_FILE does not name a file: {google_key}")

        if google_key and not (get("GOOGLE_ADMIN_EMAIL") or get("GOOGLE_WATCH_USERS")):
            raise ConfigError(
                "GOOGLE_ADMIN_EMAIL (an admin the service acts as to list the domain's users) "
                "or GOOGLE_WATCH_USERS is required when GOOGLE_SERVICE_ACCOUNT_FILE is set"
            )

        topic = get("GOOGLE_PUBSUB_TOPIC")
        if topic is not None and not re.fullmatch(r"projects/[^/]+/topics/[^/]+", topic):
            raise ConfigError(
                "GOOGLE_PUBSUB_TOPIC must look like projects/<project>/topics/<topic>, "
                f"got {topic!r}"
            )
        if topic is not None and not (
            get("GOOGLE_PUBSUB_AUDIENCE") and get("GOOGLE_PUBSUB_SERVICE_ACCOUNT")
        ):
            raise ConfigError(
                "GOOGLE_PUBSUB_AUDIENCE and GOOGLE_PUBSUB_SERVICE_ACCOUNT are required when "
                "GOOGLE_PUBSUB_TOPIC is set (the push endpoint must verify Pub/Sub's token)"
            )

        database_url = get("DATABASE_URL") or f"sqlite:///{instance_path / 'crm.db'}"
        if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", database_url):
            raise ConfigError("DATABASE_URL must be a sqlite:// or postgresql:// URL")
        if database_url.startswith(("postgresql://", "postgres://")):
            # psycopg 3 is the driver we ship; plain postgresql:// would look for psycopg2.
            database_url = "postgresql+psycopg://" + database_url.split("://", 1)[1]

        return cls(
            database_url=database_url,
            redis_url=get("REDIS_URL"),
            public_base_url=public_base_url,
            instance_path=instance_path,
            secret_key=secret_key,
            environment=environment,
            log_level=(get("LOG_LEVEL") or "INFO").upper(),
            max_request_bytes=_int("MAX_REQUEST_BYTES", get("MAX_REQUEST_BYTES"), 1024 * 1024),
            ms_tenant_id=get("MS_TENANT_ID"),
            ms_client_id=get("MS_CLIENT_ID"),
            ms_client_secret=get("MS_CLIENT_SECRET"),
            ms_authority_host=(get("MS_AUTHORITY_HOST") or defaults.ms_authority_host).rstrip("/"),
            graph_base_url=(get("GRAPH_BASE_URL") or defaults.graph_base_url).rstrip("/"),
            ms_api_audience=get("MS_API_AUDIENCE") or _default_audience(public_base_url, env),
            addin_id=addin_id,
            ms_watch_group_id=get("MS_WATCH_GROUP_ID"),
            graph_max_concurrency=_int("GRAPH_MAX_CONCURRENCY", get("GRAPH_MAX_CONCURRENCY"), 8),
            sync_window_past_days=_int("SYNC_WINDOW_PAST_DAYS", get("SYNC_WINDOW_PAST_DAYS"), 90),
            sync_window_future_days=_int(
                "SYNC_WINDOW_FUTURE_DAYS", get("SYNC_WINDOW_FUTURE_DAYS"), 730
            ),
            google_service_account_file=Path(google_key) if google_key else None,
            google_calendar_base_url=(
                get("GOOGLE_CALENDAR_BASE_URL") or defaults.google_calendar_base_url
            ).rstrip("/"),
            google_gmail_base_url=(
                get("GOOGLE_GMAIL_BASE_URL") or defaults.google_gmail_base_url
            ).rstrip("/"),
            google_certs_url=get("GOOGLE_CERTS_URL") or defaults.google_certs_url,
            google_addon_service_account=get("GOOGLE_ADDON_SERVICE_ACCOUNT"),
            google_pubsub_audience=get("GOOGLE_PUBSUB_AUDIENCE"),
            google_pubsub_service_account=get("GOOGLE_PUBSUB_SERVICE_ACCOUNT"),
            google_addon_client_id=get("GOOGLE_ADDON_CLIENT_ID"),
            google_directory_base_url=(
                get("GOOGLE_DIRECTORY_BASE_URL") or defaults.google_directory_base_url
            ).rstrip("/"),
            google_admin_email=get("GOOGLE_ADMIN_EMAIL"),
            google_watch_users=tuple(
                address.strip().lower()
                for address in (get("GOOGLE_WATCH_USERS") or "").split(",")
                if address.strip()
            ),
            google_pubsub_topic=topic,
        )


def _default_audience(public_base_url: str, env: Mapping[str, str]) -> str | None:
    """The App ID URI Office SSO expects: api://<add-in host>/<client id>."""
    client_id = env.get("MS_CLIENT_ID", "").strip()
    return f"api://{urlparse(public_base_url).netloc}/{client_id}" if client_id else None


def _is_guid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def _check_url(name: str, value: str) -> None:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"{name} must be an http(s) URL, got {value!r}")


def _int(name: str, value: str | None, default: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None
    if number <= 0:
        raise ConfigError(f"{name} must be positive")
    return number


def _instance_secret(instance_path: Path) -> str:
    """A development secret generated once into instance/ and reused across restarts."""
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    return secret


class _RedactSecrets(logging.Filter):
    """Defence in depth: scrub bearer tokens and API keys should one reach a log message."""

    _PATTERN = re.compile(r"(Bearer\s+|mtc_[0-9a-f]{16}_)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self._PATTERN.search(message):
            record.msg = self._PATTERN.sub(r"\1[redacted]", message)
            record.args = ()
        return True


def configure_logging(settings: Settings) -> None:
    root = logging.getLogger()
    if not any(isinstance(f, _RedactSecrets) for h in root.handlers for f in h.filters):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        handler.addFilter(_RedactSecrets())
        root.addHandler(handler)
    root.setLevel(settings.log_level)


def make_queue(settings: Settings) -> Huey:
    """Huey on Redis when REDIS_URL is set, else on a SQLite file in the instance folder."""
    if settings.redis_url:
        return RedisHuey(
            "meeting-to-crm", url=settings.redis_url, immediate=settings.queue_immediate
        )
    settings.instance_path.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(
        "meeting-to-crm",
        filename=str(settings.instance_path / "queue.db"),
        immediate=settings.queue_immediate,
    )


@dataclass(slots=True)
class GraphServices:
    """The Graph adapters behind services' ports, sharing one HTTP client and token cache."""

    client: Any
    calendar: Any
    subscriptions: Any
    directory: Any
    event_ids: Any


def make_graph(settings: Settings, uow: UnitOfWorkFactory) -> GraphServices:
    """Built on first use: graph/ is imported only by processes that talk to Graph."""
    from graph.auth import AppTokenProvider
    from graph.calendar import GraphCalendar
    from graph.client import GraphClient
    from graph.ids import GraphEventIds
    from graph.subscriptions import GraphDirectory, GraphSubscriptions

    if not settings.graph_configured:
        raise ConfigError(
            "Microsoft Graph is not configured: set MS_TENANT_ID, MS_CLIENT_ID and MS_CLIENT_SECRET"
        )
    tokens = AppTokenProvider(
        tenant_id=settings.ms_tenant_id or "",
        client_id=settings.ms_client_id or "",
        client_secret=settings.ms_client_secret or "",
        authority_host=settings.ms_authority_host,
        graph_base_url=settings.graph_base_url,
    )

    def count_error(reason: str) -> None:
        with uow() as unit:
            metrics.increment(unit, "mtc_provider_errors_total", reason=reason)
            unit.commit()

    client = GraphClient(
        base_url=settings.graph_base_url,
        token=tokens.token,
        app_limit=settings.graph_max_concurrency,
        on_error=count_error,
    )
    policy = settings.sync_policy
    base = settings.public_base_url
    return GraphServices(
        client=client,
        calendar=GraphCalendar(
            client,
            addin_id=settings.addin_id,
            window_past=policy.window_past,
            window_future=policy.window_future,
        ),
        subscriptions=GraphSubscriptions(
            client,
            notification_url=f"{base}/webhooks/graph/notifications",
            lifecycle_url=f"{base}/webhooks/graph/lifecycle",
        ),
        directory=GraphDirectory(client),
        # Asked while a user waits (the task pane): one try, short timeouts, no Retry-After waits.
        event_ids=GraphEventIds(
            GraphClient(
                base_url=settings.graph_base_url,
                token=tokens.token,
                timeout=(3.0, 5.0),
                max_attempts=1,
                max_retry_wait=0.0,  # while Graph's Retry-After runs, refuse at once
                on_error=count_error,
            )
        ),
    )


@dataclass(slots=True)
class GoogleServices:
    """The Google adapters behind services' ports, sharing one HTTP client and credentials."""

    client: Any
    calendar: Any  # CalendarSource, EventFinder, EventTagWriter
    channels: Any  # PushChannels (Calendar channels)
    mail: Any | None  # MailWatch, when GOOGLE_PUBSUB_TOPIC is set
    messages: Any  # reads invitations' iCalUID from Gmail messages
    directory: Any


def make_google(settings: Settings, uow: UnitOfWorkFactory) -> GoogleServices:
    """Built on first use: gmail/ is imported only by processes that talk to Google."""
    import json

    from gmail.calendar import GoogleCalendar
    from gmail.channels import GoogleCalendarChannels
    from gmail.client import GoogleClient
    from gmail.directory import GoogleDirectory
    from gmail.mail import GmailMessages, GmailWatch

    key_file = settings.google_service_account_file
    if key_file is None:
        raise ConfigError(
            "Google is not configured: set GOOGLE_SERVICE_ACCOUNT_FILE to the service account's "
            "JSON key (domain-wide delegation)"
        )
    try:
        info = json.loads(key_file.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"GOOGLE_SERVICE_ACCOUNT_FILE cannot be read as JSON: {error}") from None

    def count_error(reason: str) -> None:
        with uow() as unit:
            metrics.increment(unit, "mtc_provider_errors_total", reason=reason)
            unit.commit()

    client = GoogleClient(
        info,
        calendar_base_url=settings.google_calendar_base_url,
        gmail_base_url=settings.google_gmail_base_url,
        directory_base_url=settings.google_directory_base_url,
        on_error=count_error,
    )
    base = settings.public_base_url
    return GoogleServices(
        client=client,
        calendar=GoogleCalendar(client),
        channels=GoogleCalendarChannels(
            client, notification_url=f"{base}/webhooks/google/calendar"
        ),
        mail=(
            GmailWatch(client, topic=settings.google_pubsub_topic)
            if settings.google_pubsub_topic
            else None
        ),
        messages=GmailMessages(client),
        directory=GoogleDirectory(
            client,
            admin_email=settings.google_admin_email or "",
            watch_users=settings.google_watch_users,
        ),
    )


@dataclass(slots=True)
class Container:
    """Everything built from settings; the web app, the worker and the CLI share it."""

    settings: Settings
    engine: Engine
    read_engine: Engine | None  # PostgreSQL's, for read-only units of work
    uow: UnitOfWorkFactory
    queue: Huey
    tasks: dict[str, Any]
    _graph: GraphServices | None = None
    _google: GoogleServices | None = None
    _google_id_tokens: Any = None

    @property
    def graph(self) -> GraphServices:
        if self._graph is None:
            self._graph = make_graph(self.settings, self.uow)
        return self._graph

    @property
    def google(self) -> GoogleServices:
        if self._google is None:
            self._google = make_google(self.settings, self.uow)
        return self._google

    @property
    def google_id_tokens(self) -> Any:
        """Verifies Google-signed ID tokens (add-on requests, Pub/Sub pushes); certs cached."""
        if self._google_id_tokens is None:
            from gmail.identity import GoogleIdTokens

            self._google_id_tokens = GoogleIdTokens(self.settings.google_certs_url)
        return self._google_id_tokens

    def calendar_for(self, provider: Provider) -> Any:
        return self.google.calendar if provider is Provider.GOOGLE else self.graph.calendar

    def event_ids_for(self, provider: Provider) -> Any:
        """The EventIds port where a client's event ids differ from those sync stores: Outlook's
        regular REST ids (sync stores immutable ones); None for Google and without Graph."""
        if provider is Provider.MICROSOFT and self.settings.graph_configured:
            return self.graph.event_ids
        return None

    def channels_for(self, provider: Provider) -> Any:
        return self.google.channels if provider is Provider.GOOGLE else self.graph.subscriptions

    def close(self) -> None:
        self.engine.dispose()
        if self.read_engine is not None:
            self.read_engine.dispose()


# Tries of a provider job after the first; with the backoff, about 4 hours in all.
JOB_RETRIES: Final = 8


def _register_tasks(queue: Huey, uow: UnitOfWorkFactory, container: Container) -> dict[str, Any]:
    """Huey tasks are thin wrappers: each calls one job function in services/.

    Huey keeps no result for periodic tasks, so each periodic job is also a plain task that can
    be enqueued on demand (and awaited); the schedule calls the same function.
    """
    policy = container.settings.sync_policy

    @queue.periodic_task(crontab(minute="*"), name="heartbeat")
    def heartbeat() -> None:
        queue.put("worker-heartbeat", jobs.now_iso())

    @queue.task(name="prune-notifications")
    def prune_notifications() -> int:
        return jobs.prune_inbound_notifications(uow)

    @queue.periodic_task(crontab(minute="23", hour="3"), name="prune-notifications-daily")
    def prune_notifications_daily() -> None:
        jobs.prune_inbound_notifications(uow)

    def provider_of(mailbox_id: int) -> Provider | None:
        return mailboxes.provider_of(uow, mailbox_id)

    def configured_providers() -> list[Provider]:
        settings = container.settings
        return [
            provider
            for provider, on in (
                (Provider.MICROSOFT, settings.graph_configured),
                (Provider.GOOGLE, settings.google_configured),
            )
            if on
        ]

    @queue.task(name="sync-mailbox", retries=JOB_RETRIES, context=True)
    def sync_mailbox(mailbox_id: int, task: Any = None) -> dict[str, Any]:
        provider = provider_of(mailbox_id)
        if provider is None:
            return {"mailbox_id": mailbox_id, "skipped": "no such mailbox"}
        with _retry_later(task):
            report = mailboxes.sync_mailbox(
                uow, container.calendar_for(provider), mailbox_id, policy=policy
            )
        if report.more_pending:
            sync_mailbox(mailbox_id)
        return _plain(report)

    @queue.task(name="reconcile-mailbox", retries=JOB_RETRIES, context=True)
    def reconcile_mailbox(mailbox_id: int, task: Any = None) -> dict[str, Any]:
        provider = provider_of(mailbox_id)
        if provider is None:
            return {"mailbox_id": mailbox_id, "skipped": "no such mailbox"}
        with _retry_later(task):
            report = mailboxes.reconcile_mailbox(
                uow, container.calendar_for(provider), mailbox_id, policy=policy
            )
        return _plain(report)

    @queue.task(name="subscribe-mailbox", retries=JOB_RETRIES, context=True)
    def subscribe_mailbox(mailbox_id: int, task: Any = None) -> str:
        """Subscribe, then sync everything once: nothing was announced before the subscription."""
        provider = provider_of(mailbox_id)
        if provider is None:
            return "inactive"
        with _retry_later(task):
            result = mailboxes.ensure_subscription(
                uow, container.channels_for(provider), mailbox_id, policy=policy
            )
        if result == "created":
            reconcile_mailbox(mailbox_id)
        if provider is Provider.GOOGLE and container.settings.google_pubsub_topic:
            watch_mail(mailbox_id)
        return result

    @queue.task(name="graph-lifecycle", retries=JOB_RETRIES, context=True)
    def graph_lifecycle(notification_id: int, task: Any = None) -> str:
        with _retry_later(task):
            outcome = mailboxes.handle_lifecycle(
                uow, container.graph.subscriptions, notification_id, policy=policy
            )
        if outcome.reconcile_mailbox_id is not None:
            reconcile_mailbox(outcome.reconcile_mailbox_id)
        return outcome.action

    @queue.task(name="watch-mail", retries=JOB_RETRIES, context=True)
    def watch_mail(mailbox_id: int, task: Any = None) -> str:
        """Start or renew a Google user's Gmail watch (the second signal for invitations)."""
        watch = container.google.mail
        if watch is None:
            return "not configured"
        with _retry_later(task):
            return mailboxes.ensure_mail_watch(uow, watch, mailbox_id)

    @queue.task(name="gmail-news", retries=JOB_RETRIES, context=True)
    def gmail_news(mailbox_id: int, task: Any = None) -> dict[str, Any]:
        watch = container.google.mail
        if watch is None:
            return {"mailbox_id": mailbox_id, "skipped": "Gmail push is not configured"}
        with _retry_later(task):
            report = mailboxes.process_mail_news(uow, watch, mailbox_id, policy=policy)
        if report.sync_mailbox_id is not None:
            sync_mailbox(report.sync_mailbox_id)
        return _plain(report)

    @queue.task(name="renew-subscriptions")
    def renew_subscriptions() -> list[int]:
        # Each subscription's failure is recorded on its mailbox; the next hour tries again.
        gone: list[int] = []
        for provider in configured_providers():
            gone += mailboxes.renew_subscriptions(
                uow, container.channels_for(provider), provider=provider, policy=policy
            )
        for mailbox_id in gone:
            subscribe_mailbox(mailbox_id)
        return gone

    @queue.task(name="renew-mail-watches")
    def renew_mail_watches() -> int:
        """Gmail wants a watch call at least weekly and recommends daily."""
        if not container.settings.google_pubsub_topic:
            return 0
        ids = mailboxes.active_mailbox_ids(uow, Provider.GOOGLE)
        for mailbox_id in ids:
            watch_mail(mailbox_id)
        return len(ids)

    @queue.task(name="reconcile-all")
    def reconcile_all() -> int:
        ids = [
            mailbox_id
            for provider in configured_providers()
            for mailbox_id in mailboxes.active_mailbox_ids(uow, provider)
        ]
        for mailbox_id in ids:
            reconcile_mailbox(mailbox_id)
        return len(ids)

    @queue.task(name="sweep-notifications")
    def sweep_notifications(stale_seconds: float = 120) -> list[int]:
        """Enqueue the syncs a crashed worker or a failed enqueue left behind."""
        stale_after = dt.timedelta(seconds=stale_seconds)
        ids = mailboxes.mailboxes_needing_sync(uow, stale_after=stale_after)
        for mailbox_id in ids:
            sync_mailbox(mailbox_id)
        return ids

    @queue.task(name="refresh-mailboxes", retries=JOB_RETRIES, context=True)
    def refresh_mailboxes(
        org_id: int, provider: str = Provider.MICROSOFT, task: Any = None
    ) -> dict[str, Any]:
        google = Provider(provider) is Provider.GOOGLE
        services = container.google if google else container.graph
        channels = container.channels_for(Provider(provider))
        with _retry_later(task):
            report = mailboxes.refresh_mailboxes(
                uow,
                services.directory,
                org_id=org_id,
                provider=Provider(provider),
                group_id=None if google else container.settings.ms_watch_group_id,
            )
            mailboxes.drop_subscriptions(uow, channels, report.to_unsubscribe)
            if google and container.google.mail is not None:
                mailboxes.stop_mail_watches(uow, container.google.mail, org_id=org_id)
        for mailbox_id in report.to_subscribe:
            subscribe_mailbox(mailbox_id)
        return _plain(report)

    if configured_providers():
        # Only a deployment connected to a provider has anything to renew or reconcile.
        @queue.periodic_task(crontab(minute="*"), name="sweep-notifications-periodic")
        def sweep_periodic() -> None:
            sweep_notifications.call_local()

        @queue.periodic_task(crontab(minute="17"), name="renew-subscriptions-hourly")
        def renew_hourly() -> None:
            renew_subscriptions.call_local()

        @queue.periodic_task(crontab(minute="41"), name="reconcile-all-hourly")
        def reconcile_hourly() -> None:
            reconcile_all.call_local()

        @queue.periodic_task(crontab(minute="5", hour="2"), name="refresh-mailboxes-daily")
        def refresh_daily() -> None:
            if container.settings.graph_configured:
                tenant = container.settings.ms_tenant_id or ""
                org_id = mailboxes.organization_for_tenant(uow, tenant)
                if org_id is not None:
                    refresh_mailboxes.call_local(org_id, Provider.MICROSOFT)
            if container.settings.google_configured:
                for org_id in mailboxes.google_organizations(uow):
                    refresh_mailboxes.call_local(org_id, Provider.GOOGLE)

        @queue.periodic_task(crontab(minute="35", hour="4"), name="renew-mail-watches-daily")
        def renew_mail_daily() -> None:
            renew_mail_watches.call_local()

    return {
        "heartbeat": heartbeat,
        "prune_notifications": prune_notifications,
        "sync_mailbox": sync_mailbox,
        "reconcile_mailbox": reconcile_mailbox,
        "subscribe_mailbox": subscribe_mailbox,
        "graph_lifecycle": graph_lifecycle,
        "watch_mail": watch_mail,
        "gmail_news": gmail_news,
        "renew_subscriptions": renew_subscriptions,
        "renew_mail_watches": renew_mail_watches,
        "reconcile_all": reconcile_all,
        "sweep_notifications": sweep_notifications,
        "refresh_mailboxes": refresh_mailboxes,
    }


@contextmanager
def _retry_later(task: Any) -> Iterator[None]:
    """Run the job again later when the provider failed for now (throttled, down, unreachable).

    The delay is what the provider asked for, and at least an exponential backoff from 30 s;
    after JOB_RETRIES tries the failure stands (the periodic jobs come back to it). Failures
    that waiting cannot fix (access denied, a wrong secret) are not retried.
    """
    try:
        yield
    except (RetryLater, ProviderError) as failure:
        transient = isinstance(failure, RetryLater) or failure.transient
        if task is None or not transient or task.retries <= 0:
            raise
        asked = failure.delay if isinstance(failure, RetryLater) else failure.retry_after or 0
        backoff = 30.0 * 2 ** (JOB_RETRIES - task.retries)
        # RetryTask does not use up a retry by itself: count this one.
        task.retries -= 1
        raise RetryTask(str(failure), delay=max(asked, backoff)) from failure


def _plain(report: Any) -> dict[str, Any]:
    """A job's report as plain values: results are read back by other processes."""
    return dataclasses.asdict(report)


def build(settings: Settings) -> Container:
    engine = make_engine(settings.database_url)
    read_engine = make_read_engine(settings.database_url)
    uow = UnitOfWorkFactory(
        make_session_factory(engine),
        make_session_factory(read_engine) if read_engine is not None else None,
    )
    queue = make_queue(settings)
    container = Container(
        settings=settings, engine=engine, read_engine=read_engine, uow=uow, queue=queue, tasks={}
    )
    container.tasks.update(_register_tasks(queue, uow, container))
    return container
