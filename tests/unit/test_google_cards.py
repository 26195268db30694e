"""The add-on's cards: the Card v1 JSON of HTTP add-ons (reference/google.md §3), pure functions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from addin import cards
from services.addon import (
    AttendeeView,
    CompanyChoice,
    ContactChoice,
    EventView,
    MeetingNeedingCompany,
)

BASE = "https://crm.test"
URLS = cards.CardUrls.under(BASE)
START = dt.datetime(2030, 3, 4, 9, tzinfo=dt.UTC)
ACME = CompanyChoice(12, "Acme Corp", "domain acme.example")

# google.apps.card.v1 widget kinds (card.proto); each widget holds exactly one of them.
WIDGET_KINDS = {
    "textParagraph",
    "image",
    "decoratedText",
    "buttonList",
    "textInput",
    "selectionInput",
    "dateTimePicker",
    "divider",
    "grid",
    "columns",
}
SELECTION_TYPES = {"CHECK_BOX", "RADIO_BUTTON", "SWITCH", "DROPDOWN", "MULTI_SELECT"}


def walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def actions(card: Any) -> list[dict[str, Any]]:
    """Every Action (onClick.action, autoCompleteAction) in the card."""
    found = []
    for node in walk(card):
        if isinstance(node, dict):
            if isinstance(node.get("onClick"), dict) and "action" in node["onClick"]:
                found.append(node["onClick"]["action"])
            if "autoCompleteAction" in node:
                found.append(node["autoCompleteAction"])
    return found


def params(action: dict[str, Any]) -> dict[str, str]:
    return {p["key"]: p["value"] for p in action.get("parameters", [])}


def widgets(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [w for section in card["sections"] for w in section["widgets"]]


def kinds(card: dict[str, Any]) -> list[str]:
    return [next(iter(w)) for w in widgets(card)]


def assert_card(card: dict[str, Any]) -> None:
    """The documented structure: header with a title, sections of widgets of known kinds,
    actions calling our HTTPS endpoints with string parameters."""
    assert isinstance(card["header"]["title"], str)
    assert card["header"]["title"]
    assert card["sections"]
    for section in card["sections"]:
        assert set(section) <= {"header", "widgets", "collapsible", "uncollapsibleWidgetsCount"}
        assert section["widgets"]
        for widget in section["widgets"]:
            assert len(widget) == 1
            assert next(iter(widget)) in WIDGET_KINDS
    for node in walk(card):
        if isinstance(node, dict) and "selectionInput" in node:
            selection = node["selectionInput"]
            assert selection["type"] in SELECTION_TYPES
            assert selection["name"]
            assert 0 < len(selection["items"]) <= cards.MAX_ITEMS
            for item in selection["items"]:
                assert isinstance(item["text"], str)
                assert isinstance(item["value"], str)
                assert isinstance(item["selected"], bool)
        if isinstance(node, dict) and "textInput" in node:
            assert node["textInput"]["name"]
    for action in actions(card):
        assert action["function"].startswith(f"{BASE}/addon/google/")
        assert action["function"].startswith("https://")
        for parameter in action.get("parameters", []):
            assert set(parameter) == {"key", "value"}
            assert isinstance(parameter["key"], str)
            assert isinstance(parameter["value"], str)


def event(**changes: Any) -> EventView:
    values: dict[str, Any] = {
        "event_id": "evt123",
        "activity_id": 41,
        "subject": "Kick-off",
        "start": START,
        "end": START + dt.timedelta(hours=1),
        "time_zone": "Europe/Oslo",
        "suggestions": (ACME, CompanyChoice(13, "Beta AS", "1 attendee is a contact")),
        "contacts": (
            ContactChoice(5, "Wile Coyote", "wile@acme.example", True),
            ContactChoice(6, "Road Runner", "rr@acme.example", False),
        ),
        "attendees": (
            AttendeeView("linda@northwind.example", "Linda", "accepted", internal=True),
            AttendeeView(
                "wile@acme.example",
                "Wile",
                "none",
                internal=False,
                contact_id=5,
                contact_name="Wile Coyote",
                company_name="Acme Corp",
            ),
            AttendeeView("new@globex.example", "New Person", "none", internal=False),
        ),
        "is_owner": True,
    }
    values.update(changes)
    values["unknown"] = changes.get(
        "unknown", tuple(a for a in values["attendees"] if a.email.startswith("new@"))
    )
    return EventView(**values)


class TestResponses:
    def test_render_pushes_or_updates_with_a_notification(self) -> None:
        card = cards.message_card("Title", "Text")
        pushed = cards.render(card, push=True)
        assert pushed == {"renderActions": {"action": {"navigations": [{"pushCard": card}]}}}
        updated = cards.render(card, notification="Saved")
        assert updated["renderActions"]["action"] == {
            "navigations": [{"updateCard": card}],
            "notification": {"text": "Saved"},
        }

    def test_notify(self) -> None:
        assert cards.notify("Done") == {
            "renderActions": {"action": {"notification": {"text": "Done"}}}
        }

    def test_requesting_scopes(self) -> None:
        scope = "https://www.googleapis.com/auth/calendar.addons.current.event.read"
        assert cards.requesting_scopes([scope]) == {"requesting_google_scopes": {"scopes": [scope]}}

    def test_autocomplete_items_carry_the_company_id_in_their_text(self) -> None:
        answer = cards.autocomplete([ACME])
        assert answer == {"autoComplete": {"items": [{"text": "Acme Corp · #12"}]}}
        text = answer["autoComplete"]["items"][0]["text"]
        assert cards.company_id_from_text(text) == 12
        assert cards.company_id_from_text("Acme Corp") is None
        assert cards.company_id_from_text("#12 Acme") is None


class TestHomepage:
    def test_untagged_meetings_with_one_click_tag(self) -> None:
        meetings = [
            MeetingNeedingCompany(41, "Kick-off", START, "UTC", ACME, is_over=False),
            MeetingNeedingCompany(42, "Intro call", START, "UTC", None, is_over=True),
        ]
        card = cards.homepage_card(meetings, URLS, time_zone="Europe/Oslo")
        assert_card(card)
        assert card["header"]["title"] == "Meetings that need a company"
        first, second = (w["decoratedText"] for w in card["sections"][0]["widgets"])
        assert first["text"] == "Kick-off"
        assert first["topLabel"].startswith("Mon 04 Mar 2030, 10:00")  # Oslo time
        assert "Acme Corp" in first["bottomLabel"]
        button = first["button"]
        assert button["text"] == "Tag Acme Corp"
        action = button["onClick"]["action"]
        assert action["function"] == f"{BASE}/addon/google/action"
        assert params(action) == {"fn": "tag_meeting", "activity_id": "41", "company_id": "12"}
        assert "button" not in second
        assert "ended" in second["topLabel"]

    def test_company_search_with_autocomplete(self) -> None:
        card = cards.homepage_card([], URLS)
        assert_card(card)
        search = card["sections"][1]["widgets"][0]["textInput"]
        assert search["name"] == cards.COMPANY_QUERY
        assert search["autoCompleteAction"]["function"] == f"{BASE}/addon/google/autocomplete"
        assert kinds(card) == ["textParagraph", "textInput", "buttonList"]

    def test_subjects_are_escaped(self) -> None:
        meeting = MeetingNeedingCompany(1, "<b>x</b> & y", START, "UTC", None, is_over=False)
        card = cards.homepage_card([meeting], URLS)
        assert card["sections"][0]["widgets"][0]["decoratedText"]["text"] == (
            "&lt;b&gt;x&lt;/b&gt; &amp; y"
        )


class TestEventCard:
    def test_suggestions_contacts_kind_and_save(self) -> None:
        card = cards.event_card(event(), URLS)
        assert_card(card)
        assert card["header"]["title"] == "Kick-off"
        assert card["header"]["subtitle"].startswith("Mon 04 Mar 2030, 10:00\N{EN DASH}11:00")
        tag = card["sections"][0]
        by_name = {
            w[k]["name"]: w[k]
            for w in tag["widgets"]
            for k in w
            if k in ("selectionInput", "textInput")
        }
        company = by_name[cards.COMPANY_ID]
        assert company["type"] == "DROPDOWN"
        assert [(i["value"], i["selected"]) for i in company["items"]] == [
            ("12", True),
            ("13", False),
            ("", False),
        ]
        assert by_name[cards.COMPANY_QUERY]["autoCompleteAction"]["function"].endswith(
            "/addon/google/autocomplete"
        )
        contacts = by_name[cards.CONTACT_IDS]
        assert contacts["type"] == "CHECK_BOX"
        assert [(i["value"], i["selected"]) for i in contacts["items"]] == [
            ("5", True),
            ("6", False),
        ]
        kind = by_name[cards.KIND]
        assert [i["value"] for i in kind["items"]] == ["meeting", "call", "visit"]
        save = tag["widgets"][-1]["buttonList"]["buttons"][0]
        assert save["text"] == "Save"
        assert params(save["onClick"]["action"]) == {
            "fn": "save",
            "event_id": "evt123",
            "activity_id": "41",
        }

    def test_linked_company_is_shown_and_preselected(self) -> None:
        linked = CompanyChoice(99, "Linked Ltd")
        card = cards.event_card(event(company=linked), URLS)
        assert_card(card)
        first = card["sections"][0]["widgets"][0]["decoratedText"]
        assert (first["topLabel"], first["text"]) == ("Company", "Linked Ltd")
        dropdown = card["sections"][0]["widgets"][1]["selectionInput"]
        assert dropdown["items"][0] == {"text": "Linked Ltd", "value": "99", "selected": True}

    def test_attendees_and_add_as_contacts(self) -> None:
        card = cards.event_card(event(), URLS)
        attendees = next(s for s in card["sections"] if s["header"].startswith("Attendees"))
        labels = [w["decoratedText"]["bottomLabel"] for w in attendees["widgets"]]
        assert labels == [
            "linda@northwind.example · Colleague",
            "wile@acme.example · Contact at Acme Corp",
            "new@globex.example · Not in the CRM",
        ]
        new = next(s for s in card["sections"] if s["header"] == "Not in the CRM yet")
        choice = new["widgets"][0]["selectionInput"]
        assert choice["name"] == cards.NEW_CONTACTS
        assert choice["type"] == "CHECK_BOX"
        assert [(i["value"], i["selected"]) for i in choice["items"]] == [
            ("new@globex.example", True)
        ]
        button = new["widgets"][-1]["buttonList"]["buttons"][0]
        assert button["text"] == "Add as contacts"
        assert params(button["onClick"]["action"])["fn"] == "add_contacts"

    def test_no_suggestions_asks_for_a_search(self) -> None:
        card = cards.event_card(event(suggestions=(), contacts=(), unknown=()), URLS)
        assert_card(card)
        assert kinds(card)[:3] == ["textParagraph", "textInput", "selectionInput"]

    def test_past_meeting_asks_the_owner_held_or_not(self) -> None:
        card = cards.event_card(event(is_over=True, outcome="Won on price"), URLS)
        assert_card(card)
        outcome = card["sections"][-1]
        assert outcome["header"] == "How did it go?"
        note = outcome["widgets"][1]["textInput"]
        assert (note["name"], note["type"], note["value"]) == (
            cards.OUTCOME_NOTE,
            "MULTIPLE_LINE",
            "Won on price",
        )
        held, not_held = outcome["widgets"][2]["buttonList"]["buttons"]
        assert params(held["onClick"]["action"]) == {
            "fn": "outcome",
            "held": "true",
            "event_id": "evt123",
            "activity_id": "41",
        }
        assert params(not_held["onClick"]["action"])["held"] == "false"

    def test_no_outcome_section_for_others_or_future_or_cancelled(self) -> None:
        for view in (
            event(is_over=True, is_owner=False),
            event(is_over=False),
            event(is_over=True, status="cancelled"),
        ):
            headers = [s.get("header") for s in cards.event_card(view, URLS)["sections"]]
            assert "How did it go?" not in headers

    def test_private_meeting_of_another_user(self) -> None:
        card = cards.event_card(event(editable=False, subject="Private meeting"), URLS)
        assert_card(card)
        assert actions(card) == []
        assert kinds(card) == ["textParagraph"]

    def test_unsaved_event(self) -> None:
        card = cards.event_card(EventView(event_id=""), URLS)
        assert_card(card)
        assert card == cards.unsaved_event_card()
        assert card["header"]["title"] == "Save the event first"
        assert actions(card) == []


class TestOtherCards:
    def test_no_meeting_in_this_email(self) -> None:
        card = cards.no_meeting_card()
        assert_card(card)
        assert card["header"]["title"] == "No meeting in this e-mail"

    def test_search_results(self) -> None:
        card = cards.search_results_card("acme", [ACME])
        assert_card(card)
        assert card["sections"][0]["widgets"][0]["decoratedText"]["text"] == "Acme Corp"
        empty = cards.search_results_card("zzz", [])
        assert_card(empty)
        assert kinds(empty) == ["textParagraph"]
