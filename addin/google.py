"""The Google Workspace add-on over HTTP: Gmail and Calendar side panels (reference/google.md §2-3).

Google POSTs every trigger and button click here with ``Authorization: Bearer <ID token>`` of
the deployment's service account. Each request, in this order:

1. the bearer token is verified before the body is read: Google-signed, ``aud`` = this endpoint's
   URL as Google calls it (PUBLIC_BASE_URL + path), ``email`` = GOOGLE_ADDON_SERVICE_ACCOUNT,
   verified; else 401;
2. granular consent: when ``authorizedScopes`` lacks what the endpoint needs, the answer is
   ``requesting_google_scopes`` (Google asks the user, then repeats the request);
3. ``authorizationEventObject.userIdToken`` is verified (``aud`` = GOOGLE_ADDON_CLIENT_ID, a
   verified e-mail); its ``hd`` (Workspace domain) must be an organization's connected domain
   and ``sub`` is the user (services/identities.py). Personal accounts (no ``hd``) and other
   domains get 403, and nothing is written.

Then one use case from services/addon.py runs and its view becomes a card (addin/cards.py).
Google's calendar and Gmail ports come from the container's ``google`` services.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import BadRequest, ServiceUnavailable

from addin import cards
from addin.context import container
from gmail.identity import GoogleCertsUnavailable, GoogleIdTokens, InvalidGoogleToken
from services import addon, identities
from services.auth import Principal, PrincipalKind
from services.db import utcnow
from services.errors import DomainError, Forbidden, NotAuthenticated
from services.ports import MailboxRef, ProviderError
from services.tables import Provider
from services.text import normalize_email

__all__ = ["SCOPES", "bp"]

log = logging.getLogger(__name__)

PREFIX: Final = "/addon/google"
_AUTH: Final = "https://www.googleapis.com/auth/"
USERINFO_EMAIL: Final = _AUTH + "userinfo.email"
EVENT_READ: Final = _AUTH + "calendar.addons.current.event.read"
MESSAGE_READ: Final = _AUTH + "gmail.addons.current.message.readonly"
# What each endpoint needs beyond the user's e-mail (which carries the userIdToken).
SCOPES: Final[Mapping[str, tuple[str, ...]]] = {
    "homepage": (),
    "calendar/event-open": (EVENT_READ,),
    "gmail/message-open": (MESSAGE_READ,),
    "action": (),
    "autocomplete": (),
}

bp = Blueprint("addon_google", __name__, url_prefix=PREFIX)


@dataclass(frozen=True, slots=True)
class AddonRequest:
    """A verified add-on request: who is asking, their calendar, and the event object."""

    principal: Principal
    mailbox: MailboxRef
    body: Mapping[str, Any]

    @property
    def common(self) -> Mapping[str, Any]:
        return _object(self.body.get("commonEventObject"))

    def parameter(self, key: str) -> str:
        value = _object(self.common.get("parameters")).get(key)
        return value if isinstance(value, str) else ""

    def int_parameter(self, key: str) -> int | None:
        value = self.parameter(key)
        return int(value) if value.isdigit() and len(value) <= 18 else None

    def inputs(self, name: str) -> list[str]:
        """A form input's values (``formInputs.<name>.stringInputs.value``)."""
        field = _object(_object(self.common.get("formInputs")).get(name))
        values = _object(field.get("stringInputs")).get("value")
        return [v for v in values if isinstance(v, str)] if isinstance(values, list) else []

    def input(self, name: str) -> str:
        values = self.inputs(name)
        return values[0].strip() if values else ""

    def host(self, name: str) -> Mapping[str, Any]:
        return _object(self.body.get(name))

    @property
    def time_zone(self) -> str | None:
        zone = _object(self.common.get("timeZone")).get("id")
        return zone if isinstance(zone, str) and zone else None


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


# --------------------------------------------------------------------------- verification


def _id_tokens() -> GoogleIdTokens:
    """The container's verifier: one certificate cache per process."""
    tokens: GoogleIdTokens = container().google_id_tokens
    return tokens


def _refused(reason: str, message: str, *, forbidden: bool = False) -> DomainError:
    log.info("addon.google.refused reason=%s path=%s", reason, request.path)
    return Forbidden(message) if forbidden else NotAuthenticated(message)


def _verify(scopes: Sequence[str]) -> AddonRequest | ResponseReturnValue:
    """The verified request, or the response asking for missing scopes; raises on refusal."""
    settings = container().settings
    service_account, client_id = (
        settings.google_addon_service_account,
        settings.google_addon_client_id,
    )
    if not service_account or not client_id:
        raise ServiceUnavailable(
            "the Google Workspace add-on is not configured: set GOOGLE_ADDON_SERVICE_ACCOUNT "
            "and GOOGLE_ADDON_CLIENT_ID"
        )
    tokens = _id_tokens()
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _refused("no_token", "send 'Authorization: Bearer <Google ID token>'")
    try:
        tokens.verify(
            token.strip(),
            audiences=[settings.public_base_url + request.path],
            email=service_account,
        )
    except InvalidGoogleToken as refused:
        raise _refused(
            "system_token", f"the request is not from Google: {refused.reason}"
        ) from None
    except GoogleCertsUnavailable:
        raise ServiceUnavailable("Google's signing keys cannot be read now; try again") from None

    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON event object")
    authorization = _object(body.get("authorizationEventObject"))
    granted = authorization.get("authorizedScopes")
    if isinstance(granted, list):
        missing = [s for s in (USERINFO_EMAIL, *scopes) if s not in granted]
        if missing:
            log.info("addon.google.scopes_missing path=%s count=%d", request.path, len(missing))
            return jsonify(cards.requesting_scopes(missing))
    user_token = authorization.get("userIdToken")
    if not isinstance(user_token, str) or not user_token:
        raise _refused("no_user_token", "the request carries no userIdToken")
    try:
        claims = tokens.verify(user_token, audiences=[client_id], require_verified_email=True)
    except InvalidGoogleToken as refused:
        raise _refused(
            "user_token", f"the user's ID token is not valid: {refused.reason}"
        ) from None
    except GoogleCertsUnavailable:
        raise ServiceUnavailable("Google's signing keys cannot be read now; try again") from None
    hd, email, sub = claims.get("hd"), claims.get("email"), claims.get("sub")
    if not isinstance(email, str) or not isinstance(sub, str) or not sub:
        raise _refused("user_claims", "the user's ID token names no account")
    if not isinstance(hd, str) or not hd:
        raise _refused(
            "consumer_account",
            "personal Google accounts cannot use the CRM: use your organization's Google "
            "Workspace account",
            forbidden=True,
        )
    name = claims.get("name")
    identity = identities.VerifiedIdentity(
        kind=PrincipalKind.GOOGLE,
        tenant=hd,
        subject=sub,
        email=email,
        name=name if isinstance(name, str) else "",
    )
    principal = identities.sign_in(container().uow, identity)
    mailbox = MailboxRef(
        org_id=principal.org_id,
        provider=Provider.GOOGLE,
        address=normalize_email(email),
        external_id=sub,
    )
    return AddonRequest(principal=principal, mailbox=mailbox, body=body)


def _endpoint(name: str) -> Callable[[Callable[[AddonRequest], Any]], Callable[[], Any]]:
    """Register ``view`` as POST ``name``; it runs only for verified requests."""
    scopes = SCOPES[name]

    def register(view: Callable[[AddonRequest], Any]) -> Callable[[], Any]:
        def endpoint() -> ResponseReturnValue:
            verified = _verify(scopes)
            if not isinstance(verified, AddonRequest):
                return verified
            return jsonify(view(verified))

        endpoint.__name__ = view.__name__
        endpoint.__doc__ = view.__doc__
        bp.add_url_rule(f"/{name}", view_func=endpoint, methods=["POST"])
        return endpoint

    return register


def _google() -> Any:
    """The Google ports (``.calendar``, ``.messages``) from the container."""
    try:
        return container().google
    except Exception as failure:  # noqa: BLE001 - not configured, in whatever way bootstrap says
        log.warning("addon.google.unavailable error=%s", type(failure).__name__)
        raise ServiceUnavailable("Google Calendar is not connected to the CRM") from None


def _urls() -> cards.CardUrls:
    return cards.CardUrls.under(container().settings.public_base_url, PREFIX)


# --------------------------------------------------------------------------- triggers


def _home_card(req: AddonRequest) -> dict[str, Any]:
    with container().uow(read_only=True) as uow:
        meetings = addon.meetings_needing_company(uow, req.principal, utcnow())
    return cards.homepage_card(meetings, _urls(), time_zone=req.time_zone or "UTC")


@_endpoint("homepage")
def homepage(req: AddonRequest) -> dict[str, Any]:
    """Gmail and Calendar homepage: the user's meetings that need a company."""
    return cards.render(_home_card(req), push=True)


@_endpoint("calendar/event-open")
def event_open(req: AddonRequest) -> dict[str, Any]:
    """Calendar eventOpenTrigger: the event's CRM tag, suggestions and outcome."""
    event_id = req.host("calendar").get("id")
    if not isinstance(event_id, str) or not event_id:
        return cards.render(cards.unsaved_event_card(), push=True)
    try:
        view = addon.open_event(
            container().uow, req.principal, _google().calendar, req.mailbox, event_id
        )
    except ProviderError as failure:
        return cards.render(_unreachable(failure), push=True)
    return cards.render(cards.event_card(view, _urls(), time_zone=req.time_zone), push=True)


@_endpoint("gmail/message-open")
def message_open(req: AddonRequest) -> dict[str, Any]:
    """Gmail contextual trigger: the meeting an invitation is about, or "no meeting"."""
    message_id = req.host("gmail").get("messageId")
    if not isinstance(message_id, str) or not message_id:
        return cards.render(cards.no_meeting_card(), push=True)
    google = _google()
    try:
        ical_uid = google.messages.calendar_uid(req.mailbox.address, message_id)
        if not ical_uid:
            return cards.render(cards.no_meeting_card(), push=True)
        view = addon.event_for_ical_uid(
            container().uow,
            req.principal,
            google.calendar,
            google.calendar,
            req.mailbox,
            ical_uid,
        )
    except ProviderError as failure:
        return cards.render(_unreachable(failure), push=True)
    if not view.found:
        card = cards.message_card(
            "Not in your calendar yet",
            "This invitation's meeting is not in your calendar yet. Add it, then open this "
            "e-mail again to link it to a CRM company.",
        )
        return cards.render(card, push=True)
    return cards.render(cards.event_card(view, _urls(), time_zone=req.time_zone), push=True)


def _unreachable(failure: ProviderError) -> dict[str, Any]:
    log.warning("addon.google.provider_error reason=%s", failure.reason)
    return cards.message_card(
        "Google Calendar did not answer", "The event could not be read just now. Try again."
    )


# --------------------------------------------------------------------------- callbacks


@_endpoint("autocomplete")
def autocomplete(req: AddonRequest) -> dict[str, Any]:
    """Suggestions for the company search box."""
    query = req.input(cards.COMPANY_QUERY) or req.parameter("autocomplete_widget_query")
    with container().uow(read_only=True) as uow:
        companies = addon.find_companies(uow, req.principal, query)
    return cards.autocomplete(companies)


@_endpoint("action")
def action(req: AddonRequest) -> dict[str, Any]:
    """Button clicks: ``fn`` says which. The caller is verified by now, so a refusal from the
    services (no such company, not the owner, not over yet) is shown as a notification."""
    handler = _ACTIONS.get(req.parameter("fn"))
    if handler is None:
        raise BadRequest("unknown action")
    try:
        return handler(req)
    except DomainError as refused:
        return cards.notify(refused.message)


def _event_card_response(req: AddonRequest, notification: str) -> dict[str, Any]:
    view = addon.event_view(
        container().uow,
        req.principal,
        req.mailbox,
        req.parameter("event_id"),
        series_event_id=req.parameter("series_event_id") or None,
    )
    card = cards.event_card(view, _urls(), time_zone=req.time_zone)
    return cards.render(card, notification=notification)


def _save(req: AddonRequest) -> dict[str, Any]:
    query = req.input(cards.COMPANY_QUERY)
    company_id: int | None
    if query:
        company_id = cards.company_id_from_text(query)
        if company_id is None:
            with container().uow(read_only=True) as uow:
                company_id = addon.resolve_company(uow, req.principal, query)
    else:
        chosen = req.input(cards.COMPANY_ID)
        company_id = int(chosen) if chosen.isdigit() and len(chosen) <= 18 else None
    contact_ids = [int(v) for v in req.inputs(cards.CONTACT_IDS) if v.isdigit() and len(v) <= 18]
    result = addon.tag_event(
        container().uow,
        req.principal,
        req.mailbox,
        req.parameter("event_id"),
        company_id=company_id,
        contact_ids=contact_ids,
        kind=req.input(cards.KIND) or "meeting",
        tag_writer=_google().calendar,
        series_event_id=req.parameter("series_event_id") or None,
    )
    return _event_card_response(req, result.message)


def _tag_meeting(req: AddonRequest) -> dict[str, Any]:
    activity_id, company_id = req.int_parameter("activity_id"), req.int_parameter("company_id")
    if activity_id is None or company_id is None:
        raise BadRequest("activity_id and company_id are required")
    result = addon.tag_meeting(
        container().uow,
        req.principal,
        req.mailbox,
        activity_id,
        company_id=company_id,
        tag_writer=_google().calendar,
    )
    return cards.render(_home_card(req), notification=result.message)


def _add_contacts(req: AddonRequest) -> dict[str, Any]:
    view = addon.event_view(
        container().uow,
        req.principal,
        req.mailbox,
        req.parameter("event_id"),
        series_event_id=req.parameter("series_event_id") or None,
    )
    chosen = set(req.inputs(cards.NEW_CONTACTS))
    attendees = [(a.email, a.name) for a in view.unknown if a.email in chosen]
    added = addon.add_attendees_as_contacts(container().uow, req.principal, attendees)
    return _event_card_response(req, added.message)


def _outcome(req: AddonRequest) -> dict[str, Any]:
    activity_id = req.int_parameter("activity_id")
    if activity_id is None:
        raise BadRequest("activity_id is required")
    held = req.parameter("held") == "true"
    addon.record_outcome(
        container().uow,
        req.principal,
        activity_id,
        held=held,
        note=req.input(cards.OUTCOME_NOTE),
    )
    return _event_card_response(req, "Marked held" if held else "Marked not held")


def _search(req: AddonRequest) -> dict[str, Any]:
    query = req.input(cards.COMPANY_QUERY)
    with container().uow(read_only=True) as uow:
        companies = addon.find_companies(uow, req.principal, query, limit=20)
    return cards.render(cards.search_results_card(query, companies), push=True)


def _home(req: AddonRequest) -> dict[str, Any]:
    return cards.render(_home_card(req))


_ACTIONS: Final[Mapping[str, Callable[[AddonRequest], dict[str, Any]]]] = {
    cards.Fn.SAVE: _save,
    cards.Fn.TAG_MEETING: _tag_meeting,
    cards.Fn.ADD_CONTACTS: _add_contacts,
    cards.Fn.OUTCOME: _outcome,
    cards.Fn.SEARCH: _search,
    cards.Fn.HOME: _home,
}
