"""What one caller sees of an activity, and opaque cursors: pure functions, no database."""

from __future__ import annotations

import datetime as dt

import pytest
from marshmallow import ValidationError

from addin.api.schemas import ActivityOut, activity_fields, decode_cursor, encode_cursor
from services.activities import ActivityItem
from services.auth import Principal, PrincipalKind
from services.tables import Activity, Participant

START = dt.datetime(2030, 1, 7, 8, tzinfo=dt.UTC)


def private_meeting() -> Activity:
    activity = Activity(
        id=7, org_id=1, owner_id=10, kind="meeting", subject="Doctor", description="blood test",
        start_at=START, end_at=START + dt.timedelta(hours=1), time_zone="Europe/Oslo",
        all_day=False, status="planned", visibility="private", show_as="busy", company_id=3,
        priority="normal", location="Clinic", outcome="", created_at=START, updated_at=START,
    )  # fmt: skip
    activity.participants = [
        Participant(email="doc@clinic.example", name="Doc", role="required", response="none")
    ]
    activity.contact_links = []
    return activity


def seen_by(user_id: int | None) -> dict[str, object]:
    activity = private_meeting()
    viewer = Principal(org_id=1, user_id=user_id, kind=PrincipalKind.API_KEY, name="t")
    masked = not viewer.can_see_private(activity.owner_id)
    item = ActivityItem(activity, activity.start_at, activity.end_at, masked=masked)
    return ActivityOut().dump(activity_fields(item))  # type: ignore[no-any-return]


def test_owner_sees_everything() -> None:
    mine = seen_by(10)
    assert (mine["subject"], mine["description"], mine["location"], mine["private"]) == (
        "Doctor",
        "blood test",
        "Clinic",
        False,
    )
    assert mine["participants"][0]["email"] == "doc@clinic.example"  # type: ignore[index]


@pytest.mark.parametrize("viewer", [11, None])
def test_others_and_keys_without_a_user_see_busy(viewer: int | None) -> None:
    theirs = seen_by(viewer)
    assert theirs["subject"] == "Busy"
    assert theirs["private"] is True
    assert theirs["start"] == "2030-01-07T08:00:00+00:00"
    assert (
        not {"description", "location", "participants", "company_id", "contact_ids"} & theirs.keys()
    )


def test_cursor_round_trip() -> None:
    cursor = encode_cursor([START.isoformat(), 42, ""])
    assert decode_cursor(cursor, (dt.datetime, int, str)) == [START, 42, ""]


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        encode_cursor([1, 2]),
        encode_cursor(["not a date", 1, ""]),
        encode_cursor({"a": 1}),
        encode_cursor(["2030-01-01T00:00:00", 1, ""]),  # naive: would not compare with aware
    ],  # type: ignore[list-item]
)
def test_foreign_cursors_are_a_field_error(cursor: str) -> None:
    with pytest.raises(ValidationError) as error:
        decode_cursor(cursor, (dt.datetime, int, str))
    assert error.value.messages == {"cursor": ["not a cursor this API issued"]}
