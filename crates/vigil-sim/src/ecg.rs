//! The real ECG recording embedded in the binary, and strips cut from it at any
//! sample rate.
//!
//! The recording is MIT-BIH Arrhythmia Database record 208 (excerpt, lead MLII, 360 Hz,
//! µV; attribution in `data/README.md` of this crate and in the docs): sinus beats with
//! frequent premature ventricular contractions, so simulated patches stream real
//! morphology, ectopics included, rather than a synthetic sine.

use std::sync::OnceLock;

/// The recording's own sample rate.
pub const SOURCE_RATE_HZ: f64 = 360.0;

/// Where the recording comes from; shown wherever it is used.
pub const ATTRIBUTION: &str = "MIT-BIH Arrhythmia Database record 208 (Moody & Mark, IEEE EMB 20(3):45-50, 2001; Goldberger et al., PhysioNet, Circulation 101(23):e215-e220, 2000), ODC-By 1.0";

const CSV: &str = include_str!("../data/mitdb-208-excerpt-360hz-uv.csv");

/// The recording's samples in µV (parsed once). Lines that are not integers (the `#`
/// header) are skipped.
pub fn recording() -> &'static [i32] {
    static SAMPLES: OnceLock<Vec<i32>> = OnceLock::new();
    SAMPLES.get_or_init(|| {
        CSV.lines()
            .filter_map(|l| l.trim().parse::<i32>().ok())
            .collect()
    })
}

/// `seconds` of the recording starting `offset_s` into it, resampled to `rate_hz` by
/// linear interpolation; the recording wraps around at its end. Empty when the rate or
/// the duration is not positive.
pub fn strip(offset_s: f64, seconds: f64, rate_hz: f64) -> Vec<i32> {
    let src = recording();
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if src.is_empty() || !positive(rate_hz) || !positive(seconds) || !offset_s.is_finite() {
        return Vec::new();
    }
    let n = (seconds * rate_hz).round() as usize;
    let len = src.len() as f64;
    let start = (offset_s * SOURCE_RATE_HZ).rem_euclid(len);
    (0..n)
        .map(|i| {
            let pos = (start + i as f64 * SOURCE_RATE_HZ / rate_hz).rem_euclid(len);
            let k = pos.floor() as usize % src.len();
            let next = (k + 1) % src.len();
            let frac = pos - pos.floor();
            let v = f64::from(src[k]) + (f64::from(src[next]) - f64::from(src[k])) * frac;
            v.round() as i32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_recording_is_the_whole_five_minutes() {
        let r = recording();
        assert_eq!(r.len(), 108_000);
        assert_eq!(&r[..4], &[-245, -215, -185, -175]);
        // Plausible microvolts, with beats of around a millivolt.
        assert!(r.iter().all(|v| v.abs() < 10_000));
        assert!(r.iter().any(|v| v.abs() > 800));
    }

    #[test]
    fn a_strip_at_the_source_rate_is_the_recording_itself() {
        assert_eq!(strip(0.0, 1.0, 360.0), recording()[..360].to_vec());
        assert_eq!(strip(1.0, 0.5, 360.0), recording()[360..540].to_vec());
    }

    #[test]
    fn a_strip_is_resampled_to_the_device_rate_and_wraps_at_the_end() {
        let s = strip(0.0, 10.0, 130.0);
        assert_eq!(s.len(), 1300);
        // Every 13th output sample at 130 Hz falls on every 36th source sample.
        for i in (0..1300).step_by(13) {
            assert_eq!(s[i], recording()[i / 13 * 36]);
        }
        let tail = strip(299.5, 1.0, 360.0);
        assert_eq!(tail[..180], recording()[107_820..]);
        assert_eq!(tail[180..], recording()[..180]);
        assert!(strip(0.0, 0.0, 130.0).is_empty());
        assert!(strip(0.0, 1.0, f64::NAN).is_empty());
    }
}
