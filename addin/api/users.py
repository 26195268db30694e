"""/api/v1/users and /api/v1/me: the organization's CRM users and the caller."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from addin.api.schemas import MeOut, UserOut
from addin.context import container, principal
from services.organizations import list_users

blp = Blueprint("users", __name__, url_prefix="", description="Users and the caller")


class UserList(Schema):
    items = fields.List(fields.Nested(UserOut))


@blp.route("/users")
class Users(MethodView):
    @blp.response(200, UserList)
    def get(self) -> dict[str, Any]:
        with container().uow(read_only=True) as uow:
            return {"items": list_users(uow, principal().org_id)}


@blp.route("/me")
class Me(MethodView):
    @blp.response(200, MeOut)
    def get(self) -> Any:
        return principal()
