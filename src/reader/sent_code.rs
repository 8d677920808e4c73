//! What `auth.sendCode` answered, told to the operator: where the code
//! went and what to type, or — when no code can reach kuryer — what to do
//! instead. Every `auth.SentCode` and `auth.SentCodeType` of grammers'
//! layer (`grammers-tl-types` `tl/api.tl`) is covered; the meaning of each
//! is from <https://core.telegram.org/api/auth> ("Sending the code", the
//! code types and "Fragment", "Email verification", "Firebase").

use grammers_client::tl;

/// Where the code went, as the prompt for it.
#[derive(Debug, PartialEq)]
pub enum Delivery {
    /// Ask for the code with this prompt; sign in with this hash.
    Code {
        /// `phone_code_hash` for `auth.signIn`.
        phone_code_hash: String,
        /// What the operator is told and asked.
        prompt: String,
    },
    /// Already signed in (`auth.sentCodeSuccess`): no code needed.
    SignedIn(Box<tl::enums::auth::Authorization>),
}

/// No code can reach kuryer: what the operator must do; one line each.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoCode {
    /// `auth.sentCodeTypeSetUpEmailRequired`.
    #[error(
        "Telegram wants a login email set up before it sends this account a code: sign in with an official Telegram app, add a login email (Settings → Privacy and Security → Login Email), then run kuryer login again"
    )]
    EmailSetupRequired,
    /// `auth.sentCodeTypeFirebaseSms`: only official mobile apps pass the
    /// device check that comes first.
    #[error(
        "Telegram wants to send this code through Firebase device verification, which only official mobile apps can pass: sign in with an official Telegram app first, then run kuryer login again"
    )]
    Firebase,
    /// `auth.sentCodePaymentRequired`.
    #[error(
        "Telegram asks for a payment ({amount} {currency}, product {product}) before it sends a code to this number by SMS: sign in with an official Telegram app first, or write to {support}"
    )]
    PaymentRequired {
        /// Minor units, as Telegram states them.
        amount: i64,
        /// Currency code.
        currency: String,
        /// Store product id.
        product: String,
        /// Telegram's support address for this.
        support: String,
    },
}

fn code_type(t: &tl::enums::auth::CodeType) -> &'static str {
    use tl::enums::auth::CodeType as C;
    match t {
        C::Sms => "by SMS",
        C::Call => "by a phone call",
        C::FlashCall => "by a flash call",
        C::MissedCall => "by a missed call",
        C::FragmentSms => "through Fragment",
    }
}

/// The operator's prompt for an `auth.sentCode`, or why no code will come.
pub fn delivery(sent: tl::enums::auth::SentCode, phone: &str) -> Result<Delivery, NoCode> {
    use tl::enums::auth::SentCodeType as T;
    let code = match sent {
        tl::enums::auth::SentCode::Code(code) => code,
        tl::enums::auth::SentCode::Success(s) => {
            return Ok(Delivery::SignedIn(Box::new(s.authorization)));
        }
        tl::enums::auth::SentCode::PaymentRequired(p) => {
            return Err(NoCode::PaymentRequired {
                amount: p.amount,
                currency: p.currency,
                product: p.store_product,
                support: p.support_email_address,
            });
        }
    };
    let what = match &code.r#type {
        T::App(t) => format!(
            "Telegram sent a {}-digit code to the Telegram app where this account is signed in (not by SMS)",
            t.length
        ),
        T::Sms(t) => format!("Telegram sent a {}-digit code by SMS to {phone}", t.length),
        T::Call(t) => format!(
            "Telegram will call {phone} and read out a {}-digit code",
            t.length
        ),
        T::FlashCall(t) => format!(
            "Telegram will ring {phone} and hang up at once: the code is the calling number (it matches {})",
            t.pattern
        ),
        T::MissedCall(t) => format!(
            "Telegram will call {phone} from a number starting {}: the code is its last {} digits",
            t.prefix, t.length
        ),
        T::EmailCode(t) => format!(
            "Telegram sent a {}-digit code to the account's login email {}",
            t.length, t.email_pattern
        ),
        T::FragmentSms(t) => format!(
            "{phone} is a Fragment number: the {}-digit code is at {} (sign in there with the wallet that holds the number)",
            t.length, t.url
        ),
        T::SmsWord(t) => format!(
            "Telegram sent a word by SMS to {phone}{}; type the word",
            t.beginning
                .as_deref()
                .map(|b| format!(" (it begins with {b:?})"))
                .unwrap_or_default()
        ),
        T::SmsPhrase(t) => format!(
            "Telegram sent a phrase by SMS to {phone}{}; type the phrase",
            t.beginning
                .as_deref()
                .map(|b| format!(" (it begins with {b:?})"))
                .unwrap_or_default()
        ),
        T::SetUpEmailRequired(_) => return Err(NoCode::EmailSetupRequired),
        T::FirebaseSms(_) => return Err(NoCode::Firebase),
    };
    let later = match (&code.next_type, code.timeout) {
        (Some(next), Some(secs)) => format!(
            " (nothing after {secs} s? run kuryer login again and Telegram sends it {})",
            code_type(next)
        ),
        (Some(next), None) => format!(
            " (nothing? run kuryer login again and Telegram sends it {})",
            code_type(next)
        ),
        _ => String::new(),
    };
    Ok(Delivery::Code {
        phone_code_hash: code.phone_code_hash,
        prompt: format!("{what}{later}.\nLogin code: "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tl::enums::auth::SentCodeType as T;
    use tl::types::auth as t;

    fn sent(kind: T) -> tl::enums::auth::SentCode {
        tl::enums::auth::SentCode::Code(t::SentCode {
            r#type: kind,
            phone_code_hash: "h".to_owned(),
            next_type: Some(tl::enums::auth::CodeType::Sms),
            timeout: Some(60),
        })
    }

    fn prompt(kind: T) -> String {
        match delivery(sent(kind), "+998901234567") {
            Ok(Delivery::Code {
                prompt,
                phone_code_hash,
            }) => {
                assert_eq!(phone_code_hash, "h");
                prompt
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_code_type_says_where_the_code_is() {
        let cases = [
            (T::App(t::SentCodeTypeApp { length: 5 }), "Telegram app"),
            (
                T::Sms(t::SentCodeTypeSms { length: 5 }),
                "by SMS to +998901234567",
            ),
            (T::Call(t::SentCodeTypeCall { length: 5 }), "will call"),
            (
                T::FlashCall(t::SentCodeTypeFlashCall {
                    pattern: "+998*".to_owned(),
                }),
                "calling number",
            ),
            (
                T::MissedCall(t::SentCodeTypeMissedCall {
                    prefix: "+99890".to_owned(),
                    length: 4,
                }),
                "last 4 digits",
            ),
            (
                T::EmailCode(t::SentCodeTypeEmailCode {
                    apple_signin_allowed: false,
                    google_signin_allowed: false,
                    email_pattern: "a***@example.com".to_owned(),
                    length: 6,
                    reset_available_period: None,
                    reset_pending_date: None,
                }),
                "login email a***@example.com",
            ),
            (
                T::FragmentSms(t::SentCodeTypeFragmentSms {
                    url: "https://fragment.com/login".to_owned(),
                    length: 5,
                }),
                "https://fragment.com/login",
            ),
            (
                T::SmsWord(t::SentCodeTypeSmsWord {
                    beginning: Some("ap".to_owned()),
                }),
                "type the word",
            ),
            (
                T::SmsPhrase(t::SentCodeTypeSmsPhrase { beginning: None }),
                "type the phrase",
            ),
        ];
        for (kind, says) in cases {
            let p = prompt(kind);
            assert!(p.contains(says), "{p}");
            assert!(p.contains("after 60 s") && p.contains("by SMS"), "{p}");
            assert!(p.ends_with("Login code: "), "{p}");
        }
    }

    #[test]
    fn no_code_is_a_clear_instruction() {
        let e = delivery(
            sent(T::SetUpEmailRequired(t::SentCodeTypeSetUpEmailRequired {
                apple_signin_allowed: false,
                google_signin_allowed: false,
            })),
            "+1",
        )
        .unwrap_err();
        assert_eq!(e, NoCode::EmailSetupRequired);
        assert!(e.to_string().contains("Login Email"));
        let e = delivery(
            sent(T::FirebaseSms(t::SentCodeTypeFirebaseSms {
                nonce: None,
                play_integrity_project_id: None,
                play_integrity_nonce: None,
                receipt: None,
                push_timeout: None,
                length: 5,
            })),
            "+1",
        )
        .unwrap_err();
        assert_eq!(e, NoCode::Firebase);
        let e = delivery(
            tl::enums::auth::SentCode::PaymentRequired(t::SentCodePaymentRequired {
                store_product: "sms.login".to_owned(),
                phone_code_hash: "h".to_owned(),
                support_email_address: "sms@telegram.org".to_owned(),
                support_email_subject: "x".to_owned(),
                premium_days: 7,
                currency: "USD".to_owned(),
                amount: 99,
            }),
            "+1",
        )
        .unwrap_err();
        assert!(e.to_string().contains("99 USD"), "{e}");
        for e in [NoCode::EmailSetupRequired, NoCode::Firebase] {
            assert!(!e.to_string().contains('\n'));
        }
    }
}
