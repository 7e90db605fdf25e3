//! Fuzz target `frames`: the input is a byte stream from a client. It is cut
//! into frames by `FrameCodec` (limit 256) read whole, byte by byte and in
//! reads of lengths derived from the input, checked against the framing model,
//! and every frame is decoded as a request and checked (`chat_fuzz::request`).
//! The reply encoders run once per input, over the decoded text fields and
//! then the input's text, cut at 128 characters: escaping long texts three
//! levels deep would otherwise take most of the time (the `request` target
//! covers long texts).

#![no_main]

use chat_fuzz::{frames, request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut text = String::new();
    for frame in frames::check_stream(data) {
        if let Ok(decoded) = request::check_frame(&frame) {
            text.extend(request::strings_of(&decoded));
        }
    }
    text.push_str(&String::from_utf8_lossy(data));
    let text: String = text.chars().take(128).collect();
    request::check_replies(&text);
});
