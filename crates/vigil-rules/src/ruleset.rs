//! The rule set as data: every threshold, confirmation window and clear condition of
//! `clinical/rules.md` §1 in one versioned file.
//!
//! The default set (China's 规范 thresholds, `rules/default-cn.toml`) ships in the
//! binary. A tenant supplies its own file for a deployment-wide change (the AHA crisis
//! set at 180/120, a province's SVT cut-off): a file names only what it changes, the
//! rest is the default; unknown keys are errors (a typo must not silently keep a
//! default); [`RuleSet::check`] reports every inconsistency at once. Per-patient
//! changes are overrides ([`crate::overrides`]), not rule sets.

use serde::Deserialize;

/// The rule set shipped as the default.
pub const DEFAULT_CN: &str = include_str!("../rules/default-cn.toml");

/// The whole rule set.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    /// The file format's version (1).
    pub version: u32,
    /// How alerts and logs name this set.
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub bp: Bp,
    #[serde(default)]
    pub glucose: Glucose,
    #[serde(default)]
    pub spo2: Spo2,
    #[serde(default)]
    pub heart_rate: HeartRate,
    #[serde(default)]
    pub temperature: Temperature,
    #[serde(default)]
    pub weight: Weight,
    #[serde(default)]
    pub ecg: Ecg,
    #[serde(default)]
    pub timing: Timing,
}

macro_rules! section {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty = $default:expr),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            $($(#[$fdoc])* pub $field: $ty),+
        }

        impl Default for $name {
            fn default() -> Self {
                $name { $($field: $default),+ }
            }
        }
    };
}

section!(
    /// §1.1 (mmHg; sessions: readings within `session_minutes`, scored by their mean).
    Bp {
        /// `bp_crisis`: a session at or above either (China 180/110; AHA 180/120).
        crisis_systolic: f64 = 180.0,
        crisis_diastolic: f64 = 110.0,
        /// The crisis episode closes on a session below both.
        crisis_clear_systolic: f64 = 170.0,
        crisis_clear_diastolic: f64 = 100.0,
        session_minutes: i64 = 3,
        /// A confirming session comes this many minutes after the index one, at most
        /// `confirm_within_minutes` (then `bp_crisis_unconfirmed`).
        confirm_after_minutes: i64 = 5,
        confirm_within_minutes: i64 = 30,
        /// `bp_grade2`: sessions at or above either, below crisis, on 2 days of 7.
        grade2_systolic: f64 = 160.0,
        grade2_diastolic: f64 = 100.0,
        /// `bp_uncontrolled_home`: the 7-day mean at or above either, over 3 days.
        uncontrolled_home_systolic: f64 = 135.0,
        uncontrolled_home_diastolic: f64 = 85.0,
        /// `bp_hypotension`: a session's systolic below this, confirmed; clears at.
        hypotension_below: f64 = 90.0,
        hypotension_clear_at: f64 = 100.0,
    }
);

section!(
    /// §1.2 (mmol/L).
    Glucose {
        /// `glucose_hypo_level2`: below this (or the meter's LO).
        level2_below: f64 = 3.0,
        /// `glucose_hypo_level1`: at or below this.
        level1_at_or_below: f64 = 3.9,
        /// The hypo episode closes at or above this.
        hypo_clear_at: f64 = 4.4,
        /// `glucose_hyper_level2`: above this.
        hyper_level2_above: f64 = 13.9,
        /// `glucose_hyper_urgent`: at or above this.
        hyper_urgent_at_or_above: f64 = 16.7,
        /// The hyper episode closes below this (`glucose_hyper_extreme` below
        /// `hyper_urgent_at_or_above`).
        hyper_clear_below: f64 = 13.9,
        /// `glucose_fasting_uncontrolled`: fasting at or above this on 3 days of 7.
        fasting_at_or_above: f64 = 7.0,
    }
);

section!(
    /// §1.3 (%), NEWS2 scale 1 and scale 2 (hypercapnic risk).
    Spo2 {
        critical_at_or_below: f64 = 89.0,
        low_at_or_below: f64 = 91.0,
        clear_at: f64 = 94.0,
        scale2_critical_at_or_below: f64 = 83.0,
        scale2_low_at_or_below: f64 = 87.0,
        scale2_clear_at: f64 = 88.0,
    }
);

section!(
    /// §1.4 (/min, at rest).
    HeartRate {
        brady_severe_at_or_below: f64 = 40.0,
        brady_below: f64 = 50.0,
        brady_severe_clear_at: f64 = 50.0,
        brady_clear_at: f64 = 55.0,
        tachy_severe_at_or_above: f64 = 131.0,
        /// The single-reading `hr_tachy` threshold.
        tachy_above: f64 = 120.0,
        tachy_severe_clear_at_or_below: f64 = 110.0,
        tachy_clear_at_or_below: f64 = 95.0,
        /// `hr_tachy` also fires on two readings above this taken this far apart.
        tachy_pair_above: f64 = 100.0,
        tachy_pair_min_minutes: i64 = 10,
        tachy_pair_max_minutes: i64 = 60,
    }
);

section!(
    /// §1.5 (°C).
    Temperature {
        low_grade_at_or_above: f64 = 37.3,
        fever_at_or_above: f64 = 38.1,
        high_fever_at_or_above: f64 = 39.1,
        fever_clear_below: f64 = 37.3,
        hypothermia_at_or_below: f64 = 35.0,
        hypothermia_clear_at: f64 = 35.5,
    }
);

section!(
    /// §1.6 (kg; morning weights of heart-failure patients).
    Weight {
        gain_3d_above: f64 = 2.0,
        gain_1d_at_or_above: f64 = 1.0,
    }
);

section!(
    /// §1.7.
    Ecg {
        /// VT is critical at or above this rate, sustained.
        vt_rate: f64 = 150.0,
        /// "Sustained": at least this long.
        sustained_seconds: f64 = 30.0,
        /// A pause is critical at or above this RR interval.
        pause_seconds: f64 = 3.0,
        /// AF, flutter and SVT are critical at or above this rate, sustained (the
        /// provinces differ: 180, 200, 230).
        supraventricular_critical_rate: f64 = 180.0,
        /// A mean ventricular rate below this is critical.
        critical_rate_below: f64 = 35.0,
        /// An ECG episode lapses after this long without a new qualifying finding.
        lapse_hours: i64 = 24,
    }
);

section!(
    /// §0.7, §0.10, §1.8 (local hours; days and hours).
    Timing {
        /// MEDIUM/LOW alerts generated in [start, end) are held until `end`.
        quiet_start_hour: u32 = 22,
        quiet_end_hour: u32 = 8,
        /// The daily monitoring-gap job.
        gap_job_hour: u32 = 8,
        gap_bp_days: i64 = 7,
        gap_glucose_days: i64 = 7,
        gap_weight_hours: i64 = 72,
    }
);

impl Default for RuleSet {
    /// The China set, as shipped (`rules/default-cn.toml`).
    fn default() -> Self {
        RuleSet {
            version: 1,
            name: "vigil-default-cn".to_owned(),
            description: String::new(),
            bp: Bp::default(),
            glucose: Glucose::default(),
            spo2: Spo2::default(),
            heart_rate: HeartRate::default(),
            temperature: Temperature::default(),
            weight: Weight::default(),
            ecg: Ecg::default(),
            timing: Timing::default(),
        }
    }
}

impl RuleSet {
    /// Parses a rule-set file (TOML) and checks it; every problem at once.
    pub fn parse(text: &str) -> Result<RuleSet, Vec<String>> {
        let set: RuleSet =
            toml::from_str(text).map_err(|e| vec![e.to_string().trim_end().to_owned()])?;
        set.check()?;
        Ok(set)
    }

    /// The consistency checks: every trigger has its clear condition on the right
    /// side (hysteresis), severities are ordered, windows are positive.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let mut p = Vec::new();
        fn order(p: &mut Vec<String>, what: &str, low: f64, high: f64) {
            if !(low.is_finite() && high.is_finite() && low < high) {
                p.push(format!("{what}: {low} must be below {high}"));
            }
        }
        let (b, g, s, h, t, e) = (
            &self.bp,
            &self.glucose,
            &self.spo2,
            &self.heart_rate,
            &self.temperature,
            &self.ecg,
        );
        order(
            &mut p,
            "bp: uncontrolled_home_systolic < grade2_systolic",
            b.uncontrolled_home_systolic,
            b.grade2_systolic,
        );
        order(
            &mut p,
            "bp: grade2_systolic < crisis_systolic",
            b.grade2_systolic,
            b.crisis_systolic,
        );
        order(
            &mut p,
            "bp: uncontrolled_home_diastolic < grade2_diastolic",
            b.uncontrolled_home_diastolic,
            b.grade2_diastolic,
        );
        order(
            &mut p,
            "bp: grade2_diastolic < crisis_diastolic",
            b.grade2_diastolic,
            b.crisis_diastolic,
        );
        order(
            &mut p,
            "bp: crisis_clear_systolic < crisis_systolic",
            b.crisis_clear_systolic,
            b.crisis_systolic,
        );
        order(
            &mut p,
            "bp: crisis_clear_diastolic < crisis_diastolic",
            b.crisis_clear_diastolic,
            b.crisis_diastolic,
        );
        order(
            &mut p,
            "bp: hypotension_below < hypotension_clear_at",
            b.hypotension_below,
            b.hypotension_clear_at,
        );
        order(
            &mut p,
            "glucose: level2_below < level1_at_or_below",
            g.level2_below,
            g.level1_at_or_below,
        );
        order(
            &mut p,
            "glucose: level1_at_or_below < hypo_clear_at",
            g.level1_at_or_below,
            g.hypo_clear_at,
        );
        order(
            &mut p,
            "glucose: hyper_level2_above < hyper_urgent_at_or_above",
            g.hyper_level2_above,
            g.hyper_urgent_at_or_above,
        );
        if g.hyper_clear_below > g.hyper_level2_above {
            p.push(format!(
                "glucose: hyper_clear_below ({}) must not be above hyper_level2_above ({})",
                g.hyper_clear_below, g.hyper_level2_above
            ));
        }
        order(
            &mut p,
            "spo2: critical_at_or_below < low_at_or_below",
            s.critical_at_or_below,
            s.low_at_or_below,
        );
        order(
            &mut p,
            "spo2: low_at_or_below < clear_at",
            s.low_at_or_below,
            s.clear_at,
        );
        order(
            &mut p,
            "spo2: scale2_critical_at_or_below < scale2_low_at_or_below",
            s.scale2_critical_at_or_below,
            s.scale2_low_at_or_below,
        );
        order(
            &mut p,
            "spo2: scale2_low_at_or_below < scale2_clear_at",
            s.scale2_low_at_or_below,
            s.scale2_clear_at,
        );
        order(
            &mut p,
            "heart_rate: brady_severe_at_or_below < brady_below",
            h.brady_severe_at_or_below,
            h.brady_below,
        );
        order(
            &mut p,
            "heart_rate: brady_severe_at_or_below < brady_severe_clear_at",
            h.brady_severe_at_or_below,
            h.brady_severe_clear_at,
        );
        order(
            &mut p,
            "heart_rate: brady_below < brady_clear_at",
            h.brady_below,
            h.brady_clear_at,
        );
        order(
            &mut p,
            "heart_rate: tachy_above < tachy_severe_at_or_above",
            h.tachy_above,
            h.tachy_severe_at_or_above,
        );
        order(
            &mut p,
            "heart_rate: tachy_severe_clear_at_or_below < tachy_severe_at_or_above",
            h.tachy_severe_clear_at_or_below,
            h.tachy_severe_at_or_above,
        );
        order(
            &mut p,
            "heart_rate: tachy_clear_at_or_below < tachy_above",
            h.tachy_clear_at_or_below,
            h.tachy_above,
        );
        order(
            &mut p,
            "heart_rate: tachy_pair_above < tachy_severe_at_or_above",
            h.tachy_pair_above,
            h.tachy_severe_at_or_above,
        );
        order(
            &mut p,
            "temperature: low_grade_at_or_above < fever_at_or_above",
            t.low_grade_at_or_above,
            t.fever_at_or_above,
        );
        order(
            &mut p,
            "temperature: fever_at_or_above < high_fever_at_or_above",
            t.fever_at_or_above,
            t.high_fever_at_or_above,
        );
        if t.fever_clear_below > t.low_grade_at_or_above {
            p.push(format!(
                "temperature: fever_clear_below ({}) must not be above low_grade_at_or_above ({})",
                t.fever_clear_below, t.low_grade_at_or_above
            ));
        }
        order(
            &mut p,
            "temperature: hypothermia_at_or_below < hypothermia_clear_at",
            t.hypothermia_at_or_below,
            t.hypothermia_clear_at,
        );
        order(
            &mut p,
            "ecg: critical_rate_below < vt_rate",
            e.critical_rate_below,
            e.vt_rate,
        );
        // Upper bounds keep every window a sane duration (and far from what a time
        // type can hold): a day's minutes, a year's days, a month's hours.
        for (what, v, max) in [
            ("weight.gain_3d_above", self.weight.gain_3d_above, 50.0),
            (
                "weight.gain_1d_at_or_above",
                self.weight.gain_1d_at_or_above,
                50.0,
            ),
            ("ecg.sustained_seconds", e.sustained_seconds, 3600.0),
            ("ecg.pause_seconds", e.pause_seconds, 3600.0),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= max) {
                p.push(format!(
                    "{what} must be a positive number up to {max}, not {v}"
                ));
            }
        }
        for (what, v, max) in [
            ("bp.session_minutes", b.session_minutes, 1440),
            ("bp.confirm_after_minutes", b.confirm_after_minutes, 1440),
            ("bp.confirm_within_minutes", b.confirm_within_minutes, 1440),
            (
                "heart_rate.tachy_pair_min_minutes",
                h.tachy_pair_min_minutes,
                1440,
            ),
            (
                "heart_rate.tachy_pair_max_minutes",
                h.tachy_pair_max_minutes,
                1440,
            ),
            ("ecg.lapse_hours", e.lapse_hours, 720),
            ("timing.gap_bp_days", self.timing.gap_bp_days, 365),
            ("timing.gap_glucose_days", self.timing.gap_glucose_days, 365),
            ("timing.gap_weight_hours", self.timing.gap_weight_hours, 720),
        ] {
            if v <= 0 || v > max {
                p.push(format!("{what} must be from 1 to {max}, not {v}"));
            }
        }
        if b.confirm_within_minutes <= b.confirm_after_minutes {
            p.push("bp.confirm_within_minutes must be after bp.confirm_after_minutes".to_owned());
        }
        if h.tachy_pair_max_minutes <= h.tachy_pair_min_minutes {
            p.push(
                "heart_rate.tachy_pair_max_minutes must be after tachy_pair_min_minutes".to_owned(),
            );
        }
        for (what, v) in [
            ("timing.quiet_start_hour", self.timing.quiet_start_hour),
            ("timing.quiet_end_hour", self.timing.quiet_end_hour),
            ("timing.gap_job_hour", self.timing.gap_job_hour),
        ] {
            if v > 23 {
                p.push(format!("{what} must be an hour from 0 to 23, not {v}"));
            }
        }
        if self.version != 1 {
            p.push(format!(
                "version {} is not a rule-set format this Vigil reads (1)",
                self.version
            ));
        }
        if p.is_empty() { Ok(()) } else { Err(p) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_default_file_is_the_default_set() {
        let shipped = RuleSet::parse(DEFAULT_CN).unwrap();
        assert_eq!(
            shipped,
            RuleSet {
                description: shipped.description.clone(),
                ..RuleSet::default()
            }
        );
    }

    #[test]
    fn a_tenant_file_names_only_what_it_changes() {
        let aha = RuleSet::parse(include_str!("../rules/example-aha-crisis.toml")).unwrap();
        assert_eq!(aha.bp.crisis_diastolic, 120.0);
        assert_eq!(aha.bp.crisis_systolic, 180.0);
        assert_eq!(aha.glucose, Glucose::default());
    }

    #[test]
    fn typos_and_inconsistencies_are_all_reported() {
        let e =
            RuleSet::parse("version = 1\nname = \"x\"\n[bp]\ncrisis_sistolic = 170\n").unwrap_err();
        assert!(e[0].contains("crisis_sistolic"), "{e:?}");
        let e = RuleSet::parse(
            "version = 2\nname = \"x\"\n[bp]\ncrisis_systolic = 150\n[spo2]\nclear_at = 90\n",
        )
        .unwrap_err();
        assert_eq!(e.len(), 4, "{e:#?}");
        // A window no time type could hold is refused, not a panic later.
        let e = RuleSet::parse(
            "version = 1\nname = \"x\"\n[timing]\ngap_bp_days = 9223372036854775807\n",
        )
        .unwrap_err();
        assert!(e[0].contains("gap_bp_days must be from 1 to 365"), "{e:?}");
    }
}
