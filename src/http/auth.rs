//! The bearer token of the management routes. With no token configured
//! they answer 404, so a forgotten token never means an open API.

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, web};

use super::ApiState;
use super::error::ApiError;

/// Proof that a management request carried the right bearer token.
pub(super) struct Authorized;

impl FromRequest for Authorized {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(authorize(req))
    }
}

fn authorize(req: &HttpRequest) -> Result<Authorized, ApiError> {
    let state = req
        .app_data::<web::Data<ApiState>>()
        .expect("ApiState is registered");
    let Some(token) = &state.api_token else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "not found",
        ));
    };
    let presented = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(p) if constant_time_eq(p.as_bytes(), token.expose().as_bytes()) => Ok(Authorized),
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token",
        )),
    }
}

/// Compares without an early exit, so response time tells neither how much
/// of a guessed token was right nor how long the token is: both sides are
/// hashed to 32 bytes first, and the digests compared byte by byte in full.
/// (Returning early on a length mismatch told the token's length.)
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (da, db) = (Sha256::digest(a), Sha256::digest(b));
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison_has_no_length_shortcut() {
        assert!(constant_time_eq(b"secret-token", b"secret-token"));
        assert!(!constant_time_eq(b"secret-token", b"secret-tokeN"));
        assert!(!constant_time_eq(b"secret", b"secret-token"));
        assert!(!constant_time_eq(b"", b"secret-token"));
    }
}
