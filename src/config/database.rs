//! The database connection as every kuryer connection opens it: the URL
//! parsed once, its TLS mode settled, the connect and statement timeouts
//! applied. The pool, the LISTEN session and create-database all connect
//! through a [`DbConnect`], so none of them can drift from the others.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::{Host, SslMode};

use super::DatabaseConfig;
use crate::secret::SecretUrl;

/// Why a database URL cannot be used. Never repeats the URL: it may hold a
/// password (tokio-postgres' parse errors do not echo their input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DbUrlError {
    /// Neither a `postgres://` URL nor a libpq key-value string.
    #[error("unparsable URL: {0}")]
    Unparsable(String),
    /// It parses but says where not to connect.
    #[error("the URL names no host")]
    NoHost,
}

/// One PostgreSQL server and database, ready to connect to: what the URL
/// says, the TLS mode it really gets, and `database.connect_timeout_ms`,
/// `database.statement_timeout_ms` and `database.tls_ca_file`. Built by
/// [`DatabaseConfig::primary`] and [`DatabaseConfig::replicas`] (which
/// validation calls, so a loaded configuration always yields them).
/// Prints without the password.
#[derive(Clone)]
pub struct DbConnect {
    /// Host, port, user, password, database, TLS mode, connect timeout and
    /// the session options, as every connection is opened.
    pg: tokio_postgres::Config,
    connect_timeout: Duration,
    statement_timeout: Option<Duration>,
    tls_ca_file: Option<PathBuf>,
    /// `host:port` (each, comma-separated), for errors and logs.
    endpoint: String,
}

impl DbConnect {
    /// Parses `url` with the timeouts and CA file of `db`. The one place a
    /// database URL is parsed.
    pub fn parse(url: &SecretUrl, db: &DatabaseConfig) -> Result<Self, DbUrlError> {
        let text = url.expose();
        let mut pg = tokio_postgres::Config::from_str(text)
            .map_err(|e| DbUrlError::Unparsable(e.to_string()))?;
        if pg.get_hosts().is_empty() {
            return Err(DbUrlError::NoHost);
        }
        pg.ssl_mode(effective_ssl_mode(
            pg.get_ssl_mode(),
            text.contains("sslmode"),
        ));
        let connect_timeout = Duration::from_millis(db.connect_timeout_ms);
        pg.connect_timeout(connect_timeout);
        let statement_timeout =
            (db.statement_timeout_ms > 0).then(|| Duration::from_millis(db.statement_timeout_ms));
        // Server notices ("relation already exists, skipping") are not worth
        // a log line each; warnings and errors still arrive.
        let mut options = pg.get_options().unwrap_or_default().to_owned();
        options.push_str(" -c client_min_messages=warning");
        if let Some(t) = statement_timeout {
            options.push_str(&format!(" -c statement_timeout={}", t.as_millis()));
        }
        pg.options(options.trim_start());
        let endpoint = endpoint_of(&pg);
        Ok(Self {
            pg,
            connect_timeout,
            statement_timeout,
            tls_ca_file: db.tls_ca_file.clone(),
            endpoint,
        })
    }

    /// The tokio-postgres configuration of a session named `application`
    /// (`pg_stat_activity.application_name`).
    pub fn session(&self, application: &str) -> tokio_postgres::Config {
        let mut pg = self.pg.clone();
        pg.application_name(application);
        pg
    }

    /// The same server and credentials on database `name` (create-database
    /// connects to `postgres` to create the configured one).
    pub fn on_database(&self, name: &str) -> Self {
        let mut other = self.clone();
        other.pg.dbname(name);
        other
    }

    /// The database connected to: the URL's, else the user's name (libpq's rule).
    pub fn dbname(&self) -> &str {
        self.pg
            .get_dbname()
            .or(self.pg.get_user())
            .unwrap_or("postgres")
    }

    /// The TLS mode connections use (see [`effective_ssl_mode`]).
    pub fn ssl_mode(&self) -> SslMode {
        self.pg.get_ssl_mode()
    }

    /// The longest opening a connection may take, TLS and start-up included.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The server-side statement timeout of every session; `None`: none.
    pub fn statement_timeout(&self) -> Option<Duration> {
        self.statement_timeout
    }

    /// PEM file of CAs trusted beside the public web roots.
    pub fn tls_ca_file(&self) -> Option<&Path> {
        self.tls_ca_file.as_deref()
    }

    /// `host:port`, for errors and logs (never the password).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl fmt::Debug for DbConnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbConnect")
            .field("endpoint", &self.endpoint)
            .field("dbname", &self.dbname())
            .field("ssl_mode", &self.ssl_mode())
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .finish_non_exhaustive()
    }
}

impl DatabaseConfig {
    /// The primary (`database.url`): writes, LISTEN, create-database.
    pub fn primary(&self) -> Result<DbConnect, DbUrlError> {
        DbConnect::parse(&self.url, self)
    }

    /// The read replicas (`database.replica_urls`), in order; an error names
    /// the index of the bad one.
    pub fn replicas(&self) -> Result<Vec<DbConnect>, (usize, DbUrlError)> {
        self.replica_urls
            .iter()
            .enumerate()
            .map(|(i, url)| DbConnect::parse(url, self).map_err(|e| (i, e)))
            .collect()
    }
}

/// The SSL mode a URL really gets. tokio-postgres reads a missing `sslmode`
/// as `prefer`; kuryer keeps such connections plain, as they always were, so
/// that a server offering a certificate no root vouches for (Debian's
/// self-signed "snakeoil") does not turn into a refused connection. An
/// explicit `prefer` or `require` gets verified TLS.
fn effective_ssl_mode(parsed: SslMode, explicit: bool) -> SslMode {
    match parsed {
        SslMode::Prefer if !explicit => SslMode::Disable,
        mode => mode,
    }
}

/// `host:port` of every host the configuration names (libpq's default port
/// 5432 when none is given; one port for all hosts, or one each).
fn endpoint_of(pg: &tokio_postgres::Config) -> String {
    let ports = pg.get_ports();
    pg.get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = match ports {
                [] => 5432,
                [one] => *one,
                many => many.get(i).copied().unwrap_or(5432),
            };
            match host {
                Host::Tcp(name) if name.contains(':') => format!("[{name}]:{port}"),
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(dir) => format!("{}/.s.PGSQL.{port}", dir.display()),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<DbConnect, DbUrlError> {
        DatabaseConfig {
            url: SecretUrl::new(url),
            ..DatabaseConfig::default()
        }
        .primary()
    }

    #[test]
    fn a_url_without_sslmode_stays_plain() {
        let mode = |u: &str| parse(u).unwrap().ssl_mode();
        assert_eq!(mode("postgres://u@h/db"), SslMode::Disable);
        assert_eq!(mode("postgres://u@h/db?sslmode=prefer"), SslMode::Prefer);
        assert_eq!(mode("postgres://u@h/db?sslmode=require"), SslMode::Require);
        assert_eq!(mode("host=h user=u sslmode=require"), SslMode::Require);
        assert_eq!(mode("postgres://u@h/db?sslmode=disable"), SslMode::Disable);
    }

    #[test]
    fn every_session_gets_both_timeouts() {
        let db = DatabaseConfig {
            url: SecretUrl::new("postgres://u:hunter2@db.example:6543/k"),
            connect_timeout_ms: 1_234,
            statement_timeout_ms: 5_678,
            ..DatabaseConfig::default()
        };
        let c = db.primary().unwrap();
        let pg = c.session("kuryer-test");
        assert_eq!(
            pg.get_connect_timeout(),
            Some(&Duration::from_millis(1_234))
        );
        let options = pg.get_options().unwrap();
        assert!(options.contains("statement_timeout=5678"), "{options}");
        assert_eq!(pg.get_application_name(), Some("kuryer-test"));
        assert_eq!(c.endpoint(), "db.example:6543");
        assert_eq!(c.on_database("postgres").dbname(), "postgres");
        assert_eq!(c.dbname(), "k");
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");

        let off = DatabaseConfig {
            statement_timeout_ms: 0,
            ..db
        };
        let pg = off.primary().unwrap().session("x");
        assert!(!pg.get_options().unwrap().contains("statement_timeout"));
    }

    #[test]
    fn bad_urls_are_refused_without_their_secrets() {
        let e = parse("postgres://u:hunter2@[::1/db").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(parse("host=").is_err());
        assert_eq!(parse("postgres://u@h:1/x").unwrap().endpoint(), "h:1");
        assert_eq!(parse("host=a,b port=1,2").unwrap().endpoint(), "a:1,b:2");
        assert_eq!(
            parse("postgres://u@[::1]/x").unwrap().endpoint(),
            "[::1]:5432"
        );
    }
}
