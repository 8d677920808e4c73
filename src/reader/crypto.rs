//! Auth keys at rest: AES-256-GCM (ring, the implementation rustls already
//! links) under a key derived from `reader.session_key`. Each ciphertext is
//! bound to its account and DC (associated data), so a key copied into
//! another row does not decrypt.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// Why a stored auth key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// No `reader.session_key` is configured.
    #[error(
        "reader.session_key is not set: it encrypts reader sessions at rest (set it in the config, KURYER_READER_SESSION_KEY or the session_key credential)"
    )]
    NoKey,
    /// Wrong key, or the stored bytes were changed.
    #[error(
        "a stored auth key does not decrypt: reader.session_key differs from the one it was stored with, or the row was altered"
    )]
    Undecryptable,
    /// The system's random source failed.
    #[error("no randomness for a nonce")]
    Random,
}

/// Encrypts and decrypts auth keys.
pub struct SessionCipher {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl SessionCipher {
    /// The cipher of `reader.session_key`.
    pub fn new(session_key: Option<&Secret>) -> Result<Self, CryptoError> {
        let secret = session_key.ok_or(CryptoError::NoKey)?;
        let digest = Sha256::digest(secret.expose().as_bytes());
        let unbound = UnboundKey::new(&AES_256_GCM, &digest).map_err(|_| CryptoError::NoKey)?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        })
    }

    fn aad(account: &str, dc_id: i32) -> Vec<u8> {
        format!("kuryer-auth-key:{account}:{dc_id}").into_bytes()
    }

    /// nonce ‖ ciphertext ‖ tag.
    pub fn seal(
        &self,
        account: &str,
        dc_id: i32,
        auth_key: &[u8; 256],
    ) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| CryptoError::Random)?;
        let mut buf = auth_key.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(account, dc_id)),
                &mut buf,
            )
            .map_err(|_| CryptoError::Random)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// The auth key back.
    pub fn open(&self, account: &str, dc_id: i32, sealed: &[u8]) -> Result<[u8; 256], CryptoError> {
        if sealed.len() < NONCE_LEN {
            return Err(CryptoError::Undecryptable);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Undecryptable)?;
        let mut buf = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(Self::aad(account, dc_id)), &mut buf)
            .map_err(|_| CryptoError::Undecryptable)?;
        <[u8; 256]>::try_from(&plain[..]).map_err(|_| CryptoError::Undecryptable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_and_wrong_key_and_wrong_row() {
        let c = SessionCipher::new(Some(&Secret::new("0123456789abcdef-session"))).unwrap();
        let key = [7u8; 256];
        let sealed = c.seal("main", 2, &key).unwrap();
        assert!(
            !sealed.windows(16).any(|w| w == [7u8; 16]),
            "clear text in the ciphertext"
        );
        assert_eq!(c.open("main", 2, &sealed).unwrap(), key);
        assert_ne!(
            c.seal("main", 2, &key).unwrap(),
            sealed,
            "a fresh nonce each time"
        );
        let mut bad = sealed.clone();
        bad[20] ^= 1;
        assert!(c.open("main", 2, &bad).is_err());
        assert!(c.open("other", 2, &sealed).is_err());
        assert!(c.open("main", 4, &sealed).is_err());
        let other = SessionCipher::new(Some(&Secret::new("another-key-of-16+chars"))).unwrap();
        assert!(other.open("main", 2, &sealed).is_err());
        assert!(SessionCipher::new(None).is_err());
    }
}
