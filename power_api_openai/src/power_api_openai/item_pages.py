"""One page of a list of items, as OpenAI pages a response's input items and a
conversation's items: ``limit`` (1-100, default 20), ``order`` (``desc``, the default,
or ``asc``), and ``after`` (the id of the item the page follows)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from power_api_openai.validation import Fields
from power_core.errors import InvalidRequest

#: the most items one page lists, as OpenAI's
MAX_PAGE = 100


def item_page(
    items: list[Any],
    query: dict[str, Any],
    where: str,
    positions: Mapping[str, int] | None = None,
    *,
    most: int = MAX_PAGE,
    default_limit: int = 20,
) -> dict[str, Any]:
    """The page of ``items`` (oldest first) that a request's ``query`` asks for; ``where``
    names what holds them, for an unknown ``after``. With the ``positions`` of every item
    ever held, a page resumes after an item deleted since (a client deleting as it pages).
    ``limit`` may be 1 to ``most``."""
    fields = Fields(query)
    limit = _integer(query.get("limit"), "limit", most) or default_limit
    order = fields.choice("order", ("asc", "desc"), "desc")
    after = fields.string("after")
    if order == "desc":
        items = items[::-1]
    if after is not None:
        ids = [item.get("id") for item in items]
        if after in ids:
            items = items[ids.index(after) + 1 :]
        elif positions is not None and after in positions:
            mark = positions[after]
            items = [item for item in items if (positions[item["id"]] > mark) == (order == "asc")]
        else:
            raise InvalidRequest(f"No item with id '{after[:80]}' in {where}.", param="after")
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0].get("id") if page else None,
        "last_id": page[-1].get("id") if page else None,
        "has_more": len(items) > len(page),
    }


def _integer(value: Any, name: str, most: int) -> int | None:
    """A query's integer (query values are text)."""
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if not 1 <= number <= most:
        raise InvalidRequest(f"'{name}' must be an integer from 1 to {most}", param=name)
    return number
