"""The Google Workspace add-on deployment descriptor, built from settings.

One pure function, `google_deployment`, returns the body of a Deployment resource of the Google
Workspace Add-ons API (gsuiteaddons.googleapis.com/v1), the file an admin passes to
`gcloud workspace-add-ons deployments create NAME --deployment-file=FILE`; no Flask here.
The shape follows Google's definitions (summarised in reference/google.md §1):
- Deployment {oauthScopes, addOns{common, gmail, calendar, httpOptions}}:
  `googleapis/googleapis:google/cloud/gsuiteaddons/v1/gsuiteaddons.proto`
- common / gmail / calendar sections: `google/apps/script/type/script_manifest.proto`,
  `.../gmail/gmail_addon_manifest.proto`, `.../calendar/calendar_addon_manifest.proto`;
  https://developers.google.com/workspace/add-ons/reference/rpc/google.apps.script.type/calendar
- HTTP add-ons (every runFunction is an HTTPS URL, every scope listed explicitly):
  https://developers.google.com/workspace/add-ons/guides/alternate-runtimes
- deployment with gcloud:
  https://cloud.google.com/sdk/gcloud/reference/workspace-add-ons/deployments/create
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from manifest.outlook import ManifestError, icon_path

if TYPE_CHECKING:
    from bootstrap import Settings

__all__ = [
    "ACTION_PATH",
    "AUTOCOMPLETE_PATH",
    "CALENDAR_EVENT_OPEN_PATH",
    "ENDPOINT_PATHS",
    "GMAIL_MESSAGE_OPEN_PATH",
    "HOMEPAGE_PATH",
    "LOGO_PATH",
    "OAUTH_SCOPES",
    "AddonUrls",
    "ManifestError",
    "deployment_json",
    "google_deployment",
]

NAME: Final = "Meeting-to-CRM"
# The task pane's blues (addin/static/pane/pane.css --blue, --blue-hover): one look everywhere.
PRIMARY_COLOR: Final = "#0f6cbd"
SECONDARY_COLOR: Final = "#115ea3"

# Paths under PUBLIC_BASE_URL that Google POSTs to. The add-on's HTTP endpoints serve them.
HOMEPAGE_PATH: Final = "/addon/google/homepage"  # Gmail and Calendar homepage trigger
CALENDAR_EVENT_OPEN_PATH: Final = "/addon/google/calendar/event-open"  # eventOpenTrigger
GMAIL_MESSAGE_OPEN_PATH: Final = "/addon/google/gmail/message-open"  # contextual trigger
# Not in the descriptor: the cards name them as Action.function / autoCompleteAction.function.
ACTION_PATH: Final = "/addon/google/action"
AUTOCOMPLETE_PATH: Final = "/addon/google/autocomplete"
ENDPOINT_PATHS: Final = (
    HOMEPAGE_PATH,
    CALENDAR_EVENT_OPEN_PATH,
    GMAIL_MESSAGE_OPEN_PATH,
    ACTION_PATH,
    AUTOCOMPLETE_PATH,
)
# The Outlook add-in's 128 px icon, served by addin/web.py.
LOGO_PATH: Final = icon_path(128)

# What the end user consents to, exactly what the endpoints need, sorted. Sources:
# - calendar.addons.execute, gmail.addons.execute: run the add-on in Calendar / Gmail
#   (alternate-runtimes guide; reference/google.md §1.6);
# - calendar.addons.current.event.read: needed by currentEventAccess READ, which brings the
#   attendees of the open event (https://developers.google.com/apps-script/manifest/calendar-addons;
#   reference/google.md §1.4, §2.3);
# - gmail.addons.current.message.readonly: read the open message with the per-message
#   gmail.accessToken, including its text/calendar part to recognise an invitation (the
#   ".metadata" variant gives headers only) (reference/google.md §2.2, §6;
#   https://developers.google.com/workspace/add-ons/concepts/gsuite-scopes);
# - script.locale: with common.useLocaleFromApp, the event carries userLocale and timeZone
#   (https://developers.google.com/workspace/add-ons/how-tos/access-user-locale; §1.2);
# - userinfo.email: without it the event has no userIdToken, so no verified user e-mail
#   (https://developers.google.com/workspace/add-ons/concepts/event-objects; §2.1).
# The background sync (Calendar channels, Gmail watch) uses domain-wide delegation with its own
# scopes, granted in the Admin console: none of those belong here.
OAUTH_SCOPES: Final = tuple(
    sorted(
        f"https://www.googleapis.com/auth/{scope}"
        for scope in (
            "calendar.addons.current.event.read",
            "calendar.addons.execute",
            "gmail.addons.current.message.readonly",
            "gmail.addons.execute",
            "script.locale",
            "userinfo.email",
        )
    )
)


@dataclass(frozen=True, slots=True)
class AddonUrls:
    """Every URL the add-on uses, absolute and https."""

    base: str

    def __post_init__(self) -> None:
        parts = urlsplit(self.base)
        if parts.scheme != "https" or not parts.netloc:
            raise ManifestError(
                "PUBLIC_BASE_URL must be an https:// URL for the Google Workspace add-on "
                f"(Google calls add-on endpoints only over https), got {self.base!r}"
            )

    def at(self, path: str) -> str:
        return self.base.rstrip("/") + path

    @property
    def homepage(self) -> str:
        return self.at(HOMEPAGE_PATH)

    @property
    def calendar_event_open(self) -> str:
        return self.at(CALENDAR_EVENT_OPEN_PATH)

    @property
    def gmail_message_open(self) -> str:
        return self.at(GMAIL_MESSAGE_OPEN_PATH)

    @property
    def action(self) -> str:
        return self.at(ACTION_PATH)

    @property
    def autocomplete(self) -> str:
        return self.at(AUTOCOMPLETE_PATH)

    @property
    def logo(self) -> str:
        return self.at(LOGO_PATH)

    def endpoints(self) -> list[str]:
        """Every endpoint URL Google POSTs to (the audiences of its ID tokens)."""
        return [self.at(path) for path in ENDPOINT_PATHS]


def google_deployment(settings: Settings) -> dict[str, Any]:
    """The Deployment resource body: oauthScopes and addOns (common, gmail, calendar, httpOptions).

    Raises ManifestError when PUBLIC_BASE_URL is not https.
    """
    urls = AddonUrls(settings.public_base_url)

    def homepage() -> dict[str, str]:  # one object per section: no shared mutable parts
        return {"runFunction": urls.homepage}

    return {
        "oauthScopes": list(OAUTH_SCOPES),
        "addOns": {
            "common": {
                "name": NAME,
                "logoUrl": urls.logo,
                "layoutProperties": {
                    "primaryColor": PRIMARY_COLOR,
                    "secondaryColor": SECONDARY_COLOR,
                },
                "useLocaleFromApp": True,
                "homepageTrigger": homepage(),
            },
            "gmail": {
                "homepageTrigger": homepage(),
                # The only contextual trigger Gmail has: every opened message. The endpoint
                # decides whether the message is a meeting invitation.
                "contextualTriggers": [
                    {"unconditional": {}, "onTriggerFunction": urls.gmail_message_open}
                ],
            },
            "calendar": {
                "homepageTrigger": homepage(),
                "eventOpenTrigger": {"runFunction": urls.calendar_event_open},
                # Attendees of the open event; no writes: the backend tags events itself.
                "currentEventAccess": "READ",
            },
            # Google signs each request with an ID token of the deployment's service account.
            # The system ID token authenticates every call; the add-on handles partial grants
            # (authorizedScopes -> requesting_google_scopes), which Google asks HTTP add-ons
            # with user authorization to opt in to.
            "httpOptions": {
                "authorizationHeader": "SYSTEM_ID_TOKEN",
                "granularOauthPermissionSupport": "OPT_IN",
            },
        },
    }


def deployment_json(settings: Settings) -> str:
    """The descriptor as the JSON file gcloud reads."""
    return json.dumps(google_deployment(settings), indent=2) + "\n"
