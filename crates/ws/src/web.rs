//! The web client, embedded in the binary: one HTML page, one script, one style sheet
//! (`crates/ws/web/`), served as they are. Nothing is fetched from anywhere else at run time.

/// The page.
pub const INDEX_HTML: &str = include_str!("../web/index.html");
/// The client's code (plain JavaScript, no build step).
pub const APP_JS: &str = include_str!("../web/app.js");
/// Its styles.
pub const APP_CSS: &str = include_str!("../web/app.css");

/// Headers of every static answer: the page may load only its own script and style and talk
/// only to its own origin (so even an injected tag could run nothing), and nothing is cached
/// past a restart of the node (a new version shows at the next reload).
pub const HEADERS: &[&str] = &[
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options: nosniff",
    "Referrer-Policy: no-referrer",
    "Cache-Control: no-cache",
];

/// The content type and body served at `path`, if any.
pub fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    match path {
        "/" | "/index.html" => Some(("text/html; charset=utf-8", INDEX_HTML.as_bytes())),
        "/app.js" => Some(("text/javascript; charset=utf-8", APP_JS.as_bytes())),
        "/app.css" => Some(("text/css; charset=utf-8", APP_CSS.as_bytes())),
        _ => None,
    }
}
