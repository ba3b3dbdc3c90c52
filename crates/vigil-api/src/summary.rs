//! The patient page's summaries, `GET /api/v1/patients/{id}/summary`, computed by the
//! functions below (their definitions are in `docs/dashboard.md`; the hospital
//! overview's control rates are built on the same functions):
//!
//! - [`bp_control`]: the mean of the home blood-pressure readings of the trailing
//!   7 days, `(now − 7 d, now]`, each of systolic and diastolic rounded half-up to
//!   1 mmHg; *controlled* when the mean systolic is below the target systolic **and**
//!   the mean diastolic below the target diastolic. The target is the home threshold
//!   of clinical rules §1.1, 135/85 mmHg, or the patient's own active override of
//!   `bp_uncontrolled_home` (e.g. 150/90 for an elderly patient).
//! - [`glucose_tir`]: of the capillary glucose readings of the trailing 7 days, the
//!   share in the target range 3.9–10.0 mmol/L inclusive, below 3.9 (a meter's LO
//!   counts below) and above 10.0 (HI counts above), in whole percent rounded
//!   half-up. (The International Consensus on Time in Range defines these bands for
//!   continuous monitoring; for finger-stick readings the share of readings stands in
//!   for the share of time.)

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::{ApiError, AppState};

/// The trailing window of the summaries.
pub const WINDOW: TimeDelta = TimeDelta::days(7);

/// The home blood-pressure target (clinical rules §1.1, `bp_uncontrolled_home`).
pub const HOME_TARGET: (f64, f64) = (135.0, 85.0);

/// Blood-pressure control over the trailing window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BpControl {
    /// Readings in the window.
    pub readings: usize,
    pub mean_systolic: Option<i64>,
    pub mean_diastolic: Option<i64>,
    /// The target the means are held against: (systolic, diastolic).
    pub target: (f64, f64),
    /// `None` without readings.
    pub controlled: Option<bool>,
}

/// Glucose readings by band over the trailing window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GlucoseTir {
    pub readings: usize,
    pub in_range_pct: Option<u8>,
    pub below_pct: Option<u8>,
    pub above_pct: Option<u8>,
}

fn in_window(at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    at > now - WINDOW && at <= now
}

/// Half-up rounding to a whole number.
fn round_half_up(v: f64) -> i64 {
    (v + 0.5).floor() as i64
}

/// [`BpControl`] of `(time, systolic, diastolic)` readings (mmHg) against `target`.
pub fn bp_control(
    readings: &[(DateTime<Utc>, f64, f64)],
    now: DateTime<Utc>,
    target: (f64, f64),
) -> BpControl {
    let recent: Vec<_> = readings
        .iter()
        .filter(|(at, _, _)| in_window(*at, now))
        .collect();
    if recent.is_empty() {
        return BpControl {
            readings: 0,
            mean_systolic: None,
            mean_diastolic: None,
            target,
            controlled: None,
        };
    }
    let n = recent.len() as f64;
    let sys = round_half_up(recent.iter().map(|r| r.1).sum::<f64>() / n);
    let dia = round_half_up(recent.iter().map(|r| r.2).sum::<f64>() / n);
    BpControl {
        readings: recent.len(),
        mean_systolic: Some(sys),
        mean_diastolic: Some(dia),
        target,
        controlled: Some((sys as f64) < target.0 && (dia as f64) < target.1),
    }
}

/// A glucose reading's band: its value in mmol/L, or the meter's flag.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Glucose {
    Value(f64),
    Lo,
    Hi,
}

/// [`GlucoseTir`] of `(time, glucose)` readings.
pub fn glucose_tir(readings: &[(DateTime<Utc>, Glucose)], now: DateTime<Utc>) -> GlucoseTir {
    let (mut below, mut within, mut above) = (0usize, 0usize, 0usize);
    for (_, g) in readings.iter().filter(|(at, _)| in_window(*at, now)) {
        match *g {
            Glucose::Lo => below += 1,
            Glucose::Hi => above += 1,
            Glucose::Value(v) if v < 3.9 => below += 1,
            Glucose::Value(v) if v > 10.0 => above += 1,
            Glucose::Value(_) => within += 1,
        }
    }
    let n = below + within + above;
    let pct =
        |k: usize| (n > 0).then(|| round_half_up(k as f64 * 100.0 / n as f64).clamp(0, 100) as u8);
    GlucoseTir {
        readings: n,
        in_range_pct: pct(within),
        below_pct: pct(below),
        above_pct: pct(above),
    }
}

/// The patient's blood-pressure target: an active `bp_uncontrolled_home` override's
/// systolic/diastolic, else [`HOME_TARGET`].
pub fn bp_target(patient: &vigil_registry::Patient, now: DateTime<Utc>) -> (f64, f64) {
    patient
        .overrides
        .get("bp_uncontrolled_home")
        .filter(|o| o.until.is_none_or(|u| u.with_timezone(&Utc) > now))
        .map_or(HOME_TARGET, |o| {
            (
                o.systolic.unwrap_or(HOME_TARGET.0),
                o.diastolic.unwrap_or(HOME_TARGET.1),
            )
        })
}

/// `(time, systolic, diastolic)` of stored `bp` readings.
pub fn bp_points(rows: &[vigil_store::StoredReading]) -> Vec<(DateTime<Utc>, f64, f64)> {
    rows.iter()
        .filter_map(|r| {
            Some((
                r.time.with_timezone(&Utc),
                r.canonical.get("systolic_mmhg")?.as_f64()?,
                r.canonical.get("diastolic_mmhg")?.as_f64()?,
            ))
        })
        .collect()
}

/// `(time, glucose)` of stored `glucose` readings.
pub fn glucose_points(rows: &[vigil_store::StoredReading]) -> Vec<(DateTime<Utc>, Glucose)> {
    rows.iter()
        .filter_map(|r| {
            let c = &r.canonical;
            let g = match (
                c.get("glucose_mmol_l").and_then(Value::as_f64),
                c.get("flag").and_then(Value::as_str),
            ) {
                (_, Some("LO")) => Glucose::Lo,
                (_, Some("HI")) => Glucose::Hi,
                (Some(v), _) => Glucose::Value(v),
                _ => return None,
            };
            Some((r.time.with_timezone(&Utc), g))
        })
        .collect()
}

/// `GET /api/v1/patients/{id}/summary`.
pub(crate) async fn patient_summary(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let pid = vigil_model::PatientId::parse(&id)
        .map_err(|e| ApiError::BadRequest(format!("patient id {e}")))?;
    let now = s.clock.now();
    let target = s
        .registry
        .as_ref()
        .map(|r| r())
        .and_then(|r| r.patients.get(&pid).map(|p| bp_target(p, now)))
        .unwrap_or(HOME_TARGET);
    let from = Some(now - WINDOW);
    let bp = s
        .store
        .readings(&pid, Some("bp"), from, None, 10_000)
        .await?;
    let glucose = s
        .store
        .readings(&pid, Some("glucose"), from, None, 10_000)
        .await?;
    Ok(Json(serde_json::json!({
        "patient_id": pid,
        "at": now.to_rfc3339(),
        "window_days": WINDOW.num_days(),
        "bp_control": bp_control(&bp_points(&bp), now, target),
        "glucose_tir": glucose_tir(&glucose_points(&glucose), now),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default() + TimeDelta::hours(h)
    }

    #[test]
    fn bp_control_is_the_trailing_seven_day_mean_against_the_target() {
        let now = at(0);
        let readings = [
            (at(-1), 130.0, 80.0),
            (at(-25), 140.0, 86.0),
            (at(-24 * 7), 200.0, 120.0), // exactly 7 days before: outside
            (at(1), 200.0, 120.0),       // after now: outside
        ];
        let c = bp_control(&readings, now, HOME_TARGET);
        assert_eq!(c.readings, 2);
        assert_eq!((c.mean_systolic, c.mean_diastolic), (Some(135), Some(83)));
        // 135 is not below 135.
        assert_eq!(c.controlled, Some(false));
        // An elderly patient's 150/90 target.
        assert_eq!(
            bp_control(&readings, now, (150.0, 90.0)).controlled,
            Some(true)
        );
        // Half-up: a mean of 134.5 is 135.
        let half = [(at(-1), 134.0, 80.0), (at(-2), 135.0, 80.0)];
        assert_eq!(bp_control(&half, now, HOME_TARGET).mean_systolic, Some(135));
        let none = bp_control(&[], now, HOME_TARGET);
        assert_eq!((none.readings, none.controlled), (0, None));
    }

    #[test]
    fn a_relaxed_bp_target_applies_until_its_override_expires() {
        let text = vigil_testkit::example_registry().replace(
            "overrides = { hr_brady",
            "overrides = { bp_uncontrolled_home = { systolic = 150, diastolic = 90, by = \"d-0001\", reason = \"aged 80\", until = \"2027-01-01T00:00:00+08:00\" }, hr_brady",
        );
        let registry = vigil_registry::Registry::parse(&text).unwrap_or_else(|e| panic!("{e:?}"));
        let patient = registry
            .patients
            .values()
            .find(|p| p.id.as_str() == "p-000123")
            .unwrap_or_else(|| panic!("no p-000123"));
        let until: DateTime<Utc> = "2026-12-31T16:00:00Z".parse().unwrap_or_default();
        assert_eq!(
            bp_target(patient, until - TimeDelta::seconds(1)),
            (150.0, 90.0)
        );
        // From `until` on, the default home target again.
        assert_eq!(bp_target(patient, until), HOME_TARGET);
        assert_eq!(bp_target(patient, until + TimeDelta::days(30)), HOME_TARGET);
    }

    #[test]
    fn time_in_range_counts_bands_inclusively_with_meter_flags() {
        let now = at(0);
        let g = |h, v| (at(h), Glucose::Value(v));
        let readings = [
            g(-1, 3.9),  // in range (inclusive)
            g(-2, 10.0), // in range (inclusive)
            g(-3, 3.8),  // below
            g(-4, 10.1), // above
            (at(-5), Glucose::Lo),
            (at(-6), Glucose::Hi),
            g(-24 * 8, 2.0), // outside the window
        ];
        let t = glucose_tir(&readings, now);
        assert_eq!(t.readings, 6);
        assert_eq!(
            (t.in_range_pct, t.below_pct, t.above_pct),
            (Some(33), Some(33), Some(33))
        );
        let none = glucose_tir(&[], now);
        assert_eq!((none.readings, none.in_range_pct), (0, None));
    }
}
