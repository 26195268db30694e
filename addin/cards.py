"""The Google Workspace add-on's cards: plain dicts in the Card v1 JSON of HTTP add-ons.

Pure functions, no Flask: addin/google.py passes in the views from services/addon.py and the
absolute URLs of our endpoints. Shapes follow reference/google.md §3 (google.apps.card.v1):
every response is ``{"renderActions": {"action": {"navigations": [...], "notification": ...}}}``,
autocomplete answers ``{"autoComplete": {"items": [{"text": ...}]}}`` and a missing consent
``{"requesting_google_scopes": {"scopes": [...]}}``. Buttons call the action endpoint with a
``fn`` parameter naming what to do; parameter values are always strings.

Autocomplete items carry only text, so a company's text ends with its CRM id
("Acme Corp · #12"), which `company_id_from_text` reads back.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.addon import (
    MEETING_KINDS,
    CompanyChoice,
    EventView,
    MeetingNeedingCompany,
)
from services.tables import ActivityStatus

__all__ = [
    "CardUrls",
    "Fn",
    "autocomplete",
    "company_id_from_text",
    "company_text",
    "event_card",
    "homepage_card",
    "message_card",
    "no_meeting_card",
    "notify",
    "render",
    "requesting_scopes",
    "search_results_card",
    "unsaved_event_card",
]

Card = dict[str, Any]
Widget = dict[str, Any]

MAX_ITEMS: Final = 100  # selectionInput items (card.proto)
_COMPANY_ID: Final = re.compile(r"·\s*#(\d{1,18})\s*$")
_KIND_LABELS: Final = {"meeting": "Meeting", "call": "Call", "visit": "Visit"}
_STATUS_LABELS: Final[dict[str, str]] = {
    ActivityStatus.PLANNED: "Planned",
    ActivityStatus.HELD: "Held",
    ActivityStatus.NOT_HELD: "Not held",
    ActivityStatus.CANCELLED: "Cancelled",
}


class Fn:
    """Values of the ``fn`` parameter: what a button asks the action endpoint to do."""

    SAVE = "save"
    TAG_MEETING = "tag_meeting"
    ADD_CONTACTS = "add_contacts"
    OUTCOME = "outcome"
    SEARCH = "search"
    HOME = "home"


# Names of the form inputs the action endpoint reads.
COMPANY_ID: Final = "company_id"
COMPANY_QUERY: Final = "company_query"
CONTACT_IDS: Final = "contact_ids"
KIND: Final = "kind"
NEW_CONTACTS: Final = "new_contacts"
OUTCOME_NOTE: Final = "outcome"


@dataclass(frozen=True, slots=True)
class CardUrls:
    """The absolute HTTPS URLs Google calls back: Google sends each its own ID token."""

    action: str
    autocomplete: str

    @classmethod
    def under(cls, base_url: str, prefix: str = "/addon/google") -> CardUrls:
        root = base_url.rstrip("/") + prefix
        return cls(action=f"{root}/action", autocomplete=f"{root}/autocomplete")


# --------------------------------------------------------------------------- responses


def render(card: Card, *, push: bool = False, notification: str | None = None) -> dict[str, Any]:
    """Show ``card``: pushed (trigger responses) or replacing the top card (button responses)."""
    action: dict[str, Any] = {"navigations": [{"pushCard" if push else "updateCard": card}]}
    if notification:
        action["notification"] = {"text": notification}
    return {"renderActions": {"action": action}}


def notify(text: str) -> dict[str, Any]:
    """A notification only; the card stays as it is."""
    return {"renderActions": {"action": {"notification": {"text": text}}}}


def autocomplete(companies: Iterable[CompanyChoice]) -> dict[str, Any]:
    return {"autoComplete": {"items": [{"text": company_text(c)} for c in companies]}}


def requesting_scopes(scopes: Sequence[str]) -> dict[str, Any]:
    """Ask Google to get the user's consent to ``scopes``; Google then repeats the request."""
    return {"requesting_google_scopes": {"scopes": list(scopes)}}


def company_text(company: CompanyChoice) -> str:
    return f"{company.name} · #{company.id}"


def company_id_from_text(text: str) -> int | None:
    """The id in an autocomplete item's text ("Acme Corp · #12" -> 12); None for free text."""
    match = _COMPANY_ID.search(text)
    return int(match.group(1)) if match else None


# --------------------------------------------------------------------------- cards


def homepage_card(
    meetings: Sequence[MeetingNeedingCompany], urls: CardUrls, *, time_zone: str = "UTC"
) -> Card:
    """The user's meetings without a company, each with a one-click tag, and a company search."""
    widgets: list[Widget] = []
    for meeting in meetings:
        when = _when(meeting.start, None, time_zone)
        suggestion = meeting.suggestion
        item: dict[str, Any] = {
            "topLabel": when + (" · ended" if meeting.is_over else ""),
            "text": _escape(meeting.subject or "(no subject)"),
            "wrapText": True,
        }
        if suggestion is not None:
            item["bottomLabel"] = _escape(f"Suggested: {suggestion.name} ({suggestion.why})")
            item["button"] = _button(
                f"Tag {_short(suggestion.name)}",
                urls,
                Fn.TAG_MEETING,
                activity_id=meeting.activity_id,
                company_id=suggestion.id,
            )
        else:
            item["bottomLabel"] = "No suggestion: open the event to pick a company"
        widgets.append({"decoratedText": item})
    if not widgets:
        widgets.append(
            _paragraph("Every meeting of the last 14 and the next 30 days has a company.")
        )
    return {
        "name": "home",
        "header": {
            "title": "Meetings that need a company",
            "subtitle": f"{len(meetings)} untagged" if meetings else "All tagged",
        },
        "sections": [
            {"widgets": widgets},
            {
                "header": "Find a company",
                "widgets": [
                    _company_search(urls),
                    _buttons(_button("Search", urls, Fn.SEARCH)),
                ],
            },
        ],
    }


def event_card(view: EventView, urls: CardUrls, *, time_zone: str | None = None) -> Card:
    """A saved meeting: its tag (or suggestions), attendees, new contacts and, once over, D1."""
    if not view.found:
        return unsaved_event_card()
    zone = time_zone or view.time_zone
    header = {
        "title": _escape(view.subject or "(no subject)"),
        "subtitle": _when(view.start, view.end, zone)
        + f" · {_STATUS_LABELS.get(view.status, view.status)}",
    }
    ids = {
        "event_id": view.event_id,
        "series_event_id": view.series_event_id,
        "activity_id": view.activity_id,
    }
    if not view.editable:
        return {
            "name": "event",
            "header": header,
            "sections": [{"widgets": [_paragraph("This is another user's private meeting.")]}],
        }
    sections = [_tag_section(view, urls, ids)]
    if view.attendees:
        sections.append(_attendee_section(view))
    if view.unknown:
        sections.append(_new_contacts_section(view, urls, ids))
    if view.is_over and view.is_owner and view.status != ActivityStatus.CANCELLED:
        sections.append(_outcome_section(view, urls, ids))
    return {"name": "event", "header": header, "sections": sections}


def unsaved_event_card() -> Card:
    return message_card(
        "Save the event first",
        "This event is not in your calendar yet. Save it, then open it again to link it to a "
        "CRM company.",
    )


def no_meeting_card() -> Card:
    return message_card(
        "No meeting in this e-mail",
        "Open a meeting invitation to link the meeting to a CRM company.",
    )


def message_card(title: str, text: str) -> Card:
    return {
        "name": "message",
        "header": {"title": _escape(title)},
        "sections": [{"widgets": [_paragraph(_escape(text))]}],
    }


def search_results_card(query: str, companies: Sequence[CompanyChoice]) -> Card:
    widgets: list[Widget] = [
        {
            "decoratedText": {
                "text": _escape(c.name),
                "bottomLabel": _escape(c.why),
                "wrapText": True,
            }
        }
        for c in companies
    ]
    if not widgets:
        widgets.append(_paragraph("No company matches."))
    return {
        "name": "search",
        "header": {"title": "Companies", "subtitle": _escape(f"matching “{query}”")},
        "sections": [{"widgets": widgets}],
    }


# --------------------------------------------------------------------------- sections


def _tag_section(view: EventView, urls: CardUrls, ids: Mapping[str, object]) -> dict[str, Any]:
    widgets: list[Widget] = []
    if view.company is not None:
        widgets.append(
            {"decoratedText": {"topLabel": "Company", "text": _escape(view.company.name)}}
        )
    choices: list[CompanyChoice] = []
    if view.company is not None:
        choices.append(view.company)
    choices += [s for s in view.suggestions if view.company is None or s.id != view.company.id]
    selected = view.company.id if view.company else (choices[0].id if choices else None)
    if choices:
        items = [
            {
                "text": _escape(c.name + (f" ({c.why})" if c.why else "")),
                "value": str(c.id),
                "selected": c.id == selected,
            }
            for c in choices[: MAX_ITEMS - 1]
        ]
        items.append({"text": "No company", "value": "", "selected": False})
        label = "Company" if view.company else "Suggested companies"
        widgets.append(_selection(COMPANY_ID, label, "DROPDOWN", items))
    else:
        widgets.append(_paragraph("No company suggested by the attendees: search for one."))
    widgets.append(_company_search(urls, label="Or search all companies"))
    if view.contacts:
        items = [
            {
                "text": _escape(c.name),
                "value": str(c.id),
                "selected": c.selected,
                "bottomText": _escape(c.email),
            }
            for c in view.contacts[:MAX_ITEMS]
        ]
        widgets.append(_selection(CONTACT_IDS, "Contacts", "CHECK_BOX", items))
    kinds = [
        {"text": _KIND_LABELS.get(kind, kind), "value": str(kind), "selected": kind == view.kind}
        for kind in MEETING_KINDS
    ]
    widgets.append(_selection(KIND, "Kind", "DROPDOWN", kinds))
    widgets.append(_buttons(_button("Save", urls, Fn.SAVE, **ids)))
    return {"header": "CRM tag", "widgets": widgets}


def _attendee_section(view: EventView) -> dict[str, Any]:
    widgets: list[Widget] = []
    for attendee in view.attendees[:MAX_ITEMS]:
        if attendee.internal:
            about = "Colleague"
        elif attendee.contact_id is not None:
            about = "Contact" + (f" at {attendee.company_name}" if attendee.company_name else "")
        else:
            about = "Not in the CRM"
        widgets.append(
            {
                "decoratedText": {
                    "text": _escape(attendee.contact_name or attendee.name or attendee.email),
                    "bottomLabel": _escape(f"{attendee.email} · {about}"),
                    "wrapText": True,
                }
            }
        )
    return {
        "header": f"Attendees ({len(view.attendees)})",
        "collapsible": len(widgets) > 3,
        "uncollapsibleWidgetsCount": min(len(widgets), 3),
        "widgets": widgets,
    }


def _new_contacts_section(
    view: EventView, urls: CardUrls, ids: Mapping[str, object]
) -> dict[str, Any]:
    items = [
        {
            "text": _escape(a.name or a.email),
            "value": a.email,
            "selected": True,
            "bottomText": _escape(a.email),
        }
        for a in view.unknown[:MAX_ITEMS]
    ]
    return {
        "header": "Not in the CRM yet",
        "widgets": [
            _selection(NEW_CONTACTS, "Attendees", "CHECK_BOX", items),
            _paragraph("Adds them as contacts, and their companies from the e-mail domains."),
            _buttons(_button("Add as contacts", urls, Fn.ADD_CONTACTS, **ids)),
        ],
    }


def _outcome_section(view: EventView, urls: CardUrls, ids: Mapping[str, object]) -> dict[str, Any]:
    status = _STATUS_LABELS.get(view.status, view.status)
    return {
        "header": "How did it go?",
        "widgets": [
            {"decoratedText": {"topLabel": "Status", "text": status}},
            {
                "textInput": {
                    "name": OUTCOME_NOTE,
                    "label": "Outcome",
                    "hintText": "e.g. the main reason we won, next step",
                    "type": "MULTIPLE_LINE",
                    "value": view.outcome,
                }
            },
            _buttons(
                _button("Held", urls, Fn.OUTCOME, held="true", **ids),
                _button("Not held", urls, Fn.OUTCOME, held="false", **ids),
            ),
        ],
    }


# --------------------------------------------------------------------------- widgets


def _paragraph(text: str) -> Widget:
    return {"textParagraph": {"text": text}}


def _company_search(urls: CardUrls, *, label: str = "Company name") -> Widget:
    return {
        "textInput": {
            "name": COMPANY_QUERY,
            "label": label,
            "hintText": "Type to search all companies",
            "type": "SINGLE_LINE",
            "autoCompleteAction": {"function": urls.autocomplete},
        }
    }


def _selection(name: str, label: str, kind: str, items: list[dict[str, Any]]) -> Widget:
    return {"selectionInput": {"name": name, "label": label, "type": kind, "items": items}}


def _buttons(*buttons: dict[str, Any]) -> Widget:
    return {"buttonList": {"buttons": list(buttons)}}


def _button(text: str, urls: CardUrls, fn: str, **parameters: object) -> dict[str, Any]:
    values = {"fn": fn, **parameters}
    return {
        "text": text,
        "onClick": {
            "action": {
                "function": urls.action,
                "parameters": [
                    {"key": key, "value": str(value)}
                    for key, value in values.items()
                    if value is not None
                ],
                "loadIndicator": "SPINNER",
            }
        },
    }


def _when(start: dt.datetime | None, end: dt.datetime | None, zone_name: str) -> str:
    if start is None:
        return ""
    zone = _zone(zone_name)
    local = start.astimezone(zone)
    text = local.strftime("%a %d %b %Y, %H:%M")
    if end is not None:
        local_end = end.astimezone(zone)
        same_day = local_end.date() == local.date()
        text += "\N{EN DASH}" + local_end.strftime("%H:%M" if same_day else "%a %d %b, %H:%M")
    return f"{text} ({zone_name})" if zone_name not in ("UTC", "") else f"{text} UTC"


def _zone(name: str) -> dt.tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def _short(name: str, limit: int = 24) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _escape(text: str) -> str:
    """Card text is HTML-formatted: what users typed must not become markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
