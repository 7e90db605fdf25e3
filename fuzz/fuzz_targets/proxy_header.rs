//! Fuzz target: the PROXY protocol header parser (`chat_net::proxy::parse`) never panics, and
//! a complete header is never longer than the bytes it was given.
#![no_main]

use chat_net::proxy::{Parsed, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Parsed::Done(len, _)) = parse(data) {
        assert!(len <= data.len());
    }
});
