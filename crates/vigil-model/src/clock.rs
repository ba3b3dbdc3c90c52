//! Injected time. Everything that reads "now" (receipt stamps, validation, rules,
//! escalation, backoff) takes a [`Clock`], so tests and the accelerated demo drive time
//! themselves.

use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};

/// A source of the current instant.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::<Utc>::from(std::time::SystemTime::now())
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> ManualClock {
        ManualClock {
            now: Mutex::new(start),
        }
    }

    /// The instant; a panic elsewhere while holding it cannot make it unreadable.
    fn instant(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        self.now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Moves the clock forward (or back, with a negative delta).
    pub fn advance(&self, by: TimeDelta) {
        *self.instant() += by;
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *self.instant() = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.instant()
    }
}

/// Simulated time that runs `speed` times faster than the wall clock from `start`
/// (the accelerated demo). Everything of one demo reads this one clock, so a reading
/// the simulated fleet measured "now" is received "now" too, never in the future.
#[derive(Debug)]
pub struct AcceleratedClock {
    start: DateTime<Utc>,
    speed: f64,
    origin: std::time::Instant,
}

impl AcceleratedClock {
    /// Starts at `start` now; `speed` is clamped to at least 1 (no slower than real time).
    pub fn new(start: DateTime<Utc>, speed: f64) -> AcceleratedClock {
        AcceleratedClock {
            start,
            speed: if speed.is_finite() {
                speed.max(1.0)
            } else {
                1.0
            },
            origin: std::time::Instant::now(),
        }
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// The simulated instant after `elapsed` of real time.
    pub fn at(&self, elapsed: std::time::Duration) -> DateTime<Utc> {
        let micros = (elapsed.as_secs_f64() * self.speed * 1e6).min(i64::MAX as f64) as i64;
        self.start
            .checked_add_signed(TimeDelta::microseconds(micros))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// The real time that `simulated` takes on this clock.
    pub fn real(&self, simulated: TimeDelta) -> std::time::Duration {
        simulated
            .to_std()
            .map(|d| d.div_f64(self.speed))
            .unwrap_or_default()
    }
}

impl Clock for AcceleratedClock {
    fn now(&self) -> DateTime<Utc> {
        self.at(self.origin.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let start = DateTime::from_timestamp(1_763_769_600, 0).unwrap();
        let c = ManualClock::new(start);
        assert_eq!(c.now(), start);
        c.advance(TimeDelta::minutes(15));
        assert_eq!(c.now(), start + TimeDelta::minutes(15));
    }

    #[test]
    fn an_accelerated_clock_runs_speed_times_faster_from_its_start() {
        let start = DateTime::from_timestamp(1_763_769_600, 0).unwrap();
        let c = AcceleratedClock::new(start, 360.0);
        assert_eq!(c.at(std::time::Duration::ZERO), start);
        assert_eq!(
            c.at(std::time::Duration::from_secs(10)),
            start + TimeDelta::hours(1)
        );
        assert_eq!(
            c.real(TimeDelta::minutes(30)),
            std::time::Duration::from_secs(5)
        );
        assert!(c.now() >= start);
        // Slower than real time is not a demo: clamped.
        assert_eq!(AcceleratedClock::new(start, 0.5).speed(), 1.0);
        assert_eq!(AcceleratedClock::new(start, f64::NAN).speed(), 1.0);
    }
}
