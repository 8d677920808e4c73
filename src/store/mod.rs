//! The PostgreSQL store: a connection pool and the typed queries the daemon needs.
//!
//! Every query here is one round trip or one transaction, and none runs once
//! per subscriber: the hot paths (loading the registry, recording deliveries)
//! stream or batch.
//!
//! `pool` holds the [`Store`] handle; each aggregate's queries are an
//! `impl Store` block in its own file; `persistence` adapts the store to the
//! actors' `Persistence` port.

/// Why a subscription's channel delivers nothing (yet), as SQL over the
/// channel row `c`: `NULL` while it is read; else a short machine-readable
/// reason the API answers (`channel_status_reason`) and the bot words.
/// A channel our bot does not administer is read by a reader account
/// (`status = 'active'`: signed in, not lost, logged out or frozen); with
/// none, it waits for one (`no_reader_account`). A pending one waits for a
/// look-up (`resolving`), which none can make while every account's
/// look-ups for the UTC day are spent (`budget_exhausted_today`) or every
/// account is in a flood wait on `contacts.resolveUsername` (`flood_wait`).
/// A macro so the queries that show subscriptions can `concat!` it.
macro_rules! channel_status_reason_sql {
    () => {
        "CASE
           WHEN c.status = 'invalid' THEN 'username_not_found'
           WHEN c.status = 'private' THEN 'private_channel'
           WHEN c.status = 'not_a_channel' THEN 'not_a_channel'
           WHEN c.status = 'gone' THEN 'channel_gone'
           WHEN c.status = 'active' AND c.bot_is_admin THEN NULL
           WHEN NOT EXISTS (SELECT 1 FROM reader_accounts ra WHERE ra.status = 'active')
             THEN 'no_reader_account'
           WHEN c.status = 'active' THEN NULL
           WHEN NOT EXISTS (SELECT 1 FROM reader_accounts ra
                              LEFT JOIN reader_budgets rb
                                ON rb.account = ra.name
                               AND rb.day = (now() AT TIME ZONE 'UTC')::date
                             WHERE ra.status = 'active'
                               AND (rb.account IS NULL OR rb.resolves < rb.resolve_limit))
             THEN 'budget_exhausted_today'
           WHEN NOT EXISTS (SELECT 1 FROM reader_accounts ra
                             WHERE ra.status = 'active'
                               AND (ra.flood_wait_until IS NULL OR ra.flood_wait_until <= now()
                                    OR ra.flood_wait_method IS DISTINCT FROM 'contacts.resolveUsername'))
             THEN 'flood_wait'
           ELSE 'resolving'
         END"
    };
}

/// Reader accounts: sessions, leases, channel assignments.
mod accounts;

mod budgets;
/// Channels and posts, high-water marks.
mod channels;
/// Connections of their own (LISTEN, create-database), within the connect timeout.
mod connect;
/// What the status page reads: channel pages, bot leases.
mod console;
/// Dead letters read back: listed, shown, replayed, discarded (0016).
mod dead_letter_console;
/// Dead letters: what still failed after its retries, kept with the reason.
mod dead_letters;
/// Delivery records: batched outcomes.
mod deliveries;
/// Destinations: deactivation, group-to-supergroup moves.
mod destinations;
/// Digests: due times, claimed runs, outcome rows.
mod digest;
/// `StoreError` and the retry decision.
mod error;
/// Opening without creating or migrating: the read-only commands.
mod existing;
/// History on subscribe read from Telegram: reading's start, history posts (0015).
mod history;
/// The bot's durable inbox of bot-admin channel posts.
mod inbox;
/// The database's identity, for keys kept outside it.
mod installation;
/// What each instance holds in memory, as it last wrote it (0020).
mod instance_snapshot;
/// Instances and their leases: channels, bots' getUpdates (several instances).
mod leases;
/// `/link` codes, wrong codes per chat, ownership taken back (0023).
mod link_codes;
/// A session of its own that LISTENs for notifications.
pub mod listen;
/// Numbered migrations from `sql/`, applied with a checksum guard.
pub mod migrate;
/// Migrations applied with their progress shown.
mod migrate_progress;
/// Subscribers told once when their channel became private, was renamed or is gone.
mod notice_claims;
/// `Store::open`: create if missing, pools, migrations, partitions.
mod open;
/// Daily partitions of `forwarded_messages` and retention.
pub mod partitions;
/// Access hashes per reader account and Telegram peer (0016).
mod peer_hashes;
/// Owed deliveries: the start-up resume and the periodic sweep read them.
mod pending;
/// `impl Persistence for Store`: the actors' port onto the store.
mod persistence;
/// The `Store` handle and its connection pools.
mod pool;
/// Edits and deletions mirrored, mirror settings, backfills (0010).
mod post_events;
/// The resolve queue: channels added by name, looked up once.
mod resolve;
/// Per-subscription extras: text transforms, quiet hours.
mod send_settings;
/// The bot's changes to subscriptions: pause, resume, remove, route, settings.
mod settings;
/// Subscriptions: add, list, stream the active ones.
mod subscriptions;
/// TLS to PostgreSQL: the verified connector.
mod tls;
/// A user's standing against `/add`'s per-user budgets (0023).
mod user_budgets;
/// The bot's people: registration, language, linked destinations.
mod users;

pub use accounts::{
    AccountRow, Assignment, ReaderChannel, StoredDc, StoredSession, UnwantedAssignment,
    bare_channel_id, bot_api_chat_id,
};
pub use budgets::{BudgetKind, DayLimits};
pub use channels::NewPost;
pub use console::{BotLease, CHANNEL_PAGE_MAX, ChannelPage, ConsoleChannel};
pub use dead_letter_console::{Claim, DEAD_LETTER_PAGE_MAX, DeadLetter, DeadLetterQuery};
pub use dead_letters::{DEAD_LETTER_RAW_MAX, DeadUpdate};
pub use digest::{DigestDue, DigestRun, DigestTarget};
pub use error::{ConnectError, StoreError};
pub use existing::{ExistingError, check_existing};
pub use history::BackfillChannel;
pub use inbox::InboxEntry;
pub use instance_snapshot::InstanceSnapshotRow;
pub use leases::{InstanceIdentity, InstanceRow, LeasedChannel, OwnedChannel, RegisteredInstance};
pub use link_codes::{DestinationOwner, DroppedOwner};
pub use migrate_progress::migrate_with_progress;
pub use notice_claims::{
    BOT_REMOVED as CHANNEL_BOT_REMOVED, ChannelNotice, ChannelPause, GONE as CHANNEL_GONE, PAUSING,
    PRIVATE as CHANNEL_PRIVATE, PROTECTED as CHANNEL_PROTECTED, RENAMED as CHANNEL_RENAMED,
};
pub use open::{Open, OpenError, Opened, Retention};
pub use pending::{PendingQuery, PendingStream, RecentPost};
pub use persistence::new_post;
pub use pool::{REPLICA_APPLICATION_NAME, Store};
pub use post_events::{
    AppliedRow, Backfill, BackfillAsked, DeletionsMode, EditsMode, EventTarget, EventTargets,
    MirrorSettings, PostEvent,
};
pub use resolve::{FoundChannel, PendingChannel, ResolveNotice, Unresolvable};
pub use send_settings::Extra;
pub use settings::{BotStats, RouteOutcome, SubState, UserSubscription};
pub use subscriptions::{
    AddedSubscription, NO_READER_ACCOUNT, SubscriptionStream, SubscriptionView,
};
pub use user_budgets::AddBudget;
pub use users::{BotUser, DestinationView, LinkOutcome, LostDestination};
