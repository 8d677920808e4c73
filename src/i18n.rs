//! The bot's texts in Uzbek, Russian and English, from the Fluent files in
//! `locales/` (compiled into the binary: a daemon needs no files beside it).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};

/// A language the bot speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    /// O'zbekcha.
    Uz,
    /// Русский.
    Ru,
    /// English.
    En,
}

impl Lang {
    /// Every language, English (the default) first.
    pub const ALL: [Lang; 3] = [Lang::En, Lang::Ru, Lang::Uz];

    /// From Telegram's `language_code` (`uz`, `ru-RU`, …): uz, ru, else en.
    pub fn from_telegram(code: Option<&str>) -> Self {
        let code = code.unwrap_or_default().to_ascii_lowercase();
        match code.split(['-', '_']).next().unwrap_or_default() {
            "uz" => Lang::Uz,
            "ru" => Lang::Ru,
            _ => Lang::En,
        }
    }

    /// From the stored spelling (`users.language`) or a `/lang` argument.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "uz" => Some(Lang::Uz),
            "ru" => Some(Lang::Ru),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The stored spelling.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Uz => "uz",
            Lang::Ru => "ru",
            Lang::En => "en",
        }
    }

    fn source(self) -> &'static str {
        match self {
            Lang::Uz => include_str!("../locales/uz/bot.ftl"),
            Lang::Ru => include_str!("../locales/ru/bot.ftl"),
            Lang::En => include_str!("../locales/en/bot.ftl"),
        }
    }
}

/// One bundle per language.
pub struct Texts {
    bundles: HashMap<Lang, FluentBundle<FluentResource>>,
}

impl Texts {
    /// The texts of this process, parsed on first use and shared from then
    /// on: they are compiled into the binary and never change, so the bot,
    /// the digest worker, the destination handler and the daemon's notices
    /// all read one copy.
    pub fn shared() -> Arc<Self> {
        static TEXTS: LazyLock<Arc<Texts>> = LazyLock::new(|| Arc::new(Texts::load()));
        TEXTS.clone()
    }

    /// Loads the three files (use [`Texts::shared`]; this parses them again). They are part of the binary and tested, so a
    /// broken one is a build defect: it panics at start-up, not per message.
    pub fn load() -> Self {
        let bundles = Lang::ALL
            .into_iter()
            .map(|lang| {
                let res = FluentResource::try_new(lang.source().to_owned())
                    .unwrap_or_else(|(_, e)| panic!("locales/{}/bot.ftl: {e:?}", lang.code()));
                let id = lang.code().parse().expect("a language tag");
                let mut bundle = FluentBundle::new_concurrent(vec![id]);
                // Isolation marks (U+2068/U+2069) would show up in Telegram
                // around every name.
                bundle.set_use_isolating(false);
                bundle
                    .add_resource(res)
                    .unwrap_or_else(|e| panic!("locales/{}/bot.ftl: {e:?}", lang.code()));
                (lang, bundle)
            })
            .collect();
        Self { bundles }
    }

    /// The text `key` in `lang` with `args`; the key itself when missing
    /// (the test makes that impossible for the shipped files).
    pub fn get(&self, lang: Lang, key: &str, args: &[(&str, Arg)]) -> String {
        let bundle = &self.bundles[&lang];
        let Some(pattern) = bundle.get_message(key).and_then(|m| m.value()) else {
            tracing::error!(key, lang = lang.code(), "A bot text is missing.");
            return key.to_owned();
        };
        let mut fargs = FluentArgs::new();
        for (name, value) in args {
            match value {
                Arg::S(s) => fargs.set(*name, FluentValue::from(s.as_str())),
                Arg::N(n) => fargs.set(*name, FluentValue::from(*n)),
            }
        }
        let mut errors = Vec::new();
        let text = bundle.format_pattern(pattern, Some(&fargs), &mut errors);
        if !errors.is_empty() {
            tracing::error!(key, lang = lang.code(), errors = ?errors, "A bot text did not format.");
        }
        text.into_owned()
    }
}

/// A value for a placeholder.
#[derive(Debug, Clone)]
pub enum Arg {
    /// Text (shown as given).
    S(String),
    /// A number.
    N(i64),
}

impl From<&str> for Arg {
    fn from(s: &str) -> Self {
        Arg::S(s.to_owned())
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Self {
        Arg::S(s)
    }
}

impl From<i64> for Arg {
    fn from(n: i64) -> Self {
        Arg::N(n)
    }
}

impl From<usize> for Arg {
    fn from(n: usize) -> Self {
        Arg::N(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use fluent_syntax::ast;

    use super::*;

    /// Message id → the variables its value and attributes use.
    fn keys(lang: Lang) -> BTreeMap<String, BTreeSet<String>> {
        fn walk(p: &ast::Pattern<&str>, out: &mut BTreeSet<String>) {
            for el in &p.elements {
                if let ast::PatternElement::Placeable { expression } = el {
                    expr(expression, out);
                }
            }
        }
        fn expr(e: &ast::Expression<&str>, out: &mut BTreeSet<String>) {
            match e {
                ast::Expression::Inline(i) => inline(i, out),
                ast::Expression::Select { selector, variants } => {
                    inline(selector, out);
                    for v in variants {
                        walk(&v.value, out);
                    }
                }
            }
        }
        fn inline(i: &ast::InlineExpression<&str>, out: &mut BTreeSet<String>) {
            match i {
                ast::InlineExpression::VariableReference { id } => {
                    out.insert(id.name.to_owned());
                }
                ast::InlineExpression::Placeable { expression } => expr(expression, out),
                _ => {}
            }
        }
        let res = fluent_syntax::parser::parse(lang.source())
            .unwrap_or_else(|(_, e)| panic!("{}: {e:?}", lang.code()));
        let mut out = BTreeMap::new();
        for entry in res.body {
            if let ast::Entry::Message(m) = entry {
                let mut vars = BTreeSet::new();
                if let Some(v) = &m.value {
                    walk(v, &mut vars);
                }
                for a in &m.attributes {
                    walk(&a.value, &mut vars);
                }
                assert!(
                    out.insert(m.id.name.to_owned(), vars).is_none(),
                    "{}: {} twice",
                    lang.code(),
                    m.id.name
                );
            }
        }
        out
    }

    #[test]
    fn every_key_exists_in_every_language_with_the_same_placeholders() {
        let en = keys(Lang::En);
        assert!(en.len() > 50, "{}", en.len());
        for lang in [Lang::Ru, Lang::Uz] {
            let other = keys(lang);
            let missing: Vec<_> = en.keys().filter(|k| !other.contains_key(*k)).collect();
            let extra: Vec<_> = other.keys().filter(|k| !en.contains_key(*k)).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{}: missing {missing:?}, extra {extra:?}",
                lang.code()
            );
            for (k, vars) in &en {
                assert_eq!(&other[k], vars, "{}: placeholders of {k}", lang.code());
            }
        }
    }

    #[test]
    fn texts_format_without_isolation_marks_and_languages_map_from_telegram() {
        let t = Texts::load();
        let s = t.get(Lang::Ru, "add-ok", &[("name", "durov".into())]);
        assert_eq!(s, "✅ @durov: подписка оформлена.");
        assert_eq!(Lang::from_telegram(Some("uz-UZ")), Lang::Uz);
        assert_eq!(Lang::from_telegram(Some("ru")), Lang::Ru);
        assert_eq!(Lang::from_telegram(Some("de")), Lang::En);
        assert_eq!(Lang::from_telegram(None), Lang::En);
        assert_eq!(t.get(Lang::En, "no-such-key", &[]), "no-such-key");
    }
}
