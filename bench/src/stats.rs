//! Small statistics helpers.

use std::time::Duration;

/// The `p`-quantile (0..=1) of sorted samples, nearest-rank.
pub fn quantile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The median of durations (the lower middle for an even count).
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    if v.is_empty() { Duration::ZERO } else { v[(v.len() - 1) / 2] }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
