-- Channels nobody subscribes to any more: since when their reader account
-- has seen them unwanted (set by the account's holder, cleared when someone
-- subscribes again), and when the account left them (`reader.orphan_grace_s`
-- after that; `joined` is false from then on).
ALTER TABLE reader_assignments
    ADD COLUMN unwanted_since timestamptz,
    ADD COLUMN left_at        timestamptz;
