//! Frame delimiting for both directions.
//!
//! Inbound, a frame ends at a NUL byte (what the original client sends) or at
//! LF (with an optional CR before it). Empty frames are skipped. A frame
//! longer than the limit is reported once as [`Inbound::TooLong`] and its
//! bytes are dropped as they arrive, up to the next delimiter, so it is never
//! buffered whole. Outbound, a frame is its bytes followed by LF.

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// What the decoder yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// One frame, without its delimiter.
    Frame(BytesMut),
    /// A frame went over the limit; its bytes are being dropped.
    TooLong,
}

/// The codec: NUL/LF delimited in, LF delimited out.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max: usize,
    /// How far `buf` has been searched for a delimiter already.
    searched: usize,
    /// Inside an over-long frame: drop bytes until the next delimiter.
    discarding: bool,
}

impl FrameCodec {
    /// A codec that accepts frames of at most `max` bytes.
    pub fn new(max: usize) -> FrameCodec {
        FrameCodec { max, searched: 0, discarding: false }
    }

    /// The frame limit in bytes.
    pub fn max(&self) -> usize {
        self.max
    }
}

impl Decoder for FrameCodec {
    type Item = Inbound;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Inbound>, std::io::Error> {
        loop {
            let Some(offset) = memchr::memchr2(b'\0', b'\n', &buf[self.searched..]) else {
                if self.discarding {
                    buf.clear();
                    self.searched = 0;
                    return Ok(None);
                }
                // One byte of slack: a frame of exactly the limit may be waiting for the LF of its CRLF.
                if buf.len() > self.max + 1 {
                    self.discarding = true;
                    buf.clear();
                    self.searched = 0;
                    return Ok(Some(Inbound::TooLong));
                }
                self.searched = buf.len();
                return Ok(None);
            };
            let end = self.searched + offset;
            self.searched = 0;
            let mut frame = buf.split_to(end + 1);
            if self.discarding {
                self.discarding = false;
                continue;
            }
            frame.truncate(end);
            if frame.last() == Some(&b'\r') {
                frame.truncate(end - 1);
            }
            // Length first, so a long line has one outcome however the reads split it.
            if frame.len() > self.max {
                return Ok(Some(Inbound::TooLong));
            }
            if frame.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some(Inbound::Frame(frame)));
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Inbound>, std::io::Error> {
        if let Some(item) = self.decode(buf)? {
            return Ok(Some(item));
        }
        // An unterminated tail at EOF is not a request: drop it, and start afresh
        // should the source resume.
        buf.clear();
        self.searched = 0;
        self.discarding = false;
        Ok(None)
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = std::io::Error;

    fn encode(&mut self, frame: Bytes, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        dst.reserve(frame.len() + 1);
        dst.put_slice(&frame);
        dst.put_u8(b'\n');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(codec: &mut FrameCodec, buf: &mut BytesMut) -> Vec<Inbound> {
        let mut out = Vec::new();
        while let Some(item) = codec.decode(buf).expect("decode") {
            out.push(item);
        }
        out
    }

    fn f(s: &str) -> Inbound {
        Inbound::Frame(BytesMut::from(s))
    }

    #[test]
    fn nul_lf_and_crlf_end_frames() {
        let mut codec = FrameCodec::new(64);
        let mut buf = BytesMut::from("a\0b\nc\r\nd");
        assert_eq!(frames(&mut codec, &mut buf), vec![f("a"), f("b"), f("c")]);
        assert_eq!(&buf[..], b"d");
    }

    #[test]
    fn coalesced_frames_all_come_out() {
        let mut codec = FrameCodec::new(64);
        let mut buf = BytesMut::from("{\"x\":1}\0{\"x\":2}\0{\"x\":3}\0");
        assert_eq!(frames(&mut codec, &mut buf).len(), 3);
    }

    #[test]
    fn a_frame_split_across_reads_is_joined() {
        let mut codec = FrameCodec::new(64);
        let mut buf = BytesMut::new();
        for byte in b"{\"msgid\":1}\0" {
            assert!(frames(&mut codec, &mut buf).is_empty());
            buf.put_u8(*byte);
        }
        assert_eq!(frames(&mut codec, &mut buf), vec![f("{\"msgid\":1}")]);
    }

    #[test]
    fn empty_frames_and_lone_nuls_are_skipped() {
        let mut codec = FrameCodec::new(64);
        let mut buf = BytesMut::from("\0\0\n\r\n  \nx\0");
        assert_eq!(frames(&mut codec, &mut buf), vec![f("x")]);
    }

    #[test]
    fn oversize_is_reported_once_and_never_buffered() {
        let mut codec = FrameCodec::new(8);
        let mut buf = BytesMut::from("01234567890");
        assert_eq!(frames(&mut codec, &mut buf), vec![Inbound::TooLong]);
        assert!(buf.is_empty());
        buf.put_slice(b"more bytes of the same long frame");
        assert!(frames(&mut codec, &mut buf).is_empty());
        assert!(buf.is_empty());
        buf.put_slice(b"tail\nok\n");
        assert_eq!(frames(&mut codec, &mut buf), vec![f("ok")]);
    }

    #[test]
    fn oversize_complete_frame_in_one_read() {
        let mut codec = FrameCodec::new(4);
        let mut buf = BytesMut::from("toolong\nok\n");
        assert_eq!(frames(&mut codec, &mut buf), vec![Inbound::TooLong, f("ok")]);
    }

    #[test]
    fn frame_of_exactly_the_limit_passes() {
        let mut codec = FrameCodec::new(4);
        let mut buf = BytesMut::from("abcd\n");
        assert_eq!(frames(&mut codec, &mut buf), vec![f("abcd")]);
    }

    #[test]
    fn encode_appends_lf() {
        let mut codec = FrameCodec::new(4);
        let mut dst = BytesMut::new();
        codec.encode(Bytes::from_static(b"{}"), &mut dst).expect("encode");
        assert_eq!(&dst[..], b"{}\n");
    }
}
