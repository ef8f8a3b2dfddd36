//! Text an untrusted component hands the host (its `run` error, `check`
//! messages, its stdout/stderr): bounded where it enters the host ([`cap`],
//! [`cap_messages`]) and made inert before a terminal sees it ([`escape`]).
//!
//! The JSON report keeps the capped text as it is (serde escapes it); the text
//! the CLI prints goes through [`escape`], so a component cannot move the
//! cursor, recolour, retitle or reorder the user's terminal.

use std::borrow::Cow;

/// Most bytes kept of one message, error or output tail.
pub const MAX_TEXT_BYTES: usize = 16 << 10;
/// Most messages kept of one verdict.
pub const MAX_MESSAGES: usize = 256;

/// `text` cut to [`MAX_TEXT_BYTES`] (on a character boundary) with a marker
/// saying how many bytes were cut.
pub fn cap(text: String) -> String {
    cap_to(text, MAX_TEXT_BYTES)
}

fn cap_to(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.len() - end;
    text.truncate(end);
    text.push_str(&format!("… ({cut} bytes cut)"));
    text
}

/// Each message capped, and at most [`MAX_MESSAGES`] of them (the last one
/// then says how many more were cut).
pub fn cap_messages(messages: Vec<String>) -> Vec<String> {
    let total = messages.len();
    let mut out: Vec<String> = messages.into_iter().take(MAX_MESSAGES).map(cap).collect();
    if total > MAX_MESSAGES {
        out.push(format!("… ({} more messages cut)", total - MAX_MESSAGES));
    }
    out
}

/// Whether a terminal could act on `c`: C0 controls except newline and tab,
/// DEL, C1 controls, and the bidirectional overrides and isolates.
fn is_unsafe(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every character a terminal could act on written as a visible
/// `\u{..}` escape; newlines and tabs stay.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_unsafe(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_makes_terminal_controls_visible() {
        assert_eq!(escape("plain\ttext\nnext"), "plain\ttext\nnext");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(escape("\x1b[2J\x1b]0;owned\x07"), "\\u{1b}[2J\\u{1b}]0;owned\\u{7}");
        assert_eq!(escape("a\rb\x7fc\u{9b}d"), "a\\u{d}b\\u{7f}c\\u{9b}d");
        assert_eq!(escape("x\u{202E}y\u{2066}z\u{2069}"), "x\\u{202e}y\\u{2066}z\\u{2069}");
        assert_eq!(escape("é ✓ 日本"), "é ✓ 日本");
    }

    #[test]
    fn cap_cuts_on_a_char_boundary_and_says_how_much() {
        assert_eq!(cap("short".into()), "short");
        let exact = "x".repeat(MAX_TEXT_BYTES);
        assert_eq!(cap(exact.clone()), exact);
        let long = "x".repeat(MAX_TEXT_BYTES + 100);
        let capped = cap(long);
        assert!(capped.starts_with(&"x".repeat(MAX_TEXT_BYTES)));
        assert!(capped.ends_with("… (100 bytes cut)"), "{}", &capped[MAX_TEXT_BYTES..]);
        // A 3-byte character straddling the bound is cut whole.
        let capped = cap_to("ab✓cd".into(), 3);
        assert_eq!(capped, "ab… (5 bytes cut)");
    }

    #[test]
    fn cap_messages_bounds_count_and_size() {
        let many: Vec<String> = (0..MAX_MESSAGES + 5).map(|i| format!("m{i}")).collect();
        let capped = cap_messages(many);
        assert_eq!(capped.len(), MAX_MESSAGES + 1);
        assert_eq!(capped[MAX_MESSAGES], "… (5 more messages cut)");
        let big = cap_messages(vec!["y".repeat(MAX_TEXT_BYTES * 2)]);
        assert!(big[0].len() < MAX_TEXT_BYTES + 64);
    }
}
