//! Checks shared by the fuzz targets and by the `fuzz_regressions.rs` tests.
//!
//! `frames` checks `chat_net::FrameCodec` and knows nothing of JSON;
//! `request` checks `chat_proto::decode_request` and the reply encoders and
//! knows nothing of framing. The regression tests in `crates/net/tests` and
//! `crates/proto/tests` include these same files by path, so a finding is
//! replayed through exactly the checks that found it.

pub mod frames;
pub mod request;
