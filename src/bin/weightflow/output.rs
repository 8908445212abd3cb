//! One printer for everything the CLI says. Human text goes to stderr, so that stdout carries only the
//! JSON document of `--json` and scripts can parse it without filtering.
//!
//! JSON documents carry `"schema": "<command>/<version>"`; fields are only ever added within a version.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// A human-readable line on stderr.
pub fn say(msg: impl std::fmt::Display) {
    eprintln!("{msg}");
}

/// An error with its chain of causes on stderr.
pub fn error(e: &(dyn std::error::Error + 'static)) {
    eprintln!("error: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        eprintln!("  caused by: {s}");
        source = s.source();
    }
}

/// One JSON document on stdout.
pub fn json<T: Serialize>(value: &T) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::Write as _;
    let text = serde_json::to_string_pretty(value)?;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        // The reader went away (`… --json | head`): nobody is left to tell, and `println!` would panic.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// A progress bar on stderr (drawn only on a terminal; hidden with `quiet`).
pub fn progress(total: u64, what: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} steps {elapsed_precise} eta {eta} {prefix}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
