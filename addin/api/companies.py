"""/api/v1/companies: create, read, update, delete, list and search."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from addin.api.schemas import (
    CompanyIn,
    CompanyListArgs,
    CompanyOut,
    CompanyPage,
    CompanyPatch,
    decode_cursor,
    keyset_page,
)
from addin.context import container, principal
from services import companies
from services.tables import Company

blp = Blueprint("companies", __name__, url_prefix="/companies", description="CRM companies")


@blp.route("")
class Companies(MethodView):
    @blp.arguments(CompanyListArgs, location="query")
    @blp.response(200, CompanyPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List companies alphabetically, or search them with `q` (ranked, no cursor)."""
        org_id = principal().org_id
        with container().uow(read_only=True) as uow:
            if "q" in args:
                found = companies.search_companies(uow, org_id, args["q"], args["limit"])
                return {"items": found, "next_cursor": None}
            after = decode_cursor(args["cursor"], (str, int)) if args["cursor"] else None
            rows = companies.list_companies(
                uow, org_id, after=tuple(after) if after else None, limit=args["limit"] + 1
            )
        return keyset_page(rows, args["limit"])

    @blp.arguments(CompanyIn)
    @blp.response(201, CompanyOut)
    def post(self, data: dict[str, Any]) -> Company:
        """Create a company; its e-mail domains must not belong to another company."""
        with container().uow() as uow:
            company = companies.create_company(uow, principal().org_id, **data)
            uow.commit()
        return company


@blp.route("/<int:company_id>")
class CompanyById(MethodView):
    @blp.response(200, CompanyOut)
    def get(self, company_id: int) -> Company:
        with container().uow(read_only=True) as uow:
            return companies.get_company(uow, principal().org_id, company_id)

    @blp.arguments(CompanyPatch)
    @blp.response(200, CompanyOut)
    def patch(self, changes: dict[str, Any], company_id: int) -> Company:
        """Change some fields; `domains` replaces the whole list."""
        with container().uow() as uow:
            company = companies.update_company(uow, principal().org_id, company_id, changes)
            uow.commit()
        return company

    @blp.response(204)
    def delete(self, company_id: int) -> None:
        """Delete a company; its contacts and activities stay, without the company."""
        with container().uow() as uow:
            companies.delete_company(uow, principal().org_id, company_id)
            uow.commit()
