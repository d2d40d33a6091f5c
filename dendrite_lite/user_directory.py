"""User directory: https://spec.matrix.org/latest/client-server-api/#user-directory

Who can be found: users sharing a joined room with the searcher, users joined to a
room whose join rule is public, that is published in the room directory or whose
history is world-readable, and, with ``[user_directory] search_all_users``, every local
user. Deactivated users never appear.

Matching is case- and diacritic-insensitive on the localpart and the display name:
each word of the search term must be the prefix of some word of either (as Synapse
does). The work is one SQL query over an FTS5 index (see storage/user_directory.py).
"""

from __future__ import annotations

import unicodedata
from typing import Any

import msgspec

from dendrite_lite.auth.tokens import Requester
from dendrite_lite.config import UserDirectoryConfig
from dendrite_lite.errors import bad_json, invalid_param, missing_param
from dendrite_lite.storage import user_directory
from dendrite_lite.storage.db import Database

DEFAULT_LIMIT = 10
MAX_LIMIT = 50
# Longer than a display name (256 bytes) and a localpart together: it cannot be meant.
MAX_TERM_CHARS = 512
# The characters FTS5's unicode61 tokenizer keeps in words (the rest separate words).
_WORD_CATEGORIES = ("L", "N", "Co")


class UserDirectory:
    def __init__(self, db: Database, config: UserDirectoryConfig) -> None:
        self.db = db
        self.search_all_users = config.search_all_users

    async def search(self, requester: Requester, body: Any) -> dict[str, Any]:
        term, limit = _parse(body)
        words = search_words(term)
        if not words:
            return {"results": [], "limited": False}
        match = " AND ".join(f"{_quote(word)}*" for word in words)
        whole = " ".join(words)
        hits = await self.db.read(
            lambda conn: user_directory.search(
                conn,
                requester.user_id,
                match=match,
                starts_with=f"^{_quote(whole)}*",
                term=whole,
                all_users=self.search_all_users,
                limit=limit + 1,
            )
        )
        results = [_result(hit) for hit in hits[:limit]]
        return {"results": results, "limited": len(hits) > limit}


def _parse(body: Any) -> tuple[str, int]:
    if not isinstance(body, dict):
        raise bad_json("Body must be a JSON object")
    if "search_term" not in body:
        raise missing_param("Missing 'search_term'")
    term = body["search_term"]
    if not isinstance(term, str):
        raise bad_json("'search_term' must be a string")
    if len(term) > MAX_TERM_CHARS:
        raise invalid_param(f"'search_term' exceeds {MAX_TERM_CHARS} characters")
    limit = body.get("limit", DEFAULT_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise bad_json("'limit' must be an integer")
    return term, max(0, min(limit, MAX_LIMIT))


def search_words(term: str) -> list[str]:
    """The words of a search term; a full user ID (@alice:example.org) searches its
    localpart. Words without a letter or digit are dropped: they match nothing."""
    words = []
    for word in term.split():
        if word.startswith("@") and ":" in word:
            word = word[1:].partition(":")[0]
        if any(unicodedata.category(char).startswith(_WORD_CATEGORIES) for char in word):
            words.append(word)
    return words


def _quote(text: str) -> str:
    """An FTS5 string: FTS5 splits it into tokens with the index's own tokenizer."""
    return '"' + text.replace('"', '""') + '"'


def _result(hit: user_directory.DirectoryHit) -> dict[str, Any]:
    result: dict[str, Any] = {"user_id": hit.user_id}
    if hit.display_name:
        result["display_name"] = hit.display_name
    if hit.avatar_url is not None:
        avatar = msgspec.json.decode(hit.avatar_url)
        if isinstance(avatar, str) and avatar.startswith("mxc://"):
            result["avatar_url"] = avatar
    return result
