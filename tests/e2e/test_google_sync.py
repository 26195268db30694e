"""Google scenarios end to end: Google stand-ins -> push over HTTP -> queue -> worker -> API.

SCENARIOS.md A1-A4, B1-B8, D1 and E2 for Google, plus a meeting with an Outlook and a Google
internal attendee, channel replacement with overlap, 410 on sync, and Gmail's Pub/Sub pushes.
The stand-ins speak Calendar v3, Gmail v1, the Admin SDK Directory and Google's OAuth token
endpoint over HTTPS; the product reaches them with its own client and service-account key, and
the add-on is called over HTTP with Google-signed ID tokens, as Google calls it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import requests

from addin import cards
from tests.e2e.conftest import DOMAIN, PUBLIC_BASE_URL, GoogleWorld

NOW = dt.datetime.now(dt.UTC)
NEXT_WEEK = (NOW + dt.timedelta(days=7)).replace(
    hour=9, minute=0, second=0, microsecond=0, tzinfo=None
)
ZONE = "Europe/Oslo"


def parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def participants(activity: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["email"]: p for p in activity["participants"]}


def connected(g: GoogleWorld, *names: str) -> dict[str, str]:
    users = {name: g.add_user(name) for name in names}
    g.connect()
    return users


def create_company(g: GoogleWorld, name: str, domain: str) -> int:
    answer = g.world.api("POST", "/companies", json={"name": name, "domains": [domain]})
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def create_contact(g: GoogleWorld, email: str, company_id: int) -> int:
    body = {"first_name": "Kim", "last_name": "Customer", "emails": [email],
            "company_id": company_id}  # fmt: skip
    answer = g.world.api("POST", "/contacts", json=body)
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def meeting(g: GoogleWorld, organizer: str, *attendees: str, **fields: Any) -> dict[str, Any]:
    start = fields.pop("start", NEXT_WEEK)
    return dict(
        g.google.create_event(
            organizer,
            summary=fields.pop("summary", "Kick-off"),
            start=start,
            end=fields.pop("end", start + dt.timedelta(hours=1)),
            time_zone=fields.pop("time_zone", ZONE),
            attendees=list(attendees),
            **fields,
        )
    )


def card(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    navigation = response.json()["renderActions"]["action"]["navigations"][0]
    found: dict[str, Any] = navigation.get("pushCard") or navigation["updateCard"]
    return found


def notification(response: requests.Response) -> str:
    assert response.status_code == 200, response.text
    return str(response.json()["renderActions"]["action"]["notification"]["text"])


def widgets(found: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for section in found["sections"]:
        yield from section["widgets"]


def buttons(found: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """(text, parameters) of every button of a card."""
    result = []
    for widget in widgets(found):
        listed = widget.get("buttonList", {}).get("buttons", [])
        inline = (
            [widget["decoratedText"]["button"]]
            if "button" in widget.get("decoratedText", {})
            else []
        )
        for button in [*listed, *inline]:
            action = button["onClick"]["action"]
            parameters = {p["key"]: p["value"] for p in action.get("parameters", [])}
            result.append((button["text"], parameters))
    return result


def button(found: dict[str, Any], text_start: str) -> dict[str, str]:
    for text, parameters in buttons(found):
        if text.startswith(text_start):
            return parameters
    raise AssertionError(f"no button {text_start!r} in {[t for t, _ in buttons(found)]}")


def selection(found: dict[str, Any], name: str) -> list[dict[str, Any]]:
    for widget in widgets(found):
        if widget.get("selectionInput", {}).get("name") == name:
            return list(widget["selectionInput"]["items"])
    raise AssertionError(f"no selection {name}")


def open_event(g: GoogleWorld, user: str, event_id: str) -> dict[str, Any]:
    return card(g.addon("calendar/event-open", user, calendar={"calendarId": user, "id": event_id}))


# --------------------------------------------------------------------------- connecting, E2


def test_connect_watches_each_users_calendar_and_gmail(gworld: GoogleWorld) -> None:
    users = connected(gworld, "anna", "bob")
    channels = [c for c in gworld.google.live_channels() if c.calendar in users.values()]
    assert sorted(c.calendar for c in channels) == sorted(users.values())
    for channel in channels:
        assert channel.address == f"{PUBLIC_BASE_URL}/webhooks/google/calendar"
        assert channel.token is not None
        assert len(channel.token) >= 32
    assert len({c.token for c in channels}) == 2  # a random token per channel
    health = gworld.world.health()
    for address in users.values():
        row = health[address]
        assert row["provider"] == "google"
        assert parse(row["subscription_expires_at"]) > NOW + dt.timedelta(days=6)
        assert parse(row["mail_watch_expires_at"]) > NOW + dt.timedelta(days=6)
        assert row["last_sync_at"] is not None  # the first full sync ran
        assert row["last_error"] is None
    # Every call acted as the user whose calendar it read (domain-wide delegation).
    listings = gworld.google.log(method="GET", path_regex=r"/calendars/[^/]+/events$")
    assert {r.subject for r in listings} >= set(users.values())


def test_connecting_twice_keeps_one_channel_per_user(gworld: GoogleWorld) -> None:
    users = connected(gworld, "anna")
    gworld.connect()
    assert len(gworld.google.live_channels(users["anna"])) == 1


# --------------------------------------------------------------------------- A1-A4


def test_a1_a2_a_new_meeting_shows_on_the_homepage_with_a_one_click_suggestion(
    gworld: GoogleWorld,
) -> None:
    users = connected(gworld, "anna")
    fabrikam = create_company(gworld, "Fabrikam", "fabrikam.example")
    create_company(gworld, "Free mail", "gmail.com")  # free-mail domains never suggest
    event = meeting(gworld, users["anna"], "kim@fabrikam.example", "pal@gmail.com",
                    summary="Plan with Fabrikam")  # fmt: skip
    gworld.notify()  # Google: "anna's calendar changed"; the worker syncs within seconds

    home = card(gworld.addon("homepage", users["anna"]))
    tag = button(home, "Tag Fabrikam")
    assert tag["company_id"] == str(fabrikam)
    assert all("Free mail" not in text for text, _ in buttons(home))

    tagged = gworld.addon("action", users["anna"], parameters=tag)
    assert "Fabrikam" in notification(tagged)
    activity = gworld.world.activity_for(event["iCalUID"])
    assert activity["company_id"] == fabrikam
    # Our activity id went into the private extended properties of anna's copy, via DWD.
    copy = gworld.google.event(users["anna"], event["id"])
    assert copy["extendedProperties"]["private"]["crmActivityId"] == str(activity["id"])
    assert button(card(gworld.addon("homepage", users["anna"])), "Search")  # list now empty
    assert not [t for t, _ in buttons(card(gworld.addon("homepage", users["anna"])))
                if t.startswith("Tag ")]  # fmt: skip


def test_a2_a3_event_card_suggests_and_save_tags_once_and_the_tag_survives_changes(
    gworld: GoogleWorld,
) -> None:
    users = connected(gworld, "anna", "bob")
    fabrikam = create_company(gworld, "Fabrikam", "fabrikam.example")
    kim = create_contact(gworld, "kim@fabrikam.example", fabrikam)
    event = meeting(gworld, users["anna"], users["bob"], "kim@fabrikam.example")
    gworld.notify()

    opened = open_event(gworld, users["anna"], event["id"])
    suggested = selection(opened, cards.COMPANY_ID)
    assert suggested[0]["value"] == str(fabrikam)
    contacts = selection(opened, cards.CONTACT_IDS)
    assert [c["value"] for c in contacts] == [str(kim)]
    saved = gworld.addon(
        "action",
        users["anna"],
        parameters=button(opened, "Save"),
        inputs={cards.COMPANY_ID: [str(fabrikam)], cards.CONTACT_IDS: [str(kim)],
                cards.KIND: ["visit"]},
    )  # fmt: skip
    assert saved.status_code == 200, saved.text

    # Later changes by the organizer and responses keep the tag: it is the CRM's, keyed to the
    # meeting, not a property that must travel with every copy.
    gworld.google.update_event(event["id"], summary="Kick-off, moved")
    gworld.google.respond(users["bob"], event["id"], "accepted")
    gworld.notify()
    activity = gworld.world.activity_for(event["iCalUID"])
    assert (activity["company_id"], activity["kind"]) == (fabrikam, "visit")
    assert kim in activity["contact_ids"]
    assert activity["subject"] == "Kick-off, moved"
    assert len(gworld.world.activities()) == 1


def test_a3_a_tagged_event_synced_again_from_scratch_is_adopted_not_duplicated(
    gworld: GoogleWorld,
) -> None:
    users = connected(gworld, "anna")
    fabrikam = create_company(gworld, "Fabrikam", "fabrikam.example")
    event = meeting(gworld, users["anna"], "kim@fabrikam.example")
    gworld.notify()
    activity = gworld.world.activity_for(event["iCalUID"])
    opened = open_event(gworld, users["anna"], event["id"])
    gworld.addon("action", users["anna"], parameters=button(opened, "Save"),
                 inputs={cards.COMPANY_ID: [str(fabrikam)]})  # fmt: skip
    gworld.google.expire_sync_tokens(users["anna"])
    gworld.google.update_event(event["id"], location="Oslo")
    gworld.notify()
    again = gworld.world.activity_for(event["iCalUID"])
    assert (again["id"], again["company_id"], again["location"]) == (activity["id"], fabrikam,
                                                                     "Oslo")  # fmt: skip


def test_a4_unknown_attendees_become_contacts_and_a_company_in_one_step(
    gworld: GoogleWorld,
) -> None:
    users = connected(gworld, "anna")
    event = meeting(gworld, users["anna"], {"email": "new.person@globex.example",
                                            "displayName": "New Person"})  # fmt: skip
    gworld.notify()
    activity = gworld.world.activity_for(event["iCalUID"])
    stranger = participants(activity)["new.person@globex.example"]
    assert stranger["contact_id"] is None  # kept as a participant with e-mail and name
    assert stranger["name"] == "New Person"

    opened = open_event(gworld, users["anna"], event["id"])
    added = gworld.addon(
        "action",
        users["anna"],
        parameters=button(opened, "Add as contacts"),
        inputs={cards.NEW_CONTACTS: ["new.person@globex.example"]},
    )
    assert added.status_code == 200, added.text
    found = gworld.world.api(
        "GET", "/contacts/lookup", params={"email": "new.person@globex.example"}
    )
    assert found.status_code == 200, found.text
    companies = gworld.world.api("GET", "/companies", params={"q": "globex"}).json()["items"]
    assert [c["domains"] for c in companies] == [["globex.example"]]


def test_opening_an_event_not_saved_yet_says_to_save_it_first(gworld: GoogleWorld) -> None:
    users = connected(gworld, "anna")
    opened = card(gworld.addon("calendar/event-open", users["anna"], calendar={}))
    assert "Save" in opened["header"]["title"]


# --------------------------------------------------------------------------- B1-B8


def test_b1_reschedule_moves_the_activity(gworld: GoogleWorld) -> None:
    users = connected(gworld, "anna")
    event = meeting(gworld, users["anna"], "kim@fabrikam.example")
    gworld.notify()
    later = NEXT_WEEK + dt.timedelta(days=1, hours=2)
    gworld.google.update_event(event["id"], start=later, end=later + dt.timedelta(minutes=30))
    gworld.notify()
    activity = gworld.world.activity_for(event["iCalUID"])
    expected = later.replace(tzinfo=ZoneInfo(ZONE))  # wall time in Oslo
    assert parse(activity["start"]) == expected
    assert parse(activity["end"]) - parse(activity["start"]) == dt.timedelta(minutes=30)


def test_b2_b4_one_activity_for_two_calendars_with_each_response(gworld: GoogleWorld) -> None:
    users = connected(gworld, "anna", "bob")
    event = meeting(gworld, users["anna"], users["bob"], "kim@fabrikam.example")
    gworld.notify()
    gworld.google.respond(users["bob"], event["id"], "tentative")
    gworld.google.respond("kim@fabrikam.example", event["id"], "declined")
    gworld.notify()
    activity = gworld.world.activity_for(event["iCalUID"])
    people = participants(activity)
    assert people[users["bob"]]["response"] == "tentative"
    assert people[users["bob"]]["user_id"] is not None  # an internal participant
    assert people["kim@fabrikam.example"]["response"] == "declined"
    # Google gives no response time: an internal attendee's is when their copy showed it.
    assert people[users["bob"]]["responded_at"] is not None
    assert len(gworld.world.activities()) == 1


def test_b3_organizer_cancellation_keeps_a_cancelled_activity(gworld: GoogleWorld) -> None:
    users = connected(gworld, "anna", "bob")
    event = meeting(gworld, users["anna"], users["bob"])
    gworld.notify()
    gworld.google.cancel_event(event["id"])
    gworld.notify()
    activity = gworld.world.activity_for(event["iCalUID"])
    assert activity["status"] == "cancelled"


def test_b3_attendee_deleting_their_copy_is_a_decline(gworld: GoogleWorld) -> None:
    users = connected(gworld, "anna", "bob")
    event = meeting(gworld, users["anna"], users["bob"])
    gworld.notify()
    gworld.google.delete_own_copy(users["bob"], event["id"])
    gworld.notify()
    activity = gworld.world.activity_for(event["iCalUID"])
    assert activity["status"] == "planned"
    assert participants(activity)[users["bob"]]["response"] == "declined"


def test_b5_external_organizer_links_the_known_customer(gworld: GoogleWorld) -> None:
    users = connected(gworld, "anna")
    fabrikam = create_company(gworld, "Fabrikam", "fabrikam.example")
    create_contact(gworld, "kim@fabrikam.example", fabrikam)
    event = meeting(gworld, "kim@fabrikam.example", users["anna"], "lee@fabrikam.example",
                    "ola@gmail.com")  # fmt: skip
    gworld.notify()
    activity = gworld.world.activity_for(event["iCalUID"])
    assert set(participants(activity)) >= {
        "kim@fabrikam.example",
        users["anna"],
        "lee@fabrikam.example",
        "ola@gmail.com",
    }
    assert activity["company_id"] == fabrikam


def test_b5_an_external_meeting_with_another_company_waits_untagged(gworld: GoogleWorld) -> None:
    users = connected(gworld, "anna")
    fabrikam = create_company(gworld, "Fabrikam", "fabrikam.example")
    create_contact(gworld, "kim@fabrikam.example", fabrikam)
    event = meeting(gworld, "kim@fabrikam.example", users["anna"], "someone@stranger.example")
    gworld.notify()
    activity = gworld.world.activity_for(event["iCalUID"])
    assert activity["company_id"] is None
    home = card(gworld.addon("homepage", users["anna"]))
    assert button(home, "Tag Fabrikam")["company_id"] == str(fabrikam)  # the suggestion


def test_b6_series_without_end_and_its_exceptions(gworld: GoogleWorld) -> None:
    users = connected(gworld, "anna")
    start = NEXT_WEEK
    day = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"][start.weekday()]
    series = meeting(gworld, users["anna"], "kim@fabrikam.example", summary="Weekly sync",
                     recurrence=[f"RRULE:FREQ=WEEKLY;BYDAY={day}"])  # fmt: skip
    gworld.notify()
    second = start + dt.timedelta(days=7)
    third = start + dt.timedelta(days=14)
    gworld.google.cancel_instance(series["id"], second)
    gworld.google.move_instance(series["id"], third, third + dt.timedelta(hours=3),
                                third + dt.timedelta(hours=4))  # fmt: skip
    gworld.notify()
    master = gworld.world.activity_for(series["iCalUID"])
    assert master["recurrence"]["rule"].startswith("FREQ=WEEKLY")
    # Five years out, an occurrence is there: a rule, not a capped list of copies.
    far = NEXT_WEEK + dt.timedelta(days=5 * 365)
    found = gworld.world.activities(start=far.isoformat() + "Z",
                                    end=(far + dt.timedelta(days=7)).isoformat() + "Z")  # fmt: skip
    assert [a["subject"] for a in found] == ["Weekly sync"]
    window = gworld.world.activities(
        start=(start - dt.timedelta(days=1)).isoformat() + "Z",
        end=(start + dt.timedelta(days=20)).isoformat() + "Z",
    )
    shown = sorted((parse(a["start"]), a["status"]) for a in window)
    assert [status for _, status in shown].count("planned") == 2  # the first, the moved one
    cancelled = [a for a in window if a["status"] == "cancelled"]
    assert [parse(a["original_start"]) for a in cancelled] == [
        second.replace(tzinfo=ZoneInfo(ZONE))
    ]  # the cancelled occurrence is an exception of the series, shown as cancelled
    moved = [a for a in window if a["original_start"] and a["start"] != a["original_start"]]
    assert len(moved) == 1
    assert parse(moved[0]["start"]) - parse(moved[0]["original_start"]) == dt.timedelta(hours=3)


def test_b7_private_meeting_is_busy_for_colleagues(gworld: GoogleWorld) -> None:
    users = connected(gworld, "anna", "bob")
    meeting(gworld, users["anna"], "kim@fabrikam.example", summary="Salary talk",
                    visibility="private")  # fmt: skip
    gworld.notify()
    # The admin key acts as the organization's admin user, a colleague: busy, nothing more.
    (activity,) = gworld.world.activities()
    assert activity["private"] is True
    assert activity["subject"] != "Salary talk"
    assert activity.get("participants", []) == []


def test_b8_lost_notifications_are_recovered_by_the_hourly_sync(gworld: GoogleWorld) -> None:
    users = connected(gworld, "anna")
    event = meeting(gworld, users["anna"], "kim@fabrikam.example")
    gworld.google.pending_notifications.clear()  # Google dropped them
    gworld.world.reconcile_all()
    assert gworld.world.activity_for(event["iCalUID"])["subject"] == "Kick-off"


def test_b8_an_expired_sync_token_falls_back_to_a_full_sync_without_duplicates(
    gworld: GoogleWorld,
) -> None:
    users = connected(gworld, "anna", "bob")
    event = meeting(gworld, users["anna"], users["bob"])
    gworld.notify()
    gworld.google.expire_sync_tokens()
    gworld.google.update_event(event["id"], summary="Renamed")
    gworld.notify()
    assert gworld.google.log(status=410)  # Google refused the token; the product started over
    activity = gworld.world.activity_for(event["iCalUID"])
    assert activity["subject"] == "Renamed"
    assert len(gworld.world.activities()) == 1
    assert gworld.world.health()[users["anna"]]["last_error"] is None


# --------------------------------------------------------------------------- across providers


def test_b4_a_meeting_with_an_outlook_and_a_google_attendee_is_one_activity(
    gworld: GoogleWorld,
) -> None:
    world = gworld.world
    linda = world.add_user("linda")  # Outlook
    world.connect()
    anna = connected(gworld, "anna")["anna"]  # Google
    outlook = world.graph.create_event(
        linda, start=NEXT_WEEK.strftime("%Y-%m-%dT%H:%M:%S"), subject="Joint review",
        attendees=[anna, "kim@fabrikam.example"],
    )  # fmt: skip
    world.notify()
    # The invitation lands in anna's Google calendar under the same iCalUID.
    meeting(gworld, f"linda@{DOMAIN}", anna,
            "kim@fabrikam.example", summary="Joint review",
            ical_uid=outlook["iCalUId"])  # fmt: skip
    gworld.notify()
    gworld.google.respond(anna, gworld.google.events(anna)[-1]["id"], "accepted")
    gworld.notify()
    activity = world.activity_for(outlook["iCalUId"])
    people = participants(activity)
    assert people[anna]["response"] == "accepted"
    assert people[anna]["user_id"] is not None
    assert len(world.activities()) == 1


# --------------------------------------------------------------------------- D1


def test_d1_after_the_meeting_the_owner_records_held_with_an_outcome(gworld: GoogleWorld) -> None:
    users = connected(gworld, "anna")
    yesterday = (NOW - dt.timedelta(days=1)).replace(hour=9, minute=0, second=0,
                                                     microsecond=0, tzinfo=None)  # fmt: skip
    event = meeting(gworld, users["anna"], "kim@fabrikam.example", start=yesterday)
    gworld.notify()
    opened = open_event(gworld, users["anna"], event["id"])
    held = gworld.addon("action", users["anna"], parameters=button(opened, "Held"),
                        inputs={cards.OUTCOME_NOTE: ["Won: they liked the pilot"]})  # fmt: skip
    assert "held" in notification(held).lower()
    activity = gworld.world.activity_for(event["iCalUID"])
    assert activity["status"] == "held"
    assert activity["outcome"] == "Won: they liked the pilot"


# --------------------------------------------------------------------------- channels


def test_a_channel_is_replaced_before_it_expires_new_first_then_the_old_stopped(
    gworld: GoogleWorld,
) -> None:
    users = connected(gworld, "anna")
    (old,) = gworld.google.live_channels(users["anna"])
    container = gworld.world.container
    from services import mailboxes
    from services.tables import Provider

    mailboxes.renew_subscriptions(
        container.uow,
        container.google.channels,
        provider=Provider.GOOGLE,
        now=dt.datetime.now(dt.UTC) + dt.timedelta(days=5),
    )
    (new,) = gworld.google.live_channels(users["anna"])
    assert new.id != old.id
    watches = gworld.google.log(method="POST", path_regex=r"/events/watch$")
    stops = gworld.google.log(method="POST", path_regex=r"/channels/stop$")
    assert watches[-1].at <= stops[-1].at  # the overlap: the new channel existed first
    event = meeting(gworld, users["anna"], "kim@fabrikam.example")
    gworld.notify()  # delivered on the new channel, accepted
    assert gworld.world.activity_for(event["iCalUID"])["subject"] == "Kick-off"
    assert parse(
        gworld.world.health()[users["anna"]]["subscription_expires_at"]
    ) > NOW + dt.timedelta(days=6)


# --------------------------------------------------------------------------- Gmail


def test_an_invitation_pushed_by_gmail_triggers_the_calendar_sync(gworld: GoogleWorld) -> None:
    users = connected(gworld, "anna")
    event = meeting(gworld, "kim@fabrikam.example", users["anna"], summary="Invite from Kim")
    gworld.google.pending_notifications.clear()  # the Calendar push never came
    gworld.google.deliver_invitation(users["anna"], event["id"])
    assert gworld.push_mail(users["anna"]) == 200
    assert gworld.world.activity_for(event["iCalUID"])["subject"] == "Invite from Kim"


def test_forged_pubsub_pushes_are_refused_and_change_nothing(gworld: GoogleWorld) -> None:
    users = connected(gworld, "anna")
    event = meeting(gworld, "kim@fabrikam.example", users["anna"])
    gworld.google.pending_notifications.clear()
    gworld.google.deliver_invitation(users["anna"], event["id"])
    forged = gworld.identity.mint_id_token(f"{PUBLIC_BASE_URL}/webhooks/google/pubsub",
                                           "intruder@evil.iam.gserviceaccount.com")  # fmt: skip
    assert gworld.push_mail(users["anna"], token=forged) == 401
    unknown_key = gworld.identity.mint_id_token(
        f"{PUBLIC_BASE_URL}/webhooks/google/pubsub",
        "gmail-push@crm-project.iam.gserviceaccount.com",
        key="unknown",
    )
    assert gworld.push_mail(users["anna"], token=unknown_key) == 401
    assert gworld.world.activities() == []


def test_a_history_id_too_old_falls_back_to_a_calendar_sync(gworld: GoogleWorld) -> None:
    users = connected(gworld, "anna")
    event = meeting(gworld, users["anna"], "kim@fabrikam.example")
    gworld.google.pending_notifications.clear()
    gworld.google.expire_history(users["anna"])
    gworld.google.deliver_message(users["anna"], sender="x@y.example", subject="hi", text="hi")
    assert gworld.push_mail(users["anna"]) == 200
    assert gworld.world.activity_for(event["iCalUID"])["subject"] == "Kick-off"


def test_the_gmail_card_on_an_invitation_shows_that_meeting(gworld: GoogleWorld) -> None:
    users = connected(gworld, "anna")
    fabrikam = create_company(gworld, "Fabrikam", "fabrikam.example")
    event = meeting(gworld, "kim@fabrikam.example", users["anna"], summary="Invite from Kim")
    gworld.notify()
    message_id = gworld.google.deliver_invitation(users["anna"], event["id"])
    opened = card(
        gworld.addon(
            "gmail/message-open",
            users["anna"],
            host="GMAIL",
            gmail={"messageId": message_id, "threadId": message_id},
        )
    )
    assert opened["header"]["title"] == "Invite from Kim"
    assert selection(opened, cards.COMPANY_ID)[0]["value"] == str(fabrikam)
