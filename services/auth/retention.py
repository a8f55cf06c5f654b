"""What the auth service deletes once it has served its purpose, and when: its list of
`RetentionRule`s, run periodically by the app and once by `accord prune --service auth`."""

from __future__ import annotations

from datetime import timedelta

from services.auth.settings import Settings
from services.auth.storage import outbox, rate_limit_events, refresh_tokens, single_use_tokens
from services.kit.retention import RetentionRule, deleting, published_outbox


def retention_rules(settings: Settings) -> list[RetentionRule]:
    """The auth database's retention rules: the app's periodic pass and `accord prune` both
    use this list."""
    tokens = timedelta(days=settings.token_retention_days)
    windows = [
        settings.login_failure_window_seconds,
        settings.registration_window_seconds,
        settings.reset_request_window_seconds,
        settings.verification_request_window_seconds,
    ]
    return [
        # An attempt older than the longest window counts against no limit any more.
        RetentionRule(
            table=rate_limit_events.name,
            keep=timedelta(seconds=max(windows)),
            delete_before=deleting(
                rate_limit_events, lambda cutoff: rate_limit_events.c.at < cutoff
            ),
        ),
        # Published rows only, and already without their secrets (`services.kit.outbox`).
        published_outbox(outbox, timedelta(days=settings.outbox_retention_days)),
        RetentionRule(
            table=single_use_tokens.name,
            keep=tokens,
            delete_before=deleting(
                single_use_tokens,
                lambda cutoff: (
                    (single_use_tokens.c.used_at < cutoff)
                    | (single_use_tokens.c.expires_at < cutoff)
                ),
            ),
        ),
        # A spent refresh token stays until it expires (plus the retention): presenting it
        # again is how reuse is detected, and its family revoked. Once revoked or expired it
        # grants nothing, so a pruned one is simply refused as unknown.
        RetentionRule(
            table=refresh_tokens.name,
            keep=tokens,
            delete_before=deleting(
                refresh_tokens,
                lambda cutoff: (
                    (refresh_tokens.c.revoked_at < cutoff) | (refresh_tokens.c.expires_at < cutoff)
                ),
            ),
        ),
    ]
