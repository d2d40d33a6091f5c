"""Every user-visible string of the server's own pages, in one place for translators.

Pages look strings up by key in `STRINGS[lang]`; a missing language falls back to English.
"""

from __future__ import annotations

ENGLISH: dict[str, str] = {
    "login_title": "Sign in",
    "register_title": "Create an account",
    "consent_title": "Allow access?",
    "account_title": "Your account",
    "error_title": "Something went wrong",
    "done_title": "Done",
    "username": "Username",
    "password": "Password",
    "password2": "Repeat the password",
    "sign_in": "Sign in",
    "create_account": "Create account",
    "no_account": "No account yet? Create one",
    "have_account": "Already have an account? Sign in",
    "sign_in_with": "Sign in with {name}",
    "or": "or",
    "invalid_credentials": "Wrong username or password.",
    "deactivated": "This account has been deactivated.",
    "locked": "This account has been locked.",
    "rate_limited": "Too many attempts. Wait a minute and try again.",
    "passwords_differ": "The two passwords differ.",
    "user_in_use": "This username is taken.",
    "invalid_username": "Usernames may use a-z, 0-9 and . _ = - / + only.",
    "weak_password": "The password is too short.",
    "registration_closed": "This server does not allow new accounts here.",
    "question": "{client} wants to use your Matrix account {user}. It will be able to:",
    "scope_api": "Read and send messages, and manage your account, as you",
    "scope_device": "Sign in as a new session ({device})",
    "sso_question": "Continue to {host} as {user}?",
    "signed_in_as": "Signed in as {user}.",
    "switch_account": "Use another account",
    "allow": "Allow",
    "deny": "Cancel",
    "client_site": "Website",
    "tos": "Terms of service",
    "policy": "Privacy policy",
    "unknown_client": "This application is not registered with this server.",
    "bad_redirect_uri": "This application asked to send you to an address it did not register.",
    "expired_request": "This sign-in request expired or was already used. Start again.",
    "csrf": "This form expired. Go back, reload the page and try again.",
    "not_found": "Not found.",
    "devices": "Sessions",
    "this_browser": "This browser",
    "last_seen": "Last seen {when} from {ip}",
    "never_seen": "Not seen yet",
    "sign_out": "Sign out",
    "signed_out_device": "The session {device} was signed out.",
    "change_password_heading": "Change password",
    "current_password": "Current password",
    "new_password": "New password",
    "change_password": "Change password",
    "password_changed": "Your password was changed.",
    "wrong_password": "The current password is wrong.",
    "sign_out_browser": "Sign out of this browser",
    "signed_out": "You are signed out.",
    "continue": "Continue",
    "reset_title": "Reset your identity?",
    "reset_explain": "Your app asks to replace your cross-signing keys (your digital identity). "
    "Do this only if you lost access to all your other sessions and your recovery key: "
    "other people will see that your identity changed.",
    "reset_allow": "Allow for 10 minutes",
    "reset_back": "Cancel",
    "reset_done": "Allowed. Go back to your app and finish the reset within 10 minutes.",
    "link_title": "Connect a device",
    "link_explain": "Enter the code your device shows.",
    "user_code": "Code",
    "unknown_user_code": "This code is unknown, used or expired. Check it on your device.",
    "device_done": "Done. You can go back to your device.",
    "device_denied": "The device was not connected.",
    "upstream_failed": "Signing in with {name} failed: {reason}",
    "upstream_not_allowed": "Your {name} account may not sign in here.",
    "upstream_existing": "An account named {user} exists already. Sign in with its password "
    "once to link it to {name}.",
    "linked": "Your account is now linked to {name}.",
}

STRINGS: dict[str, dict[str, str]] = {"en": ENGLISH}


def text(key: str, lang: str = "en", **values: str) -> str:
    table = STRINGS.get(lang, ENGLISH)
    template = table.get(key) or ENGLISH.get(key, key)
    return template.format(**values) if values else template
