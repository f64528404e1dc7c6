//! Where output goes: the report to stdout, everything else to stderr.

use crate::cli::GlobalArgs;
use crate::render::Format;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};

/// Set up the logger: `-v` levels to stderr, or to `--log-file`.
pub fn init_logging(g: &GlobalArgs) {
    let level = match g.verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        2 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    let mut b = env_logger::Builder::new();
    b.filter_level(level);
    b.format(|buf, rec| {
        let msg = rec.args().to_string();
        writeln!(buf, "hangscope: {}: {}", rec.level(), inert_text(&msg))
    });
    if let Some(path) = &g.log_file {
        match std::fs::File::create(path) {
            Ok(f) => {
                b.target(env_logger::Target::Pipe(Box::new(f)));
            }
            Err(e) => eprintln!("hangscope: cannot write the log to {}: {e}", path.display()),
        }
    }
    let _ = b.try_init();
}

/// Whether progress bars should be drawn.
pub fn progress_enabled(g: &GlobalArgs) -> bool {
    !g.no_progress && !g.json && std::io::stderr().is_terminal()
}

/// Write the report to stdout in one go, made inert for a terminal
/// ([`inert_text`], [`inert_json`]).
pub fn emit(text: &str, format: Format) -> anyhow::Result<()> {
    let text = match format {
        Format::Text => inert_text(text),
        Format::Json => inert_json(text),
        // Its own escaping already turned every control into U+FFFD.
        Format::Html => Cow::Borrowed(text),
    };
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    lock.write_all(text.as_bytes())?;
    if !text.ends_with('\n') && !text.is_empty() {
        lock.write_all(b"\n")?;
    }
    lock.flush()?;
    Ok(())
}

/// One line to stderr, made inert like the report: error messages quote
/// names read from the dump.
pub fn say(line: impl std::fmt::Display) {
    eprintln!("{}", inert_text(&line.to_string()));
}

/// Whether a terminal would act on `c` instead of showing it. Names in a
/// dump are the guest's to choose: a process named `ESC[2K` would erase
/// the line that names it and `ESC[8m` hide the rest of the report, and a
/// right-to-left override reorders what is shown. C0 and C1 controls
/// (newline and tab excepted), DEL and the bidirectional formatting marks.
fn acts_on_terminal(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// Text with every character a terminal would act on written as a visible
/// escape: `\x1b`, `\u{202e}`. Borrowed when there is none.
pub fn inert_text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(acts_on_terminal) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if !acts_on_terminal(c) {
            out.push(c);
        } else if (c as u32) < 0x100 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:04x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

/// JSON with the same characters as `\u` escapes, so a parser reads the
/// same values. serde_json escapes only U+0000-U+001F; DEL, C1 and the
/// bidirectional marks can stand only inside strings, where `\uXXXX` is
/// the character itself.
pub fn inert_json(s: &str) -> Cow<'_, str> {
    if !s.chars().any(acts_on_terminal) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if acts_on_terminal(c) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A write to a closed pipe (`hangscope ps x | head`) is not an error.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(
            inert_text("php-cgi.exe\tpid 2200\n"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(
            inert_json("{\n  \"a\": \"é\"\n}"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn controls_and_bidi_marks_become_visible_escapes() {
        assert_eq!(
            inert_text("a\u{1b}[2Kb\u{9b}8m\r\u{7f}\u{202e}gpj.exe"),
            "a\\x1b[2Kb\\x9b8m\\x0d\\x7f\\u{202e}gpj.exe"
        );
    }

    #[test]
    fn json_keeps_its_values() {
        let name = "\u{1b}[2K\u{9b}8m \u{2067}x\u{7f}";
        let doc = serde_json::to_string_pretty(&serde_json::json!({ "name": name })).unwrap();
        let inert = inert_json(&doc);
        assert!(!inert.chars().any(acts_on_terminal), "{inert}");
        let back: serde_json::Value = serde_json::from_str(&inert).unwrap();
        assert_eq!(back["name"], name);
    }
}
