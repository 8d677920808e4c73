//! The Full transport, the framing grammers 0.11 speaks over TCP:
//! `len:i32 | seq:i32 | payload | crc32:u32`, little endian, where `len`
//! counts the whole frame (12 bytes of envelope plus the payload), `seq`
//! counts frames per direction from 0, and the CRC-32 covers everything
//! before it. A negative 4-byte word instead of a frame is a transport
//! error (`-404`: unknown auth key).

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The largest frame accepted: grammers' own receive buffer (1 MiB + 8 KiB)
/// plus the envelope.
pub(crate) const MAX_FRAME_LEN: usize = 1024 * 1024 + 8 * 1024 + 12;

/// Why a connection's byte stream is not a sequence of valid frames.
#[derive(Debug)]
pub(crate) enum FrameError {
    /// The socket failed, or closed in the middle of a frame.
    Io(io::Error),
    /// The length word is out of range or not a multiple of 4.
    BadLength(i32),
    /// The frame counter is not the next one.
    BadSeq { expected: i32, got: i32 },
    /// The checksum does not match.
    BadCrc,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "i/o: {e}"),
            Self::BadLength(len) => write!(f, "bad frame length {len}"),
            Self::BadSeq { expected, got } => write!(f, "frame seq {got}, expected {expected}"),
            Self::BadCrc => write!(f, "bad frame crc32"),
        }
    }
}

/// Reads frames from one connection, checking length, sequence and CRC.
pub(crate) struct FrameReader<R> {
    inner: R,
    seq: i32,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self { inner, seq: 0 }
    }

    /// The next frame's payload; `Ok(None)` when the peer closed the
    /// connection between frames.
    pub(crate) async fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let mut head = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            let n = self
                .inner
                .read(&mut head[got..])
                .await
                .map_err(FrameError::Io)?;
            if n == 0 {
                return if got == 0 {
                    Ok(None)
                } else {
                    Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into()))
                };
            }
            got += n;
        }
        let len = i32::from_le_bytes(head);
        let ulen = usize::try_from(len).map_err(|_| FrameError::BadLength(len))?;
        if !(12..=MAX_FRAME_LEN).contains(&ulen) || ulen % 4 != 0 {
            return Err(FrameError::BadLength(len));
        }
        let mut rest = vec![0u8; ulen - 4];
        self.inner
            .read_exact(&mut rest)
            .await
            .map_err(FrameError::Io)?;
        let seq = i32::from_le_bytes(rest[0..4].try_into().expect("4 bytes"));
        if seq != self.seq {
            return Err(FrameError::BadSeq {
                expected: self.seq,
                got: seq,
            });
        }
        let body_end = rest.len() - 4;
        let crc = u32::from_le_bytes(rest[body_end..].try_into().expect("4 bytes"));
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&head);
        hasher.update(&rest[..body_end]);
        if hasher.finalize() != crc {
            return Err(FrameError::BadCrc);
        }
        self.seq = self.seq.wrapping_add(1);
        rest.truncate(body_end);
        rest.drain(..4);
        Ok(Some(rest))
    }
}

/// Frames `payload` (a multiple of 4 bytes) with the sender's counter `seq`,
/// which it then advances.
pub(crate) fn encode_frame(seq: &mut i32, payload: &[u8]) -> Vec<u8> {
    debug_assert_eq!(payload.len() % 4, 0);
    let len = i32::try_from(payload.len() + 12).expect("frames are far below 2 GiB");
    let mut out = Vec::with_capacity(payload.len() + 12);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    *seq = seq.wrapping_add(1);
    out
}

/// A transport error word, e.g. `-404` for an unknown auth key.
pub(crate) fn transport_error(code: i32) -> [u8; 4] {
    (-code).to_le_bytes()
}
