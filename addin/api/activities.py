"""/api/v1/activities: create, read, update, cancel, and list with series expanded in a range."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import ValidationError

from addin.api.schemas import (
    ActivityIn,
    ActivityListArgs,
    ActivityOut,
    ActivityPage,
    ActivityPatch,
    EventLookupArgs,
    activity_fields,
    decode_cursor,
    encode_cursor,
)
from addin.context import container, principal
from services import activities
from services.tables import Provider

blp = Blueprint(
    "activities", __name__, url_prefix="/activities", description="Meetings, calls, visits, tasks"
)


@blp.route("")
class Activities(MethodView):
    @blp.arguments(ActivityListArgs, location="query")
    @blp.response(200, ActivityPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List activities by start time.

        With `start` and `end`, recurring series are expanded into their occurrences in that
        range (each occurrence carries `series_id` and `original_start`).
        """
        flt = activities.ActivityFilter(
            owner_id=args.get("owner_id"),
            company_id=args.get("company_id"),
            contact_id=args.get("contact_id"),
            kinds=args.get("kind", ()),
            statuses=args.get("status", ()),
            start=args.get("start"),
            end=args.get("end"),
        )
        after = None
        if args["cursor"]:
            # The cursor is the last item's sort key; a non-occurrence has no original start.
            start, last_id, original = decode_cursor(args["cursor"], (dt.datetime, int, str))
            after = (start, last_id, _original_start(original))
        with container().uow(read_only=True) as uow:
            page = activities.list_activities(
                uow, principal(), flt, after=after, limit=args["limit"]
            )
            items = [activity_fields(item) for item in page.items]
        cursor = None
        if page.next_after is not None:
            start, last_id, original = page.next_after
            occurrence = "" if original == activities.NOT_AN_OCCURRENCE else original.isoformat()
            cursor = encode_cursor([start.isoformat(), last_id, occurrence])
        return {"items": items, "next_cursor": cursor}

    @blp.arguments(ActivityIn)
    @blp.response(201, ActivityOut)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create an activity; the owner defaults to the calling user."""
        with container().uow() as uow:
            item = activities.create_activity(uow, principal(), data)
            uow.commit()
            return activity_fields(item)


def _original_start(text: str) -> dt.datetime:
    if not text:
        return activities.NOT_AN_OCCURRENCE
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError({"cursor": ["not a cursor this API issued"]}) from None
    if value.tzinfo is None:
        raise ValidationError({"cursor": ["not a cursor this API issued"]})
    return value


@blp.route("/by-event")
class ActivityByEvent(MethodView):
    @blp.arguments(EventLookupArgs, location="query")
    @blp.response(200, ActivityOut)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The activity the caller's own copy of a calendar event is linked to.

        `event_id` is the event's id in the caller's mailbox: for Outlook the REST / Graph id
        (Office.js `convertToRestId` of the item id); 404 when sync has not linked it.
        """
        provider = Provider(args["provider"])
        found = activities.activity_for_event(
            container().uow,
            principal(),
            provider,
            args["event_id"],
            container().event_ids_for(provider),
        )
        return activity_fields(found)


@blp.route("/<int:activity_id>")
class ActivityById(MethodView):
    @blp.response(200, ActivityOut)
    def get(self, activity_id: int) -> dict[str, Any]:
        with container().uow(read_only=True) as uow:
            return activity_fields(activities.get_activity(uow, principal(), activity_id))

    @blp.arguments(ActivityPatch)
    @blp.response(200, ActivityOut)
    def patch(self, changes: dict[str, Any], activity_id: int) -> dict[str, Any]:
        """Change some fields: reschedule, record held / not held with an outcome, re-tag."""
        with container().uow() as uow:
            item = activities.update_activity(uow, principal(), activity_id, changes)
            uow.commit()
            return activity_fields(item)


@blp.route("/<int:activity_id>/cancel")
class CancelActivity(MethodView):
    @blp.response(200, ActivityOut)
    def post(self, activity_id: int) -> dict[str, Any]:
        """Cancel: the activity stays in history with status `cancelled`."""
        with container().uow() as uow:
            item = activities.cancel_activity(uow, principal(), activity_id)
            uow.commit()
            return activity_fields(item)
