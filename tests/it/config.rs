//! Configuration loading: precedence, every error case, redaction, and the
//! documented `config.toml`.

use std::path::{Path, PathBuf};
use std::process::Command;

use kuryer::config::{Config, ConfigError, load_from};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load_err(file: Option<&str>, vars: &[(&str, &str)]) -> (ConfigError, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = file.map(|t| write(dir.path(), "kuryer.toml", t));
    let err = load_from(path.as_deref(), &env(vars), None).unwrap_err();
    let text = err.to_string();
    (err, text)
}

fn invalid_key(err: &ConfigError) -> &str {
    match err {
        ConfigError::Invalid { key, .. } => key,
        other => panic!("expected an invalid-key error, got {other}"),
    }
}

#[test]
fn defaults_load_with_no_file_and_no_environment() {
    let c = load_from(None, &[], None).unwrap();
    assert_eq!(c.database.pool_max, 60);
    assert_eq!(c.redis.dedup_ttl_s, 86_400);
    assert_eq!(c.limits.max_subscriptions_per_user, 200);
    assert_eq!(c.telegram.bot_api_url, "https://api.telegram.org");
    assert_eq!(c.limits.per_bot_per_second, 30.0);
    assert!(!c.limits.allow_paid_broadcast);
    assert!(c.http.listen.ip().is_loopback());
    assert!(c.http.api_token.is_none());
}

#[test]
fn file_then_environment_then_credentials_each_win() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "k.toml",
        r#"
[database]
url = "postgres://file@127.0.0.1/file"
pool_max = 10
[http]
api_token = "from-the-file-0123456789"
[telegram]
bot_tokens = ["111:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]
admins = [1, 2]
"#,
    );
    let creds = tempfile::tempdir().unwrap();
    write(
        creds.path(),
        "bot_tokens",
        "# two bots\n222:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n\n333:cccccccccccccccccccccccccccccc\n",
    );
    write(
        creds.path(),
        "database_url",
        "postgres://cred:pw@127.0.0.1/cred\n",
    );
    let vars = env(&[
        ("KURYER_DATABASE_POOL_MAX", "25"),
        ("KURYER_DATABASE_URL", "postgres://env@127.0.0.1/env"),
        // A numeric token arrives as a number; it is still a string secret.
        ("KURYER_HTTP_API_TOKEN", "12345678901234567890"),
        ("KURYER_TELEGRAM_ADMINS", "[7, 8, 9]"),
        ("KURYER_LIMITS_ALLOW_PAID_BROADCAST", "true"),
        ("KURYER_LOG_LEVEL", "debug"),
        ("UNRELATED", "ignored"),
    ]);
    let c = load_from(Some(&file), &vars, Some(creds.path())).unwrap();
    assert_eq!(c.database.pool_max, 25, "env beats file");
    assert_eq!(
        c.database.url.expose(),
        "postgres://cred:pw@127.0.0.1/cred",
        "credential beats env"
    );
    assert_eq!(
        c.http.api_token.as_ref().unwrap().expose(),
        "12345678901234567890"
    );
    assert_eq!(c.telegram.admins, vec![7, 8, 9]);
    let tokens: Vec<&str> = c.telegram.bot_tokens.iter().map(|t| t.expose()).collect();
    assert_eq!(
        tokens,
        [
            "222:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
            "333:cccccccccccccccccccccccccccccc"
        ]
    );
    assert!(c.limits.allow_paid_broadcast);
    assert_eq!(c.log.level, "debug");
}

#[test]
fn unknown_key_in_the_file_is_named() {
    let (err, text) = load_err(Some("[database]\npool_mx = 3\n"), &[]);
    assert_eq!(invalid_key(&err), "database.pool_mx");
    assert!(text.contains("kuryer.toml"), "{text}");
    assert!(text.contains("unknown key"), "{text}");
}

#[test]
fn unknown_section_is_named() {
    let (err, text) = load_err(Some("[databse]\nurl = \"x\"\n"), &[]);
    assert_eq!(invalid_key(&err), "databse");
    assert!(text.contains("unknown key"), "{text}");
}

#[test]
fn unknown_environment_key_names_the_variable() {
    let (err, text) = load_err(None, &[("KURYER_HTTP_LISTN", "127.0.0.1:1")]);
    assert_eq!(invalid_key(&err), "http.listn");
    assert!(
        text.contains("environment variable KURYER_HTTP_LISTN"),
        "{text}"
    );
}

#[test]
fn wrong_type_is_named() {
    let (err, text) = load_err(Some("[database]\npool_max = \"many\"\n"), &[]);
    assert_eq!(invalid_key(&err), "database.pool_max");
    assert!(text.contains("wrong type"), "{text}");
    let (err, _) = load_err(None, &[("KURYER_LIMITS_PER_CHAT_PER_SECOND", "fast")]);
    assert_eq!(invalid_key(&err), "limits.per_chat_per_second");
    let (err, text) = load_err(Some("[log]\nformat = \"xml\"\n"), &[]);
    assert_eq!(invalid_key(&err), "log.format");
    assert!(text.contains("journald"), "{text}");
}

#[test]
fn out_of_range_values_are_named_with_their_source() {
    let cases: &[(&str, &str)] = &[
        ("[database]\npool_max = 0\n", "database.pool_max"),
        (
            "[database]\nretention_days = 0\n",
            "database.retention_days",
        ),
        ("[redis]\ndedup_ttl_s = 0\n", "redis.dedup_ttl_s"),
        (
            "[limits]\nper_bot_per_second = 0.0\n",
            "limits.per_bot_per_second",
        ),
        (
            "[limits]\nper_group_per_minute = -1.0\n",
            "limits.per_group_per_minute",
        ),
        ("[http]\nbody_limit_bytes = 1\n", "http.body_limit_bytes"),
        ("[http]\napi_token = \"short\"\n", "http.api_token"),
        ("[telegram]\nadmins = [-5]\n", "telegram.admins"),
        (
            "[telegram]\nrequest_timeout_ms = 5000\n",
            "telegram.request_timeout_ms",
        ),
        ("[telegram]\nrelay_chat_id = 5\n", "telegram.relay_chat_id"),
        ("[telegram]\napi_id = 123\n", "telegram.api_hash"),
        (
            "[telegram]\napi_id = 1\napi_hash = \"nothex\"\n",
            "telegram.api_hash",
        ),
        (
            "[telegram]\nbot_tokens = [\"not-a-token\"]\n",
            "telegram.bot_tokens[0]",
        ),
        ("[log]\nlevel = \"info,[[\"\n", "log.level"),
        (
            "[reader]\nresolves_per_day = 2000000\n",
            "reader.resolves_per_day",
        ),
        (
            "[reader]\njoins_first_day = 50\njoins_per_day = 20\n",
            "reader.joins_first_day",
        ),
        ("[reader]\njoin_ramp_days = 400\n", "reader.join_ramp_days"),
        (
            "[reader]\nquiet_check_min_s = 0\n",
            "reader.quiet_check_min_s",
        ),
    ];
    for (text, key) in cases {
        let (err, msg) = load_err(Some(text), &[]);
        assert_eq!(invalid_key(&err), *key, "{text}");
        assert!(msg.contains("kuryer.toml"), "{msg}");
    }
    let (err, msg) = load_err(None, &[("KURYER_DATABASE_POOL_MAX", "0")]);
    assert_eq!(invalid_key(&err), "database.pool_max");
    assert!(
        msg.contains("environment variable KURYER_DATABASE_POOL_MAX"),
        "{msg}"
    );
    assert!(msg.contains("out of range"), "{msg}");
}

#[test]
fn unparsable_urls_are_named_without_their_secrets() {
    let cases: &[(&str, &str)] = &[
        (
            "[database]\nurl = \"postgres://u:hunter2@[::1/db\"\n",
            "database.url",
        ),
        ("[database]\nurl = \"host=\"\n", "database.url"),
        (
            "[database]\nreplica_urls = [\"postgres://u:hunter2@\"]\n",
            "database.replica_urls[0]",
        ),
        ("[redis]\nurl = \"not a url hunter2\"\n", "redis.url"),
        (
            "[redis]\nurl = \"http://:hunter2@127.0.0.1\"\n",
            "redis.url",
        ),
        (
            "[telegram]\nbot_api_url = \"api.telegram.org\"\n",
            "telegram.bot_api_url",
        ),
        (
            "[telegram]\nbot_api_url = \"ftp://api.telegram.org\"\n",
            "telegram.bot_api_url",
        ),
        ("[http]\nlisten = \"localhost-ish\"\n", "http.listen"),
    ];
    for (text, key) in cases {
        let (err, msg) = load_err(Some(text), &[]);
        assert_eq!(invalid_key(&err), *key, "{text}: {msg}");
        assert!(!msg.contains("hunter2"), "secret echoed: {msg}");
    }
}

#[test]
fn a_token_given_as_a_plain_string_is_not_echoed() {
    let (err, msg) = load_err(
        None,
        &[(
            "KURYER_TELEGRAM_BOT_TOKENS",
            "123456:hunter2hunter2hunter2hunter2",
        )],
    );
    assert_eq!(invalid_key(&err), "telegram.bot_tokens");
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[test]
fn a_bad_token_is_named_but_never_echoed() {
    let (err, msg) = load_err(
        None,
        &[("KURYER_TELEGRAM_BOT_TOKENS", "[\"123:tooshort-hunter2\"]")],
    );
    assert_eq!(invalid_key(&err), "telegram.bot_tokens[0]");
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[test]
fn syntax_errors_name_the_file_and_line() {
    let (err, msg) = load_err(Some("[database\nurl = 1\n"), &[]);
    assert!(matches!(err, ConfigError::Syntax { .. }), "{msg}");
    assert!(
        msg.contains("kuryer.toml") && msg.contains("line 1"),
        "{msg}"
    );
}

/// `rediss://` used to pass validation while the client was
/// built without TLS, so dedup turned off without a word. TLS is built in
/// now, and the URL is checked against what the client can serve.
#[test]
fn a_tls_redis_url_is_served() {
    let loaded = load_from(
        None,
        &env(&[("KURYER_REDIS_URL", "rediss://:pw@cache.example:6380/0")]),
        None,
    )
    .unwrap();
    assert!(redis::Client::open(loaded.redis.url.expose()).is_ok());
}

/// The TOML parser's message quotes the offending line,
/// which went to stderr and the journal with the password on it.
#[test]
fn a_syntax_error_never_quotes_the_line_it_is_on() {
    let (err, msg) = load_err(
        Some("[database]\nurl = \"postgres://kuryer:hunter2@db/kuryer\" oops\n"),
        &[],
    );
    assert!(matches!(err, ConfigError::Syntax { .. }), "{msg}");
    assert!(msg.contains("line 2"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[test]
fn a_missing_explicit_file_is_an_error() {
    let err = kuryer::config::load(Some(Path::new("/nonexistent/kuryer.toml"))).unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/kuryer.toml"),
        "{err}"
    );
}

#[test]
fn redacted_output_hides_every_secret() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "k.toml",
        r#"
[database]
url = "postgres://kuryer:dbsecret1@127.0.0.1/kuryer"
replica_urls = ["postgres://kuryer:dbsecret2@127.0.0.2/kuryer"]
[redis]
url = "redis://:redissecret@127.0.0.1:6379/0"
[telegram]
bot_tokens = ["123456:tokensecretAAAAAAAAAAAAAAAAAAAA"]
api_id = 42
api_hash = "0123456789abcdef0123456789abcdef"
[http]
api_token = "apitokensecret-0123456789"
"#,
    );
    let c = load_from(Some(&file), &[], None).unwrap();
    let out = c.to_redacted_toml();
    for secret in [
        "dbsecret1",
        "dbsecret2",
        "redissecret",
        "tokensecret",
        "0123456789abcdef0123456789abcdef",
        "apitokensecret",
    ] {
        assert!(!out.contains(secret), "{secret} in\n{out}");
        assert!(!format!("{c:?}").contains(secret), "{secret} in Debug");
    }
    assert!(
        out.contains("postgres://kuryer:***@127.0.0.1/kuryer"),
        "{out}"
    );
    assert!(out.contains("api_hash = \"***\""), "{out}");
    // The redacted output is itself a valid configuration file, so an
    // operator can start from it.
    let reparsed: Config = toml::from_str(&out).unwrap();
    assert_eq!(reparsed.database.pool_max, c.database.pool_max);
}

/// `config.toml` in the repository documents every key with its default.
#[test]
fn shipped_config_toml_documents_every_key_with_its_default() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let shipped = load_from(Some(&path), &[], None).unwrap();
    let defaults = Config::default();
    assert_eq!(
        toml::to_string(&shipped).unwrap(),
        toml::to_string(&defaults).unwrap(),
        "config.toml's values differ from the built-in defaults"
    );
    // Every key of every section appears (optional ones commented out).
    let all: toml::Table = toml::from_str(&toml::to_string(&defaults).unwrap()).unwrap();
    for (section, keys) in &all {
        assert!(text.contains(&format!("[{section}]")), "section {section}");
        for key in keys.as_table().unwrap().keys() {
            assert!(
                text.contains(&format!("\n{key} = ")),
                "{section}.{key} undocumented"
            );
        }
    }
    for optional in ["api_hash", "relay_chat_id", "api_token", "session_key"] {
        assert!(
            text.contains(&format!("# {optional} = ")),
            "{optional} undocumented"
        );
    }
}

fn kuryer() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kuryer"));
    // The developer's own environment must not leak into these runs.
    for (k, _) in std::env::vars() {
        if k.starts_with("KURYER_") || k == "CREDENTIALS_DIRECTORY" {
            c.env_remove(k);
        }
    }
    c
}

#[test]
fn check_config_exits_2_naming_the_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "bad.toml",
        "[telegram]\nbot_api_url = \"https://x.org\"\nbot_tokenz = []\n",
    );
    let out = kuryer()
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("telegram.bot_tokenz"), "{stderr}");
    assert!(stderr.contains("bad.toml"), "{stderr}");
}

#[test]
fn check_config_prints_the_effective_config_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "ok.toml",
        "[http]\napi_token = \"supersecret-api-token\"\n\
         [telegram]\nbot_tokens = [\"123456:tokensecretAAAAAAAAAAAAAAAAAAAAAAAAA\"]\n",
    );
    let out = kuryer()
        .args(["check-config", "-c"])
        .arg(&file)
        .env(
            "KURYER_DATABASE_URL",
            "postgres://u:envpassword@127.0.0.1/db",
        )
        .env("KURYER_DATABASE_POOL_MAX", "33")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("pool_max = 33"), "{stdout}");
    assert!(stdout.contains("postgres://u:***@127.0.0.1/db"), "{stdout}");
    assert!(stdout.contains("api_token = \"***\""), "{stdout}");
    assert!(
        !stdout.contains("envpassword") && !stdout.contains("supersecret"),
        "{stdout}"
    );
}

#[test]
fn login_without_app_credentials_names_the_keys_and_every_command_has_help() {
    let out = kuryer()
        .args(["login"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("telegram.api_id") && err.contains("telegram.api_hash"),
        "{err}"
    );
    for cmd in [
        "run",
        "migrate",
        "check-config",
        "login",
        "accounts",
        "logout",
        "demo",
    ] {
        let out = kuryer().args([cmd, "--help"]).output().unwrap();
        assert!(out.status.success(), "{cmd} --help");
    }
}

/// `check-config` calls valid only what `run` accepts, and `run` without a
/// token says where it looked and every way to give one.
#[test]
fn no_bot_token_is_refused_by_check_config_as_by_run_and_says_how_to_give_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "empty.toml", "[telegram]\nbot_tokens = []\n");
    let out = kuryer()
        .args(["check-config", "--config"])
        .arg(&file)
        .env_remove("KURYER_TELEGRAM_BOT_TOKENS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("telegram.bot_tokens") && err.contains("empty.toml"),
        "{err}"
    );
    // No file in the working directory, none given: `run` says so.
    let out = kuryer()
        .arg("run")
        .current_dir(dir.path())
        .env_remove("KURYER_TELEGRAM_BOT_TOKENS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "no configuration file was found",
        "--config",
        "KURYER_TELEGRAM_BOT_TOKENS",
        "credential",
    ] {
        assert!(err.contains(want), "{want} missing: {err}");
    }
}

/// A token with the right shape but a short secret is told what is wrong
/// with it (never the token itself).
#[test]
fn a_short_secret_is_named_as_such_without_repeating_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "short.toml",
        "[telegram]\nbot_tokens = [\"999:wrongSecret\"]\n",
    );
    let out = kuryer()
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("telegram.bot_tokens[0]") && err.contains("has 11 characters"),
        "{err}"
    );
    assert!(!err.contains("wrongSecret"), "{err}");
}
