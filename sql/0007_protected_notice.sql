-- Protected channels (issue 12): their posts cannot be forwarded, and each
-- subscriber is told why once. Set when the notice is claimed, so it is
-- never sent twice, whichever process reads the channel.
ALTER TABLE subscriptions ADD COLUMN protected_told_at timestamptz;
