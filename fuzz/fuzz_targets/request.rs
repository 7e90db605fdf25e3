//! Fuzz target `request`: the input is one frame, any bytes and any length,
//! decoded as a request and checked, with the reply encoders run over its text
//! and its decoded text fields (`chat_fuzz::request`). Framing is the `frames`
//! target's business.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = chat_fuzz::request::check_frame_and_replies(data);
});
