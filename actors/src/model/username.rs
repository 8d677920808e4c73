//! A public channel's username: every form a user pastes (`@name`,
//! `t.me/name`, links with a post or a query) parsed, checked against
//! Telegram's rules and kept in lower case.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A public channel's username, validated and normalised to lower case.
///
/// Telegram usernames are case-insensitive, so the lower-case form is the key
/// we store and compare; the form the user typed is kept only for display.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChannelUsername(String);

/// Why a string is not a channel username.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    /// Nothing to parse.
    #[error("channel name is empty")]
    Empty,
    /// An invite link: the channel is private.
    #[error(
        "invite links (t.me/+… or t.me/joinchat/…) point to private channels, which kuryer cannot read; send the channel's public @username"
    )]
    InviteLink,
    /// Too short or too long (the length found).
    #[error("channel name must be 4 to 32 characters long, got {0}")]
    Length(usize),
    /// Does not start with a letter.
    #[error("channel name must start with a letter")]
    FirstChar,
    /// A character Telegram does not allow (the first one found).
    #[error("channel name may contain only Latin letters, digits and underscores; found {0:?}")]
    BadChar(char),
    /// Ends with an underscore.
    #[error("channel name must not end with an underscore")]
    TrailingUnderscore,
    /// A link, but not to Telegram.
    #[error("this link is not a Telegram channel link")]
    NotTelegramLink,
}

impl ChannelUsername {
    /// The shortest username Telegram gives out (collectible, bought at auction).
    pub(crate) const MIN_LEN: usize = 4;
    /// The longest username Telegram allows.
    pub(crate) const MAX_LEN: usize = 32;

    /// Parses what a user may paste: `name`, `@name`, `t.me/name`,
    /// `https://t.me/name`, `https://t.me/s/name`, `telegram.me/name`, or a
    /// post link `https://t.me/name/123` (which names its channel).
    ///
    /// Rules (Telegram's): 5–32 characters (4 for collectible names), Latin
    /// letters, digits and underscores, starting with a letter and not ending
    /// with an underscore.
    pub fn parse(input: &str) -> Result<Self, UsernameError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(UsernameError::Empty);
        }
        let name = if let Some(rest) = s.strip_prefix('@') {
            rest
        } else if let Some(path) = strip_link_host(s) {
            let mut parts = path.split(['/', '?', '#']).filter(|p| !p.is_empty());
            let first = parts.next().ok_or(UsernameError::Empty)?;
            if first.starts_with('+') || first.eq_ignore_ascii_case("joinchat") {
                return Err(UsernameError::InviteLink);
            }
            if first == "s" {
                // `t.me/s/name` is the web preview of a public channel.
                parts.next().ok_or(UsernameError::Empty)?
            } else {
                first
            }
        } else if s.contains("://") || s.contains('/') {
            return Err(UsernameError::NotTelegramLink);
        } else {
            s
        };
        Self::validate(name)?;
        Ok(Self(name.to_ascii_lowercase()))
    }

    fn validate(name: &str) -> Result<(), UsernameError> {
        if name.is_empty() {
            return Err(UsernameError::Empty);
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
        {
            return Err(UsernameError::BadChar(c));
        }
        let len = name.len();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(UsernameError::Length(len));
        }
        if !name.as_bytes()[0].is_ascii_alphabetic() {
            return Err(UsernameError::FirstChar);
        }
        if name.ends_with('_') {
            return Err(UsernameError::TrailingUnderscore);
        }
        Ok(())
    }

    /// The normalised (lower-case) name, without `@`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Returns the path after a Telegram link host, or `None` when `s` is not a
/// Telegram link.
fn strip_link_host(s: &str) -> Option<&str> {
    let no_scheme = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let no_www = no_scheme.strip_prefix("www.").unwrap_or(no_scheme);
    let (host, path) = no_www.split_once('/')?;
    let host = host.to_ascii_lowercase();
    matches!(host.as_str(), "t.me" | "telegram.me" | "telegram.dog").then_some(path)
}

impl fmt::Display for ChannelUsername {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}", self.0)
    }
}

impl TryFrom<String> for ChannelUsername {
    type Error = UsernameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ChannelUsername> for String {
    fn from(value: ChannelUsername) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_form_a_user_pastes() {
        for input in [
            "test_channel",
            "@test_channel",
            "  @Test_Channel ",
            "t.me/test_channel",
            "https://t.me/test_channel",
            "http://t.me/test_channel/",
            "https://www.t.me/test_channel",
            "https://t.me/s/test_channel",
            "https://t.me/test_channel/1234",
            "https://telegram.me/test_channel?single",
            "T.ME/test_channel",
        ] {
            let name = ChannelUsername::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(name.as_str(), "test_channel", "{input}");
        }
    }

    #[test]
    fn collectible_four_letter_names_are_valid() {
        assert_eq!(ChannelUsername::parse("@abcd").unwrap().as_str(), "abcd");
    }

    #[test]
    fn rejects_what_telegram_rejects() {
        use UsernameError::*;
        let cases: &[(&str, UsernameError)] = &[
            ("", Empty),
            ("@", Empty),
            ("abc", Length(3)),
            (&"a".repeat(33), Length(33)),
            ("1channel", FirstChar),
            ("_channel", FirstChar),
            ("chan-nel", BadChar('-')),
            ("chan nel", BadChar(' ')),
            ("канал_тест", BadChar('к')),
            ("channel_", TrailingUnderscore),
            ("https://t.me/+AbCdEf123", InviteLink),
            ("t.me/joinchat/AbCdEf", InviteLink),
            ("https://example.com/channel", NotTelegramLink),
            ("https://t.me/", Empty),
        ];
        for (input, want) in cases {
            assert_eq!(
                ChannelUsername::parse(input).as_ref(),
                Err(want),
                "{input:?}"
            );
        }
    }
}
