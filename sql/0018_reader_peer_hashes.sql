-- Access hashes per reader account. Telegram gives every account its own
-- access hash for a channel and refuses another account's
-- (core.telegram.org/api/peers, "Access hash"): `channels.access_hash`
-- (one per channel) serves only the account that resolved it. A channel
-- read by another account (assigned to the least loaded, moved from a lost
-- one) is read with that account's own hash, from here, or resolved again
-- by that account.
CREATE TABLE reader_peer_hashes (
    account     text        NOT NULL REFERENCES reader_accounts (name) ON DELETE CASCADE,
    -- Telegram's bare channel id (not the Bot API's `-100…`): a hash
    -- belongs to the Telegram peer, whatever our channel rows become.
    peer_id     bigint      NOT NULL,
    access_hash bigint      NOT NULL,
    learned_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, peer_id)
);
CREATE INDEX reader_peer_hashes_peer_idx ON reader_peer_hashes (peer_id);

-- What was read before: the account a channel is assigned to read it with
-- the channel's one hash, so that hash is taken as that account's. A wrong
-- guess costs one CHANNEL_INVALID and a resolve again.
INSERT INTO reader_peer_hashes (account, peer_id, access_hash)
SELECT r.account, -c.telegram_id - 1000000000000, c.access_hash
  FROM reader_assignments r JOIN channels c ON c.id = r.channel_id
 WHERE c.telegram_id IS NOT NULL AND c.access_hash IS NOT NULL
ON CONFLICT DO NOTHING;
