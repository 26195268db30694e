"""/api/v1/suggest: what a meeting's attendees point to."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from addin.api.schemas import SuggestIn, SuggestOut
from addin.context import container, principal
from services.suggest import Suggestions, suggest

blp = Blueprint("suggest", __name__, url_prefix="/suggest", description="Attendee suggestions")


@blp.route("")
class Suggest(MethodView):
    @blp.arguments(SuggestIn)
    @blp.response(200, SuggestOut)
    def post(self, data: dict[str, Any]) -> Suggestions:
        """Known contacts, then companies by e-mail domain (free-mail and own domains never)."""
        with container().uow(read_only=True) as uow:
            return suggest(uow, principal().org_id, data["emails"])
