//! The login calls: `auth.sendCode`, `auth.signIn`, `account.getPassword`,
//! `auth.checkPassword` (SRP verified server-side).

use std::time::Instant;

use grammers_tl_types::{self as tl, Serializable};

use super::{CallCtx, Reply, account_of, err};
use crate::mtproto::login;
use crate::mtproto::objects;
use crate::mtproto::world::World;

pub(super) fn send_code(
    world: &mut World,
    ctx: &CallCtx,
    req: &tl::functions::auth::SendCode,
) -> Reply {
    let phone = normalize_phone(&req.phone_number);
    let Some(account) = world.phones.get(&phone) else {
        return Err(err(400, "PHONE_NUMBER_INVALID"));
    };
    // A registered number asked on another DC than its own: "we request
    // that it establish a connection with a different DC first
    // (PHONE_MIGRATE_X error)" (<https://core.telegram.org/api/datacenter>,
    // "Registration/Authorization"); 303 is the code of every `*_MIGRATE_X`
    // (<https://core.telegram.org/api/errors#303-see-other>).
    let home = world.accounts.get(account).map_or(ctx.dc_id, |a| a.home_dc);
    if home != ctx.dc_id {
        return Err(err(303, &format!("PHONE_MIGRATE_{home}")));
    }
    let kind = world
        .accounts
        .get(account)
        .and_then(|a| a.code_type.clone())
        .unwrap_or_else(|| tl::types::auth::SentCodeTypeApp { length: 5 }.into());
    let hash = format!("{:016x}", rand::random::<u64>());
    let answer = |kind| {
        Ok(tl::enums::auth::SentCode::Code(tl::types::auth::SentCode {
            r#type: kind,
            phone_code_hash: hash.clone(),
            next_type: None,
            timeout: None,
        })
        .to_bytes())
    };
    // No code until a login email is set up: the answer carries only the
    // hash that `account.sendVerifyEmailCode` would take
    // (<https://core.telegram.org/api/auth#email-verification>).
    if matches!(kind, tl::enums::auth::SentCodeType::SetUpEmailRequired(_)) {
        return answer(kind);
    }
    let code = format!("{:05}", rand::random::<u32>() % 100_000);
    world.codes.insert(
        phone,
        login::PendingCode {
            phone_code_hash: hash.clone(),
            code,
            sent_at: Instant::now(),
        },
    );
    answer(kind)
}

pub(crate) fn normalize_phone(p: &str) -> String {
    p.chars().filter(char::is_ascii_digit).collect()
}

pub(super) fn authorization(world: &World, account: i64) -> Reply {
    Ok(
        tl::enums::auth::Authorization::Authorization(tl::types::auth::Authorization {
            setup_password_required: false,
            otherwise_relogin_days: None,
            tmp_sessions: None,
            future_auth_token: None,
            user: objects::user(account_of(world, account)?, true),
        })
        .to_bytes(),
    )
}

pub(super) fn sign_in(
    world: &mut World,
    ctx: &CallCtx,
    req: &tl::functions::auth::SignIn,
) -> Reply {
    let phone = normalize_phone(&req.phone_number);
    let ttl = world.settings.code_ttl;
    let Some(pending) = world.codes.get(&phone) else {
        return Err(err(400, "PHONE_CODE_EXPIRED"));
    };
    if pending.phone_code_hash != req.phone_code_hash {
        return Err(err(400, "PHONE_CODE_HASH_INVALID"));
    }
    if pending.sent_at.elapsed() > ttl {
        world.codes.remove(&phone);
        return Err(err(400, "PHONE_CODE_EXPIRED"));
    }
    if req.phone_code.as_deref() != Some(pending.code.as_str()) {
        return Err(err(400, "PHONE_CODE_INVALID"));
    }
    world.codes.remove(&phone);
    let account = world.phones[&phone];
    let has_password = world.accounts[&account].password.is_some();
    let key = world
        .keys
        .get_mut(&ctx.key_id)
        .ok_or_else(|| err(401, "AUTH_KEY_UNREGISTERED"))?;
    if has_password {
        key.password_pending = Some(account);
        return Err(err(401, "SESSION_PASSWORD_NEEDED"));
    }
    key.account = Some(account);
    authorization(world, account)
}

/// The account whose password this key may check: the signed-in one, or
/// the one a code sign-in left waiting for its password.
pub(super) fn password_account(world: &World, ctx: &CallCtx, account: Option<i64>) -> Option<i64> {
    account.or_else(|| world.keys.get(&ctx.key_id)?.password_pending)
}

pub(super) fn get_password(world: &mut World, ctx: &CallCtx, account: Option<i64>) -> Reply {
    let account =
        password_account(world, ctx, account).ok_or_else(|| err(401, "AUTH_KEY_UNREGISTERED"))?;
    let acc = world
        .accounts
        .get_mut(&account)
        .ok_or_else(|| err(401, "AUTH_KEY_UNREGISTERED"))?;
    let mut secure_random = vec![0u8; 256];
    rand::fill(&mut secure_random[..]);
    let new_algo = tl::enums::PasswordKdfAlgo::Unknown;
    let new_secure_algo = tl::enums::SecurePasswordKdfAlgo::Unknown;
    let password = match &acc.password {
        None => tl::types::account::Password {
            has_recovery: false,
            has_secure_values: false,
            has_password: false,
            current_algo: None,
            srp_b: None,
            srp_id: None,
            hint: None,
            email_unconfirmed_pattern: None,
            new_algo,
            new_secure_algo,
            secure_random,
            pending_reset_date: None,
            login_email_pattern: None,
        },
        Some(verifier) => {
            let srp = verifier.start();
            let out = tl::types::account::Password {
                has_recovery: false,
                has_secure_values: false,
                has_password: true,
                current_algo: Some(
                    tl::types::PasswordKdfAlgoSha256Sha256Pbkdf2Hmacsha512iter100000Sha256ModPow {
                        salt1: verifier.salt1.clone(),
                        salt2: verifier.salt2.clone(),
                        g: login::G,
                        p: login::p_bytes(),
                    }
                    .into(),
                ),
                srp_b: Some(srp.g_b.clone()),
                srp_id: Some(srp.srp_id),
                hint: verifier.hint.clone(),
                email_unconfirmed_pattern: None,
                new_algo,
                new_secure_algo,
                secure_random,
                pending_reset_date: None,
                login_email_pattern: None,
            };
            acc.pending_srp = Some(srp);
            out
        }
    };
    Ok(tl::enums::account::Password::Password(password).to_bytes())
}

pub(super) fn check_password(
    world: &mut World,
    ctx: &CallCtx,
    account: Option<i64>,
    req: &tl::functions::auth::CheckPassword,
) -> Reply {
    let account =
        password_account(world, ctx, account).ok_or_else(|| err(401, "AUTH_KEY_UNREGISTERED"))?;
    let tl::enums::InputCheckPasswordSrp::Srp(srp) = &req.password else {
        return Err(err(400, "PASSWORD_HASH_INVALID"));
    };
    let acc = account_of(world, account)?;
    let (Some(verifier), Some(pending)) = (&acc.password, &acc.pending_srp) else {
        return Err(err(400, "SRP_ID_INVALID"));
    };
    if pending.srp_id != srp.srp_id {
        return Err(err(400, "SRP_ID_INVALID"));
    }
    if !verifier.verify(pending, &srp.a, &srp.m1) {
        return Err(err(400, "PASSWORD_HASH_INVALID"));
    }
    if let Some(acc) = world.accounts.get_mut(&account) {
        acc.pending_srp = None;
    }
    if let Some(k) = world.keys.get_mut(&ctx.key_id) {
        k.account = Some(account);
        k.password_pending = None;
    }
    authorization(world, account)
}
