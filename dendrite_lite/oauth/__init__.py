"""OAuth 2.0 / OpenID Connect: the built-in authorization server, upstream providers,
legacy SSO, external-MAS mode."""
