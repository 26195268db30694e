"""Outlook scenarios end to end: Graph stand-in -> webhook over HTTP -> queue -> worker -> API.

SCENARIOS.md A3, A4, B1-B8 and E2 for Outlook, plus the delivery faults Graph can produce.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import requests
from sqlalchemy import update

from graph.events import TAG_ACTIVITY, TAG_COMPANY, TAG_KIND, cecp_property_id
from services import auth, organizations
from services.tables import Subscription
from tests.e2e.conftest import ADDIN_ID, DOMAIN, PUBLIC_BASE_URL, World, start_worker, wait_until
from tests.standins.graph import rest_id

CECP = cecp_property_id(ADDIN_ID)
NEXT_WEEK = (dt.datetime.now(dt.UTC) + dt.timedelta(days=7)).replace(
    hour=9, minute=0, second=0, microsecond=0, tzinfo=None
)


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def participants(activity: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["email"]: p for p in activity["participants"]}


def create_company(world: World, name: str, domain: str) -> int:
    answer = world.api("POST", "/companies", json={"name": name, "domains": [domain]})
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def create_contact(world: World, email: str, company_id: int) -> int:
    answer = world.api(
        "POST",
        "/contacts",
        json={
            "first_name": "Kim",
            "last_name": "Customer",
            "emails": [email],
            "company_id": company_id,
        },
    )
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def connected(world: World, *names: str) -> dict[str, Any]:
    users = {name: world.add_user(name) for name in names}
    world.connect()
    return users


# --------------------------------------------------------------------------- connecting


def test_connect_subscribes_each_mailbox_after_the_validation_handshake(world: World) -> None:
    connected(world, "linda", "julie")
    subscriptions = list(world.graph.subscriptions.values())
    assert sorted(s.user_id for s in subscriptions) == sorted(u.id for u in world.users.values())
    for subscription in subscriptions:
        assert subscription.notification_url == f"{PUBLIC_BASE_URL}/webhooks/graph/notifications"
        assert subscription.lifecycle_url == f"{PUBLIC_BASE_URL}/webhooks/graph/lifecycle"
        assert set(subscription.change_types) == {"created", "updated", "deleted"}
        assert subscription.client_state
        assert len(subscription.client_state) >= 32
    # Two random secrets, one per subscription.
    assert len({s.client_state for s in subscriptions}) == 2
    # Graph validated both URLs of both subscriptions against the running app.
    assert len(world.graph.validations) == 4
    assert all(v.status == 200 for v in world.graph.validations)
    health = world.health()
    assert set(health) == {f"linda@{DOMAIN}", f"julie@{DOMAIN}"}
    for row in health.values():
        assert parse(row["subscription_expires_at"]) > dt.datetime.now(dt.UTC) + dt.timedelta(
            days=6
        )
        assert row["last_sync_at"] is not None  # the initial reconciliation ran
        assert row["last_error"] is None
    users = world.api("GET", "/users").json()["items"]
    assert {u["email"] for u in users} >= {f"linda@{DOMAIN}", f"julie@{DOMAIN}"}


def test_connecting_twice_keeps_one_subscription_per_mailbox(world: World) -> None:
    connected(world, "linda")
    world.connect()
    assert len(world.graph.subscriptions) == 1


# --------------------------------------------------------------------------- A3, A4, B1-B5


def test_a3_tag_written_by_the_add_in_lands_on_the_activity_exactly_once(world: World) -> None:
    users = connected(world, "linda")
    company_id = create_company(world, "Fabrikam", "fabrikam.example")
    # The task pane saved the tag before the item was sent: a CRM activity waits for it.
    draft = world.api(
        "POST",
        "/activities",
        json={
            "kind": "visit",
            "subject": "Plan",
            "start": iso(NEXT_WEEK) + "Z",
            "end": iso(NEXT_WEEK + dt.timedelta(hours=1)) + "Z",
            "company_id": company_id,
        },
    )
    assert draft.status_code == 201, draft.text
    tag = json.dumps(
        {TAG_ACTIVITY: str(draft.json()["id"]), TAG_COMPANY: str(company_id), TAG_KIND: "visit"}
    )
    event = world.graph.create_event(
        users["linda"],
        start=iso(NEXT_WEEK),
        subject="Plan with Fabrikam",
        attendees=["kim@fabrikam.example"],
        extended_properties={CECP: tag},
    )
    world.notify(repeat=2)
    activity = world.activity_for(event["iCalUId"])
    assert activity["id"] == draft.json()["id"]
    assert activity["company_id"] == company_id
    assert activity["kind"] == "visit"
    assert activity["subject"] == "Plan with Fabrikam"
    assert len(world.activities()) == 1


def test_a4_unknown_attendee_is_kept_with_name_and_email(world: World) -> None:
    users = connected(world, "linda")
    event = world.graph.create_event(
        users["linda"],
        start=iso(NEXT_WEEK),
        attendees=[
            {"emailAddress": {"address": "New.Person@Unknown.example", "name": "New Person"}}
        ],
    )
    world.notify()
    people = participants(world.activity_for(event["iCalUId"]))
    assert people["new.person@unknown.example"]["name"] == "New Person"
    assert people["new.person@unknown.example"]["contact_id"] is None
    assert people[f"linda@{DOMAIN}"]["user_id"] is not None


def test_b1_reschedule_moves_the_activity(world: World) -> None:
    users = connected(world, "linda")
    event = world.graph.create_event(users["linda"], start=iso(NEXT_WEEK))
    world.notify()
    later = NEXT_WEEK + dt.timedelta(days=1, hours=2)
    world.graph.update_event(
        users["linda"], event["id"], start=iso(later), end=iso(later + dt.timedelta(hours=1))
    )
    world.notify()
    activity = world.activity_for(event["iCalUId"])
    assert parse(activity["start"]) == later.replace(tzinfo=dt.UTC)
    assert parse(activity["end"]) == (later + dt.timedelta(hours=1)).replace(tzinfo=dt.UTC)


def test_b2_b4_one_activity_for_two_mailboxes_with_each_response(world: World) -> None:
    users = connected(world, "linda", "julie")
    event = world.graph.create_event(
        users["linda"],
        start=iso(NEXT_WEEK),
        attendees=[f"julie@{DOMAIN}", "kim@fabrikam.example"],
    )
    world.notify()
    julie_copy = world.graph.copy_of(event["id"], users["julie"])
    world.graph.respond(users["julie"], julie_copy, "tentativelyAccepted")
    world.notify()
    activity = world.activity_for(event["iCalUId"])
    people = participants(activity)
    assert people[f"julie@{DOMAIN}"]["response"] == "tentative"
    assert people[f"julie@{DOMAIN}"]["responded_at"] is not None
    assert people[f"julie@{DOMAIN}"]["user_id"] is not None
    assert people["kim@fabrikam.example"]["response"] == "none"
    assert len(world.activities()) == 1


def test_b3_organizer_cancellation_keeps_a_cancelled_activity(world: World) -> None:
    users = connected(world, "linda", "julie")
    event = world.graph.create_event(
        users["linda"], start=iso(NEXT_WEEK), attendees=[f"julie@{DOMAIN}"]
    )
    world.notify()
    world.graph.cancel_event(users["linda"], event["id"])
    world.notify()
    activity = world.activity_for(event["iCalUId"])
    assert activity["status"] == "cancelled"


def test_b3_attendee_deleting_their_copy_is_a_decline(world: World) -> None:
    users = connected(world, "linda", "julie")
    event = world.graph.create_event(
        users["linda"], start=iso(NEXT_WEEK), attendees=[f"julie@{DOMAIN}"]
    )
    world.notify()
    world.graph.delete_event(users["julie"], world.graph.copy_of(event["id"], users["julie"]))
    world.notify()
    activity = world.activity_for(event["iCalUId"])
    assert activity["status"] == "planned"
    assert participants(activity)[f"julie@{DOMAIN}"]["response"] == "declined"


def test_b5_external_organizer_links_the_known_customer(world: World) -> None:
    users = connected(world, "linda")
    company_id = create_company(world, "Fabrikam", "fabrikam.example")
    create_contact(world, "kim@fabrikam.example", company_id)
    event = world.graph.create_event(
        users["linda"],
        start=iso(NEXT_WEEK),
        attendees=[f"linda@{DOMAIN}", "ola@gmail.com"],
        organizer={"emailAddress": {"address": "kim@fabrikam.example", "name": "Kim"}},
        isOrganizer=False,
    )
    world.notify()
    activity = world.activity_for(event["iCalUId"])
    assert activity["company_id"] == company_id
    assert set(participants(activity)) >= {"kim@fabrikam.example", "ola@gmail.com"}


# --------------------------------------------------------------------------- B6, B7


def test_b6_series_without_end_and_its_exceptions(world: World) -> None:
    users = connected(world, "linda")
    first = NEXT_WEEK
    master = world.graph.create_event(
        users["linda"],
        start=iso(first),
        time_zone="W. Europe Standard Time",
        subject="Weekly",
        recurrence={
            "pattern": {
                "type": "weekly",
                "interval": 1,
                "daysOfWeek": [first.strftime("%A").lower()],
            },
            "range": {"type": "noEnd", "startDate": first.date().isoformat()},
        },
    )
    world.notify()
    series = world.activity_for(master["iCalUId"])
    assert series["recurrence"]["rule"].startswith("FREQ=WEEKLY")
    five_years = first + dt.timedelta(weeks=52 * 5)
    window = {
        "start": (five_years - dt.timedelta(days=3)).isoformat() + "Z",
        "end": (five_years + dt.timedelta(days=4)).isoformat() + "Z",
    }
    assert len(world.activities(**window)) == 1  # an occurrence five years out

    moved_day = first + dt.timedelta(weeks=1)
    cancelled_day = first + dt.timedelta(weeks=2)
    world.graph.move_occurrence(
        users["linda"], master["id"], moved_day.date(), start=iso(moved_day + dt.timedelta(hours=3))
    )
    world.graph.cancel_occurrence(users["linda"], master["id"], cancelled_day.date())
    world.notify()
    in_range = world.activities(
        start=(first - dt.timedelta(days=1)).isoformat() + "Z",
        end=(first + dt.timedelta(weeks=3)).isoformat() + "Z",
    )
    shown = sorted((parse(a["start"]), a["status"]) for a in in_range)
    cancelled = (cancelled_day.replace(tzinfo=dt.UTC) - dt.timedelta(hours=1), "cancelled")
    assert cancelled in shown or len(shown) == 3  # an exception shown as cancelled, or gone
    assert len([s for s in shown if s[1] == "planned"]) == 3
    moved = [a for a in in_range if a["original_start"] and a["start"] != a["original_start"]]
    assert len(moved) == 1
    assert parse(moved[0]["start"]) - parse(moved[0]["original_start"]) == dt.timedelta(hours=3)


def test_b7_private_meeting_is_busy_for_colleagues(world: World) -> None:
    users = connected(world, "linda")
    world.graph.create_event(
        users["linda"], start=iso(NEXT_WEEK), subject="Salary talk", sensitivity="private"
    )
    world.notify()
    (activity,) = world.activities()  # the admin key acts as another user than the owner
    assert activity["private"] is True
    assert activity["subject"] != "Salary talk"
    assert "participants" not in activity


# --------------------------------------------------------------------------- B8 and faults


def test_b8_missed_lifecycle_event_reconciles_what_was_never_announced(world: World) -> None:
    users = connected(world, "linda")
    event = world.graph.create_event(users["linda"], start=iso(NEXT_WEEK), subject="Quiet")
    world.graph.pending_notifications.clear()  # lost by the provider
    subscription = next(iter(world.graph.subscriptions))
    delivery = world.graph.send_lifecycle(subscription, "missed")
    assert delivery.status == 202
    world.drain()
    assert world.activity_for(event["iCalUId"])["subject"] == "Quiet"


def test_b8_expired_delta_token_falls_back_to_a_full_resync_without_duplicates(
    world: World,
) -> None:
    users = connected(world, "linda")
    kept = world.graph.create_event(users["linda"], start=iso(NEXT_WEEK), subject="Kept")
    world.notify()
    gone = world.graph.create_event(users["linda"], start=iso(NEXT_WEEK), subject="Gone")
    world.notify()
    world.graph.cancel_event(users["linda"], gone["id"])
    world.graph.update_event(users["linda"], kept["id"], subject="Kept, renamed")
    world.graph.pending_notifications.clear()
    world.graph.expire_delta_tokens(users["linda"])
    gets_before = world.graph.event_gets(users["linda"])
    world.reconcile_all()
    # The full round re-reads nothing it was given; only the copy it no longer lists is asked
    # about (and found deleted).
    assert world.graph.event_gets(users["linda"]) - gets_before == 1
    assert world.graph.log(path_prefix=f"/users/{users['linda'].id}/calendarView/delta", status=410)
    assert world.activity_for(kept["iCalUId"])["subject"] == "Kept, renamed"
    assert world.activity_for(gone["iCalUId"])["status"] == "cancelled"
    assert len(world.activities()) == 2


def test_subscription_removed_is_recreated_and_resynced(world: World) -> None:
    users = connected(world, "linda")
    old = next(iter(world.graph.subscriptions))
    event = world.graph.create_event(users["linda"], start=iso(NEXT_WEEK), subject="Meanwhile")
    world.graph.pending_notifications.clear()
    assert world.graph.send_lifecycle(old, "subscriptionRemoved").status == 202
    world.drain()
    assert list(world.graph.subscriptions) != [old]
    assert len(world.graph.subscriptions) == 1
    assert world.activity_for(event["iCalUId"])["subject"] == "Meanwhile"
    # Notifications on the new subscription are accepted (its new secret is stored).
    world.graph.update_event(users["linda"], event["id"], subject="After")
    world.notify()
    assert world.activity_for(event["iCalUId"])["subject"] == "After"


def test_reauthorization_required_renews_the_subscription(world: World) -> None:
    connected(world, "linda")
    subscription = next(iter(world.graph.subscriptions.values()))
    before = subscription.expiration
    assert world.graph.send_lifecycle(subscription.id, "reauthorizationRequired").status == 202
    world.drain()
    assert not subscription.needs_reauthorization
    assert subscription.expiration >= before


def test_duplicated_and_out_of_order_notifications_converge_with_one_fetch(world: World) -> None:
    users = connected(world, "linda")
    event = world.graph.create_event(users["linda"], start=iso(NEXT_WEEK))
    world.graph.update_event(users["linda"], event["id"], subject="Second")
    world.graph.update_event(users["linda"], event["id"], subject="Third")
    gets_before = world.graph.event_gets(users["linda"])
    world.notify(repeat=3, reverse=True)
    assert world.activity_for(event["iCalUId"])["subject"] == "Third"
    assert world.graph.event_gets(users["linda"]) - gets_before == 1


def test_burst_of_5000_notifications_over_50_mailboxes_converges(world: World) -> None:
    users = connected(world, *[f"user{n:02d}" for n in range(50)])
    events = {
        name: [
            world.graph.create_event(user, start=iso(NEXT_WEEK), subject=f"{name} v0")
            for _ in range(2)
        ]
        for name, user in users.items()
    }
    world.graph.pending_notifications.clear()
    for name, user in users.items():
        for event in events[name]:
            world.graph.update_event(user, event["id"], subject=f"{name} final")
    world.graph.pending_notifications.clear()
    changes = [
        (user, event["id"], "updated") for name, user in users.items() for event in events[name]
    ] * 50  # 100 events, each announced 50 times: 5,000 notifications
    gets_before = world.graph.event_gets()
    # Delivered as Graph does, in batches (of 500 here), one POST after another.
    deliveries = [
        delivery
        for start in range(0, len(changes), 500)
        for delivery in world.graph.notify_changes(changes[start : start + 500])
    ]
    assert [(d.status, d.error) for d in deliveries if d.status != 202] == []
    assert sum(len(d.payload["value"]) for d in deliveries) == 5000
    world.drain()
    activities = world.activities(limit=200)
    assert len(activities) == 100
    assert all(a["subject"].endswith("final") for a in activities)
    # Coalescing: each event was fetched once per sync of its mailbox, not once per notification.
    assert world.graph.event_gets() - gets_before <= 100


def test_429_retry_after_is_honoured_for_the_mailbox(world: World) -> None:
    users = connected(world, "linda")
    event = world.graph.create_event(users["linda"], start=iso(NEXT_WEEK), subject="Throttled")
    prefix = f"/users/{users['linda'].id}"
    world.graph.fail_next(1, status=429, retry_after=1, path_prefix=prefix)
    world.notify()
    assert world.activity_for(event["iCalUId"])["subject"] == "Throttled"
    entries = world.graph.log(path_prefix=prefix)
    throttled = [e for e in entries if e.status == 429]
    assert len(throttled) == 1
    after = [e for e in entries if e.at > throttled[0].at]
    assert after
    assert min(e.at for e in after) - throttled[0].at >= 1.0


def test_503_is_retried(world: World) -> None:
    users = connected(world, "linda")
    event = world.graph.create_event(users["linda"], start=iso(NEXT_WEEK), subject="Outage")
    world.graph.fail_next(2, status=503, retry_after=1, path_prefix=f"/users/{users['linda'].id}")
    world.notify()
    assert world.activity_for(event["iCalUId"])["subject"] == "Outage"


def test_denied_mailbox_shows_the_error_in_words_and_in_metrics(world: World) -> None:
    users = connected(world, "linda")
    world.graph.create_event(users["linda"], start=iso(NEXT_WEEK))
    world.graph.deny_mailbox(users["linda"])
    world.notify()
    row = world.health()[f"linda@{DOMAIN}"]
    assert "Access" in row["last_error"]
    assert row["pending_notifications"] == 1
    metrics = world.api("GET", "/admin/metrics")
    assert metrics.headers["Content-Type"].startswith("text/plain")
    assert 'mtc_provider_errors_total{reason="graph.forbidden"}' in metrics.text
    assert "mtc_notifications_received_total 1" in metrics.text
    assert "mtc_sync_lag_seconds" in metrics.text


def test_forged_client_state_is_refused_and_changes_nothing(world: World) -> None:
    users = connected(world, "linda")
    world.graph.create_event(users["linda"], start=iso(NEXT_WEEK))
    deliveries = world.graph.flush_notifications(client_state="forged")
    assert [d.status for d in deliveries] == [403]
    assert world.drain() == 0
    assert world.activities() == []


def test_validation_token_is_echoed_as_plain_text(world: World) -> None:
    answer = requests.post(
        f"{world.server.base_url}/webhooks/graph/notifications",
        params={"validationToken": "<script>alert(1)</script> token"},
        headers={"Content-Type": "text/plain; charset=utf-8"},
        timeout=10,
    )
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert answer.text == "<script>alert(1)</script> token"


def test_worker_killed_mid_batch_loses_nothing(world: World) -> None:
    """A real `flask worker` is killed (SIGKILL) while it fetches; a new one finishes the job."""
    users = connected(world, "linda")
    events = [
        world.graph.create_event(users["linda"], start=iso(NEXT_WEEK), subject=f"Meeting {n}")
        for n in range(30)
    ]
    deliveries = world.graph.flush_notifications()
    assert all(d.status == 202 for d in deliveries)
    world.graph.latency = 1.5  # every Graph call is slow: the worker is caught mid-way
    seen = len(world.graph.requests)
    worker = start_worker(world)
    try:
        # The first fetch answered (the log is written as a request completes); more follow.
        wait_until(lambda: len(world.graph.requests) > seen, message="the worker fetched")
        worker.kill()
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert world.activities() == []
    assert world.health()[f"linda@{DOMAIN}"]["pending_notifications"] == 30

    world.graph.latency = 0.0
    worker = start_worker(world)
    try:
        wait_until(lambda: len(world.activities()) == 30, timeout=60, message="all 30 synced")
        wait_until(
            lambda: world.health()[f"linda@{DOMAIN}"]["pending_notifications"] == 0,
            message="notifications done",
        )
    finally:
        worker.terminate()
        worker.wait(timeout=20)
    assert {a["subject"] for a in world.activities()} == {e["subject"] for e in events}


def test_renewal_extends_subscriptions_before_they_expire(world: World) -> None:
    connected(world, "linda", "julie")
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=20)
    with world.container.uow() as uow:
        uow.session.execute(update(Subscription).values(expires_at=soon))
        uow.commit()
    linda, julie = world.users["linda"], world.users["julie"]
    gone = next(s for s in world.graph.subscriptions.values() if s.user_id == julie.id)
    world.graph.expire_subscription(gone.id)  # Graph no longer has it: it is recreated
    julie_mailbox = world.health()[f"julie@{DOMAIN}"]["mailbox_id"]
    assert world.container.tasks["renew_subscriptions"].call_local() == [julie_mailbox]
    world.drain()
    live = {s.user_id: s for s in world.graph.subscriptions.values()}
    assert set(live) == {linda.id, julie.id}
    assert live[julie.id].id != gone.id
    week_ahead = dt.datetime.now(dt.UTC) + dt.timedelta(days=6)
    for row in world.health().values():
        assert parse(row["subscription_expires_at"]) > week_ahead


def test_all_day_event_in_a_windows_time_zone(world: World) -> None:
    users = connected(world, "linda")
    day = NEXT_WEEK.date()
    event = world.graph.create_event(
        users["linda"],
        start=day.isoformat(),
        end=(day + dt.timedelta(days=1)).isoformat(),
        is_all_day=True,
        time_zone="Pacific Standard Time",
        show_as="free",
        reminderMinutesBeforeStart=1080,
    )
    world.notify()
    activity = world.activity_for(event["iCalUId"])
    assert activity["all_day"] is True
    assert activity["time_zone"] == "America/Los_Angeles"
    assert activity["show_as"] == "free"
    assert activity["reminder_minutes"] == 1080
    assert parse(activity["start"]).date() == day


def test_a3_series_tag_survives_on_an_occurrence_without_the_property(world: World) -> None:
    users = connected(world, "linda")
    company_id = create_company(world, "Fabrikam", "fabrikam.example")
    first = NEXT_WEEK
    master = world.graph.create_event(
        users["linda"],
        start=iso(first),
        subject="Weekly with Fabrikam",
        attendees=["kim@fabrikam.example"],
        recurrence={
            "pattern": {
                "type": "weekly",
                "interval": 1,
                "daysOfWeek": [first.strftime("%A").lower()],
            },
            "range": {
                "type": "numbered",
                "startDate": first.date().isoformat(),
                "numberOfOccurrences": 5,
            },
        },
        extended_properties={CECP: json.dumps({TAG_COMPANY: str(company_id)})},
    )
    world.notify()
    # Moving one occurrence makes an exception: Outlook keeps no custom property on it.
    moved = first + dt.timedelta(weeks=2)
    world.graph.move_occurrence(
        users["linda"], master["id"], moved.date(), start=iso(moved + dt.timedelta(hours=1))
    )
    world.notify()
    rows = world.activities(company_id=company_id)
    exceptions = [a for a in rows if a["series_id"] is not None]
    assert len(exceptions) == 1
    assert parse(exceptions[0]["start"]) == (moved + dt.timedelta(hours=1)).replace(tzinfo=dt.UTC)
    assert world.activity_for(master["iCalUId"])["company_id"] == company_id


def test_an_attendee_finds_the_activity_by_the_id_outlook_gives_their_copy(world: World) -> None:
    """Office.js gives the pane the regular REST id; sync stored the immutable id. The service
    asks Graph for the immutable id of the one it is given and finds the link by it."""
    users = connected(world, "linda", "julie")
    event = world.graph.create_event(
        users["linda"], start=iso(NEXT_WEEK), attendees=[f"julie@{DOMAIN}"]
    )
    world.notify()
    activity = world.activity_for(event["iCalUId"])
    with world.container.uow() as uow:
        if organizations.users_by_email(uow, world.tenant.org_id, [f"julie@{DOMAIN}"]) == {}:
            organizations.add_user(uow, org_id=world.tenant.org_id, email=f"julie@{DOMAIN}")
        julie = auth.create_api_key(
            uow, org_id=world.tenant.org_id, name="julie", user_email=f"julie@{DOMAIN}"
        )
        uow.commit()
    julie_copy = world.graph.copy_of(event["id"], users["julie"])

    def by_event(event_id: str, token: str = julie.token) -> requests.Response:
        return requests.get(
            f"{world.server.base_url}/api/v1/activities/by-event",
            params={"event_id": event_id},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    found = by_event(rest_id(julie_copy))
    assert found.status_code == 200, found.text
    assert found.json()["id"] == activity["id"]
    assert by_event(julie_copy).json()["id"] == activity["id"]  # the stored id, no Graph call
    assert by_event(rest_id("AAMkAGnotthere=")).status_code == 404
    assert by_event("not an id").status_code == 404
    # Linda's copy is not Julie's: only the caller's own mailbox is looked in.
    assert by_event(rest_id(event["id"])).status_code == 404
    admin = world.tenant.token  # a user without a watched mailbox
    assert by_event(rest_id(event["id"]), admin).status_code == 404
    # Graph unavailable: one try, no wait for Retry-After while the user waits; the pane then
    # falls back to the meeting's time.
    world.graph.fail_next(1, status=503, retry_after=2, path_prefix=f"/users/{users['julie'].id}")
    started = time.monotonic()
    assert by_event(rest_id(julie_copy)).status_code == 404
    assert by_event(rest_id(julie_copy)).status_code == 404  # within Retry-After: Graph not asked
    assert time.monotonic() - started < 1.5
    time.sleep(2.1 - (time.monotonic() - started))
    assert by_event(rest_id(julie_copy)).status_code == 200
