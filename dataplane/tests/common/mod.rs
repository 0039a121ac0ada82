//! What the dataplane's integration tests share: waiting for a condition
//! with a deadline, never for a fixed time. A fixed sleep is too short on a
//! loaded machine and too long everywhere else, and "nothing happened"
//! after one proves nothing.

use std::time::{Duration, Instant};

/// How long anything the switch does in microseconds may take on a loaded
/// CI machine before a test gives up.
const PATIENCE: Duration = Duration::from_secs(5);

/// Polls `f` every millisecond until it returns a value; panics naming
/// `what` after [`PATIENCE`].
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Polls `cond` every millisecond until it holds; panics naming `what`
/// after [`PATIENCE`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    wait_for(what, || cond().then_some(()))
}
