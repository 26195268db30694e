"""Event ids as Outlook clients know them, translated to the ids sync stores.

Office.js names an item by its EWS id, which the task pane converts to the regular REST id
(``convertToRestId``). Sync asks Graph for immutable ids (``Prefer: IdType="ImmutableId"``),
which are other strings. Reading the event by its regular id with that preference answers with
the immutable id: https://learn.microsoft.com/graph/outlook-immutable-id
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from graph.calendar import PREFER_IMMUTABLE_IDS, provider_errors
from graph.client import GraphError, GraphNotFound
from services.ports import MailboxRef

__all__ = ["GraphEventIds"]


class GraphEventIds:
    """``services.ports.EventIds`` over Graph."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def stored_event_id(self, mailbox: MailboxRef, event_id: str) -> str | None:
        user = quote(mailbox.external_id, safe="")
        path = f"/users/{user}/events/{quote(event_id, safe='')}"
        with provider_errors():
            try:
                event = self._client.get(
                    path,
                    mailbox=mailbox.external_id,
                    params={"$select": "id"},
                    headers={"Prefer": PREFER_IMMUTABLE_IDS},
                )
            except GraphNotFound:
                return None
            except GraphError as err:
                if err.status == 400:  # not an id at all (ErrorInvalidIdMalformed)
                    return None
                raise
        found = event.get("id")
        return found if isinstance(found, str) and found else None
