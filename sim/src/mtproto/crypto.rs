//! Server-side MTProto 2.0 encryption. grammers-crypto's helpers only work
//! in the client's direction (they encrypt with x = 0 and decrypt with
//! x = 8); the server does the mirror image: it decrypts what the client
//! sent with x = 0 and encrypts its own messages with x = 8, over the same
//! AES-IGE (`grammers_crypto::aes`) and SHA-256.

use sha2::{Digest, Sha256};

/// A 2048-bit authorization key the fake knows, with its id.
#[derive(Clone)]
pub(crate) struct ServerKey {
    pub(crate) data: [u8; 256],
    /// `auth_key_id`: the low 64 bits of SHA-1(key), as sent on the wire.
    pub(crate) id: i64,
}

impl ServerKey {
    pub(crate) fn new(data: [u8; 256]) -> Self {
        Self {
            id: key_id(&data),
            data,
        }
    }
}

/// The id of an auth key: bytes 12..20 of its SHA-1, little endian.
pub(crate) fn key_id(data: &[u8; 256]) -> i64 {
    use sha1::Sha1;
    let sha: [u8; 20] = Sha1::digest(data).into();
    i64::from_le_bytes(sha[12..20].try_into().expect("8 bytes"))
}

/// Why a packet could not be decrypted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CryptoError {
    /// Too short, or the ciphertext is not a multiple of 16 bytes.
    BadLength,
    /// The msg_key does not match the decrypted plaintext.
    MsgKeyMismatch,
}

/// `(aes_key, aes_iv)` for `msg_key`, x = 0 client→server, 8 server→client.
fn calc_key(auth_key: &[u8; 256], msg_key: &[u8; 16], x: usize) -> ([u8; 32], [u8; 32]) {
    let a: [u8; 32] = Sha256::new()
        .chain_update(msg_key)
        .chain_update(&auth_key[x..x + 36])
        .finalize()
        .into();
    let b: [u8; 32] = Sha256::new()
        .chain_update(&auth_key[40 + x..40 + x + 36])
        .chain_update(msg_key)
        .finalize()
        .into();
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&a[..8]);
    key[8..24].copy_from_slice(&b[8..24]);
    key[24..].copy_from_slice(&a[24..]);
    let mut iv = [0u8; 32];
    iv[..8].copy_from_slice(&b[..8]);
    iv[8..24].copy_from_slice(&a[8..24]);
    iv[24..].copy_from_slice(&b[24..]);
    (key, iv)
}

/// msg_key = the middle 128 bits of SHA-256(auth_key[88+x..120+x] + plaintext).
fn msg_key(auth_key: &[u8; 256], plaintext: &[u8], x: usize) -> [u8; 16] {
    let large: [u8; 32] = Sha256::new()
        .chain_update(&auth_key[88 + x..88 + x + 32])
        .chain_update(plaintext)
        .finalize()
        .into();
    large[8..24].try_into().expect("16 bytes")
}

/// Decrypts a client packet `auth_key_id | msg_key | ciphertext` in place and
/// returns the plaintext (with its padding). The key id is not checked here.
pub(crate) fn decrypt_from_client<'a>(
    key: &ServerKey,
    packet: &'a mut [u8],
) -> Result<&'a [u8], CryptoError> {
    if packet.len() < 24 + 32 || !(packet.len() - 24).is_multiple_of(16) {
        return Err(CryptoError::BadLength);
    }
    let mk: [u8; 16] = packet[8..24].try_into().expect("16 bytes");
    let (aes_key, aes_iv) = calc_key(&key.data, &mk, 0);
    let body = &mut packet[24..];
    grammers_crypto::aes::ige_decrypt(body, &aes_key, &aes_iv);
    if msg_key(&key.data, body, 0) != mk {
        return Err(CryptoError::MsgKeyMismatch);
    }
    Ok(body)
}

/// Encrypts a server plaintext (salt, session id, message) for the client:
/// adds 12–1024 bytes of random padding to a multiple of 16 and returns
/// `auth_key_id | msg_key | ciphertext`.
pub(crate) fn encrypt_for_client(key: &ServerKey, plaintext: &[u8]) -> Vec<u8> {
    let mut pad = 16 - plaintext.len() % 16;
    if pad < 12 {
        pad += 16;
    }
    let mut body = Vec::with_capacity(24 + plaintext.len() + pad);
    body.extend_from_slice(&key.id.to_le_bytes());
    body.extend_from_slice(&[0u8; 16]);
    body.extend_from_slice(plaintext);
    let mut padding = [0u8; 32];
    rand::fill(&mut padding[..]);
    body.extend_from_slice(&padding[..pad]);
    let mk = msg_key(&key.data, &body[24..], 8);
    body[8..24].copy_from_slice(&mk);
    let (aes_key, aes_iv) = calc_key(&key.data, &mk, 8);
    grammers_crypto::aes::ige_encrypt(&mut body[24..], &aes_key, &aes_iv);
    body
}

#[cfg(test)]
mod tests {
    use grammers_crypto::{AuthKey, DequeBuffer, decrypt_data_v2, encrypt_data_v2};

    use super::*;

    fn key() -> ServerKey {
        let mut data = [0u8; 256];
        rand::fill(&mut data[..]);
        ServerKey::new(data)
    }

    #[test]
    fn key_id_matches_grammers() {
        let k = key();
        let mut probe = DequeBuffer::with_capacity(64, 64);
        probe.extend([0u8; 16]);
        encrypt_data_v2(&mut probe, &AuthKey::from_bytes(k.data));
        assert_eq!(&probe[..8], &k.id.to_le_bytes());
    }

    #[test]
    fn decrypts_what_grammers_encrypts() {
        let k = key();
        let plaintext: Vec<u8> = (0..96u8).collect();
        let mut buf = DequeBuffer::with_capacity(256, 64);
        buf.extend(plaintext.iter().copied());
        encrypt_data_v2(&mut buf, &AuthKey::from_bytes(k.data));
        let mut packet = buf[..].to_vec();
        let out = decrypt_from_client(&k, &mut packet).expect("decrypts");
        assert_eq!(&out[..96], &plaintext[..]);
        let mut tampered = buf[..].to_vec();
        tampered[40] ^= 1;
        assert_eq!(
            decrypt_from_client(&k, &mut tampered),
            Err(CryptoError::MsgKeyMismatch)
        );
    }

    #[test]
    fn grammers_decrypts_what_the_server_encrypts() {
        let k = key();
        let plaintext: Vec<u8> = (0..100u8).map(|b| b.wrapping_mul(7)).collect();
        let mut packet = encrypt_for_client(&k, &plaintext);
        assert_eq!((packet.len() - 24) % 16, 0);
        let out = decrypt_data_v2(&mut packet, &AuthKey::from_bytes(k.data)).expect("decrypts");
        assert_eq!(&out[..100], &plaintext[..]);
        let padding = out.len() - 100;
        assert!((12..=1024).contains(&padding), "{padding}");
    }
}
