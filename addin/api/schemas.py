"""Request and response schemas. Requests reject unknown fields (marshmallow's default RAISE)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.activities import ActivityItem
from services.contacts import full_name
from services.tables import (
    ActivityKind,
    ActivityStatus,
    ParticipantRole,
    Priority,
    Provider,
    Response,
    ShowAs,
    TaskStatus,
    Visibility,
)
from services.text import is_valid_email

MAX_PAGE = 500


def _email(value: str) -> None:
    """The same address rule as the importer and the services (services.text.is_valid_email)."""
    if not is_valid_email(value):
        raise ValidationError("Not a valid email address.")


def email_field(**kwargs: Any) -> fields.String:
    return fields.String(validate=[validate.Length(max=320), _email], **kwargs)


def _choices(kind: Any) -> validate.OneOf:
    return validate.OneOf([member.value for member in kind])


# --- cursors -----------------------------------------------------------------------------


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps(values, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, shape: tuple[type, ...]) -> list[Any]:
    """Decode an opaque cursor; a malformed one is a 422 on the `cursor` field."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != len(shape):
            raise ValueError
        decoded = [
            dt.datetime.fromisoformat(v) if kind is dt.datetime else kind(v)
            for v, kind in zip(values, shape, strict=True)
        ]
        if any(isinstance(v, dt.datetime) and v.tzinfo is None for v in decoded):
            raise ValueError("naive datetime in cursor")
        return decoded
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise ValidationError({"cursor": ["not a cursor this API issued"]}) from None


def keyset_page(rows: list[Any], limit: int) -> dict[str, Any]:
    """rows were fetched with limit + 1: one more than fits means there is a next page."""
    if len(rows) > limit:
        rows = rows[:limit]
        return {"items": rows, "next_cursor": encode_cursor([rows[-1].sort_name, rows[-1].id])}
    return {"items": rows, "next_cursor": None}


class PageArgs(Schema):
    cursor = fields.String(
        load_default=None, metadata={"description": "next_cursor of the page before"}
    )
    limit = fields.Integer(load_default=50, validate=validate.Range(1, MAX_PAGE))


# --- companies ---------------------------------------------------------------------------


class CompanyIn(Schema):
    name = fields.String(required=True, validate=validate.Length(1, 200))
    domains = fields.List(
        fields.String(validate=validate.Length(1, 253)), validate=validate.Length(max=50)
    )
    website = fields.String(validate=validate.Length(max=500))
    phone = fields.String(validate=validate.Length(max=64))
    city = fields.String(validate=validate.Length(max=120))
    country = fields.String(validate=validate.Length(max=120))
    notes = fields.String(validate=validate.Length(max=20000))


class CompanyPatch(CompanyIn):
    name = fields.String(validate=validate.Length(1, 200))


class CompanyOut(Schema):
    id = fields.Integer()
    name = fields.String()
    domains = fields.Function(lambda c: list(c.domain_names))
    website = fields.String()
    phone = fields.String()
    city = fields.String()
    country = fields.String()
    notes = fields.String()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class CompanyBrief(Schema):
    id = fields.Integer()
    name = fields.String()
    domains = fields.Function(lambda c: list(c.domain_names))


class CompanyListArgs(PageArgs):
    q = fields.String(
        validate=validate.Length(1, 200),
        metadata={"description": "Search: ranked prefix and word matches (no cursor)"},
    )


class CompanyPage(Schema):
    items = fields.List(fields.Nested(CompanyOut))
    next_cursor = fields.String(allow_none=True)


# --- contacts ----------------------------------------------------------------------------


class ContactIn(Schema):
    first_name = fields.String(validate=validate.Length(max=120))
    last_name = fields.String(validate=validate.Length(max=120))
    title = fields.String(validate=validate.Length(max=200))
    phone = fields.String(validate=validate.Length(max=64))
    company_id = fields.Integer(allow_none=True, strict=True)
    emails = fields.List(email_field(), validate=validate.Length(max=20))


class ContactOut(Schema):
    id = fields.Integer()
    first_name = fields.String()
    last_name = fields.String()
    name = fields.Function(full_name)
    title = fields.String()
    phone = fields.String()
    company_id = fields.Integer(allow_none=True)
    emails = fields.Function(lambda c: [e.email for e in c.emails])
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class ContactListArgs(PageArgs):
    company_id = fields.Integer()
    q = fields.String(validate=validate.Length(1, 200))


class ContactLookupArgs(Schema):
    email = email_field(required=True)


class EventLookupArgs(Schema):
    provider = fields.String(load_default=Provider.MICROSOFT, validate=_choices(Provider))
    event_id = fields.String(required=True, validate=validate.Length(1, 1024))


class ContactPage(Schema):
    items = fields.List(fields.Nested(ContactOut))
    next_cursor = fields.String(allow_none=True)


# --- activities --------------------------------------------------------------------------


class ParticipantIn(Schema):
    email = email_field(required=True)
    name = fields.String(validate=validate.Length(max=200))
    role = fields.String(validate=_choices(ParticipantRole))
    response = fields.String(validate=_choices(Response))
    responded_at = fields.AwareDateTime(allow_none=True)


class RecurrenceIn(Schema):
    rule = fields.String(
        required=True,
        validate=validate.Length(1, 500),
        metadata={"description": "RFC 5545 RRULE value, e.g. FREQ=WEEKLY;BYDAY=MO"},
    )
    exdates = fields.List(
        fields.AwareDateTime(),
        validate=validate.Length(max=1000),
        metadata={"description": "starts of removed occurrences"},
    )


class ActivityPatch(Schema):
    kind = fields.String(validate=_choices(ActivityKind))
    subject = fields.String(validate=validate.Length(max=400))
    description = fields.String(validate=validate.Length(max=100_000))
    location = fields.String(validate=validate.Length(max=400))
    start = fields.AwareDateTime()
    end = fields.AwareDateTime()
    time_zone = fields.String(validate=validate.Length(1, 64), metadata={"example": "Europe/Oslo"})
    all_day = fields.Boolean()
    status = fields.String(validate=_choices(ActivityStatus))
    outcome = fields.String(validate=validate.Length(max=20_000))
    owner_id = fields.Integer(strict=True)
    company_id = fields.Integer(allow_none=True, strict=True)
    contact_ids = fields.List(fields.Integer(strict=True), validate=validate.Length(max=200))
    visibility = fields.String(validate=_choices(Visibility))
    show_as = fields.String(validate=_choices(ShowAs))
    reminder_minutes = fields.Integer(allow_none=True, validate=validate.Range(0, 40320))
    due_date = fields.Date(allow_none=True)
    priority = fields.String(validate=_choices(Priority))
    task_status = fields.String(allow_none=True, validate=_choices(TaskStatus))
    participants = fields.List(fields.Nested(ParticipantIn), validate=validate.Length(max=1000))
    recurrence = fields.Nested(RecurrenceIn, allow_none=True)


class ActivityIn(ActivityPatch):
    kind = fields.String(required=True, validate=_choices(ActivityKind))
    ical_uid = fields.String(validate=validate.Length(1, 1024))

    @validates_schema
    def _times(self, data: dict[str, Any], **_: Any) -> None:
        if data["kind"] != ActivityKind.TASK:
            missing = {
                k: ["required for a meeting, call or visit"]
                for k in ("start", "end")
                if k not in data
            }
            if missing:
                raise ValidationError(missing)


class ActivityListArgs(PageArgs):
    owner_id = fields.Integer()
    company_id = fields.Integer()
    contact_id = fields.Integer()
    kind = fields.List(fields.String(validate=_choices(ActivityKind)))
    status = fields.List(fields.String(validate=_choices(ActivityStatus)))
    start = fields.AwareDateTime(metadata={"description": "range start; with end, expands series"})
    end = fields.AwareDateTime()

    @validates_schema
    def _range(self, data: dict[str, Any], **_: Any) -> None:
        if ("start" in data) != ("end" in data):
            raise ValidationError("give both start and end, or neither", "start")
        if "start" in data and data["end"] <= data["start"]:
            raise ValidationError("must be after start", "end")


class ParticipantOut(Schema):
    email = fields.String()
    name = fields.String()
    role = fields.String()
    response = fields.String()
    responded_at = fields.DateTime(allow_none=True)
    contact_id = fields.Integer(allow_none=True)
    user_id = fields.Integer(allow_none=True)


def _recurrence(item: ActivityItem) -> dict[str, Any] | None:
    if item.masked:
        return None
    row = item.activity.recurrence
    if row is None:
        return None
    return {"rule": row.rrule, "time_zone": row.time_zone, "exdates": row.exdates}


def activity_fields(item: ActivityItem) -> dict[str, Any]:
    """What ActivityOut serializes for one activity or occurrence.

    Someone else's private activity shows only as busy (B7): the detail keys are left out.
    """
    a = item.activity
    original = item.original_start or a.original_start
    base: dict[str, Any] = {
        "id": a.id,
        "kind": a.kind,
        "start": item.start,
        "end": item.end,
        "time_zone": a.time_zone,
        "all_day": a.all_day,
        "status": a.status,
        "owner_id": a.owner_id,
        "visibility": a.visibility,
        "show_as": a.show_as,
        "series_id": a.series_id if item.original_start is None else a.id,
        "original_start": original,
        "recurrence": _recurrence(item),
        "private": item.masked,
    }
    if item.masked:
        return base | {"subject": "Busy"}
    return base | {
        "subject": a.subject,
        "description": a.description,
        "location": a.location,
        "outcome": a.outcome,
        "company_id": a.company_id,
        "contact_ids": [link.contact_id for link in a.contact_links],
        "participants": a.participants,
        "reminder_minutes": a.reminder_minutes,
        "due_date": a.due_date,
        "priority": a.priority,
        "task_status": a.task_status,
        "ical_uid": a.ical_uid,
        "created_at": a.created_at,
        "updated_at": a.updated_at,
    }


class ActivityOut(Schema):
    """An activity or an occurrence of a series (dumped from activity_fields)."""

    id = fields.Integer()
    kind = fields.String()
    subject = fields.String()
    description = fields.String()
    location = fields.String()
    start = fields.DateTime()
    end = fields.DateTime()
    time_zone = fields.String()
    all_day = fields.Boolean()
    status = fields.String()
    outcome = fields.String()
    owner_id = fields.Integer(allow_none=True)
    company_id = fields.Integer(allow_none=True)
    contact_ids = fields.List(fields.Integer())
    visibility = fields.String()
    show_as = fields.String()
    private = fields.Boolean(metadata={"description": "true: another user's private activity"})
    series_id = fields.Integer(allow_none=True)
    original_start = fields.DateTime(allow_none=True)
    recurrence = fields.Dict(allow_none=True)
    participants = fields.List(fields.Nested(ParticipantOut))
    reminder_minutes = fields.Integer(allow_none=True)
    due_date = fields.Date(allow_none=True)
    priority = fields.String()
    task_status = fields.String(allow_none=True)
    ical_uid = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class ActivityPage(Schema):
    items = fields.List(fields.Nested(ActivityOut))
    next_cursor = fields.String(allow_none=True)


# --- suggest and users --------------------------------------------------------------------


class SuggestIn(Schema):
    emails = fields.List(
        fields.String(validate=validate.Length(1, 320)),
        required=True,
        validate=validate.Length(max=500),
    )


class CompanySuggestionOut(Schema):
    company = fields.Nested(CompanyBrief)
    contact_emails = fields.List(fields.String())
    domain_emails = fields.List(fields.String())


class SuggestOut(Schema):
    contacts = fields.Dict(keys=fields.String(), values=fields.Nested(ContactOut))
    companies = fields.List(fields.Nested(CompanySuggestionOut))
    internal = fields.List(fields.String())
    # `unknown` is a Schema attribute, hence the data_key.
    unknown_emails = fields.List(fields.String(), attribute="unknown", data_key="unknown")
    invalid = fields.List(fields.String())


class UserOut(Schema):
    id = fields.Integer()
    email = fields.String()
    display_name = fields.String()
    active = fields.Boolean()


class MeOut(Schema):
    org_id = fields.Integer()
    user_id = fields.Integer(allow_none=True)
    kind = fields.String()
    name = fields.String()
