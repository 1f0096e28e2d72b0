"""Newest-first lists with `after` cursors, as every list endpoint of the API pages them."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple


class UnknownCursorError(ValueError):
    """Raised when `after` names no item of the list being paged."""


def _copy(item: Any) -> Dict[str, Any]:
    # shallow copies: records change (status) only by replacing top-level values
    return dict(item) if type(item) is dict else item.as_dict()


class NewestFirst:
    """A newest-first list of items written in any order, with O(1) cursor lookup.

    Among items of the same second the later written comes first, as on the API. An item is
    a dict, or an object readable as `item["created_at"]`, `item["id"]` that builds its dict
    with `as_dict()` when served.
    """

    def __init__(self) -> None:
        self._written: List[Dict[str, Any]] = []
        self._desc: List[Dict[str, Any]] = []
        self._position: Dict[str, int] = {}
        self._dirty = False

    def add(self, item: Dict[str, Any]) -> None:
        self._written.append(item)
        self._dirty = True

    def touch(self) -> None:
        """Re-sorts on the next read: an item's `created_at` or `id` was changed in place."""
        self._dirty = True

    def __len__(self) -> int:
        return len(self._written)

    def items(self) -> List[Any]:
        """Newest first, as stored (see `copies()` for the dicts served)."""
        if self._dirty:
            written = self._written
            order = sorted(
                range(len(written)), key=lambda i: (written[i]["created_at"], i), reverse=True
            )
            self._desc = [written[i] for i in order]
            self._position = {item["id"]: index for index, item in enumerate(self._desc)}
            self._dirty = False
        return self._desc

    def page(
        self, after: Optional[str], limit: int, inclusive: bool = False
    ) -> Tuple[List[Dict[str, Any]], bool]:
        """The `limit` items after the item `after` (from the newest without it); with
        `inclusive`, the `limit` items from `after` itself."""
        items = self.items()
        start = 0
        if after is not None:
            if after not in self._position:
                raise UnknownCursorError(after)
            start = self._position[after] + (0 if inclusive and limit > 1 else 1)
        page = [_copy(item) for item in items[start : start + limit]]
        return page, start + limit < len(items)

    def copies(self) -> List[Dict[str, Any]]:
        """Every item as served, newest first."""
        return [_copy(item) for item in self.items()]
