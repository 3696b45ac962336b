//! Progress on slow steps: nothing for a step that takes under a second, then
//! a line on stderr each second saying what is being waited for.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// Runs `step`, saying on stderr that it is still running once it has taken
/// a second, and every second after.
pub async fn slow<T>(what: &str, step: impl Future<Output = T>) -> T {
    tokio::pin!(step);
    let started = Instant::now();
    let second = Duration::from_secs(1);
    let mut tick = tokio::time::interval_at(started + second, second);
    let mut said = false;
    loop {
        tokio::select! {
            out = &mut step => {
                if said {
                    eprintln!("{what}: done after {:.1} s", started.elapsed().as_secs_f64());
                }
                return out;
            }
            _ = tick.tick() => {
                said = true;
                eprintln!("{what}: still waiting ({} s)", started.elapsed().as_secs());
            }
        }
    }
}
