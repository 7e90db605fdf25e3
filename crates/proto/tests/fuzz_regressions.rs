//! Regression tests from fuzzing `decode_request` and the reply encoders (the
//! `frames` and `request` targets in fuzz/): every seed goes through the very
//! checks the fuzz targets run (`fuzz/src/request.rs`, compiled in here by
//! path), and the nastiest inputs pin their exact outcome. Framing is
//! chat-net's `fuzz_regressions`.

#[allow(dead_code)]
#[path = "../../../fuzz/src/request.rs"]
mod request;

use std::path::Path;

use chat_proto::{DecodeError, GroupId, Request, UserId};
use request::{check_frame_and_replies, check_replies};

fn corpus(target: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target)
}

fn seed(target: &str, name: &str) -> Vec<u8> {
    let path = corpus(target).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rejected(frame: &[u8]) -> DecodeError {
    check_frame_and_replies(frame).expect_err("is rejected")
}

fn accepted(frame: &[u8]) -> Request {
    check_frame_and_replies(frame).unwrap_or_else(|e| panic!("rejected: {e}"))
}

/// The lines of a frames seed, as the codec would cut them (no CR handling needed here).
fn lines(stream: &[u8]) -> Vec<&[u8]> {
    stream.split(|&b| b == b'\0' || b == b'\n').filter(|line| !line.is_empty()).collect()
}

#[test]
fn every_seed_passes_the_fuzz_checks() {
    let mut seen = 0;
    for target in ["request", "frames"] {
        for entry in std::fs::read_dir(corpus(target)).expect("fuzz corpus") {
            let entry = entry.expect("dir entry");
            if !entry.file_name().to_string_lossy().starts_with("seed-") {
                continue;
            }
            let data = std::fs::read(entry.path()).expect("seed");
            if target == "request" {
                let _ = check_frame_and_replies(&data);
            } else {
                for line in lines(&data) {
                    let _ = check_frame_and_replies(line);
                }
            }
            seen += 1;
        }
    }
    assert!(seen >= 70, "only {seen} seeds");
}

#[test]
fn the_original_clients_frames_decode() {
    assert_eq!(
        accepted(&seed("request", "seed-msgid01")),
        Request::Login { id: UserId(1), password: "pw".into(), ext: false }
    );
    assert_eq!(accepted(&seed("request", "seed-msgid03")), Request::Loginout);
    assert_eq!(
        accepted(&seed("request", "seed-msgid10")),
        Request::GroupChat { group: GroupId(1), msg: "hi all".into(), cid: None }
    );
    // Frames the server sends are not requests, but the error names their msgid.
    for n in [2, 5, 11, 12, 14, 16] {
        assert_eq!(rejected(&seed("request", &format!("seed-msgid{n:02}"))).msgid, Some(n));
    }
}

#[test]
fn deep_nesting_is_rejected_at_serde_jsons_depth_limit() {
    for name in ["seed-deep-array", "seed-deep-object"] {
        let e = rejected(&seed("request", name));
        assert_eq!(e.msgid, None);
        assert!(e.reason.contains("recursion limit exceeded"), "{name}: {}", e.reason);
    }
    // 126 levels inside the request object still parse; the message is then no string.
    let e = rejected(&seed("request", "seed-nested-127"));
    assert_eq!((e.msgid, e.reason.as_str()), (Some(6), "`msg` must be a string"));
}

#[test]
fn numbers_beyond_an_id_are_rejected_never_wrapped() {
    // 400 digits are past f64: serde_json refuses the whole frame.
    let e = rejected(&seed("request", "seed-huge-number"));
    assert_eq!(e.msgid, None);
    assert!(e.reason.starts_with("not JSON: number out of range"), "{}", e.reason);
    let stream = seed("frames", "seed-huge-numbers");
    let [past_i64, past_u32, msgid_1e300, msgid_past_i64, friend_past_i32, group_max] = lines(&stream)[..]
    else {
        panic!("six lines in seed-huge-numbers");
    };
    assert_eq!(rejected(past_i64).reason, "`id` must be an integer");
    assert_eq!(rejected(past_u32).reason, "`id` is out of range");
    assert_eq!(rejected(msgid_1e300).msgid, None);
    assert_eq!(rejected(msgid_past_i64).msgid, None);
    assert_eq!(rejected(friend_past_i32).reason, "`friendid` is out of range");
    assert_eq!(accepted(group_max), Request::AddGroup { group: GroupId(i32::MAX) });
    assert_eq!(rejected(&seed("request", "seed-float-id")).reason, "`id` must be an integer");
}

#[test]
fn invalid_utf8_and_lone_surrogates_are_not_json() {
    for name in ["seed-invalid-utf8", "seed-lone-surrogate", "seed-nul-inside"] {
        let e = rejected(&seed("request", name));
        assert_eq!(e.msgid, None, "{name}");
        assert!(e.reason.starts_with("not JSON"), "{name}: {}", e.reason);
    }
}

#[test]
fn escapes_decode_to_the_characters_they_name() {
    let stream = seed("frames", "seed-escapes");
    let [surrogate_nul, emoji] = lines(&stream)[..] else {
        panic!("two lines in seed-escapes");
    };
    // A lone \ud800 inside a longer string is an error, as the bare one is.
    assert!(rejected(surrogate_nul).reason.starts_with("not JSON"));
    assert_eq!(accepted(emoji), Request::OneChat { to: UserId(2), msg: "😀 你".into(), cid: None });
    let nul = br#"{"msgid":6,"to":2,"msg":"a\u0000b\"\\"}"#;
    assert_eq!(accepted(nul), Request::OneChat { to: UserId(2), msg: "a\0b\"\\".into(), cid: None });
}

#[test]
fn duplicate_keys_count_with_their_last_value() {
    let stream = seed("frames", "seed-duplicate-keys");
    let [msgid_twice, password_twice] = lines(&stream)[..] else {
        panic!("two lines in seed-duplicate-keys");
    };
    assert_eq!(rejected(msgid_twice).reason, "missing field `friendid`");
    assert_eq!(accepted(password_twice), Request::Login { id: UserId(1), password: "b".into(), ext: false });
}

#[test]
fn sql_metacharacters_are_just_text() {
    assert_eq!(
        accepted(lines(&seed("frames", "seed-sql-injection"))[0]),
        Request::Register {
            name: "x'); DROP TABLE User;--".into(),
            password: "' OR '1'='1".into(),
            ext: false
        }
    );
}

/// The fuzz target's first finding was in its own check: serde_json reads a
/// 52-digit number to within an ulp, so the stored offline text `2222…2`
/// embedded in an extension login ack read back one ulp off the direct read.
/// The check now compares after the same write and read as the ack's.
#[test]
fn a_long_number_as_offline_text_reads_back() {
    check_replies(&"2".repeat(52));
    check_replies("1e308");
    check_replies("-0.0000000000000000000000000000001");
}

#[test]
fn replies_carry_any_text() {
    for text in
        ["", "\0", "\"\\\u{7f}\u{2028}\u{2029}", "😀你好", "</script>", "\u{feff}x", &"\"".repeat(300)]
    {
        check_replies(text);
    }
}
