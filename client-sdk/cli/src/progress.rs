//! Progress bars of the long commands, on standard error, drawn only when it is a terminal: a
//! script, a pipe or a log file sees nothing of them.

use std::{io::IsTerminal, time::Duration};

use indicatif::{ProgressBar, ProgressFinish, ProgressStyle};

/// A bar, or a hidden one when standard error is not a terminal.
fn new(len: Option<u64>, template: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(len) => ProgressBar::new(len),
        None => ProgressBar::no_length(),
    }
    // A command that fails clears its bar before the error is printed.
    .with_finish(ProgressFinish::AndClear);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A file read and sent: its bytes against its size, and a message (records sent).
pub(crate) fn file(size: u64) -> ProgressBar {
    new(Some(size), "{spinner} [{elapsed}] {wide_bar} {bytes}/{total_bytes} {msg} (about {eta} left)")
}

/// Items sent or done, out of `len`; `noun` names them (`lines sent`, `rows enrolled`).
pub(crate) fn count(len: u64, noun: &str) -> ProgressBar {
    let template = format!("{{spinner}} [{{elapsed}}] {{wide_bar}} {{human_pos}}/{{human_len}} {noun} {{msg}}");
    new(Some(len), &template)
}

/// A file received, of a size not known before its end.
pub(crate) fn download() -> ProgressBar {
    new(None, "{spinner} [{elapsed}] {bytes} received ({bytes_per_sec}) {msg}")
}

/// A stage whose length is unknown, with a message of what it waits for.
pub(crate) fn waiting(bar: &ProgressBar, message: impl Into<std::borrow::Cow<'static, str>>) {
    if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")
        && !bar.is_hidden()
    {
        bar.set_style(style);
    }
    bar.set_message(message);
}
