"""/api/v1/contacts: create, read, update, delete, list, and look up by e-mail."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from addin.api.schemas import (
    ContactIn,
    ContactListArgs,
    ContactLookupArgs,
    ContactOut,
    ContactPage,
    decode_cursor,
    keyset_page,
)
from addin.context import container, principal
from services import contacts
from services.tables import Contact

blp = Blueprint("contacts", __name__, url_prefix="/contacts", description="CRM contacts")


@blp.route("")
class Contacts(MethodView):
    @blp.arguments(ContactListArgs, location="query")
    @blp.response(200, ContactPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List contacts by name, optionally one company's or matching `q`."""
        after = decode_cursor(args["cursor"], (str, int)) if args["cursor"] else None
        limit = args["limit"]
        with container().uow(read_only=True) as uow:
            rows = contacts.list_contacts(
                uow,
                principal().org_id,
                company_id=args.get("company_id"),
                query=args.get("q"),
                after=tuple(after) if after else None,
                limit=limit + 1,
            )
        return keyset_page(rows, limit)

    @blp.arguments(ContactIn)
    @blp.response(201, ContactOut)
    def post(self, data: dict[str, Any]) -> Contact:
        """Create a contact; an e-mail address belongs to one contact only."""
        with container().uow() as uow:
            contact = contacts.create_contact(uow, principal().org_id, data)
            uow.commit()
        return contact


@blp.route("/lookup")
class ContactLookup(MethodView):
    @blp.arguments(ContactLookupArgs, location="query")
    @blp.response(200, ContactOut)
    def get(self, args: dict[str, Any]) -> Contact:
        """The contact that has this e-mail address (404 when none)."""
        with container().uow(read_only=True) as uow:
            return contacts.find_contact_by_email(uow, principal().org_id, args["email"])


@blp.route("/<int:contact_id>")
class ContactById(MethodView):
    @blp.response(200, ContactOut)
    def get(self, contact_id: int) -> Contact:
        with container().uow(read_only=True) as uow:
            return contacts.get_contact(uow, principal().org_id, contact_id)

    @blp.arguments(ContactIn)
    @blp.response(200, ContactOut)
    def patch(self, changes: dict[str, Any], contact_id: int) -> Contact:
        """Change some fields; `emails` replaces the whole list."""
        with container().uow() as uow:
            contact = contacts.update_contact(uow, principal().org_id, contact_id, changes)
            uow.commit()
        return contact

    @blp.response(204)
    def delete(self, contact_id: int) -> None:
        with container().uow() as uow:
            contacts.delete_contact(uow, principal().org_id, contact_id)
            uow.commit()
