"""Configuration: ``<data-dir>/config.toml`` read once, at start, into msgspec Structs.

Nothing else reads the file or the environment afterwards. Unknown keys are errors so
that a typo in a key never silently falls back to a default.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal

import msgspec

CONFIG_FILE = "config.toml"
DATABASE_FILE = "homeserver.db"


class ConfigError(Exception):
    """A config problem, phrased as one line naming the key."""


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class RegistrationConfig(_Section):
    # Open registration (m.login.dummy) is off unless asked for: an open server on the
    # internet is a spam target.
    enabled: bool = False
    # When true, every registration needs a token made with `dendrite-lite registration-token`.
    require_token: bool = False
    allow_guests: bool = False


class DatabaseConfig(_Section):
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    reader_threads: int = 3
    # Per connection (readers, writer, checkpointer). No memory map by default: each
    # connection's map of the same file counts again in RSS; reads copy pages into a
    # small cache instead, backed by the kernel's page cache (bench/RESULTS.md).
    cache_size_kib: int = 1024
    mmap_size_mib: int = 0
    # Group commit: how many queued writes may share one transaction.
    max_batch: int = 256


class ExternalAuthConfig(_Section):
    # auth.mode = "external": an existing matrix-authentication-service (or any OAuth 2.0
    # server) issues the tokens; we check each by RFC 7662 introspection. Same words as
    # Synapse's experimental_features.msc3861.
    issuer: str = ""
    # Empty: <issuer>/oauth2/introspect.
    introspection_endpoint: str = ""
    client_id: str = ""
    client_secret: str = ""
    account_management_url: str = ""
    # The secret shared with MAS (its matrix.secret; Synapse's admin_token): MAS calls
    # /_synapse/mas/* with it, and with no client_id it is also our introspection bearer.
    secret: str = ""
    # Introspection answers are cached this long (a revoked token lives at most this).
    cache_ms: int = 60_000


class AuthConfig(_Section):
    # Only tokens issued together with a refresh token expire (the spec lets clients
    # that do not support refresh keep non-expiring tokens).
    access_token_lifetime_ms: int = 5 * 60 * 1000
    refresh_token_lifetime_ms: int = 0  # 0: refresh tokens never expire on their own
    # argon2id cost; the defaults follow OWASP's recommendation (19 MiB, t=2), light
    # enough for a Raspberry Pi.
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    argon2_parallelism: int = 1
    password_min_length: int = 8
    uia_session_lifetime_ms: int = 15 * 60 * 1000
    # "builtin": our own tokens (and our own OAuth 2.0 server, [oauth]); "external": tokens
    # of the issuer in [auth.external], checked by introspection.
    mode: Literal["builtin", "external"] = "builtin"
    external: ExternalAuthConfig = msgspec.field(default_factory=ExternalAuthConfig)


class RateLimitConfig(_Section):
    enabled: bool = True
    # Token buckets: sustained rate per second and burst size.
    login_per_second: float = 0.17
    login_burst: int = 5
    failed_login_per_second: float = 0.17
    failed_login_burst: int = 5
    register_per_second: float = 0.17
    register_burst: int = 5
    # Events a user may send (messages, state, redactions): a client flooding a room is
    # answered M_LIMIT_EXCEEDED once its burst is spent, while everyone else is served.
    message_per_second: float = 10.0
    message_burst: int = 200
    # /sync and sliding sync requests per device (per connection for sliding sync): a
    # client looping on timeout=0 is answered M_LIMIT_EXCEEDED instead of taking a core.
    sync_per_second: float = 20.0
    sync_burst: int = 100


class WellKnownConfig(_Section):
    # Served at /.well-known/matrix/client (base_url) and /.well-known/matrix/server.
    client_base_url: str = ""
    server: str = ""


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class LimitsConfig(_Section):
    max_request_body_bytes: int = 1024 * 1024  # non-media requests


class UserDirectoryConfig(_Section):
    # Search every local user, not only those sharing a room with the searcher or
    # joined to a public room.
    search_all_users: bool = False


class PresenceConfig(_Section):
    # Presence wakes everyone who shares a room with you; a busy server may turn it off.
    enabled: bool = True
    # A user who has not synced for this long goes offline.
    offline_after_ms: int = 90_000


class SlidingSyncConfig(_Section):
    # Connection state (each client's pos) is saved to the database at most this often
    # and at shutdown; a crash loses what changed since the last save, and those clients
    # start their sliding sync connection over.
    save_interval_ms: int = 5000


class PushConfig(_Section):
    # Push gateways are URLs chosen by clients: requests to loopback, private, link-local
    # and other non-public addresses are refused unless this is true (a gateway on your
    # own network, or tests).
    allow_private_gateways: bool = False


class OAuthUpstreamConfig(_Section):
    """One upstream OpenID Connect provider ([[oauth.upstream]])."""

    id: str  # in URLs and links: letters, digits, "-", "_", "."
    issuer: str  # discovery: <issuer>/.well-known/openid-configuration
    client_id: str
    client_secret: str = ""  # empty: a public client (PKCE only)
    name: str = ""  # "Sign in with <name>"; empty: the id
    scopes: list[str] = msgspec.field(default_factory=lambda: ["openid", "profile", "email"])
    # Claims the new account takes its localpart and display name from.
    localpart_claim: str = "preferred_username"
    displayname_claim: str = "name"
    email_claim: str = "email"
    # A verified email claim (email_verified true) that an account has bound signs in as
    # that account on first sign-in: existing users migrate without a step of their own.
    link_by_email: bool = False
    # Only subjects whose claims match every entry may sign in: {"groups" = ["family"]}.
    allowed_claims: dict[str, list[str]] = msgspec.field(default_factory=dict)
    # First sign-in of a subject whose localpart names an existing account: "link" it,
    # "refuse", or "password" (the user proves the account with its password once).
    on_existing: Literal["link", "refuse", "password"] = "password"
    pkce: bool = True
    # Lets the issuer be http:// or a loopback/private address (tests, a home network).
    allow_insecure: bool = False


class OAuthConfig(_Section):
    # The built-in OAuth 2.0 authorization server (the spec's OAuth 2.0 API). Element X
    # can only create accounts through it.
    enabled: bool = True
    # Keep m.login.password in /login for clients that do not speak OAuth yet.
    password_login: bool = True
    code_lifetime_ms: int = 10 * 60 * 1000
    browser_session_lifetime_ms: int = 7 * 24 * 3600 * 1000
    login_token_lifetime_ms: int = 2 * 60 * 1000
    upstream: list[OAuthUpstreamConfig] = msgspec.field(default_factory=list)


class EmailConfig(_Section):
    """[email]: SMTP for 3PID validation mails (registration, adding an address, password
    reset). Email is off until `smtp_host` and `from` are set; docs/email.md."""

    smtp_host: str = ""
    smtp_port: int = 587
    # "starttls" (port 587), "implicit" TLS (port 465) or "none" (a relay on localhost).
    smtp_tls: Literal["none", "starttls", "implicit"] = "starttls"
    smtp_user: str = ""
    smtp_password: str = ""
    # The From: header, e.g. "Home Matrix <matrix@example.org>".
    from_address: str = msgspec.field(default="", name="from")
    # A CA bundle (PEM) to trust besides the system's, e.g. for a self-signed relay.
    smtp_ca_file: str = ""
    # Seconds for connecting and for each SMTP command.
    timeout_seconds: float = 30.0
    # Registration with an email address: "off", "optional" or "required".
    registration: Literal["off", "optional", "required"] = "off"
    # How long the link in a mail works, and how long a validated address may be used.
    token_lifetime_ms: int = 60 * 60 * 1000
    session_lifetime_ms: int = 24 * 60 * 60 * 1000
    # Hosts next_link may point to (the page a client asks the mail's link to open after
    # validation). Empty: any http(s) URL.
    next_link_hosts: list[str] = msgspec.field(default_factory=list)
    # Failed sends are retried with exponential backoff, then given up (and the user told).
    retry_first_delay_ms: int = 10_000
    retry_max_delay_ms: int = 60 * 60 * 1000
    give_up_after_ms: int = 24 * 60 * 60 * 1000
    # requestToken rate limits (token buckets, when rate_limits.enabled): per client IP
    # and per address, so nobody can flood an inbox.
    request_token_per_second: float = 0.1
    request_token_burst: int = 5
    per_address_per_second: float = 0.005
    per_address_burst: int = 3

    @property
    def enabled(self) -> bool:
        return bool(self.smtp_host and self.from_address)


class MediaConfig(_Section):
    """[media]: the content repository (docs/media.md)."""

    max_upload_size: int = 100 * 1024 * 1024
    # Total bytes one user's uploads may take; 0: no quota.
    max_bytes_per_user: int = 0
    # Media IDs reserved by /create and not yet uploaded, per user, and how long each lasts.
    max_pending_uploads: int = 10
    unused_expires_after_ms: int = 24 * 3600 * 1000
    # Most a download may wait for an async upload to arrive (the client's timeout_ms).
    max_wait_ms: int = 60_000
    # Spec 1.11: media uploaded while this is true is served only by the authenticated
    # /_matrix/client/v1/media endpoints; false serves it on the legacy ones too.
    freeze_unauthenticated: bool = True
    # Images larger than this (width x height, summed over frames) are not thumbnailed:
    # a small file can decode into gigabytes (a decompression bomb).
    max_thumbnail_pixels: int = 32_000_000
    max_thumbnail_source_bytes: int = 20 * 1024 * 1024
    # Thumbnail sizes other than the spec's recommended ones are made on request.
    dynamic_thumbnails: bool = True


class UrlPreviewConfig(_Section):
    """[url_previews]: GET /media/preview_url; the server fetches URLs users choose."""

    enabled: bool = False
    # CIDR ranges reachable although not public (e.g. one LAN wiki), and ranges never
    # reachable although public. Deny wins.
    allowed_ranges: list[str] = msgspec.field(default_factory=list)
    denied_ranges: list[str] = msgspec.field(default_factory=list)
    allowed_ports: list[int] = msgspec.field(default_factory=lambda: [80, 443])
    max_page_bytes: int = 2 * 1024 * 1024
    max_image_bytes: int = 10 * 1024 * 1024
    timeout_ms: int = 10_000
    max_redirects: int = 5
    cache_ttl_ms: int = 3600 * 1000
    # Token bucket per user.
    per_second: float = 1.0
    burst: int = 10


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    server_name: str
    listen: str = "127.0.0.1:8008"
    # Where clients reach us; used in well-known and links.
    public_baseurl: str = ""
    registration: RegistrationConfig = msgspec.field(default_factory=RegistrationConfig)
    database: DatabaseConfig = msgspec.field(default_factory=DatabaseConfig)
    auth: AuthConfig = msgspec.field(default_factory=AuthConfig)
    rate_limits: RateLimitConfig = msgspec.field(default_factory=RateLimitConfig)
    well_known: WellKnownConfig = msgspec.field(default_factory=WellKnownConfig)
    logging: LoggingConfig = msgspec.field(default_factory=LoggingConfig)
    limits: LimitsConfig = msgspec.field(default_factory=LimitsConfig)
    user_directory: UserDirectoryConfig = msgspec.field(default_factory=UserDirectoryConfig)
    presence: PresenceConfig = msgspec.field(default_factory=PresenceConfig)
    sliding_sync: SlidingSyncConfig = msgspec.field(default_factory=SlidingSyncConfig)
    push: PushConfig = msgspec.field(default_factory=PushConfig)
    media: MediaConfig = msgspec.field(default_factory=MediaConfig)
    url_previews: UrlPreviewConfig = msgspec.field(default_factory=UrlPreviewConfig)
    email: EmailConfig = msgspec.field(default_factory=EmailConfig)
    oauth: OAuthConfig = msgspec.field(default_factory=OAuthConfig)

    # Set by `load`, not read from the file.
    data_dir: str = ""

    @property
    def database_path(self) -> Path:
        return Path(self.data_dir) / DATABASE_FILE

    @property
    def listen_host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def listen_port(self) -> int:
        return split_listen(self.listen)[1]

    @property
    def base_url(self) -> str:
        if self.public_baseurl:
            return self.public_baseurl.rstrip("/")
        host, port = split_listen(self.listen)
        if host in ("0.0.0.0", "::"):  # noqa: S104 - we only format a URL
            host = "localhost"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"


# https://spec.matrix.org/latest/appendices/#server-name
_SERVER_NAME = re.compile(r"^(?:\[[0-9A-Fa-f:.]{2,45}\]|[0-9A-Za-z.-]{1,255})(?::[0-9]{1,5})?$")


def split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"listen: expected HOST:PORT, got {listen!r}")
    number = int(port)
    if not 0 < number < 65536:
        raise ConfigError(f"listen: port {number} out of range")
    return host.strip("[]"), number


def validate(config: Config) -> None:
    if not _SERVER_NAME.match(config.server_name):
        raise ConfigError(f"server_name: {config.server_name!r} is not a valid server name")
    split_listen(config.listen)
    if config.public_baseurl and not config.public_baseurl.startswith(("http://", "https://")):
        raise ConfigError("public_baseurl: must start with http:// or https://")
    if config.database.reader_threads < 1:
        raise ConfigError("database.reader_threads: must be at least 1")
    if config.database.max_batch < 1:
        raise ConfigError("database.max_batch: must be at least 1")
    if config.auth.access_token_lifetime_ms < 1000:
        raise ConfigError("auth.access_token_lifetime_ms: must be at least 1000")
    if config.auth.argon2_memory_kib < 8 * config.auth.argon2_parallelism:
        raise ConfigError("auth.argon2_memory_kib: too small for argon2")
    if config.auth.argon2_time_cost < 1:
        raise ConfigError("auth.argon2_time_cost: must be at least 1")
    if config.limits.max_request_body_bytes < 1024:
        raise ConfigError("limits.max_request_body_bytes: must be at least 1024")
    if config.sliding_sync.save_interval_ms < 100:
        raise ConfigError("sliding_sync.save_interval_ms: must be at least 100")
    _validate_media(config)
    _validate_email(config.email)
    _validate_oauth(config)


_PROVIDER_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _validate_oauth(config: Config) -> None:
    if config.auth.mode == "external":
        external = config.auth.external
        if not external.issuer.startswith(("http://", "https://")):
            raise ConfigError("auth.external.issuer: an http(s) URL is required in external mode")
        if not external.client_id and not external.secret:
            raise ConfigError("auth.external: client_id or secret is required in external mode")
    seen: set[str] = set()
    for index, provider in enumerate(config.oauth.upstream):
        where = f"oauth.upstream[{index}]"
        if not _PROVIDER_ID.match(provider.id):
            raise ConfigError(f"{where}.id: letters, digits, '.', '_' and '-' only")
        if provider.id in seen:
            raise ConfigError(f"{where}.id: {provider.id!r} is used twice")
        seen.add(provider.id)
        schemes = ("https://", "http://") if provider.allow_insecure else ("https://",)
        if not provider.issuer.startswith(schemes):
            raise ConfigError(f"{where}.issuer: must be an https:// URL")
        if "openid" not in provider.scopes:
            raise ConfigError(f"{where}.scopes: must include openid")


def _validate_email(email: EmailConfig) -> None:
    if email.from_address and "@" not in email.from_address:
        raise ConfigError("email.from: expected an address like matrix@example.org")
    if email.smtp_host and not email.from_address:
        raise ConfigError("email.from: required when email.smtp_host is set")
    if not 0 < email.smtp_port < 65536:
        raise ConfigError("email.smtp_port: out of range")
    if email.registration != "off" and not email.enabled:
        raise ConfigError("email.registration: needs email.smtp_host and email.from")
    if email.timeout_seconds <= 0:
        raise ConfigError("email.timeout_seconds: must be positive")
    if min(email.token_lifetime_ms, email.session_lifetime_ms, email.retry_first_delay_ms) < 1:
        raise ConfigError("email: lifetimes and delays must be positive")


def _validate_media(config: Config) -> None:
    if config.media.max_upload_size < 1:
        raise ConfigError("media.max_upload_size: must be at least 1")
    previews = config.url_previews
    for key in ("allowed_ranges", "denied_ranges"):
        for value in getattr(previews, key):
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ConfigError(f"url_previews.{key}: {value!r} is not a CIDR range") from None
    if any(not 0 < port < 65536 for port in previews.allowed_ports):
        raise ConfigError("url_previews.allowed_ports: ports are 1-65535")


def parse(text: str | bytes, data_dir: str | Path) -> Config:
    """Decode and validate config text; every failure is a one-line ConfigError."""
    try:
        config = msgspec.toml.decode(text, type=Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(_describe_validation_error(str(exc))) from None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}") from None
    config = msgspec.structs.replace(config, data_dir=str(Path(data_dir)))
    validate(config)
    return config


def load(data_dir: str | Path) -> Config:
    path = Path(data_dir) / CONFIG_FILE
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path} not found; run `dendrite-lite init` first") from None
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    return parse(text, data_dir)


def _describe_validation_error(message: str) -> str:
    # msgspec says "Expected `int`, got `str` - at `$.listen.port`"; lead with the key.
    text, sep, where = message.rpartition(" - at `$")
    if sep:
        key = where.rstrip("`").lstrip(".")
        return f"{key}: {text}"
    if message.startswith("Object contains unknown field"):
        return message.replace("Object contains unknown field", "unknown key")
    return message


def render_default(server_name: str, listen: str, open_registration: bool) -> str:
    """The commented config.toml that `init` writes."""
    return f'''# dendrite-lite configuration. Read once at start; restart to apply changes.
# Every key below shows its default unless noted. Unknown keys are an error.

# The name in every user ID (@alice:{server_name}). It cannot change later.
server_name = "{server_name}"

# Where the HTTP listener binds (HOST:PORT). Put a TLS reverse proxy in front of it.
listen = "{listen}"

# The URL clients use to reach this server (for links and well-known). Empty: derived
# from `listen`.
public_baseurl = ""

[registration]
# Anyone may create an account (m.login.dummy). Off by default.
enabled = {str(open_registration).lower()}
# Require a registration token (`dendrite-lite registration-token create`).
require_token = false
# Guest accounts (kind=guest).
allow_guests = false

[database]
# FULL: a 200 OK survives power loss. NORMAL is faster but may lose the last writes.
synchronous = "FULL"
reader_threads = 3
# SQLite page cache and memory map per connection (a map counts in RSS once per connection)
cache_size_kib = 1024
mmap_size_mib = 0
max_batch = 256

[auth]
# Lifetime of access tokens issued with a refresh token.
access_token_lifetime_ms = 300000
# 0: refresh tokens live until used or revoked.
refresh_token_lifetime_ms = 0
argon2_time_cost = 2
argon2_memory_kib = 19456
argon2_parallelism = 1
password_min_length = 8
uia_session_lifetime_ms = 900000
# "builtin", or "external": an existing matrix-authentication-service issues the tokens
# and we check them by introspection ([auth.external]).
mode = "builtin"

[auth.external]
issuer = ""
# Empty: <issuer>/oauth2/introspect.
introspection_endpoint = ""
client_id = ""
client_secret = ""
account_management_url = ""
# Shared with MAS (its matrix.secret): MAS provisions users and devices with it.
secret = ""
cache_ms = 60000

[rate_limits]
enabled = true
login_per_second = 0.17
login_burst = 5
failed_login_per_second = 0.17
failed_login_burst = 5
register_per_second = 0.17
register_burst = 5
# events (messages, state, redactions) per user
message_per_second = 10.0
message_burst = 200
# /sync and sliding sync requests per device (per connection for sliding sync)
sync_per_second = 20.0
sync_burst = 100

[well_known]
# base_url served at /.well-known/matrix/client; empty: public_baseurl.
client_base_url = ""
# host:port served at /.well-known/matrix/server for federation; empty: not served.
server = ""

[logging]
level = "INFO"

[limits]
max_request_body_bytes = 1048576

[user_directory]
# User directory search finds users who share a room with the searcher or are joined
# to a public (or world-readable) room; true: every local user. Deactivated users
# never appear.
search_all_users = false

[presence]
# Online/offline status shared with everyone in your rooms.
enabled = true
offline_after_ms = 90000

[sliding_sync]
# Element X's connection state is saved this often (and at shutdown); after a crash,
# clients whose state changed since the last save start their connection over.
save_interval_ms = 5000

[push]
# Push gateway URLs come from clients. true lets them point at loopback, private or
# link-local addresses (a gateway on your own network); false refuses those requests.
allow_private_gateways = false

[media]
# Largest upload in bytes, and the total one user's media may take (0: no quota).
max_upload_size = 104857600
max_bytes_per_user = 0
# Async uploads (/create): reservations per user and their lifetime.
max_pending_uploads = 10
unused_expires_after_ms = 86400000
max_wait_ms = 60000
# Media uploaded while true is only served by the authenticated endpoints (spec 1.11).
freeze_unauthenticated = true
# Decompression-bomb limit: images with more pixels are not thumbnailed.
max_thumbnail_pixels = 32000000
max_thumbnail_source_bytes = 20971520
dynamic_thumbnails = true

[url_previews]
# The server fetches URLs users paste. Loopback, private, link-local and other
# non-public addresses are always refused unless listed in allowed_ranges.
enabled = false
allowed_ranges = []
denied_ranges = []
allowed_ports = [80, 443]
max_page_bytes = 2097152
max_image_bytes = 10485760
timeout_ms = 10000
max_redirects = 5
cache_ttl_ms = 3600000
per_second = 1.0
burst = 10

[email]
# SMTP for email validation, registration with email and password reset (docs/email.md).
# Email is off until smtp_host and from are set.
smtp_host = ""
# 587 with "starttls", 465 with "implicit", 25 with "none" (a relay on this machine).
smtp_port = 587
smtp_tls = "starttls"
smtp_user = ""
smtp_password = ""
# The From: header, e.g. "Home Matrix <matrix@example.org>".
from = ""
# Extra CA bundle (PEM) to trust, e.g. for a relay with a self-signed certificate.
smtp_ca_file = ""
timeout_seconds = 30.0
# Registration with an email address: "off", "optional" or "required".
registration = "off"
token_lifetime_ms = 3600000
session_lifetime_ms = 86400000
# Hosts a client's next_link may point to; empty: any http(s) URL.
next_link_hosts = []
retry_first_delay_ms = 10000
retry_max_delay_ms = 3600000
give_up_after_ms = 86400000
request_token_per_second = 0.1
request_token_burst = 5
per_address_per_second = 0.005
per_address_burst = 3

[oauth]
# The built-in OAuth 2.0 server (login, consent and account pages under /oauth2/ and
# /account/). Element X creates accounts only through it.
enabled = true
# Keep the legacy m.login.password flow for clients that do not speak OAuth yet.
password_login = true
code_lifetime_ms = 600000
browser_session_lifetime_ms = 604800000
login_token_lifetime_ms = 120000

# Upstream OpenID Connect providers ("Sign in with ..."), one table each; docs/auth.md.
# [[oauth.upstream]]
# id = "keycloak"
# name = "Keycloak"
# issuer = "https://sso.example.com/realms/home"
# client_id = "dendrite-lite"
# client_secret = "..."
'''
