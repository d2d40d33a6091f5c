"""Builds the server from a Config: services, routes, lifespan and background jobs.

No service locator: `Services` is built once here and each handler names, as a
dependency, exactly the services it uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, fields
from typing import Any

from litestar import Litestar
from litestar.di import Provide

from dendrite_lite.accounts.account import Account
from dendrite_lite.accounts.account_data import AccountData
from dendrite_lite.accounts.devices import Devices
from dendrite_lite.accounts.login import Login
from dendrite_lite.accounts.profile import Profiles
from dendrite_lite.accounts.registration import Registration
from dendrite_lite.accounts.tags import Tags
from dendrite_lite.api import dependency_resolution, server_info
from dendrite_lite.api.client import (
    account,
    account_data,
    capabilities,
    devices,
    ephemeral,
    filter,
    login,
    profile,
    registration,
    relations,
    room_events,
    rooms,
    sync,
    versions,
)
from dendrite_lite.api.client import account_pages as account_pages_api
from dendrite_lite.api.client import dehydrated_devices as dehydrated_devices_api
from dendrite_lite.api.client import directory as directory_api
from dendrite_lite.api.client import key_backup as key_backup_api
from dendrite_lite.api.client import keys as keys_api
from dendrite_lite.api.client import mas as mas_api
from dendrite_lite.api.client import media as media_api
from dendrite_lite.api.client import notifications as notifications_api
from dendrite_lite.api.client import oauth as oauth_api
from dendrite_lite.api.client import oauth_pages as oauth_pages_api
from dendrite_lite.api.client import presence as presence_api
from dendrite_lite.api.client import push_rules as push_rules_api
from dendrite_lite.api.client import pushers as pushers_api
from dendrite_lite.api.client import reporting as reporting_api
from dendrite_lite.api.client import room_upgrades as room_upgrades_api
from dendrite_lite.api.client import sliding_sync as sliding_sync_api
from dendrite_lite.api.client import sso as sso_api
from dendrite_lite.api.client import tags as tags_api
from dendrite_lite.api.client import threads as threads_api
from dendrite_lite.api.client import threepid as threepid_api
from dendrite_lite.api.client import timestamp_to_event as timestamp_to_event_api
from dendrite_lite.api.client import user_directory as user_directory_api
from dendrite_lite.api.dependencies import provide_requester
from dendrite_lite.api.errors import EXCEPTION_HANDLERS
from dendrite_lite.api.fast_lane import FastLane
from dendrite_lite.api.middleware import EdgeMiddleware, path_value
from dendrite_lite.auth.passwords import Passwords
from dendrite_lite.auth.ratelimit import RateLimiter
from dendrite_lite.auth.tokens import TokenService
from dendrite_lite.auth.uia import UserInteractiveAuth
from dendrite_lite.config import Config
from dendrite_lite.e2ee.cross_signing import CrossSigning
from dendrite_lite.e2ee.dehydrated_devices import DehydratedDevices
from dendrite_lite.e2ee.device_keys import DeviceKeys
from dendrite_lite.e2ee.key_backup import KeyBackup
from dendrite_lite.media.repository import MediaRepository
from dendrite_lite.media.thumbnailing import Thumbnailer
from dendrite_lite.media.url_previews import UrlPreviews
from dendrite_lite.metrics import Metrics
from dendrite_lite.notifier import Notifier
from dendrite_lite.oauth.server import AuthorizationServer
from dendrite_lite.presence import Presence
from dendrite_lite.push.evaluator import RuleCache
from dendrite_lite.push.gateway import gateway_client
from dendrite_lite.push.hook import PushHook
from dendrite_lite.push.sender import PushSender
from dendrite_lite.push.service import Notifications, Pushers, PushRules
from dendrite_lite.rooms.creation import RoomCreation
from dendrite_lite.rooms.directory import Directory
from dendrite_lite.rooms.membership import Membership
from dendrite_lite.rooms.pipeline import EventCreator
from dendrite_lite.rooms.reading import RoomReading
from dendrite_lite.rooms.receipts import Receipts
from dendrite_lite.rooms.relations import Relations
from dendrite_lite.rooms.reports import Reports
from dendrite_lite.rooms.sending import Sending
from dendrite_lite.rooms.threads import Threads
from dendrite_lite.rooms.timestamps import TimestampLookup
from dendrite_lite.rooms.typing_notifications import TypingNotifications
from dendrite_lite.rooms.upgrades import RoomUpgrades
from dendrite_lite.signing_key import load_signing_key
from dendrite_lite.sliding_sync.service import SlidingSync
from dendrite_lite.storage import room_state
from dendrite_lite.storage.db import Database, DatabaseSettings
from dendrite_lite.sync.service import Sync
from dendrite_lite.threepid.mailer import Mailer
from dendrite_lite.threepid.password_reset import PasswordReset
from dendrite_lite.threepid.queue import EmailQueue
from dendrite_lite.threepid.service import Threepids
from dendrite_lite.threepid.sessions import ValidationSessions
from dendrite_lite.threepid.templates import EmailTemplates
from dendrite_lite.to_device import ToDevice
from dendrite_lite.user_directory import UserDirectory

log = logging.getLogger(__name__)

LAST_SEEN_FLUSH_SECONDS = 60.0
PRESENCE_EXPIRY_SECONDS = 15.0  # how often users who stopped syncing go offline

ROUTES: list[Any] = [
    versions.get_versions,
    server_info.get_wellknown_client,
    server_info.get_wellknown_server,
    server_info.get_health,
    server_info.get_metrics,
    registration.register,
    registration.get_username_availability,
    registration.get_registration_token_validity,
    login.get_login_flows,
    login.login,
    login.refresh,
    login.logout,
    login.logout_all,
    account.get_whoami,
    account.change_password,
    account.deactivate_account,
    devices.get_devices,
    devices.get_device,
    devices.update_device,
    devices.delete_device,
    devices.delete_devices,
    profile.get_profile,
    profile.get_profile_field,
    profile.set_profile_field,
    profile.delete_profile_field,
    account_data.get_global_account_data,
    account_data.set_global_account_data,
    account_data.get_room_account_data,
    account_data.set_room_account_data,
    tags_api.get_room_tags,
    tags_api.set_room_tag,
    tags_api.delete_room_tag,
    user_directory_api.search_user_directory,
    capabilities.get_capabilities,
    rooms.create_room,
    rooms.get_joined_rooms,
    rooms.join_room,
    rooms.join_room_by_id,
    rooms.knock_room,
    rooms.leave_room,
    rooms.forget_room,
    rooms.invite_user,
    rooms.kick_user,
    rooms.ban_user,
    rooms.unban_user,
    room_events.send_message,
    room_events.set_room_state_empty_key,
    room_events.set_room_state,
    room_events.get_room_state,
    room_events.get_room_state_empty_key,
    room_events.get_room_state_event,
    room_events.get_one_room_event,
    room_events.get_members_by_room,
    room_events.get_joined_members_by_room,
    room_events.get_room_events,
    room_events.get_event_context,
    room_events.redact_event,
    directory_api.set_room_alias,
    directory_api.get_room_id_by_alias,
    directory_api.delete_room_alias,
    directory_api.get_local_aliases,
    directory_api.get_room_visibility_on_directory,
    directory_api.set_room_visibility_on_directory,
    directory_api.get_public_rooms,
    directory_api.query_public_rooms,
    room_upgrades_api.upgrade_room,
    reporting_api.report_event,
    reporting_api.report_room,
    timestamp_to_event_api.get_event_by_timestamp,
    relations.get_relating_events,
    relations.get_relating_events_with_rel_type,
    relations.get_relating_events_with_rel_type_and_event_type,
    *threads_api.ROUTES,
    filter.define_filter,
    filter.get_filter,
    sync.sync,
    ephemeral.set_typing,
    ephemeral.post_receipt,
    ephemeral.set_read_marker,
    ephemeral.send_to_device,
    presence_api.get_presence,
    presence_api.set_presence,
    *keys_api.ROUTES,
    *key_backup_api.ROUTES,
    *dehydrated_devices_api.ROUTES,
    *push_rules_api.ROUTES,
    *notifications_api.ROUTES,
    *pushers_api.ROUTES,
    *sliding_sync_api.ROUTES,
    *media_api.ROUTES,
    *threepid_api.ROUTES,
    *oauth_api.ROUTES,
    *oauth_pages_api.ROUTES,
    *account_pages_api.ROUTES,
    *mas_api.ROUTES,
    *sso_api.ROUTES,
]


@dataclass
class Services:
    config: Config
    server_name: str
    db: Database
    metrics: Metrics
    notifier: Notifier
    passwords: Passwords
    tokens: TokenService
    uia: UserInteractiveAuth
    registration: Registration
    login: Login
    account: Account
    devices: Devices
    profiles: Profiles
    account_data: AccountData
    tags: Tags
    user_directory: UserDirectory
    register_limiter: RateLimiter
    event_creator: EventCreator
    room_creation: RoomCreation
    membership: Membership
    sending: Sending
    reading: RoomReading
    directory: Directory
    upgrades: RoomUpgrades
    reports: Reports
    timestamps: TimestampLookup
    relations: Relations
    threads: Threads
    sync_service: Sync
    sliding_sync: SlidingSync
    typing_notifications: TypingNotifications
    receipts: Receipts
    to_device: ToDevice
    presence: Presence
    e2e_keys: DeviceKeys
    cross_signing: CrossSigning
    key_backup: KeyBackup
    dehydrated_devices: DehydratedDevices
    push_rules: PushRules
    notifications: Notifications
    pushers: Pushers
    push_sender: PushSender
    media: MediaRepository
    thumbnailer: Thumbnailer
    url_previews: UrlPreviews
    email_queue: EmailQueue
    threepid_sessions: ValidationSessions
    threepids: Threepids
    password_reset: PasswordReset
    oauth_server: AuthorizationServer


def build_services(config: Config) -> Services:
    """Wire every service; opens nothing (the lifespan opens the database)."""
    metrics = Metrics()
    db = Database(
        config.database_path,
        DatabaseSettings(
            synchronous=config.database.synchronous,
            reader_threads=config.database.reader_threads,
            cache_size_kib=config.database.cache_size_kib,
            mmap_size_mib=config.database.mmap_size_mib,
            max_batch=config.database.max_batch,
        ),
        observer=metrics,
    )
    limits = config.rate_limits

    def sync_limiter() -> RateLimiter:
        # One each for /sync (keyed by device) and sliding sync (keyed by connection).
        return RateLimiter(limits.sync_per_second, limits.sync_burst, enabled=limits.enabled)

    notifier = Notifier(db)
    metrics.track_long_polls(lambda: notifier.active)
    passwords = Passwords(config.auth)
    tokens = TokenService(db, config.auth)
    failed_logins = RateLimiter(
        limits.failed_login_per_second, limits.failed_login_burst, enabled=limits.enabled
    )
    uia = UserInteractiveAuth(
        db, passwords, config.server_name, config.auth.uia_session_lifetime_ms, failed_logins
    )
    creator = EventCreator(config.server_name)
    # Push rules are evaluated in the send path (rooms/pipeline.py -> push/hook.py).
    rule_cache = RuleCache()
    push_hook = PushHook(config.server_name, rule_cache)
    push_hook.give_way = db.give_way
    creator.push = push_hook
    account = Account(db, passwords, uia, creator, notifier)

    async def joined_members(room_id: str) -> list[str]:
        return await db.read(lambda conn: room_state.members(conn, room_id))

    typing = TypingNotifications(notifier, joined_members)
    presence_service = Presence(db, notifier, config.presence)
    media = MediaRepository(db, config.media, config.server_name)
    thumbnailer = Thumbnailer(db, config.media)
    # Email (3PID): validation sessions, the mail queue and the m.login.email.identity stage.
    email_queue = EmailQueue(db, Mailer(config.email), config.email)
    threepid_sessions = ValidationSessions(
        db,
        config.email,
        config.server_name,
        config.base_url,
        EmailTemplates(config.data_dir),
        email_queue,
        RateLimiter(
            config.email.request_token_per_second,
            config.email.request_token_burst,
            enabled=limits.enabled,
        ),
        RateLimiter(
            config.email.per_address_per_second,
            config.email.per_address_burst,
            enabled=limits.enabled,
        ),
    )
    uia.email_identity = threepid_sessions.uia_stage
    login_service = Login(
        db,
        config.server_name,
        passwords,
        tokens,
        RateLimiter(limits.login_per_second, limits.login_burst, enabled=limits.enabled),
        failed_logins,
        notifier,
    )
    register_limiter = RateLimiter(
        limits.register_per_second, limits.register_burst, enabled=limits.enabled
    )
    oauth_server = AuthorizationServer(
        db, config, tokens, login_service, register_limiter, notifier
    )
    login_service.configure_sso(oauth_server)
    return Services(
        config=config,
        server_name=config.server_name,
        db=db,
        metrics=metrics,
        notifier=notifier,
        passwords=passwords,
        tokens=tokens,
        uia=uia,
        registration=Registration(
            db,
            config.registration,
            config.server_name,
            passwords,
            tokens,
            uia,
            email_registration=config.email.registration,
        ),
        login=login_service,
        account=account,
        devices=Devices(db, account),
        profiles=Profiles(db, config.server_name, creator, notifier),
        account_data=AccountData(db, notifier),
        tags=Tags(db, notifier),
        user_directory=UserDirectory(db, config.user_directory),
        register_limiter=register_limiter,
        event_creator=creator,
        room_creation=RoomCreation(db, creator, notifier, config.server_name),
        membership=Membership(db, creator, notifier, config.server_name),
        sending=Sending(
            db,
            creator,
            notifier,
            RateLimiter(limits.message_per_second, limits.message_burst, enabled=limits.enabled),
        ),
        reading=RoomReading(db),
        directory=Directory(db, creator, notifier, config.server_name),
        upgrades=RoomUpgrades(db, creator, notifier, config.server_name),
        reports=Reports(db),
        timestamps=TimestampLookup(db),
        relations=Relations(db),
        threads=Threads(db),
        sync_service=Sync(db, notifier, typing, presence_service, sync_limiter()),
        sliding_sync=SlidingSync(db, notifier, typing, presence_service, sync_limiter()),
        presence=presence_service,
        typing_notifications=typing,
        receipts=Receipts(db, notifier, push_hook),
        to_device=ToDevice(db, notifier, config.server_name),
        e2e_keys=DeviceKeys(db, notifier, config.server_name),
        cross_signing=CrossSigning(db, notifier, account),
        key_backup=KeyBackup(db),
        dehydrated_devices=DehydratedDevices(db, notifier),
        push_rules=PushRules(db, notifier, rule_cache),
        notifications=Notifications(db),
        pushers=Pushers(db, push_hook),
        push_sender=PushSender(
            db, push_hook, gateway_client(allow_private=config.push.allow_private_gateways)
        ),
        media=media,
        thumbnailer=thumbnailer,
        url_previews=UrlPreviews(db, config.url_previews, media, thumbnailer),
        email_queue=email_queue,
        threepid_sessions=threepid_sessions,
        threepids=Threepids(db, threepid_sessions, account, passwords),
        password_reset=PasswordReset(
            db, passwords, account, uia, notifier, enabled=config.email.enabled
        ),
        oauth_server=oauth_server,
    )


class _Service(Provide):
    """A service handed to every handler that names it.

    Litestar checks each handler's dependencies pairwise for duplicates when the app is
    built, ~400,000 comparisons for our ~45 services and ~430 handlers; Provide's own
    __eq__ compares attributes in Python. Each service is provided once, by one object,
    so identity is the whole answer and the check costs nothing (a faster start).
    """

    __eq__ = object.__eq__
    __hash__ = object.__hash__


def _provide(value: object) -> Provide:
    async def provider() -> object:
        return value

    return _Service(provider, use_cache=True)


def build_app(config: Config, services: Services | None = None) -> Litestar:
    services = services or build_services(config)
    services.cross_signing.oauth_reset = services.oauth_server.cross_signing_reset_gate
    dependency_resolution.install()

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        services.db.open()
        services.event_creator.signing_key = await services.db.write(load_signing_key)
        await services.media.recover()
        background = [
            asyncio.create_task(
                _every(
                    LAST_SEEN_FLUSH_SECONDS,
                    services.devices.flush_last_seen,
                    "flushing device last-seen stats",
                )
            ),
            asyncio.create_task(
                _every(PRESENCE_EXPIRY_SECONDS, services.presence.expire_idle, "presence expiry")
            ),
            asyncio.create_task(services.push_sender.run()),
            asyncio.create_task(
                _every(
                    services.config.sliding_sync.save_interval_ms / 1000,
                    services.sliding_sync.saver.save_all,
                    "saving sliding sync connection state",
                )
            ),
        ]
        if services.config.email.enabled:
            background.append(asyncio.create_task(services.email_queue.run()))
        try:
            yield
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await services.devices.flush_last_seen()
            await services.sliding_sync.saver.save_all()
            services.db.close()

    dependencies: dict[str, Provide] = {
        field.name: _provide(getattr(services, field.name)) for field in fields(services)
    }
    dependencies["requester"] = Provide(provide_requester)
    app = Litestar(
        route_handlers=ROUTES,
        dependencies=dependencies,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        request_max_body_size=config.limits.max_request_body_bytes,
        openapi_config=None,
        debug=False,
        logging_config=None,
    )
    app.state.services = services
    return app


def asgi_app(config: Config) -> tuple[EdgeMiddleware, Services]:
    """The app as served: Litestar wrapped in the edge middleware (CORS, metrics)."""
    services = build_services(config)
    app = build_app(config, services)
    fast_lane = FastLane(
        db=services.db,
        tokens=services.tokens,
        devices=services.devices,
        sync=services.sync_service,
        sliding_sync=services.sliding_sync,
        sending=services.sending,
        max_body=config.limits.max_request_body_bytes,
        path_value=path_value,
    )
    return EdgeMiddleware(app, services.metrics, fast_lane), services


async def _every(interval_s: float, job: Callable[[], Awaitable[None]], what: str) -> None:
    """A periodic background job: a failure is logged and the job runs again next time."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await job()
        except Exception:
            log.exception("%s failed", what)
