//! Per-patient thresholds and the one override rule of `clinical/rules.md` §0.4.
//!
//! **Tighten any rule; move a HIGH threshold but never past its CRITICAL floor; relax
//! MEDIUM/LOW thresholds (open-ended unless `until` is given); snooze MEDIUM/LOW rules
//! for at most 7 days; never relax or snooze a CRITICAL rule.** Only the parameters of
//! the §0.4 table can be overridden; anything else is refused with a reason, and the
//! rest still applies. Each threshold keeps the comparison its rule states (a
//! `glucose_hypo_level1` of `{below: 4.2}` fires at ≤ 4.2, an `hr_brady` of
//! `{below: 45}` at < 45).

use chrono::{DateTime, TimeDelta, Utc};

use crate::ruleset::RuleSet;

/// One override as a doctor set it (the registry's and the replay scenario's shape).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OverrideRequest {
    pub rule: String,
    pub below: Option<f64>,
    pub above: Option<f64>,
    pub systolic: Option<f64>,
    pub diastolic: Option<f64>,
    pub kg: Option<f64>,
    pub snooze_until: Option<DateTime<Utc>>,
    /// The override stops applying then; open-ended when absent.
    pub until: Option<DateTime<Utc>>,
}

/// An override the rule set does not allow, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub rule: String,
    pub reason: String,
}

/// A threshold value that applies until an instant (or for good).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Setting<T> {
    pub default: T,
    over: Option<(T, Option<DateTime<Utc>>)>,
}

impl<T: Copy> Setting<T> {
    fn new(default: T) -> Setting<T> {
        Setting {
            default,
            over: None,
        }
    }

    /// The value in force at `t`.
    pub fn at(&self, t: DateTime<Utc>) -> T {
        match self.over {
            Some((v, until)) if until.is_none_or(|u| t < u) => v,
            _ => self.default,
        }
    }
}

/// The thresholds of one patient: the defaults of §1, with the overrides applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// (systolic, diastolic), fires at ≥ either.
    pub bp_grade2: Setting<(f64, f64)>,
    pub bp_uncontrolled_home: Setting<(f64, f64)>,
    /// SBP below.
    pub bp_hypotension: Setting<f64>,
    /// ≤.
    pub glucose_hypo_level1: Setting<f64>,
    /// >.
    pub glucose_hyper_level2: Setting<f64>,
    /// ≥.
    pub glucose_hyper_urgent: Setting<f64>,
    /// ≥.
    pub glucose_fasting_uncontrolled: Setting<f64>,
    /// ≤ (on the patient's scale).
    pub spo2_low: Setting<f64>,
    /// <.
    pub hr_brady: Setting<f64>,
    /// > (the single-reading threshold).
    pub hr_tachy: Setting<f64>,
    /// ≥.
    pub temp_low_grade: Setting<f64>,
    pub temp_fever: Setting<f64>,
    pub temp_high_fever: Setting<f64>,
    /// kg: 3 d >, 1 d ≥.
    pub hf_weight_gain_3d: Setting<f64>,
    pub hf_weight_gain_1d: Setting<f64>,
    /// MEDIUM/LOW rules snoozed, until when.
    pub snoozed: Vec<(String, DateTime<Utc>)>,
    /// The CRITICAL floors overrides may not pass: level-2 hypoglycaemia, critical
    /// SpO2 on the patient's scale, severe bradycardia and tachycardia.
    floors: Floors,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Floors {
    hypo_level2_below: f64,
    spo2_critical: f64,
    brady_severe: f64,
    tachy_severe: f64,
    /// The clear conditions: a trigger moved past its clear threshold would close and
    /// reopen the episode on every reading (flapping), so such overrides are refused.
    hypo_clear_at: f64,
    hyper_clear_below: f64,
    spo2_clear_at: f64,
    brady_clear_at: f64,
    tachy_clear_at_or_below: f64,
    hypotension_clear_at: f64,
    fever_clear_below: f64,
}

impl Thresholds {
    /// The default rule set's thresholds for a patient on SpO2 scale 1 or 2.
    pub fn defaults(scale2: bool) -> Thresholds {
        Thresholds::from_rules(&RuleSet::default(), scale2)
    }

    /// The thresholds of `rules` for a patient on SpO2 scale 1 or 2.
    pub fn from_rules(rules: &RuleSet, scale2: bool) -> Thresholds {
        let (b, g, s, h, t, w) = (
            &rules.bp,
            &rules.glucose,
            &rules.spo2,
            &rules.heart_rate,
            &rules.temperature,
            &rules.weight,
        );
        Thresholds {
            bp_grade2: Setting::new((b.grade2_systolic, b.grade2_diastolic)),
            bp_uncontrolled_home: Setting::new((
                b.uncontrolled_home_systolic,
                b.uncontrolled_home_diastolic,
            )),
            bp_hypotension: Setting::new(b.hypotension_below),
            glucose_hypo_level1: Setting::new(g.level1_at_or_below),
            glucose_hyper_level2: Setting::new(g.hyper_level2_above),
            glucose_hyper_urgent: Setting::new(g.hyper_urgent_at_or_above),
            glucose_fasting_uncontrolled: Setting::new(g.fasting_at_or_above),
            spo2_low: Setting::new(if scale2 {
                s.scale2_low_at_or_below
            } else {
                s.low_at_or_below
            }),
            hr_brady: Setting::new(h.brady_below),
            hr_tachy: Setting::new(h.tachy_above),
            temp_low_grade: Setting::new(t.low_grade_at_or_above),
            temp_fever: Setting::new(t.fever_at_or_above),
            temp_high_fever: Setting::new(t.high_fever_at_or_above),
            hf_weight_gain_3d: Setting::new(w.gain_3d_above),
            hf_weight_gain_1d: Setting::new(w.gain_1d_at_or_above),
            snoozed: Vec::new(),
            floors: Floors {
                hypo_level2_below: g.level2_below,
                spo2_critical: if scale2 {
                    s.scale2_critical_at_or_below
                } else {
                    s.critical_at_or_below
                },
                brady_severe: h.brady_severe_at_or_below,
                tachy_severe: h.tachy_severe_at_or_above,
                hypo_clear_at: g.hypo_clear_at,
                hyper_clear_below: g.hyper_clear_below,
                spo2_clear_at: if scale2 {
                    s.scale2_clear_at
                } else {
                    s.clear_at
                },
                brady_clear_at: h.brady_clear_at,
                tachy_clear_at_or_below: h.tachy_clear_at_or_below,
                hypotension_clear_at: rules.bp.hypotension_clear_at,
                fever_clear_below: t.fever_clear_below,
            },
        }
    }

    /// Whether `rule` is snoozed at `t`.
    pub fn is_snoozed(&self, rule: &str, t: DateTime<Utc>) -> bool {
        self.snoozed
            .iter()
            .any(|(r, until)| r == rule && t < *until)
    }

    /// Applies the requests that §0.4 allows; returns those it refuses, with why.
    /// `set_at` is when the overrides were set (a snooze may reach 7 days past it).
    pub fn apply(&mut self, requests: &[OverrideRequest], set_at: DateTime<Utc>) -> Vec<Refused> {
        let mut refused = Vec::new();
        for r in requests {
            if let Err(reason) = self.apply_one(r, set_at) {
                refused.push(Refused {
                    rule: r.rule.clone(),
                    reason,
                });
            }
        }
        refused
    }

    fn apply_one(&mut self, r: &OverrideRequest, set_at: DateTime<Utc>) -> Result<(), String> {
        let floors = self.floors;
        let severity = severity_of(&r.rule)
            .ok_or_else(|| format!("{} is not a rule of the rule set", r.rule))?;
        let critical = severity == "CRITICAL";
        if let Some(until) = r.snooze_until {
            if critical || severity == "HIGH" {
                return Err(format!(
                    "{} is {severity}: only MEDIUM and LOW rules can be snoozed",
                    r.rule
                ));
            }
            if until > set_at + TimeDelta::days(7) {
                return Err(format!(
                    "a snooze lasts at most 7 days; {} is snoozed until {}",
                    r.rule,
                    until.to_rfc3339()
                ));
            }
            self.snoozed.push((r.rule.clone(), until));
            return Ok(());
        }
        if critical {
            return Err(format!(
                "{} is CRITICAL: it has no overridable parameter in clinical rules §0.4, and a CRITICAL rule is never relaxed",
                r.rule
            ));
        }
        let one = |v: Option<f64>, name: &str| {
            v.filter(|x| x.is_finite() && *x > 0.0)
                .ok_or_else(|| format!("{} takes {{\"{name}\": a positive number}}", r.rule))
        };
        let until = r.until;
        // A "below" trigger must stay under the value that clears its episode, an
        // "above" trigger over it, or every reading in between would flap.
        let under = |v: f64, clear: f64, what: &str| {
            if v >= clear {
                Err(format!(
                    "{} below {v} would close and reopen its episode on every reading: it closes at {clear}; {what}",
                    r.rule
                ))
            } else {
                Ok(v)
            }
        };
        let over = |v: f64, clear: f64| {
            if v < clear {
                Err(format!(
                    "{} above {v} would close and reopen its episode on every reading: it closes below {clear}",
                    r.rule
                ))
            } else {
                Ok(v)
            }
        };
        let set = |s: &mut Setting<f64>, v: f64| s.over = Some((v, until));
        match r.rule.as_str() {
            "bp_grade2" | "bp_uncontrolled_home" => {
                let sys = one(r.systolic, "systolic")?;
                let dia = one(r.diastolic, "diastolic")?;
                let s = if r.rule == "bp_grade2" {
                    &mut self.bp_grade2
                } else {
                    &mut self.bp_uncontrolled_home
                };
                s.over = Some(((sys, dia), until));
            }
            "bp_hypotension" => {
                let v = under(
                    one(r.below, "below")?,
                    floors.hypotension_clear_at,
                    "choose a lower systolic",
                )?;
                if v < 60.0 {
                    return Err(format!(
                        "bp_hypotension below {v} mmHg would silence it: 60 mmHg is the lowest accepted"
                    ));
                }
                set(&mut self.bp_hypotension, v);
            }
            "glucose_hypo_level1" => {
                let v = under(
                    one(r.below, "below")?,
                    floors.hypo_clear_at,
                    "choose a lower value",
                )?;
                if v < floors.hypo_level2_below {
                    return Err(format!(
                        "glucose_hypo_level1 never goes below {} mmol/L, the CRITICAL floor of glucose_hypo_level2",
                        floors.hypo_level2_below
                    ));
                }
                set(&mut self.glucose_hypo_level1, v);
            }
            "glucose_hyper_level2" => set(
                &mut self.glucose_hyper_level2,
                over(one(r.above, "above")?, floors.hyper_clear_below)?,
            ),
            "glucose_hyper_urgent" => {
                let v = over(one(r.above, "above")?, floors.hyper_clear_below)?;
                if v > 33.3 {
                    return Err(
                        "glucose_hyper_urgent cannot move past 33.3 mmol/L, where the meter shows HI (glucose_hyper_extreme, CRITICAL)"
                            .to_owned(),
                    );
                }
                set(&mut self.glucose_hyper_urgent, v);
            }
            "glucose_fasting_uncontrolled" => set(
                &mut self.glucose_fasting_uncontrolled,
                one(r.above, "above")?,
            ),
            "spo2_low" => {
                let v = under(
                    one(r.below, "below")?,
                    floors.spo2_clear_at,
                    "choose a lower value",
                )?;
                let floor = floors.spo2_critical + 1.0;
                if v < floor {
                    return Err(format!(
                        "spo2_low cannot move below {floor} %: lower is spo2_critical (CRITICAL) on this patient's scale"
                    ));
                }
                set(&mut self.spo2_low, v);
            }
            "hr_brady" => {
                let v = under(
                    one(r.below, "below")?,
                    floors.brady_clear_at,
                    "choose a lower rate",
                )?;
                if v < floors.brady_severe + 1.0 {
                    return Err(format!(
                        "hr_brady is at least {}/min: {} and below is hr_brady_severe (CRITICAL)",
                        floors.brady_severe + 1.0,
                        floors.brady_severe
                    ));
                }
                set(&mut self.hr_brady, v);
            }
            "hr_tachy" => {
                let v = one(r.above, "above")?;
                if v <= floors.tachy_clear_at_or_below {
                    return Err(format!(
                        "hr_tachy above {v} would close and reopen its episode on every reading: it closes at {}",
                        floors.tachy_clear_at_or_below
                    ));
                }
                if v > floors.tachy_severe - 1.0 {
                    return Err(format!(
                        "hr_tachy is at most {}/min: {} and above is hr_tachy_severe (CRITICAL)",
                        floors.tachy_severe - 1.0,
                        floors.tachy_severe
                    ));
                }
                set(&mut self.hr_tachy, v);
            }
            "temp_low_grade" | "temp_fever" | "temp_high_fever" => {
                let v = over(one(r.above, "above")?, floors.fever_clear_below)?;
                if v > 42.0 {
                    return Err(format!(
                        "{} above {v} °C would silence it: 42 °C is the highest accepted",
                        r.rule
                    ));
                }
                let s = match r.rule.as_str() {
                    "temp_low_grade" => &mut self.temp_low_grade,
                    "temp_fever" => &mut self.temp_fever,
                    _ => &mut self.temp_high_fever,
                };
                set(s, v);
            }
            "hf_weight_gain_3d" => set(&mut self.hf_weight_gain_3d, one(r.kg, "kg")?),
            "hf_weight_gain_1d" => set(&mut self.hf_weight_gain_1d, one(r.kg, "kg")?),
            other => {
                return Err(format!(
                    "{other} has no overridable parameter (clinical rules §0.4)"
                ));
            }
        }
        Ok(())
    }
}

/// The severity of every rule of §1 (the upgraded severity of `glucose_hyper_urgent`
/// with symptoms aside).
pub fn severity_of(rule: &str) -> Option<&'static str> {
    Some(match rule {
        "bp_crisis"
        | "glucose_hypo_level2"
        | "glucose_hyper_extreme"
        | "spo2_critical"
        | "hr_brady_severe"
        | "hr_tachy_severe"
        | "ecg_critical" => "CRITICAL",
        "bp_crisis_unconfirmed"
        | "bp_hypotension"
        | "glucose_hypo_level1"
        | "glucose_hyper_urgent"
        | "spo2_low"
        | "hr_brady"
        | "hr_tachy"
        | "temp_high_fever"
        | "temp_hypothermia"
        | "hf_weight_gain_3d"
        | "ecg_af_detected" => "HIGH",
        "bp_grade2"
        | "bp_uncontrolled_home"
        | "glucose_hyper_level2"
        | "glucose_fasting_uncontrolled"
        | "temp_fever"
        | "hf_weight_gain_1d"
        | "retrospective_finding" => "MEDIUM",
        "temp_low_grade" | "monitoring_gap" => "LOW",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn req(rule: &str) -> OverrideRequest {
        OverrideRequest {
            rule: rule.to_owned(),
            ..OverrideRequest::default()
        }
    }

    #[test]
    fn high_thresholds_move_but_never_past_their_critical_floor() {
        let now = t("2026-03-01T00:00:00Z");
        let mut th = Thresholds::defaults(false);
        let refused = th.apply(
            &[
                OverrideRequest {
                    below: Some(45.0),
                    ..req("hr_brady")
                },
                OverrideRequest {
                    below: Some(38.0),
                    ..req("hr_brady")
                },
                OverrideRequest {
                    above: Some(140.0),
                    ..req("hr_tachy")
                },
                OverrideRequest {
                    below: Some(89.0),
                    ..req("spo2_low")
                },
                OverrideRequest {
                    below: Some(2.8),
                    ..req("glucose_hypo_level1")
                },
            ],
            now,
        );
        assert_eq!(th.hr_brady.at(now), 45.0);
        let rules: Vec<&str> = refused.iter().map(|r| r.rule.as_str()).collect();
        assert_eq!(
            rules,
            ["hr_brady", "hr_tachy", "spo2_low", "glucose_hypo_level1"]
        );
        assert!(refused[0].reason.contains("41"));
    }

    #[test]
    fn a_trigger_moved_past_its_clear_threshold_is_refused_as_it_would_flap() {
        let now = t("2026-03-01T00:00:00Z");
        let mut th = Thresholds::defaults(false);
        let refused = th.apply(
            &[
                OverrideRequest {
                    below: Some(60.0),
                    ..req("hr_brady")
                },
                OverrideRequest {
                    below: Some(4.5),
                    ..req("glucose_hypo_level1")
                },
                OverrideRequest {
                    above: Some(90.0),
                    ..req("hr_tachy")
                },
                OverrideRequest {
                    above: Some(37.0),
                    ..req("temp_low_grade")
                },
                OverrideRequest {
                    below: Some(0.1),
                    ..req("bp_hypotension")
                },
                OverrideRequest {
                    below: Some(95.0),
                    ..req("bp_hypotension")
                },
            ],
            now,
        );
        assert_eq!(refused.len(), 5, "{refused:#?}");
        assert!(refused[0].reason.contains("closes at 55"), "{refused:#?}");
        assert_eq!(th.bp_hypotension.at(now), 95.0);
    }

    #[test]
    fn critical_rules_are_never_relaxed_nor_snoozed_and_unknown_rules_are_refused() {
        let now = t("2026-03-01T00:00:00Z");
        let mut th = Thresholds::defaults(false);
        let refused = th.apply(
            &[
                OverrideRequest {
                    systolic: Some(200.0),
                    diastolic: Some(120.0),
                    ..req("bp_crisis")
                },
                OverrideRequest {
                    snooze_until: Some(now + TimeDelta::days(1)),
                    ..req("spo2_critical")
                },
                OverrideRequest {
                    snooze_until: Some(now + TimeDelta::days(1)),
                    ..req("hr_brady")
                },
                OverrideRequest {
                    below: Some(3.0),
                    ..req("glucose_hypo_levle1")
                },
            ],
            now,
        );
        assert_eq!(refused.len(), 4, "{refused:#?}");
        assert!(refused[0].reason.contains("CRITICAL"));
        assert!(refused[3].reason.contains("not a rule"));
    }

    #[test]
    fn medium_and_low_rules_relax_and_snooze_for_at_most_seven_days() {
        let now = t("2026-03-01T00:00:00Z");
        let mut th = Thresholds::defaults(false);
        let refused = th.apply(
            &[
                OverrideRequest {
                    systolic: Some(150.0),
                    diastolic: Some(90.0),
                    until: Some(now + TimeDelta::days(30)),
                    ..req("bp_uncontrolled_home")
                },
                OverrideRequest {
                    snooze_until: Some(now + TimeDelta::days(7)),
                    ..req("bp_grade2")
                },
                OverrideRequest {
                    snooze_until: Some(now + TimeDelta::days(8)),
                    ..req("temp_low_grade")
                },
            ],
            now,
        );
        assert_eq!(refused.len(), 1);
        assert!(refused[0].reason.contains("7 days"));
        assert_eq!(th.bp_uncontrolled_home.at(now), (150.0, 90.0));
        // Expired: the default applies again.
        assert_eq!(
            th.bp_uncontrolled_home.at(now + TimeDelta::days(31)),
            (135.0, 85.0)
        );
        assert!(th.is_snoozed("bp_grade2", now + TimeDelta::days(6)));
        assert!(!th.is_snoozed("bp_grade2", now + TimeDelta::days(7)));
    }
}
