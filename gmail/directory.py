"""The Workspace users to watch, as a ``services.ports.Directory``.

Either a fixed list (``watch_users``, e.g. a pilot group) or every active user of the domain
from the Admin SDK Directory API ``users.list`` (``customer=my_customer``), read as an
administrator (``admin_email``, domain-wide delegation with ``admin.directory.user.readonly``).
Suspended and archived users are skipped.

``DirectoryEntry.external_id`` is the user's primary e-mail address, not the Directory's
numeric user id: every later call acts for the user through domain-wide delegation, whose
``sub`` claim must be an address (the user id is not accepted there), and Calendar and Gmail
name the user by address too. So the address is the one id all Google calls can use.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final

from gmail.client import DIRECTORY_SCOPE, GoogleClient
from services.ports import DirectoryEntry, ProviderError

__all__ = ["GoogleDirectory"]

_SCOPES: Final = (DIRECTORY_SCOPE,)
_FIELDS: Final = "nextPageToken,users(primaryEmail,name/fullName,suspended,archived)"


class GoogleDirectory:
    """``Directory`` over the Admin SDK, or over a fixed list of addresses."""

    def __init__(
        self, client: GoogleClient, *, admin_email: str, watch_users: Sequence[str] = ()
    ) -> None:
        self._client = client
        self._admin_email = admin_email.strip()
        self._watch_users = tuple(
            dict.fromkeys(a.strip().lower() for a in watch_users if a and a.strip())
        )

    def mailboxes(self, group_id: str | None = None) -> Iterator[DirectoryEntry]:
        if self._watch_users:
            for address in self._watch_users:
                yield DirectoryEntry(external_id=address, address=address)
            return
        if group_id is not None:
            raise ProviderError(
                "Watching the members of a Google group is not supported: list the users in "
                "GOOGLE_WATCH_USERS, or watch the whole domain",
                reason="google.groups_unsupported",
                transient=False,
            )
        if not self._admin_email:
            raise ProviderError(
                "Listing the domain's users needs an administrator to act as: set "
                "GOOGLE_ADMIN_EMAIL (or list the users in GOOGLE_WATCH_USERS)",
                reason="google.no_admin",
                transient=False,
            )
        params = {
            "customer": "my_customer",
            "maxResults": "500",
            "orderBy": "email",
            "projection": "basic",
            "fields": _FIELDS,
        }
        for page in self._client.pages(
            self._client.directory_url("users"),
            as_user=self._admin_email,
            scopes=_SCOPES,
            params=params,
        ):
            users = page.get("users")
            for user in users if isinstance(users, list) else ():
                if not isinstance(user, dict) or user.get("suspended") or user.get("archived"):
                    continue
                primary = user.get("primaryEmail")
                if not isinstance(primary, str) or "@" not in primary:
                    continue
                name = user.get("name")
                full_name = name.get("fullName") if isinstance(name, dict) else None
                address = primary.strip().lower()
                yield DirectoryEntry(
                    external_id=address,
                    address=address,
                    display_name=full_name if isinstance(full_name, str) else "",
                )
