//! Store errors: what failed, and the one decision whether retrying can help.

use tokio_postgres::error::SqlState;

/// A failed store operation: which operation, and whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The pool could not hand out a connection (database down, pool exhausted).
    #[error("{op}: no database connection: {message}")]
    Pool { op: &'static str, message: String },
    /// The database answered with an error, or the connection broke mid-query.
    /// Shown with PostgreSQL's message (never its detail, which may quote
    /// a row's values).
    #[error("{op}: {}", server_message(source))]
    Query {
        op: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    /// The configuration cannot produce a pool (bad URL and the like).
    #[error("database configuration: {0}")]
    Config(String),
    /// The data broke an invariant the schema cannot express.
    #[error("{op}: {message}")]
    Data { op: &'static str, message: String },
    /// A connection of its own (LISTEN, create-database) could not be
    /// opened; `endpoint` is `host:port`, never the URL.
    #[error("{op}: cannot connect to {endpoint}: {source}")]
    Connect {
        op: &'static str,
        endpoint: String,
        #[source]
        source: ConnectError,
    },
}

/// PostgreSQL's own message and code when the server answered ("db error"
/// alone says nothing), else the client's text.
fn server_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// Why a connection of its own could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Nothing answered within `database.connect_timeout_ms` (TCP, TLS and
    /// the start-up exchange together).
    #[error("no answer within {0} ms")]
    TimedOut(u64),
    /// The server refused, or the socket failed.
    #[error(transparent)]
    Postgres(tokio_postgres::Error),
}

impl StoreError {
    /// The one place that decides whether an operation is worth retrying.
    ///
    /// Retriable: no connection (pool timeout, refused, reset), connection
    /// class SQLSTATE 08, serialization failures and deadlocks (40001,
    /// 40P01), resource exhaustion (53), operator intervention such as a
    /// server shutting down (57P01..57P03), and statement cancellations by
    /// timeout (57014). Everything else — constraint violations, syntax,
    /// bad data — fails the same way again, so it is not.
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Pool { .. } => true,
            Self::Config(_) | Self::Data { .. } => false,
            Self::Query { source, .. } => postgres_retriable(source),
            Self::Connect { source, .. } => match source {
                ConnectError::TimedOut(_) => true,
                ConnectError::Postgres(e) => postgres_retriable(e),
            },
        }
    }
}

/// [`StoreError::is_retriable`] of a tokio-postgres error.
fn postgres_retriable(source: &tokio_postgres::Error) -> bool {
    if source.is_closed() {
        return true;
    }
    match source.code() {
        // No SQLSTATE: retriable only when it is the connection (I/O); a
        // conversion or protocol error fails again.
        None => std::error::Error::source(source).is_some_and(|s| s.is::<std::io::Error>()),
        Some(code) => {
            let c = code.code();
            c.starts_with("08")
                || c.starts_with("53")
                || *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::QUERY_CANCELED
        }
    }
}

/// Attaches the operation name to a tokio-postgres error.
pub(super) trait OpContext<T> {
    fn op(self, op: &'static str) -> Result<T, StoreError>;
}

impl<T> OpContext<T> for Result<T, tokio_postgres::Error> {
    fn op(self, op: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Query { op, source })
    }
}
