//! # The MTProto face of the simulated Telegram
//!
//! A fake data centre that speaks real MTProto 2.0 over TCP with the Full
//! transport grammers 0.11 uses, so grammers-client's own, unmodified
//! network code runs against it. Start one with [`MtprotoFake::start`]
//! (two data centres, [`MAIN_DC`] and [`SECOND_DC`], one world) and either
//! make an auth key by the key exchange with the fake's own RSA key
//! ([`PUBLIC_KEY_PEM`]; what `kuryer login` does with custom data centres),
//! or create an account and an auth key and give grammers a session whose
//! home DC points here and already holds that key
//! ([`MtprotoFake::session_data`]): the client skips the key exchange.
//!
//! | file | concern |
//! |---|---|
//! | `transport.rs` | Full framing: length, seq, payload, CRC-32; transport errors |
//! | `crypto.rs` | server-side AES-IGE / SHA-256 / msg_key (x = 0 in, x = 8 out) |
//! | `key_exchange.rs`, `rsa_key.rs` | the key exchange in plain messages (req_pq_multi, req_DH_params with RSA_PAD, set_client_DH_params); the fake's RSA key |
//! | `session.rs` | envelope: msg ids, seq_no, containers, gzip, salts, `bad_msg_notification` rules |
//! | `connection.rs` | one TCP connection: service messages, pushes, closing on garbage |
//! | `rpc.rs` | the dispatcher: session rules, flood limits, counters |
//! | `rpc/peers.rs`, `rpc/difference.rs`, `rpc/channels.rs`, `rpc/auth.rs` | the calls: users and usernames; getDifference; history, joins, forwards; login |
//! | `world.rs` | accounts, keys, channels, histories, event logs, push targets |
//! | `updates.rs` | publish / edit / delete as pts events, pushes, channel difference |
//! | `objects.rs` | accounts, channels, messages as TL objects |
//! | `flood.rs` | per-account, per-method `FLOOD_WAIT_X`: sliding windows and escalating limits |
//! | `login.rs` | login codes and SRP 2FA verified server-side |
//! | `handle.rs`, `handle/accounts.rs`, `handle/channels.rs` | [`MtprotoFake`], the handle a test holds: start and stop; accounts, keys, pushes, flood limits, stats; channels and posts (over HTTP: `kuryer-sim`'s `/mtproto/…` routes, `crate::control_api`) |
//!
//! ## Protocol served
//!
//! `invokeWithLayer`, `initConnection`, `invokeWithoutUpdates`,
//! `invokeAfterMsg` (unwrapped); `msg_container` in and out; `gzip_packed`
//! in (any message) and out (results over 512 bytes); `msgs_ack` (accepted,
//! nothing is re-sent); `new_session_created` on a session's first message;
//! `rpc_result` / `rpc_error`; `ping` and `ping_delay_disconnect` (the
//! connection closes when the delay passes without another one);
//! `get_future_salts` (bare `future_salts`, one salt per 30 minutes;
//! previous, current and next accepted); `destroy_session`
//! (`destroy_session_none`). Server msg ids are time-based, ≡ 1 mod 4 for
//! responses and 3 otherwise, strictly increasing; seq_no is 2n+1 for
//! content-related messages and 2n otherwise. `bad_server_salt` (48) for a
//! wrong salt (grammers' first message carries salt 0); `bad_msg_notification`
//! 16/17 (msg id over 300 s old / 30 s ahead), 18 (msg id not ≡ 0 mod 4),
//! 34 (odd seq_no on a container or ack), 35 (even seq_no on an RPC), 64
//! (nested container). A malformed frame (length, seq, CRC), an unknown
//! auth key id (transport error −404 first), a plain (unencrypted) message,
//! a packet whose msg_key does not match, or a malformed plaintext closes
//! that connection only.
//!
//! ## Calls served
//!
//! `help.getConfig` (the fake's two DCs, `static`), `users.getUsers` (self and
//! known users), `updates.getState` (the account's common box: its date
//! moves with every event pushed to it), `updates.getDifference` (from the
//! client's `date`: empty, or `updateChannelTooLong` for each member
//! channel changed since or whose pushes were dropped, counted in
//! `AccountStats::difference_channels`),
//! `updates.getChannelDifference` (from the channel's event log:
//! `channelDifferenceEmpty`, `channelDifference`, or
//! `channelDifferenceTooLong` past the client's limit or the configured
//! one), `contacts.resolveUsername` (channels and accounts),
//! `channels.getChannels`, `channels.getFullChannel`, `messages.getHistory`
//! (`offset_id`, `add_offset`, `min_id`, `max_id`, `limit` ≤ 100),
//! `channels.getMessages`, `channels.joinChannel`, `channels.leaveChannel`,
//! `messages.forwardMessages` (channel → channel the account administers;
//! a repeated `random_id` forwards nothing again), `auth.sendCode`,
//! `auth.signIn`, `account.getPassword`, `auth.checkPassword` (SRP over
//! Telegram's prime, verified against the verifier of the password the
//! test set), `auth.logOut`. Any other method: `400 INPUT_METHOD_INVALID`.
//!
//! Pushed updates: every publish / edit / delete in a channel is one pts
//! event (`pts_count` 1, or the number of deleted messages) pushed at once as
//! `updates` with `updateNewChannelMessage`, `updateEditChannelMessage` or
//! `updateDeleteChannelMessages` to every connection of every member.
//! Control calls drop pushes (the client sees the pts gap on the next one
//! and calls `getChannelDifference`), delay them, or push
//! `updateChannelTooLong` / `updatesTooLong`. A channel can be silenced
//! (its events are pushed to nobody, as Telegram may stop pushing a
//! channel) and given short history pages (deleted ids count against
//! `messages.getHistory`'s limit, as on Telegram).
//!
//! ## Errors served
//!
//! `FLOOD_WAIT_X` (420, per account and method, configurable: a sliding
//! window, and escalating limits whose waits grow with each one earned),
//! `FROZEN_METHOD_INVALID` (420: a frozen account calling anything but a
//! read, [`MtprotoFake::set_frozen`]), `PEER_FLOOD` (400: a join by an
//! account limited for spam, [`MtprotoFake::set_peer_flood`]),
//! `USERNAME_NOT_OCCUPIED`, `USERNAME_INVALID`, `CHANNEL_PRIVATE`,
//! `CHANNEL_INVALID` (unknown id, or an access hash not given to the calling
//! account: every account has its own, [`MtprotoFake::access_hash`]),
//! `CHANNELS_TOO_MUCH` (joining a 501st channel), `USER_NOT_PARTICIPANT`,
//! `CHAT_FORWARDS_RESTRICTED` (protected source), `CHAT_WRITE_FORBIDDEN`
//! (forwarding into a channel the account does not administer),
//! `RANDOM_ID_INVALID`, `MESSAGE_ID_INVALID`, `PEER_ID_INVALID`,
//! `AUTH_KEY_UNREGISTERED` (401: no account signed in on the key),
//! `SESSION_REVOKED` (401), `AUTH_KEY_DUPLICATED` (406: the key was used on
//! two live connections at once; it is burned, and every later call on it,
//! on any connection, answers the same),
//! `SESSION_PASSWORD_NEEDED`, `PHONE_MIGRATE_X` (303), `PHONE_NUMBER_INVALID`, `PHONE_CODE_INVALID`,
//! `PHONE_CODE_EXPIRED`, `PHONE_CODE_HASH_INVALID`, `PASSWORD_HASH_INVALID`,
//! `SRP_ID_INVALID`. Every call and every error is counted per account and
//! method ([`MtprotoFake::stats`]), and calls made while a `FLOOD_WAIT`
//! had not ended are counted apart; so are calls made by an account's two
//! holders at once ([`MtprotoFake::two_holders_calls`], `holders.rs`: a
//! test's measure, no claim about Telegram).
//!
//! ## What it simplifies compared with Telegram
//!
//! - The key exchange makes permanent keys only (no temporary keys, no
//!   PFS binding); a key is valid on the DC it was made on. Two DCs; the
//!   only migration is `PHONE_MIGRATE_X` on `auth.sendCode` (no
//!   `NETWORK_`/`USER_`/`FILE_MIGRATE_X`), no file DCs, no CDN. Calls other
//!   than `auth.sendCode` are served on either DC.
//! - Login codes: `auth.sentCodeTypeApp` unless a test chose another type
//!   for the account ([`MtprotoFake::set_code_type`]); the code is the
//!   same 5 digits whatever the type says (an SMS word or phrase, a
//!   missed call's digits, an email code are not modelled), and
//!   `auth.sentCodeTypeSetUpEmailRequired` sends none. No `next_type`, no
//!   `auth.resendCode`.
//! - No re-sending: `msgs_ack` is accepted but unacknowledged messages are
//!   never sent again, `msgs_state_req` / `msg_resend_req` are ignored, and
//!   seq_no is checked for parity only (not 32/33 too low/high).
//! - Only broadcast channels and user accounts: no groups, private chats,
//!   bots over MTProto, topics, reactions, views or read state. Of the
//!   common update box only `date` moves (pts, qts and seq number private
//!   and secret chats' events, which the fake has none of).
//! - Media are placeholders (`photoEmpty` / `documentEmpty` in
//!   `messageMediaPhoto` / `messageMediaDocument`); entities are not kept.
//! - Private channels are joined through the control API
//!   ([`MtprotoFake::add_member`]), not by invite links; leaving a channel
//!   does not hide its history when it is public.
//! - Login: a code is sent to any phone that has an account (no sign-up,
//!   `PHONE_NUMBER_INVALID` otherwise) and read back with
//!   [`MtprotoFake::login_code`]; `auth.logOut` unbinds the key.
//! - Flood limits are a sliding window per method; Telegram's are secret
//!   and adaptive.
//! - One world with the Bot API face through
//!   [`MtprotoFake::attach_bot_api`]: channels created and posts published
//!   or forwarded here are mirrored onto the
//!   [`FakeTelegram`](crate::fake_bot_api::FakeTelegram) (a `channel_post`
//!   to its admin bots), and a post published there with `FakeTelegram::post`
//!   in a channel this face knows is appended here and pushed (its post
//!   hook). Each face keeps its own copy of a channel's history; ids agree as
//!   long as one channel is not posted to from both faces at the same
//!   instant. Edits, deletes, renames, making a channel private or
//!   deleting it (`delete_channel`: everyone gets `CHANNEL_PRIVATE`), and
//!   channels created on the Bot API face alone, are not mirrored.

mod connection;
mod crypto;
mod flood;
mod handle;
/// Who uses each account: calls made by two holders at once.
mod holders;
mod key_exchange;
mod login;
mod objects;
mod rpc;
mod rsa_key;
mod session;
mod transport;
mod updates;
mod world;

pub use flood::{EscalatingLimit, FloodLimit};
pub use handle::{
    AccountSpec, AccountStats, ChannelRef, ChannelSpec, ControlError, MAIN_DC, MtprotoConfig,
    MtprotoFake, SECOND_DC,
};
pub use rsa_key::PUBLIC_KEY_PEM;
pub use world::MethodStats;
