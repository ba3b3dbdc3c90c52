//! The weekly per-patient report for the follow-up visit,
//! `GET /api/v1/patients/{id}/report?to=&format=html|json`: the 7 days ending at `to`
//! (default now). Printable HTML (A4, one column, no script) or JSON. Built by
//! [`build`] from the readings and alert events of the week, so the figures are
//! tested apart from their layout:
//!
//! - per measurement: count, mean, minimum and maximum (blood pressure: systolic and
//!   diastolic);
//! - control: 7-day blood-pressure control against the patient's target and glucose
//!   time in range ([`crate::summary`]), fasting glucose control
//!   ([`crate::overview::fasting_control`]);
//! - adherence: the days of the week with at least one reading;
//! - the alerts opened in the week, with their last state;
//! - the fields of the national follow-up forms (国家基本公共卫生服务规范 第三版:
//!   高血压 / 2型糖尿病患者随访服务记录表, clinical rules §5) the data can pre-fill, per
//!   §5.3: 血压 (the 7-day home mean), 心率, 体重 (the latest), 空腹血糖值 (the latest
//!   fasting reading, marked as capillary self-monitoring), 低血糖反应 (hypoglycaemia
//!   episodes of the week: 0 无, 1–2 偶尔, ≥ 3 频繁), a suggested 此次随访分类 (any
//!   uncontrolled trend rule open → 控制不满意; controlled → 控制满意; for the doctor to
//!   confirm), and 随访方式 3 电话 for a remote review. Nothing is signed or sent.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use vigil_store::{AlertEventRecord, StoredReading};

use crate::overview::{FastingControl, fasting_control};
use crate::summary::{BpControl, GlucoseTir, WINDOW, bp_control, glucose_tir};
use crate::{ApiError, AppState};

/// One measurement's figures over the week.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stat {
    pub field: String,
    pub count: usize,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

/// An alert episode of the week.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WeekAlert {
    pub alert_id: String,
    pub rule: String,
    pub severity: String,
    pub display: String,
    pub opened_at: DateTime<Utc>,
    /// The last change: opened, upgraded, escalated, acknowledged, resolved.
    pub state: String,
}

/// What the follow-up forms can take from the data (for the doctor to confirm).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FormPrefill {
    /// 血压: the 7-day home mean, "132/81".
    pub blood_pressure: Option<String>,
    /// 心率: the mean pulse or heart rate of the week, per minute.
    pub heart_rate: Option<i64>,
    /// 体重: the latest weight, kg.
    pub weight_kg: Option<f64>,
    /// 空腹血糖值: the latest fasting glucose, mmol/L (capillary self-monitoring).
    pub fasting_glucose: Option<f64>,
    /// 低血糖反应: 无 / 偶尔 / 频繁.
    pub hypoglycaemia: &'static str,
    /// 此次随访分类 suggested: 控制满意 / 控制不满意, or none when the data cannot say.
    pub classification: Option<&'static str>,
    /// 随访方式 for a remote review.
    pub visit_mode: &'static str,
}

/// The week's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Per reading type, per field.
    pub stats: BTreeMap<String, Vec<Stat>>,
    pub bp: BpControl,
    pub glucose: GlucoseTir,
    pub fasting: FastingControl,
    /// Days (of the 7, counted back from `to`) with at least one reading.
    pub days_with_readings: usize,
    pub alerts: Vec<WeekAlert>,
    pub prefill: FormPrefill,
}

/// The fields summarised per reading type (canonical keys, docs/wire-format.md).
const FIELDS: &[(&str, &[&str])] = &[
    ("bp", &["systolic_mmhg", "diastolic_mmhg", "pulse_per_min"]),
    ("glucose", &["glucose_mmol_l"]),
    ("spo2", &["spo2_pct"]),
    ("heart_rate", &["heart_rate_per_min"]),
    ("temperature", &["temperature_cel"]),
    ("weight", &["weight_kg"]),
];

/// Rules whose open episode means "not controlled" on the forms.
const UNCONTROLLED: &[&str] = &[
    "bp_uncontrolled_home",
    "bp_grade2",
    "glucose_fasting_uncontrolled",
];

fn round1(v: f64) -> f64 {
    (v * 10.0 + 0.5).floor() / 10.0
}

/// Builds the report of the week `(to − 7 d, to]` from the patient's readings and
/// alert events (any span: what lies outside the week is left out).
pub fn build(
    readings: &[StoredReading],
    events: &[AlertEventRecord],
    bp_target: (f64, f64),
    to: DateTime<Utc>,
) -> Report {
    let from = to - WINDOW;
    let week: Vec<&StoredReading> = readings
        .iter()
        .filter(|r| {
            let t = r.time.with_timezone(&Utc);
            t > from && t <= to
        })
        .collect();
    let mut stats = BTreeMap::new();
    for (kind, fields) in FIELDS {
        let mut per = Vec::new();
        for field in *fields {
            let values: Vec<f64> = week
                .iter()
                .filter(|r| r.reading_type == *kind)
                .filter_map(|r| r.canonical.get(*field).and_then(Value::as_f64))
                .collect();
            if values.is_empty() {
                continue;
            }
            per.push(Stat {
                field: (*field).to_owned(),
                count: values.len(),
                mean: round1(values.iter().sum::<f64>() / values.len() as f64),
                min: values.iter().copied().fold(f64::INFINITY, f64::min),
                max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            });
        }
        if !per.is_empty() {
            stats.insert((*kind).to_owned(), per);
        }
    }
    let owned: Vec<StoredReading> = week.iter().map(|r| (*r).clone()).collect();
    let bp = bp_control(&crate::summary::bp_points(&owned), to, bp_target);
    let glucose = glucose_tir(&crate::summary::glucose_points(&owned), to);
    let fasting_points: Vec<(DateTime<Utc>, f64)> = owned
        .iter()
        .filter(|r| r.reading_type == "glucose")
        .filter(|r| r.canonical.get("context").and_then(Value::as_str) == Some("fasting"))
        .filter_map(|r| {
            Some((
                r.time.with_timezone(&Utc),
                r.canonical.get("glucose_mmol_l")?.as_f64()?,
            ))
        })
        .collect();
    let fasting = fasting_control(&fasting_points, to);
    let days: BTreeSet<i64> = week
        .iter()
        .map(|r| (to - r.time.with_timezone(&Utc)).num_days())
        .collect();
    // The alerts opened in the week, each with its last change.
    let mut last: BTreeMap<&str, &AlertEventRecord> = BTreeMap::new();
    for e in events {
        last.insert(e.alert_id.as_str(), e);
    }
    let mut alerts: Vec<WeekAlert> = last
        .values()
        .filter(|e| e.opened_at > from && e.opened_at <= to)
        .map(|e| WeekAlert {
            alert_id: e.alert_id.clone(),
            rule: e.rule.clone(),
            severity: e.severity.clone(),
            display: e.display.clone(),
            opened_at: e.opened_at,
            state: e.change.clone(),
        })
        .collect();
    alerts.sort_by_key(|a| a.opened_at);
    let hypos = alerts
        .iter()
        .filter(|a| a.rule.starts_with("glucose_hypo"))
        .count();
    let mean_of = |kind: &str, field: &str| {
        stats
            .get(kind)
            .and_then(|v: &Vec<Stat>| v.iter().find(|s| s.field == field))
            .map(|s| s.mean.round() as i64)
    };
    let latest = |kind: &str, field: &str| {
        owned
            .iter()
            .filter(|r| r.reading_type == kind)
            .max_by_key(|r| r.time)
            .and_then(|r| r.canonical.get(field).and_then(Value::as_f64))
    };
    let uncontrolled_open = last.values().any(|e| {
        UNCONTROLLED.contains(&e.rule.as_str()) && e.change != "resolved" && e.opened_at <= to
    });
    let controlled = match (bp.controlled, fasting.controlled) {
        (None, None) => None,
        (b, f) => Some(b.unwrap_or(true) && f.unwrap_or(true)),
    };
    let classification = if uncontrolled_open || controlled == Some(false) {
        Some("控制不满意")
    } else if controlled == Some(true) {
        Some("控制满意")
    } else {
        None
    };
    let prefill = FormPrefill {
        blood_pressure: match (bp.mean_systolic, bp.mean_diastolic) {
            (Some(s), Some(d)) => Some(format!("{s}/{d}")),
            _ => None,
        },
        heart_rate: mean_of("bp", "pulse_per_min").or(mean_of("heart_rate", "heart_rate_per_min")),
        weight_kg: latest("weight", "weight_kg"),
        fasting_glucose: fasting_points
            .iter()
            .max_by_key(|(t, _)| *t)
            .map(|(_, v)| *v),
        hypoglycaemia: match hypos {
            0 => "无",
            1 | 2 => "偶尔",
            _ => "频繁",
        },
        classification,
        visit_mode: "3 电话",
    };
    Report {
        from,
        to,
        stats,
        bp,
        glucose,
        fasting,
        days_with_readings: days.len(),
        alerts,
        prefill,
    }
}

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    s.chars()
        .fold(String::with_capacity(s.len()), |mut out, c| {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&#39;"),
                c => out.push(c),
            }
            out
        })
}

/// A condition as the forms name it (the vocabulary's id when it has no name here).
fn condition(c: &str) -> String {
    match c {
        "hypertension" => "高血压".to_owned(),
        "type2_diabetes" => "2型糖尿病".to_owned(),
        "type1_diabetes" => "1型糖尿病".to_owned(),
        "insulin_treated" => "胰岛素治疗".to_owned(),
        "coronary_heart_disease" => "冠心病".to_owned(),
        "heart_failure" => "心力衰竭".to_owned(),
        "atrial_fibrillation" => "心房颤动".to_owned(),
        "copd" => "慢阻肺".to_owned(),
        other => other.to_owned(),
    }
}

fn label(kind: &str) -> &'static str {
    match kind {
        "bp" => "血压 Blood pressure",
        "glucose" => "血糖 Glucose",
        "spo2" => "血氧 SpO2",
        "heart_rate" => "心率 Heart rate",
        "temperature" => "体温 Temperature",
        "weight" => "体重 Weight",
        _ => "",
    }
}

/// The report as a printable HTML document (no script, inline styles only).
pub fn render_html(patient: &vigil_registry::Patient, r: &Report, tz: chrono_tz::Tz) -> String {
    let day = |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d").to_string();
    let time = |t: DateTime<Utc>| t.with_timezone(&tz).format("%m-%d %H:%M").to_string();
    let opt = |v: Option<String>| v.map_or("—".to_owned(), |v| esc(&v));
    let mut h = String::new();
    h.push_str("<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">");
    h.push_str(&format!(
        "<title>周报 Weekly report {}</title>",
        esc(patient.id.as_str())
    ));
    h.push_str("<style>body{font:14px/1.5 system-ui,\"Noto Sans CJK SC\",sans-serif;max-width:190mm;margin:10mm auto;color:#111}h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:18px 0 6px;border-bottom:1px solid #999}table{border-collapse:collapse;width:100%}th,td{border:1px solid #bbb;padding:3px 6px;text-align:left}th{background:#f2f2f2}.muted{color:#555}.note{font-size:12px;color:#555}@media print{body{margin:0}a{color:inherit;text-decoration:none}}@page{size:A4;margin:12mm}</style></head><body>");
    h.push_str(&format!(
        "<h1 id=\"report-title\">周报 Weekly report · {}</h1><p class=\"muted\">{} – {} · {} · 责任医生 {}</p>",
        esc(patient.id.as_str()),
        day(r.from),
        day(r.to),
        esc(&patient
            .conditions
            .iter()
            .map(|c| condition(c.as_str()))
            .collect::<Vec<_>>()
            .join("、")),
        esc(patient.care_team.responsible.as_str()),
    ));
    h.push_str("<h2>读数 Readings</h2><table><tr><th>测量 Measurement</th><th>字段 Field</th><th>次数 n</th><th>均值 Mean</th><th>范围 Range</th></tr>");
    for (kind, stats) in &r.stats {
        for s in stats {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} – {}</td></tr>",
                label(kind),
                esc(&s.field),
                s.count,
                s.mean,
                s.min,
                s.max
            ));
        }
    }
    if r.stats.is_empty() {
        h.push_str("<tr><td colspan=\"5\">本周没有读数 No readings this week</td></tr>");
    }
    h.push_str("</table>");
    h.push_str(&format!(
        "<p>监测天数 Days with readings: <b>{} / 7</b></p>",
        r.days_with_readings
    ));
    h.push_str("<h2>控制情况 Control</h2><table>");
    h.push_str(&format!(
        "<tr><th>血压 7 天家庭均值 BP 7-day home mean</th><td>{} mmHg ({} 次) · 目标 target &lt; {}/{} · {}</td></tr>",
        opt(r.prefill.blood_pressure.clone()),
        r.bp.readings,
        r.bp.target.0,
        r.bp.target.1,
        match r.bp.controlled {
            Some(true) => "达标 controlled",
            Some(false) => "未达标 not controlled",
            None => "—",
        }
    ));
    h.push_str(&format!(
        "<tr><th>血糖达标时间 Glucose time in range 3.9–10.0</th><td>{} ({} 次; 低于 below {}, 高于 above {})</td></tr>",
        opt(r.glucose.in_range_pct.map(|p| format!("{p}%"))),
        r.glucose.readings,
        opt(r.glucose.below_pct.map(|p| format!("{p}%"))),
        opt(r.glucose.above_pct.map(|p| format!("{p}%"))),
    ));
    h.push_str(&format!(
        "<tr><th>空腹血糖均值 Mean fasting glucose</th><td>{} mmol/L ({} 次) · {}</td></tr></table>",
        opt(r.fasting.mean.map(|m| m.to_string())),
        r.fasting.readings,
        match r.fasting.controlled {
            Some(true) => "控制满意 (&lt; 7.0)",
            Some(false) => "控制不满意 (≥ 7.0)",
            None => "—",
        }
    ));
    h.push_str("<h2>警报 Alerts</h2><table><tr><th>时间 Opened</th><th>规则 Rule</th><th>级别 Severity</th><th>数值 Value</th><th>状态 State</th></tr>");
    for a in &r.alerts {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            time(a.opened_at),
            esc(&a.rule),
            esc(&a.severity),
            esc(&a.display),
            esc(&a.state)
        ));
    }
    if r.alerts.is_empty() {
        h.push_str("<tr><td colspan=\"5\">本周无警报 No alerts this week</td></tr>");
    }
    h.push_str("</table>");
    let p = &r.prefill;
    h.push_str("<h2>随访记录表预填 Follow-up form, pre-filled</h2><table>");
    for (field, value) in [
        ("随访方式", esc(p.visit_mode)),
        ("血压 (mmHg)", opt(p.blood_pressure.clone())),
        ("心率 (次/分)", opt(p.heart_rate.map(|v| v.to_string()))),
        ("体重 (kg)", opt(p.weight_kg.map(|v| v.to_string()))),
        (
            "空腹血糖值 (mmol/L)",
            opt(p.fasting_glucose.map(|v| format!("{v} (SMBG 指尖血)"))),
        ),
        ("低血糖反应", esc(p.hypoglycaemia)),
        (
            "此次随访分类 (建议)",
            opt(p.classification.map(str::to_owned)),
        ),
    ] {
        h.push_str(&format!("<tr><th>{field}</th><td>{value}</td></tr>"));
    }
    h.push_str("</table><p class=\"note\">由家庭监测数据预填，须经随访医生核对确认后填写；不自动签署或上报。Pre-filled from home monitoring for the doctor to check and confirm; nothing is signed or sent. 国家基本公共卫生服务规范（第三版）高血压 / 2型糖尿病患者随访服务记录表.</p>");
    h.push_str(&format!(
        "<p class=\"note\">Vigil · {} · {}</p></body></html>",
        esc(patient.id.as_str()),
        r.to.to_rfc3339()
    ));
    h
}

#[derive(Debug, Deserialize)]
pub(crate) struct ReportQuery {
    to: Option<String>,
    format: Option<String>,
}

/// `GET /api/v1/patients/{id}/report`.
pub(crate) async fn report(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    let pid = vigil_model::PatientId::parse(&id)
        .map_err(|e| ApiError::BadRequest(format!("patient id {e}")))?;
    let registry = crate::registry_in_force(&s)?;
    let patient = registry
        .patients
        .get(&pid)
        .ok_or_else(|| ApiError::NotFound(format!("no patient {id:?} in the registry")))?;
    let to = crate::instant("to", q.to.as_deref())?.unwrap_or_else(|| s.clock.now());
    let mut readings = Vec::new();
    for (kind, _) in FIELDS {
        readings.extend(
            s.store
                .readings(
                    &pid,
                    Some(kind),
                    Some(to - WINDOW),
                    Some(to + chrono::TimeDelta::milliseconds(1)),
                    10_000,
                )
                .await?,
        );
    }
    let events = s.store.alert_events(Some(&pid)).await?;
    let r = build(
        &readings,
        &events,
        crate::summary::bp_target(patient, to),
        to,
    );
    match q.format.as_deref().unwrap_or("html") {
        "json" => Ok(axum::Json(json!({"patient_id": pid, "report": r})).into_response()),
        "html" => Ok((
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'",
                ),
            ],
            render_html(patient, &r, registry.timezone_of(patient)),
        )
            .into_response()),
        other => Err(ApiError::BadRequest(format!(
            "'format' {other:?} must be html or json"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn reading(kind: &str, hours_before: i64, canonical: Value) -> StoredReading {
        let to: DateTime<Utc> = "2026-11-30T00:00:00Z".parse().unwrap_or_default();
        StoredReading {
            patient_id: "p-1".parse().unwrap_or_else(|_| unreachable!()),
            device_id: "d-1".parse().unwrap_or_else(|_| unreachable!()),
            gateway_id: "g-1".parse().unwrap_or_else(|_| unreachable!()),
            reading_type: kind.to_owned(),
            time: (to - TimeDelta::hours(hours_before)).fixed_offset(),
            received: to,
            late: false,
            canonical,
            original: Value::Null,
        }
    }

    fn event(id: &str, rule: &str, change: &str, hours_before: i64) -> AlertEventRecord {
        let to: DateTime<Utc> = "2026-11-30T00:00:00Z".parse().unwrap_or_default();
        AlertEventRecord {
            alert_id: id.into(),
            patient_id: "p-1".parse().unwrap_or_else(|_| unreachable!()),
            family: rule.into(),
            opened_at: to - TimeDelta::hours(hours_before),
            ordinal: 0,
            display: "x".into(),
            evidence: Value::Null,
            change: change.into(),
            rule: rule.into(),
            severity: "MEDIUM".into(),
            level: 1,
            at: to,
            deliver_at: None,
        }
    }

    #[test]
    fn the_week_is_summarised_and_the_forms_prefilled_as_clinical_rules_5_3_says() {
        let to: DateTime<Utc> = "2026-11-30T00:00:00Z".parse().unwrap_or_default();
        let readings = vec![
            reading(
                "bp",
                2,
                json!({"systolic_mmhg": 150, "diastolic_mmhg": 90, "pulse_per_min": 70}),
            ),
            reading(
                "bp",
                30,
                json!({"systolic_mmhg": 140, "diastolic_mmhg": 84, "pulse_per_min": 74}),
            ),
            reading(
                "bp",
                24 * 8,
                json!({"systolic_mmhg": 200, "diastolic_mmhg": 120}),
            ), // last week
            reading(
                "glucose",
                5,
                json!({"glucose_mmol_l": 6.4, "context": "fasting"}),
            ),
            reading(
                "glucose",
                50,
                json!({"glucose_mmol_l": 7.8, "context": "fasting"}),
            ),
            reading(
                "glucose",
                3,
                json!({"glucose_mmol_l": 9.0, "context": "postprandial"}),
            ),
            reading("weight", 60, json!({"weight_kg": 70.2})),
            reading("weight", 10, json!({"weight_kg": 70.6})),
        ];
        let events = vec![
            event("a1", "glucose_hypo_level1", "opened", 20),
            event("a1", "glucose_hypo_level1", "resolved", 20),
            event("a2", "bp_uncontrolled_home", "opened", 10),
            event("a3", "bp_crisis", "opened", 24 * 9), // before the week
        ];
        let r = build(&readings, &events, crate::summary::HOME_TARGET, to);
        let bp = &r.stats["bp"];
        assert_eq!(
            (bp[0].field.as_str(), bp[0].count, bp[0].mean),
            ("systolic_mmhg", 2, 145.0)
        );
        assert_eq!((bp[0].min, bp[0].max), (140.0, 150.0));
        assert_eq!(r.prefill.blood_pressure.as_deref(), Some("145/87"));
        assert_eq!(r.prefill.heart_rate, Some(72));
        assert_eq!(r.prefill.weight_kg, Some(70.6), "the latest");
        assert_eq!(r.prefill.fasting_glucose, Some(6.4), "the latest fasting");
        assert_eq!(r.prefill.hypoglycaemia, "偶尔");
        // An uncontrolled trend rule is open: 控制不满意 suggested.
        assert_eq!(r.prefill.classification, Some("控制不满意"));
        assert_eq!(r.alerts.len(), 2, "{:?}", r.alerts);
        assert_eq!(r.alerts[0].state, "resolved");
        // Readings on 3 of the 24-hour days back from `to` (hours 2 to 10, 30, 50 and 60).
        assert_eq!(r.days_with_readings, 3);
        assert_eq!(r.fasting.mean, Some(7.1));
        // Nothing measured, nothing suggested; no hypoglycaemia is 无.
        let empty = build(&[], &[], crate::summary::HOME_TARGET, to);
        assert_eq!(empty.prefill.classification, None);
        assert_eq!(empty.prefill.hypoglycaemia, "无");
    }

    #[test]
    fn the_html_escapes_what_it_shows() {
        assert_eq!(
            esc("<b>\"a\" & 'b'</b>"),
            "&lt;b&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/b&gt;"
        );
    }
}
