//! Loading: the file, the environment (`KURYER_<SECTION>_<KEY>`) and
//! systemd credentials as named figment providers, and errors that name the
//! source and the dotted key, never a secret.

use super::*;

/// Finds the configuration file: `explicit` if given (it must exist), else
/// the first of [`DEFAULT_PATHS`] that exists, else none.
pub fn find_file(explicit: Option<&Path>) -> Result<Option<PathBuf>, ConfigError> {
    if let Some(path) = explicit {
        if !path.exists() {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        return Ok(Some(path.to_owned()));
    }
    Ok(DEFAULT_PATHS.iter().map(PathBuf::from).find(|p| p.exists()))
}

/// Loads the configuration from the process environment.
pub fn load(explicit: Option<&Path>) -> Result<Loaded, ConfigError> {
    let path = find_file(explicit)?;
    let env: Vec<(String, String)> = std::env::vars().collect();
    let credentials_dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let config = load_from(path.as_deref(), &env, credentials_dir.as_deref())?;
    Ok(Loaded { config, path })
}

/// Loads the configuration from explicit sources, so tests need not touch
/// the process environment.
pub fn load_from(
    path: Option<&Path>,
    env: &[(String, String)],
    credentials_dir: Option<&Path>,
) -> Result<Config, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if let Some(path) = path {
        // Read it ourselves first: figment ignores a file it cannot read.
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        figment = figment.merge(Toml::file_exact(path));
    }
    for source in env_sources(env) {
        figment = figment.merge(source);
    }
    if let Some(dir) = credentials_dir {
        for source in credential_sources(dir)? {
            figment = figment.merge(source);
        }
    }
    let config: Config = figment.extract().map_err(|e| from_figment(e, &figment))?;
    config.validate().map_err(|(key, message)| {
        let mut origin = origin_of(&figment, &key);
        // A key that is missing rather than wrong ("api_hash is required when
        // api_id is set") has no source of its own: blame the file, if any.
        if origin == BUILT_IN
            && let Some(path) = path
        {
            origin = format!("config file {}", path.display());
        }
        ConfigError::Invalid {
            origin,
            key,
            message,
        }
    })?;
    Ok(config)
}

/// One key set by one named source (an environment variable or a systemd
/// credential), so an error can name exactly where a bad value came from.
struct KeySource {
    origin: String,
    key: String,
    value: figment::value::Value,
}

impl figment::Provider for KeySource {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(self.origin.clone())
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        let nested = figment::util::nest(&self.key, self.value.clone());
        let dict = nested.into_dict().unwrap_or_default();
        Ok(figment::Profile::Default.collect(dict))
    }
}

/// `KURYER_DATABASE_POOL_MAX` → `database.pool_max`: the first `_` after the
/// prefix separates the section from the key (section names have none).
/// Values are read as TOML-like scalars or arrays (`30`, `true`,
/// `["a", "b"]`), else taken as text.
fn env_sources(env: &[(String, String)]) -> Vec<KeySource> {
    let mut sources: Vec<KeySource> = env
        .iter()
        .filter_map(|(name, raw)| {
            let rest = name.strip_prefix(ENV_PREFIX)?;
            if rest.is_empty() {
                return None;
            }
            let key = match rest.split_once('_') {
                Some((section, key)) => format!("{}.{}", section, key).to_ascii_lowercase(),
                None => rest.to_ascii_lowercase(),
            };
            let value = figment::value::Value::from_str(raw).unwrap_or_else(|e| match e {});
            Some(KeySource {
                origin: format!("environment variable {name}"),
                key,
                value,
            })
        })
        .collect();
    // Deterministic precedence whatever order the environment lists them in.
    sources.sort_by(|a, b| a.origin.cmp(&b.origin));
    sources
}

fn credential_sources(dir: &Path) -> Result<Vec<KeySource>, ConfigError> {
    let mut sources = Vec::new();
    for (name, key) in CREDENTIALS {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        let raw = std::fs::read_to_string(&path).map_err(|source| ConfigError::Credential {
            name: name.to_owned(),
            source,
        })?;
        sources.push(KeySource {
            origin: format!("systemd credential {name}"),
            key: key.to_owned(),
            value: credential_value(key, &raw),
        });
    }
    Ok(sources)
}

/// List-valued credentials hold one value a line (blank lines and `#` comments
/// skipped); the others are the file's content without the trailing newline.
fn credential_value(key: &str, raw: &str) -> figment::value::Value {
    use figment::value::{Tag, Value};
    if key.ends_with("bot_tokens") || key.ends_with("replica_urls") {
        let items = raw
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| Value::String(Tag::Default, l.to_owned()))
            .collect();
        Value::Array(Tag::Default, items)
    } else {
        Value::String(Tag::Default, raw.trim_end_matches(['\n', '\r']).to_owned())
    }
}

/// Names the source that supplied `key`'s value: the file, the environment
/// variable, the credential, or the built-in defaults.
fn origin_of(figment: &Figment, key: &str) -> String {
    // `telegram.bot_tokens[0]` was supplied with `telegram.bot_tokens`.
    let key = key.split('[').next().unwrap_or(key);
    match figment.find_metadata(key) {
        Some(meta) => describe_metadata(meta),
        None => "configuration".to_owned(),
    }
}

fn describe_metadata(meta: &figment::Metadata) -> String {
    match &meta.source {
        Some(figment::Source::File(path)) => format!("config file {}", path.display()),
        _ if meta.name.starts_with("environment variable")
            || meta.name.starts_with("systemd credential") =>
        {
            meta.name.to_string()
        }
        _ => BUILT_IN.to_owned(),
    }
}

/// Turns figment's error into one that names the source and the dotted key.
fn from_figment(error: figment::Error, figment: &Figment) -> ConfigError {
    use figment::error::Kind;
    // For an unknown key, figment's path already ends with the key itself.
    let key = error.path.join(".");
    let origin = match &error.metadata {
        Some(meta) => describe_metadata(meta),
        None => origin_of(figment, &key),
    };
    let message = match &error.kind {
        Kind::UnknownField(_, []) => "unknown key".to_owned(),
        Kind::UnknownField(_, expected) => {
            format!("unknown key (known keys here: {})", expected.join(", "))
        }
        // A string's content is never repeated: it may be a token or a password.
        Kind::InvalidType(actual, expected) => {
            format!(
                "wrong type: found {}, expected {expected}",
                describe_actual(actual)
            )
        }
        Kind::InvalidValue(actual, expected) => {
            format!(
                "invalid value: found {}, expected {expected}",
                describe_actual(actual)
            )
        }
        Kind::UnknownVariant(found, expected) => {
            format!("unknown value `{found}` (one of: {})", expected.join(", "))
        }
        Kind::Message(m) if key.is_empty() => {
            return ConfigError::Syntax {
                origin,
                message: without_source_lines(m),
            };
        }
        Kind::Message(m) => m.clone(),
        other => other.to_string(),
    };
    if key.is_empty() {
        ConfigError::Syntax { origin, message }
    } else {
        ConfigError::Invalid {
            origin,
            key,
            message,
        }
    }
}

/// A TOML parse error without the excerpt of the file it quotes: the line
/// it shows may hold a password or a token (`url = "postgres://u:secret@…`),
/// and the error goes to stderr and the journal. What stays: where (line
/// and column) and why.
fn without_source_lines(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && !l
                    .trim_start_matches(|c: char| c.is_ascii_digit())
                    .trim_start()
                    .starts_with('|')
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn describe_actual(actual: &figment::error::Actual) -> String {
    match actual {
        figment::error::Actual::Str(_) => "a string".to_owned(),
        other => other.to_string(),
    }
}
