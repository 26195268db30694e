"""The CRM store: typed SQLAlchemy models. Every row belongs to one organization.

Enumerations are stored by value as short strings (no database enum types), so adding a value
never needs a type migration on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from services.db import Base, Id, utcnow


class ActivityKind(enum.StrEnum):
    MEETING = "meeting"
    CALL = "call"
    VISIT = "visit"
    TASK = "task"


class ActivityStatus(enum.StrEnum):
    PLANNED = "planned"
    HELD = "held"
    NOT_HELD = "not_held"
    CANCELLED = "cancelled"


class TaskStatus(enum.StrEnum):
    NOT_STARTED = "not_started"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    WAITING = "waiting"
    DEFERRED = "deferred"


class Priority(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class Visibility(enum.StrEnum):
    NORMAL = "normal"
    PRIVATE = "private"


class ShowAs(enum.StrEnum):
    FREE = "free"
    TENTATIVE = "tentative"
    BUSY = "busy"
    OOF = "oof"
    WORKING_ELSEWHERE = "working_elsewhere"


class ParticipantRole(enum.StrEnum):
    ORGANIZER = "organizer"
    REQUIRED = "required"
    OPTIONAL = "optional"
    RESOURCE = "resource"


class Response(enum.StrEnum):
    NONE = "none"
    ACCEPTED = "accepted"
    TENTATIVE = "tentative"
    DECLINED = "declined"
    ORGANIZER = "organizer"


class Provider(enum.StrEnum):
    MICROSOFT = "microsoft"
    GOOGLE = "google"


class NotificationStatus(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


def _enum(kind: type[enum.StrEnum]) -> String:
    return String(max(len(member.value) for member in kind) + 8)


def _values(kind: type[enum.StrEnum]) -> str:
    return ", ".join(f"'{member.value}'" for member in kind)


# Activities lasting more than 36 hours, per dialect. The partial index
# ix_activities_org_multiday_end holds only these, and a query that is to use it must repeat
# the condition verbatim (SQLite matches partial-index conditions by their terms).
MULTI_DAY_WHERE = {
    "sqlite": "julianday(end_at) - julianday(start_at) > 1.5",
    "postgresql": "end_at - start_at > interval '36 hours'",
}


class Timestamps:
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Organization(Timestamps, Base):
    """A customer tenant: one Entra tenant and/or one Google Workspace domain."""

    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # The organization's own e-mail domains: they never suggest a company.
    own_domains: Mapped[list[str]] = mapped_column(JSON, default=list)
    ms_tenant_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    google_domain: Mapped[str | None] = mapped_column(String(253), unique=True)


class User(Timestamps, Base):
    """A CRM user, known by e-mail and by the provider identities they sign in with."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("org_id", "email"),
        UniqueConstraint("org_id", "entra_object_id"),
        UniqueConstraint("org_id", "google_subject"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    entra_object_id: Mapped[str | None] = mapped_column(String(64))
    google_subject: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ApiKey(Base):
    """An admin API key. Only a SHA-256 of the secret part is stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    # Acting user: private activities of this user are visible to the key; none when unset.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(200))
    lookup_id: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column()


class Company(Timestamps, Base):
    __tablename__ = "companies"
    __table_args__ = (Index("ix_companies_org_sort_name", "org_id", "sort_name"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    # Case- and accent-folded name (services.text.fold): what search and sorting use.
    sort_name: Mapped[str] = mapped_column(String(200))
    website: Mapped[str] = mapped_column(String(500), default="")
    phone: Mapped[str] = mapped_column(String(64), default="")
    city: Mapped[str] = mapped_column(String(120), default="")
    country: Mapped[str] = mapped_column(String(120), default="")
    notes: Mapped[str] = mapped_column(Text, default="")

    domains: Mapped[list[CompanyDomain]] = relationship(
        back_populates="company",
        cascade="all, delete-orphan",
        order_by="CompanyDomain.domain",
        lazy="selectin",
    )

    @property
    def domain_names(self) -> tuple[str, ...]:
        """As services.companies.FoundCompany has them: what the API shows."""
        return tuple(d.domain for d in self.domains)


class CompanyDomain(Base):
    """An e-mail domain that points to one company within an organization."""

    __tablename__ = "company_domains"
    __table_args__ = (UniqueConstraint("org_id", "domain"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    company_id: Mapped[int] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), index=True
    )
    domain: Mapped[str] = mapped_column(String(253))

    company: Mapped[Company] = relationship(back_populates="domains")


class Contact(Timestamps, Base):
    __tablename__ = "contacts"
    __table_args__ = (Index("ix_contacts_org_sort_name", "org_id", "sort_name"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    company_id: Mapped[int | None] = mapped_column(
        ForeignKey("companies.id", ondelete="SET NULL"), index=True
    )
    first_name: Mapped[str] = mapped_column(String(120), default="")
    last_name: Mapped[str] = mapped_column(String(120), default="")
    sort_name: Mapped[str] = mapped_column(String(250), default="")
    title: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str] = mapped_column(String(64), default="")

    emails: Mapped[list[ContactEmail]] = relationship(
        back_populates="contact",
        cascade="all, delete-orphan",
        order_by="ContactEmail.position",
        lazy="selectin",
    )


class ContactEmail(Base):
    """One e-mail address of a contact; an address belongs to one contact per organization."""

    __tablename__ = "contact_emails"
    __table_args__ = (UniqueConstraint("org_id", "email"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320))
    position: Mapped[int] = mapped_column(Integer, default=0)

    contact: Mapped[Contact] = relationship(back_populates="emails")


class Activity(Timestamps, Base):
    """A meeting, call, visit or task. One meeting is one activity, keyed by its iCalUId.

    A recurring series is one row with a Recurrence; a moved or cancelled occurrence is its own
    row pointing at the series (`series_id`, `original_start`), like Graph and Google store them.
    """

    __tablename__ = "activities"
    __table_args__ = (
        # One activity per meeting: a series master or single meeting per iCalUId, and one
        # exception row per occurrence of a series. NULLs are distinct in UNIQUE, hence partial.
        Index(
            "uq_activities_org_ical_uid",
            "org_id",
            "ical_uid",
            unique=True,
            sqlite_where=text("ical_uid IS NOT NULL AND original_start IS NULL"),
            postgresql_where=text("ical_uid IS NOT NULL AND original_start IS NULL"),
        ),
        Index(
            "uq_activities_series_occurrence",
            "series_id",
            "original_start",
            unique=True,
            sqlite_where=text("series_id IS NOT NULL"),
            postgresql_where=text("series_id IS NOT NULL"),
        ),
        Index("ix_activities_org_start", "org_id", "start_at"),
        # Covers "what started before the range and is still running": an index-only scan.
        Index("ix_activities_org_end_start", "org_id", "end_at", "start_at"),
        # What started days before a range and still runs into it (migration 0005).
        Index(
            "ix_activities_org_multiday_end",
            "org_id",
            "end_at",
            "start_at",
            sqlite_where=text(MULTI_DAY_WHERE["sqlite"]),
            postgresql_where=text(MULTI_DAY_WHERE["postgresql"]),
        ),
        Index("ix_activities_org_company_start", "org_id", "company_id", "start_at"),
        Index("ix_activities_org_owner_start", "org_id", "owner_id", "start_at"),
        CheckConstraint(f"kind IN ({_values(ActivityKind)})", name="kind"),
        CheckConstraint(f"status IN ({_values(ActivityStatus)})", name="status"),
        CheckConstraint(f"visibility IN ({_values(Visibility)})", name="visibility"),
        CheckConstraint("end_at >= start_at", name="end_after_start"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(_enum(ActivityKind), default=ActivityKind.MEETING)
    subject: Mapped[str] = mapped_column(String(400), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    location: Mapped[str] = mapped_column(String(400), default="")
    start_at: Mapped[dt.datetime] = mapped_column()
    end_at: Mapped[dt.datetime] = mapped_column()
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    all_day: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(_enum(ActivityStatus), default=ActivityStatus.PLANNED)
    outcome: Mapped[str] = mapped_column(Text, default="")
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"))
    visibility: Mapped[str] = mapped_column(_enum(Visibility), default=Visibility.NORMAL)
    show_as: Mapped[str] = mapped_column(_enum(ShowAs), default=ShowAs.BUSY)
    reminder_minutes: Mapped[int | None] = mapped_column(Integer)
    # Task fields
    due_date: Mapped[dt.date | None] = mapped_column(Date)
    priority: Mapped[str] = mapped_column(_enum(Priority), default=Priority.NORMAL)
    task_status: Mapped[str | None] = mapped_column(_enum(TaskStatus))
    # Meeting identity across providers and mailboxes.
    ical_uid: Mapped[str | None] = mapped_column(String(1024))
    # Exception occurrences of a series.
    series_id: Mapped[int | None] = mapped_column(
        ForeignKey("activities.id", ondelete="CASCADE"), index=True
    )
    original_start: Mapped[dt.datetime | None] = mapped_column()
    # Who created it first: "crm", "microsoft" or "google".
    origin: Mapped[str] = mapped_column(String(16), default="crm")

    recurrence: Mapped[Recurrence | None] = relationship(
        back_populates="activity", cascade="all, delete-orphan", uselist=False, lazy="selectin"
    )
    participants: Mapped[list[Participant]] = relationship(
        back_populates="activity",
        cascade="all, delete-orphan",
        order_by="Participant.id",
        lazy="selectin",
    )
    contact_links: Mapped[list[ActivityContact]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )


class Recurrence(Base):
    """The rule of a recurring series, stored once and expanded on read (no occurrence cap)."""

    __tablename__ = "recurrences"
    __table_args__ = (Index("ix_recurrences_org_window", "org_id", "first_start", "last_end"),)

    activity_id: Mapped[int] = mapped_column(
        ForeignKey("activities.id", ondelete="CASCADE"), primary_key=True
    )
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    rrule: Mapped[str] = mapped_column(String(500))
    time_zone: Mapped[str] = mapped_column(String(64))
    # Local wall-clock start of the first occurrence, as the rule's DTSTART.
    local_start: Mapped[str] = mapped_column(String(19))  # ISO "YYYY-MM-DDTHH:MM:SS"
    # Wall-clock starts (ISO) of occurrences removed without an exception row (EXDATE).
    exdates: Mapped[list[str]] = mapped_column(JSON, default=list)
    first_start: Mapped[dt.datetime] = mapped_column()
    # End of the last occurrence; NULL for a series with no end. Indexed for range queries.
    last_end: Mapped[dt.datetime | None] = mapped_column()

    activity: Mapped[Activity] = relationship(back_populates="recurrence")


class ActivityContact(Base):
    """A CRM contact the activity is about (the tag's contacts)."""

    __tablename__ = "activity_contacts"

    activity_id: Mapped[int] = mapped_column(
        ForeignKey("activities.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))


class Participant(Base):
    """Everyone invited, internal users, CRM contacts and strangers alike, with their response."""

    __tablename__ = "participants"
    __table_args__ = (
        UniqueConstraint("activity_id", "email"),
        Index("ix_participants_org_email", "org_id", "email"),
        Index("ix_participants_org_user", "org_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(_enum(ParticipantRole), default=ParticipantRole.REQUIRED)
    response: Mapped[str] = mapped_column(_enum(Response), default=Response.NONE)
    responded_at: Mapped[dt.datetime | None] = mapped_column()
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    activity: Mapped[Activity] = relationship(back_populates="participants")


class ProviderLink(Base):
    """One mailbox's copy of a meeting in Outlook or Google Calendar."""

    __tablename__ = "provider_links"
    __table_args__ = (
        UniqueConstraint("org_id", "provider", "mailbox", "provider_event_id"),
        Index("ix_provider_links_org_ical_uid", "org_id", "ical_uid"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    activity_id: Mapped[int] = mapped_column(
        ForeignKey("activities.id", ondelete="CASCADE"), index=True
    )
    provider: Mapped[str] = mapped_column(_enum(Provider))
    mailbox: Mapped[str] = mapped_column(String(320))
    provider_event_id: Mapped[str] = mapped_column(String(1024))
    ical_uid: Mapped[str | None] = mapped_column(String(1024))
    series_master_id: Mapped[str | None] = mapped_column(String(1024))
    change_key: Mapped[str | None] = mapped_column(String(256))
    last_synced_at: Mapped[dt.datetime | None] = mapped_column()


class Mailbox(Base):
    """A calendar the service watches: one user's mailbox at one provider (the watch list)."""

    __tablename__ = "mailboxes"
    __table_args__ = (UniqueConstraint("org_id", "provider", "address"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(_enum(Provider))
    address: Mapped[str] = mapped_column(String(320))  # normalised e-mail address
    external_id: Mapped[str] = mapped_column(String(256))  # the provider's user id
    display_name: Mapped[str] = mapped_column(String(200), default="")
    # False once the mailbox left the directory (or the watched group): no subscription, no sync.
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_notification_at: Mapped[dt.datetime | None] = mapped_column()
    # Set when a sync of this mailbox is on the queue and has not started: later notifications
    # only record themselves, so a burst for one mailbox becomes one sync (coalescing).
    sync_queued_at: Mapped[dt.datetime | None] = mapped_column()


class Subscription(Base):
    """A provider push registration: Graph subscription, Calendar channel or Gmail watch."""

    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("provider", "external_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(_enum(Provider))
    kind: Mapped[str] = mapped_column(String(32))  # graph_events / calendar_channel / gmail_watch
    mailbox: Mapped[str] = mapped_column(String(320))
    external_id: Mapped[str] = mapped_column(String(256))
    resource: Mapped[str] = mapped_column(String(1024), default="")
    # Random per subscription; compared in constant time on every notification.
    secret: Mapped[str] = mapped_column(String(256))
    expires_at: Mapped[dt.datetime] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_notification_at: Mapped[dt.datetime | None] = mapped_column()


class SyncState(Base):
    """Incremental-sync cursor (delta link / sync token) and health of one mailbox."""

    __tablename__ = "sync_states"
    __table_args__ = (UniqueConstraint("org_id", "provider", "mailbox"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(_enum(Provider))
    mailbox: Mapped[str] = mapped_column(String(320))
    cursor: Mapped[str | None] = mapped_column(Text)
    window_start: Mapped[dt.datetime | None] = mapped_column()
    window_end: Mapped[dt.datetime | None] = mapped_column()
    last_success_at: Mapped[dt.datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[dt.datetime | None] = mapped_column()


class InboundNotification(Base):
    """A provider change notification, recorded before it is acknowledged (nothing is lost)."""

    __tablename__ = "inbound_notifications"
    __table_args__ = (
        UniqueConstraint("provider", "dedupe_key"),
        Index("ix_inbound_notifications_status_received", "status", "received_at"),
        Index("ix_inbound_notifications_mailbox_status", "org_id", "mailbox", "status"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(_enum(Provider))
    dedupe_key: Mapped[str] = mapped_column(String(512))
    # "change" (an item changed: triggers a sync), "lifecycle" (about the subscription itself)
    # or "mail" (Gmail says new mail arrived: its history may hold invitations)
    kind: Mapped[str] = mapped_column(String(16), default="change", server_default="change")
    mailbox: Mapped[str] = mapped_column(String(320))
    subscription_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="SET NULL")
    )
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(_enum(NotificationStatus), default="pending")
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[dt.datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class MetricCounter(Base):
    """A monotonically increasing count shared by every process (web and worker), for /metrics."""

    __tablename__ = "metric_counters"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
