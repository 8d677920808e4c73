//! The wire itself: auth keys (unregistered, revoked, duplicated), garbage on
//! a connection, and a round trip through grammers' own MTP and transport.
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_revoked_and_duplicated_keys() {
    let fake = MtprotoFake::start(MtprotoConfig::default()).expect("start");
    let anonymous = fake.issue_auth_key(None);
    let reader = Reader::connect(&fake, anonymous).await;
    let e = reader
        .client
        .get_me()
        .await
        .expect_err("no account on the key");
    assert_eq!(rpc_name(&e), Some("AUTH_KEY_UNREGISTERED"));
    assert!(!reader.client.is_authorized().await.expect("401 means no"));
    reader.close().await;

    let (id, key) = account(&fake, "+998900000013");
    let first = Reader::connect(&fake, key).await;
    first.client.get_me().await.expect("first connection");
    let second = Reader::connect(&fake, key).await;
    let e = second
        .client
        .get_me()
        .await
        .expect_err("same key, second connection");
    assert!(
        matches!(&e, InvocationError::Rpc(r) if r.code == 406 && r.name == "AUTH_KEY_DUPLICATED"),
        "{e}"
    );
    // The key is burned: the first connection is refused from now on, and
    // so is every new one.
    assert!(fake.key_burned(&key));
    let e = first
        .client
        .get_me()
        .await
        .expect_err("the first connection, after the key was burned");
    assert!(
        matches!(&e, InvocationError::Rpc(r) if r.code == 406 && r.name == "AUTH_KEY_DUPLICATED"),
        "{e}"
    );
    first.close().await;
    second.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let third = Reader::connect(&fake, key).await;
    let e = third
        .client
        .get_me()
        .await
        .expect_err("a burned key stays burned");
    assert!(
        matches!(&e, InvocationError::Rpc(r) if r.code == 406 && r.name == "AUTH_KEY_DUPLICATED"),
        "{e}"
    );
    third.close().await;

    // Another key of the account, revoked.
    let key = fake.issue_auth_key(Some(id));
    let third = Reader::connect(&fake, key).await;
    third.client.get_me().await.expect("a fresh key works");
    fake.revoke_session(&key);
    let e = third.client.get_me().await.expect_err("revoked");
    assert!(
        matches!(&e, InvocationError::Rpc(r) if r.code == 401 && r.name == "SESSION_REVOKED"),
        "{e}"
    );
    let stats = fake.stats(id);
    assert!(
        stats.errors("help.getConfig", "AUTH_KEY_DUPLICATED") >= 1,
        "{stats:?}"
    );
    assert_eq!(stats.errors("users.getUsers", "SESSION_REVOKED"), 1);
    third.close().await;
}

/// Whether the fake closes `stream` (EOF) within 5 s; returns what it sent.
async fn closed_by_fake(mut stream: tokio::net::TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut got)).await;
    assert!(
        matches!(r, Ok(Ok(_))),
        "the fake closed the connection: {r:?}"
    );
    got
}

fn full_frame(seq: i32, payload: &[u8]) -> Vec<u8> {
    let len = i32::try_from(payload.len() + 12).unwrap();
    let mut out = len.to_le_bytes().to_vec();
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// CRC-32 (IEEE), as the Full transport uses it.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_closes_only_that_connection() {
    let fake = MtprotoFake::start(MtprotoConfig::default()).expect("start");
    let (_, key) = account(&fake, "+998900000014");
    let good = Reader::connect(&fake, key).await;
    good.client.get_me().await.expect("before");

    // Plain garbage: an HTTP request is no frame.
    let mut s = tokio::net::TcpStream::connect(fake.addr()).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_by_fake(s).await.is_empty());

    // A frame with a broken CRC.
    let mut frame = full_frame(0, &[7u8; 64]);
    let n = frame.len();
    frame[n - 1] ^= 0xff;
    let mut s = tokio::net::TcpStream::connect(fake.addr()).await.unwrap();
    s.write_all(&frame).await.unwrap();
    assert!(closed_by_fake(s).await.is_empty());

    // A well-formed frame under an auth key the fake never issued: -404.
    let mut payload = 0x1122_3344_5566_7788_i64.to_le_bytes().to_vec();
    payload.extend_from_slice(&[0u8; 16 + 48]);
    let mut s = tokio::net::TcpStream::connect(fake.addr()).await.unwrap();
    s.write_all(&full_frame(0, &payload)).await.unwrap();
    assert_eq!(closed_by_fake(s).await, (-404i32).to_le_bytes());

    // The right key, but bytes that do not decrypt.
    let mut payload = grammers_crypto_key_id(&key).to_le_bytes().to_vec();
    payload.extend_from_slice(&[9u8; 16 + 48]);
    let mut s = tokio::net::TcpStream::connect(fake.addr()).await.unwrap();
    s.write_all(&full_frame(0, &payload)).await.unwrap();
    assert!(closed_by_fake(s).await.is_empty());

    assert_eq!(fake.rejected_connections(), 4);
    good.client
        .get_me()
        .await
        .expect("the fake still serves the others");
    good.close().await;
}

/// The auth key id of `key`, computed by grammers' own code: it is the
/// first 8 bytes of anything grammers encrypts with it.
fn grammers_crypto_key_id(key: &[u8; 256]) -> i64 {
    let mut buf = grammers_crypto::DequeBuffer::with_capacity(64, 64);
    buf.extend([0u8; 16]);
    grammers_crypto::encrypt_data_v2(&mut buf, &grammers_crypto::AuthKey::from_bytes(*key));
    i64::from_le_bytes(buf[..8].try_into().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_with_grammers_client_side_mtp_and_transport() {
    use grammers_client::tl::Serializable;
    use grammers_mtproto::mtp::{Deserialization, Encrypted, Mtp};
    use grammers_mtproto::transport::{Full, Transport};

    let fake = MtprotoFake::start(MtprotoConfig::default()).expect("start");
    let (_, key) = account(&fake, "+998900000015");
    let mut mtp = Encrypted::build().compression_threshold(None).finish(key);
    let mut transport = Full::new();
    let mut s = tokio::net::TcpStream::connect(fake.addr()).await.unwrap();
    let mut inbox = Vec::new();
    let mut results = Vec::new();

    // Sends one request the way grammers' sender does; collects what comes back.
    for round in 0..3 {
        let mut buf = grammers_crypto::DequeBuffer::with_capacity(1 << 16, 128);
        let ping = tl::functions::Ping {
            ping_id: 1000 + round,
        }
        .to_bytes();
        mtp.push(&mut buf, &ping);
        mtp.finalize(&mut buf).expect("something to send");
        transport.pack(&mut buf);
        s.write_all(&buf[..]).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline, s.read(&mut chunk))
                .await
                .expect("answer")
                .unwrap();
            assert!(n > 0, "the fake closed the connection");
            inbox.extend_from_slice(&chunk[..n]);
            let mut progressed = false;
            while let Ok(off) = transport.unpack(&mut inbox[..]) {
                let out = mtp
                    .deserialize(&mut inbox[off.data_range.clone()])
                    .expect("decrypts and parses");
                results.extend(out.into_iter().map(|d| match d {
                    Deserialization::RpcResult(r) => format!("result {}", r.body.len()),
                    Deserialization::BadMessage(b) => format!("bad {}", b.code),
                    Deserialization::RpcError(e) => format!("error {}", e.error.error_message),
                    _ => "other".to_owned(),
                }));
                inbox.drain(..off.next_offset);
                progressed = true;
            }
            if progressed {
                break;
            }
        }
    }
    // Salt 0 first (bad_server_salt, 48); then grammers asks for future salts
    // before anything else (no result to the caller); then the ping's pong.
    assert_eq!(
        results.first().map(String::as_str),
        Some("bad 48"),
        "{results:?}"
    );
    assert!(
        results.iter().any(|r| r.starts_with("result")),
        "{results:?}"
    );
}
