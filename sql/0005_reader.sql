-- MTProto reader accounts (issue 12): their grammers sessions, leases,
-- which channel each reads, and the resolve queue's bookkeeping.

-- A channel name that resolves to nothing, to a private channel, or to a
-- user, bot or group gets a status of its own that the API returns and the
-- bot tells the subscriber; it is never resolved again on a hot path.
ALTER TABLE channels DROP CONSTRAINT channels_status_check;
ALTER TABLE channels ADD CONSTRAINT channels_status_check
    CHECK (status IN ('pending', 'active', 'invalid', 'gone', 'private', 'not_a_channel'));
ALTER TABLE channels
    -- Resolve attempts that failed for a passing reason (flood wait, no
    -- account, network) and when the next may be made.
    ADD COLUMN resolve_attempts integer     NOT NULL DEFAULT 0,
    ADD COLUMN resolve_after    timestamptz,
    ADD COLUMN resolved_at      timestamptz,
    -- Protected content (`noforwards`): posts are announced, never copied.
    ADD COLUMN protected        boolean     NOT NULL DEFAULT false;
-- The resolve queue: pending channels by when they may be tried.
CREATE INDEX channels_resolve_queue_idx ON channels (resolve_after NULLS FIRST, id)
    WHERE status = 'pending';

-- A Telegram user account that reads channels over MTProto.
CREATE TABLE reader_accounts (
    -- The operator's name for it (`kuryer login --account NAME`).
    name             text        PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.-]{1,64}$'),
    phone            text,
    -- The Telegram user id and access hash once signed in (grammers' self user).
    user_id          bigint,
    user_access_hash bigint,
    -- new: created, not signed in; active: signed in; logged_out: by
    -- `kuryer logout`; lost: Telegram ended the session (revoked, banned,
    -- deauthorised) — its channels went to other accounts.
    status           text        NOT NULL DEFAULT 'new'
                     CHECK (status IN ('new', 'active', 'logged_out', 'lost')),
    lost_reason      text,
    home_dc          integer     NOT NULL DEFAULT 2,
    -- grammers' update state (pts, qts, date, seq, channel pts) as JSON.
    update_state     jsonb,
    -- The lease: one process uses an account at a time. A holder renews
    -- `lease_expires_at` on a heartbeat; another may take it only once it
    -- has passed, and every take bumps the generation.
    lease_holder     text,
    lease_generation bigint      NOT NULL DEFAULT 0,
    lease_expires_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- The data-centre addresses of a session and their auth keys. The key is
-- encrypted (AES-256-GCM, nonce ‖ ciphertext ‖ tag, the account name and
-- DC id as associated data) with `reader.session_key`.
CREATE TABLE reader_session_dcs (
    account      text    NOT NULL REFERENCES reader_accounts (name) ON DELETE CASCADE,
    dc_id        integer NOT NULL,
    ipv4         text    NOT NULL,
    ipv6         text    NOT NULL,
    auth_key_enc bytea,
    PRIMARY KEY (account, dc_id)
);

-- Which account reads which channel; `joined` once it is a member (posts
-- pushed), otherwise polled with messages.getHistory.
CREATE TABLE reader_assignments (
    channel_id  bigint      PRIMARY KEY REFERENCES channels (id) ON DELETE CASCADE,
    account     text        NOT NULL REFERENCES reader_accounts (name) ON DELETE CASCADE,
    joined      boolean     NOT NULL DEFAULT false,
    assigned_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reader_assignments_account_idx ON reader_assignments (account);
