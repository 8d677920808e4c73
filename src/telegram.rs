//! The Bot API's leaves that every layer above may use: a bot's id from its
//! token, and the teloxide bots built for the configured tokens.

use std::time::Duration;

use teloxide::Bot;

use crate::secret::Secret;

/// The bot id in a token (`<bot id>:<secret>`); 0 when it has none.
pub fn bot_id_of(token: &str) -> i64 {
    token
        .split_once(':')
        .and_then(|(id, _)| id.parse().ok())
        .unwrap_or(0)
}

/// Why the bots could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BotsError {
    #[error("telegram.bot_api_url: {0}")]
    ApiUrl(#[from] url::ParseError),
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// teloxide bots for the configured tokens, sharing one HTTP client (one
/// connection pool) and honouring `bot_api_url`.
pub fn build_bots(
    tokens: &[Secret],
    api_url: &str,
    timeout: Duration,
) -> Result<Vec<Bot>, BotsError> {
    let url = reqwest::Url::parse(api_url)?;
    let client = teloxide::net::default_reqwest_settings()
        .timeout(timeout)
        .pool_max_idle_per_host(256)
        .build()?;
    Ok(tokens
        .iter()
        .map(|t| Bot::with_client(t.expose(), client.clone()).set_api_url(url.clone()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tokens_bot_id_is_the_part_before_the_colon() {
        assert_eq!(bot_id_of("123456:ABC-def"), 123456);
        assert_eq!(bot_id_of("no-colon"), 0);
        assert_eq!(bot_id_of("x:y"), 0);
    }
}
