"""The task pane in headless Chromium with a stubbed Outlook host (scenarios A2, A3, A4, C2, D1)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest

from services.tables import Mailbox, Provider, ProviderLink
from services.unit_of_work import UnitOfWorkFactory
from tests.browser.conftest import Pane
from tests.conftest import Tenant

pytestmark = pytest.mark.browser

UTC = dt.UTC


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _meeting(tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    start = dt.datetime.now(UTC).replace(microsecond=0, second=0, minute=0) + dt.timedelta(days=2)
    config = {
        "mode": "compose",
        "subject": "Quarterly review",
        "start": _iso(start),
        "end": _iso(start + dt.timedelta(hours=1)),
        "required": [],
        "optional": [],
        "user": {"emailAddress": tenant.user_email, "displayName": "Linda"},
        "token": tenant.token,
    }
    return config | overrides


@pytest.fixture
def crm(api: Callable[..., Any]) -> dict[str, Any]:
    """Two customers with a contact each, and a prospect known only by its domain."""
    contoso = api(
        "POST", "/companies", {"name": "Contoso Pharmaceuticals", "domains": ["contoso.example"]}
    )
    fabrikam = api(
        "POST", "/companies", {"name": "Fabrikam Logistics", "domains": ["fabrikam.example"]}
    )
    api("POST", "/companies", {"name": "Tailspin Toys", "domains": ["tailspin.example"]})
    anna = api(
        "POST",
        "/contacts",
        {
            "first_name": "Anna",
            "last_name": "Berg",
            "emails": ["anna@contoso.example"],
            "company_id": contoso["id"],
        },
    )
    return {"contoso": contoso, "fabrikam": fabrikam, "anna": anna}


@pytest.mark.parametrize("path", ["/addin/taskpane.html", "/addin/commands.html"])
def test_pages_load_without_console_errors(
    make_pane: Callable[..., Pane], tenant: Tenant, path: str
) -> None:
    pane = make_pane(_meeting(tenant))
    response = pane.open(path)
    assert response.status == 200
    assert response.headers["cache-control"] == "no-cache"
    assert "frame-ancestors" in response.headers["content-security-policy"]
    if path.endswith("taskpane.html"):
        pane.page.wait_for_selector("#app[aria-busy='false']")
        pane.screenshot("empty")
    else:
        pane.page.wait_for_function("() => Object.keys(window.__office.handlers).length === 3")
    assert pane.errors == []


def test_without_outlook_the_pane_says_so(make_pane: Callable[..., Pane]) -> None:
    pane = make_pane(host=False)
    pane.open("/addin/taskpane.html")
    pane.page.wait_for_selector("#app[aria-busy='false']")
    assert "could not be loaded" in pane.page.locator("#status").inner_text()
    assert pane.errors == []


def test_compose_suggests_searches_and_saves_the_tag(
    make_pane: Callable[..., Pane], tenant: Tenant, crm: dict[str, Any], api: Callable[..., Any]
) -> None:
    config = _meeting(
        tenant,
        required=[
            {"emailAddress": "anna@contoso.example", "displayName": "Anna Berg"},
            {"emailAddress": tenant.user_email, "displayName": "Linda"},
        ],
        optional=[{"emailAddress": "ole@fabrikam.example", "displayName": "Ole Hansen"}],
        categoryNeedsMaster=True,
    )
    pane = make_pane(config)
    pane.open("/addin/taskpane.html")
    page = pane.page

    # A2: suggestions first: the contact's company, then the company by domain.
    suggestions = page.locator("#suggestions button")
    suggestions.first.wait_for()
    assert suggestions.count() == 2
    assert suggestions.nth(0).get_attribute("data-company-id") == str(crm["contoso"]["id"])
    assert suggestions.nth(1).get_attribute("data-company-id") == str(crm["fabrikam"]["id"])
    assert suggestions.nth(0).get_attribute("aria-pressed") == "true"  # best one preselected
    assert page.locator(f"#contact-{crm['anna']['id']}").is_checked()
    # ole@fabrikam is no contact: offered to be added
    assert page.locator("#unknown li[data-email='ole@fabrikam.example']").is_visible()
    pane.screenshot("suggestions")

    # Search-as-you-type finds a company by a partial word; the keyboard picks it.
    page.fill("#search", "tailsp")
    option = page.locator("#results [role=option][data-company-id]")
    option.first.wait_for()
    assert option.first.inner_text().startswith("Tailspin Toys")
    assert page.get_attribute("#search", "aria-expanded") == "true"
    page.locator("#results-status").filter(has_text="found").wait_for()
    pane.screenshot("search")
    page.press("#search", "ArrowDown")
    page.press("#search", "Enter")
    page.locator("#current-company", has_text="Tailspin Toys").wait_for()
    # Back to the suggestion, choose "visit" and save.
    suggestions.nth(0).click()
    page.locator("#current-company", has_text="Contoso Pharmaceuticals").wait_for()
    page.check("input[name=kind][value=visit]")
    page.click("#save")
    page.locator("#status.ok", has_text="Saved").wait_for()
    pane.screenshot("saved")

    # The CRM activity exists with the tag's fields ...
    activities = api("GET", f"/activities?company_id={crm['contoso']['id']}")["items"]
    assert len(activities) == 1
    activity = activities[0]
    assert activity["kind"] == "visit"
    assert activity["subject"] == "Quarterly review"
    assert activity["contact_ids"] == [crm["anna"]["id"]]
    assert activity["start"].startswith(config["start"].removesuffix("Z"))
    # ... the item carries it as the four custom properties Graph reads (cecp JSON) ...
    saved = pane.office()["saved"]
    assert saved == {
        "crmCompanyId": str(crm["contoso"]["id"]),
        "crmContactIds": str(crm["anna"]["id"]),
        "crmKind": "visit",
        "crmActivityId": str(activity["id"]),
    }
    # ... with the category (added to the master list first) and the item saved.
    assert (
        pane.calls("masterCategories.addAsync")[0][0][0]["displayName"]
        == "CRM: Contoso Pharmaceuticals"
    )
    assert pane.office()["categories"] == ["CRM: Contoso Pharmaceuticals"]
    assert len(pane.calls("saveAsync")) == 1
    assert pane.calls("getAccessToken")  # the token came from Office SSO (no NAA in the stub)

    # Re-tagging updates the same activity rather than making a second one, and the
    # category follows the company.
    suggestions.nth(1).click()
    page.check("input[name=kind][value=meeting]")
    page.click("#save")
    fabrikam_id = crm["fabrikam"]["id"]
    page.wait_for_function(f"() => window.__office.saved.crmCompanyId === '{fabrikam_id}'")
    page.locator("#status.ok", has_text="Fabrikam").wait_for()
    again = api("GET", f"/activities/{activity['id']}")
    assert (again["company_id"], again["kind"]) == (fabrikam_id, "meeting")
    assert api("GET", f"/activities?company_id={crm['contoso']['id']}")["items"] == []
    assert pane.office()["categories"] == ["CRM: Fabrikam Logistics"]
    assert pane.errors == []


def test_an_unknown_attendee_becomes_a_contact_and_company_in_one_step(
    make_pane: Callable[..., Pane], tenant: Tenant, api: Callable[..., Any]
) -> None:
    pane = make_pane(
        _meeting(
            tenant, required=[{"emailAddress": "kim@woodgrove.example", "displayName": "Kim Lee"}]
        )
    )
    pane.open("/addin/taskpane.html")
    page = pane.page
    page.locator("#unknown li[data-email='kim@woodgrove.example'] button").click()
    page.locator("#status.ok", has_text="added to the CRM").wait_for()
    pane.screenshot("unknown-added")
    company = api("GET", "/companies?q=woodgrove")["items"][0]
    assert company["domains"] == ["woodgrove.example"]
    contact = api("GET", "/contacts/lookup?email=kim@woodgrove.example")
    assert (contact["first_name"], contact["last_name"], contact["company_id"]) == (
        "Kim",
        "Lee",
        company["id"],
    )
    assert page.locator("#current-company").inner_text() == company["name"]
    assert page.locator(f"#contact-{contact['id']}").is_checked()
    assert page.locator("#unknown-box").is_hidden()
    assert pane.errors == []


def test_compose_shows_colleagues_busy_at_that_time(
    make_pane: Callable[..., Pane], tenant: Tenant, api: Callable[..., Any]
) -> None:
    config = _meeting(tenant, required=[{"emailAddress": "anna@contoso.example"}])
    api(
        "POST",
        "/activities",
        {
            "kind": "call",
            "subject": "Call with Globex",
            "start": config["start"],
            "end": config["end"],
        },
    )
    pane = make_pane(config)
    pane.open("/addin/taskpane.html")
    pane.page.locator("#conflicts li", has_text="Call with Globex").wait_for()
    pane.screenshot("conflicts")
    assert pane.errors == []


def test_read_mode_shows_the_link_and_history_and_records_held(
    make_pane: Callable[..., Pane], tenant: Tenant, crm: dict[str, Any], api: Callable[..., Any]
) -> None:
    now = dt.datetime.now(UTC).replace(microsecond=0)
    start, end = now - dt.timedelta(hours=2), now - dt.timedelta(hours=1)
    company_id = crm["contoso"]["id"]
    meeting = api(
        "POST",
        "/activities",
        {
            "kind": "meeting",
            "subject": "Pricing workshop",
            "start": _iso(start),
            "end": _iso(end),
            "company_id": company_id,
            "contact_ids": [crm["anna"]["id"]],
        },
    )
    for days, subject in ((-20, "Kick-off"), (9, "Contract signing")):
        moment = now + dt.timedelta(days=days)
        api(
            "POST",
            "/activities",
            {
                "kind": "call",
                "subject": subject,
                "start": _iso(moment),
                "end": _iso(moment + dt.timedelta(minutes=30)),
                "company_id": company_id,
            },
        )
    pane = make_pane(
        _meeting(
            tenant,
            mode="read",
            subject="Pricing workshop",
            start=_iso(start),
            end=_iso(end),
            required=[{"emailAddress": "anna@contoso.example", "displayName": "Anna Berg"}],
            # An attendee's copy has no tag: the pane finds the activity by its time.
        )
    )
    pane.open("/addin/taskpane.html")
    page = pane.page
    page.locator("#read-company", has_text="Contoso Pharmaceuticals").wait_for()
    assert page.locator("#read-contacts").inner_text() == "Anna Berg"
    page.locator("#upcoming li", has_text="Contract signing").wait_for()
    assert page.locator("#recent li", has_text="Kick-off").is_visible()
    assert page.locator("#outcome-form").is_visible()
    pane.screenshot("read")

    page.check("input[name=held][value=held]")
    page.fill("#outcome", "Won: they chose us for the delivery times")
    page.click("#record")
    page.locator("#status.ok", has_text="Recorded").wait_for()
    pane.screenshot("held")
    stored = api("GET", f"/activities/{meeting['id']}")
    assert (stored["status"], stored["outcome"]) == (
        "held",
        "Won: they chose us for the delivery times",
    )
    assert page.locator("#read-status").inner_text() == "Held"
    assert pane.errors == []


def test_read_mode_uses_the_tagged_activity_id(
    make_pane: Callable[..., Pane], tenant: Tenant, crm: dict[str, Any], api: Callable[..., Any]
) -> None:
    now = dt.datetime.now(UTC).replace(microsecond=0)
    start = now + dt.timedelta(days=1)
    meeting = api(
        "POST",
        "/activities",
        {
            "kind": "visit",
            "subject": "Site visit",
            "start": _iso(start),
            "end": _iso(start + dt.timedelta(hours=1)),
            "company_id": crm["fabrikam"]["id"],
        },
    )
    pane = make_pane(
        _meeting(
            tenant,
            mode="read",
            subject="Renamed in Outlook",
            start=_iso(start - dt.timedelta(hours=3)),  # moved since: only the id can find it
            end=_iso(start - dt.timedelta(hours=2)),
            customProperties={
                "crmActivityId": str(meeting["id"]),
                "crmCompanyId": str(crm["fabrikam"]["id"]),
            },
        )
    )
    pane.open("/addin/taskpane.html")
    pane.page.locator("#read-company", has_text="Fabrikam Logistics").wait_for()
    assert pane.page.locator("#outcome-form").is_hidden()  # not over yet
    assert re.search("Planned", pane.page.locator("#read-status").inner_text())
    assert pane.errors == []


def test_attendee_read_mode_finds_the_activity_linked_to_their_copy(
    make_pane: Callable[..., Pane],
    tenant: Tenant,
    crm: dict[str, Any],
    api: Callable[..., Any],
    uow_factory: UnitOfWorkFactory,
) -> None:
    """Two CRM meetings at the same time with the same subject: only the id of the attendee's
    own copy (which sync linked) tells which one this is."""
    start = dt.datetime.now(UTC).replace(microsecond=0) + dt.timedelta(days=1)
    same = {"kind": "meeting", "subject": "Weekly sync", "start": _iso(start),
            "end": _iso(start + dt.timedelta(hours=1))}  # fmt: skip
    api("POST", "/activities", same | {"company_id": crm["contoso"]["id"]})
    theirs = api("POST", "/activities", same | {"company_id": crm["fabrikam"]["id"]})
    with uow_factory() as uow:
        uow.session.add(
            Mailbox(
                org_id=tenant.org_id,
                provider=Provider.MICROSOFT,
                address=tenant.user_email,
                external_id="linda-graph-id",
            )
        )
        uow.session.add(
            ProviderLink(
                org_id=tenant.org_id,
                activity_id=theirs["id"],
                provider=Provider.MICROSOFT,
                mailbox=tenant.user_email,
                provider_event_id="AAMkAGI2-attendee_copy=",
            )
        )
        uow.commit()
    pane = make_pane(
        _meeting(
            tenant,
            mode="read",
            subject="Weekly sync",
            start=same["start"],
            end=same["end"],
            itemId="AAMkAGI2/attendee+copy=",  # EWS form; the pane converts it
        )
    )
    pane.open("/addin/taskpane.html")
    pane.page.locator("#read-company", has_text="Fabrikam Logistics").wait_for()
    assert pane.calls("convertToRestId") == [["AAMkAGI2/attendee+copy=", "v2.0"]]
    assert pane.errors == []


def test_opened_from_the_prompt_the_hinted_company_is_chosen(
    make_pane: Callable[..., Pane], tenant: Tenant, crm: dict[str, Any]
) -> None:
    fabrikam = crm["fabrikam"]
    pane = make_pane(
        _meeting(
            tenant,
            required=[{"emailAddress": "anna@contoso.example"}],
            initializationContext=f'{{"companyId":{fabrikam["id"]}}}',
        )
    )
    pane.open("/addin/taskpane.html")
    pane.page.locator("#current-company", has_text="Fabrikam Logistics").wait_for()
    assert pane.errors == []


# MSAL's nestable client stands in for the one the page would load: records what it is asked.
FAKE_MSAL = """
window.__msal = {calls: []};
window.msal = {
  createNestablePublicClientApplication: async (config) => {
    window.__msal.calls.push(["create", config]);
    return {
      acquireTokenSilent: async (request) => {
        window.__msal.calls.push(["silent", request]);
        throw new Error("interaction_required");
      },
      acquireTokenPopup: async (request) => {
        window.__msal.calls.push(["popup", request]);
        const expiresOn = new Date(Date.now() + 3600e3);
        return {accessToken: window.__OFFICE_CONFIG__.token, expiresOn};
      },
    };
  },
};
"""


def test_nested_app_auth_is_used_where_outlook_supports_it(
    make_pane: Callable[..., Pane], tenant: Tenant, crm: dict[str, Any]
) -> None:
    pane = make_pane(
        _meeting(tenant, naa=True, required=[{"emailAddress": "anna@contoso.example"}])
    )
    pane.page.add_init_script(FAKE_MSAL)
    pane.open("/addin/taskpane.html")
    pane.page.locator("#suggestions button").first.wait_for()
    calls = pane.page.evaluate("() => window.__msal.calls")
    assert [name for name, _ in calls] == ["create", "silent", "popup"]
    config = pane.page.evaluate("() => fetch('/addin/config.json').then((r) => r.json())")
    assert calls[1][1] == {"scopes": [config["apiScope"]]}
    assert calls[0][1]["auth"]["clientId"] == config["clientId"]
    assert calls[0][1]["auth"]["authority"] == config["authority"]
    assert pane.calls("getAccessToken") == []  # Office SSO is only the fallback
    assert pane.errors == []
