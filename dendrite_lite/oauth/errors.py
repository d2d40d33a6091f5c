"""OAuth 2.0 error responses: RFC 6749 section 5.2 (token endpoint), 4.1.2.1 (authorize
redirects), RFC 7591 section 3.2.2 (registration).

Hierarchy::

    Exception
     └── OAuthError     error code + HTTP status + description, answered as
                        {"error", "error_description"}; never a Matrix errcode
"""

from __future__ import annotations


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def invalid_request(description: str) -> OAuthError:
    return OAuthError("invalid_request", description)


def invalid_grant(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


def invalid_client(description: str) -> OAuthError:
    return OAuthError("invalid_client", description, 401)
