//! Standard output for command-line tools built on the checker (its own
//! `checker`, the bookstore's `shopcheck`): a reader that goes away
//! (`checker check FILE | head -1`, `| grep -q`, `| true`) is not an
//! error. `print!` would panic there; exiting at once would drop the
//! command's report and turn its verdict's exit code into 0. Here the rest
//! of the output is dropped and the command carries on.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout's reader has gone away.
static GONE: AtomicBool = AtomicBool::new(false);

/// Writes `text` to stdout. Another write error (a full disk behind a
/// redirection) ends the program with exit code 3, the checker's "bad input
/// or usage", and a message.
pub fn out(text: &str) {
    if GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            GONE.store(true, Ordering::Relaxed);
            return;
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(3);
    }
}
