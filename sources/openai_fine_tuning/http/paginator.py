"""Paging of OpenAI list endpoints: `after` = id of the previous page's last item."""

from typing import Any, List, Optional, Set

from dlt.sources.helpers.rest_client.paginators import BaseReferencePaginator
from requests import Request, Response

from ..errors import PaginationLoopError, UpstreamError
from .responses import endpoint_of


class OpenAICursorPaginator(BaseReferencePaginator):
    """Follows `after` cursors until `has_more` is false.

    The cursor is `last_id` where the page carries it (checkpoints), else the `id` of the
    page's last item (jobs, events). A server that claims more pages but sends an empty page
    or a cursor already followed would make paging endless: that raises `PaginationLoopError`.
    The parsed body is read from `response.openai_body`, set by `OpenAIRestClient`, so each
    page is parsed once.
    """

    def __init__(self) -> None:
        super().__init__()
        self._followed: Set[str] = set()

    def update_state(self, response: Response, data: Optional[List[Any]] = None) -> None:
        body = response.openai_body  # type: ignore[attr-defined]
        has_more = body.get("has_more")
        if not isinstance(has_more, bool):
            raise UpstreamError(
                f"{endpoint_of(response)} answered a list without a boolean 'has_more'"
                f" (got {has_more!r})"
            )
        if not has_more:
            self._next_reference = None
            return
        if not data:
            raise PaginationLoopError(
                f"{endpoint_of(response)} answered has_more: true with an empty page;"
                " stopped to avoid paging forever"
            )
        cursor = body.get("last_id") or data[-1].get("id")
        if not isinstance(cursor, str) or cursor in self._followed:
            raise PaginationLoopError(
                f"{endpoint_of(response)} answered has_more: true but repeated the cursor"
                f" {cursor!r}; stopped to avoid paging forever"
            )
        self._followed.add(cursor)
        self._next_reference = cursor

    def update_request(self, request: Request) -> None:
        request.params = {**(request.params or {}), "after": self._next_reference}
