//! `vigil-edge simulate`: a fleet of simulated patients at home, each with a gateway of
//! its own (its own outbox under the state directory and its own MQTT connection),
//! running the gateway's real path: device bytes → decode → outbox → forwarder.
//!
//! The patients and their physiology come from `vigil-sim` (the same fleet as `vigil
//! demo`, so `--print-registry` gives the registry the platform needs). Blood pressure
//! and glucose readings go through their GATT characteristics: encoded to the bytes a
//! cuff or a meter sends (Blood Pressure Measurement 0x2A35, Glucose Measurement
//! 0x2A18), then decoded and mapped by the same code as real devices' bytes; what a
//! device does not send (the meal context a meter keeps in its Context characteristic,
//! symptoms entered on the gateway) is carried over. The other types are handed over as
//! readings (their encoders exist in `vigil-gatt`; their simulated devices come next).
//!
//! The run is resumable: `sim.json` in the state directory records the fleet's start
//! and how many readings were handed to the outboxes, written after the outboxes have
//! them. A run killed at any point and started again with the same options continues
//! where it was; readings handed over again (a kill between the outbox and `sim.json`)
//! are duplicates the platform deduplicates by identity.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use vigil_gatt::bpm::{BloodPressureMeasurement, BpOptional, PressureUnit};
use vigil_gatt::glucose::{ConcentrationUnit, GlucoseMeasurement, GlucoseSample};
use vigil_gatt::to_reading::{self, ReadingContext};
use vigil_gatt::{DateTime as GattDateTime, Kind, SFloat};
use vigil_model::clock::Clock;
use vigil_model::measurement::{BloodPressure, Glucose};
use vigil_model::units::{GlucoseUnit, PressureUnit as ModelPressureUnit};
use vigil_model::vocab::GlucoseFlag;
use vigil_model::{GatewayId, Measurement, Reading};
use vigil_sim::fleet::{Fleet, FleetConfig};

use crate::forward::{Forwarder, ForwarderConfig};
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct SimulateOptions {
    pub host: String,
    pub port: u16,
    pub state_dir: PathBuf,
    pub patients: usize,
    pub seed: u64,
    /// Readings to hand to the outboxes in all (across restarts).
    pub readings: u64,
    /// Simulated seconds per real second; simulated time never runs ahead of the clock.
    pub speed: f64,
    /// How far back simulated time starts (first run only).
    pub history: TimeDelta,
    /// Batches marked acknowledged without being published (fault injection).
    pub drop_batches: Vec<(GatewayId, u64)>,
    pub batch_size: usize,
    pub linger: Duration,
    /// After the readings are all acknowledged, stay connected (answering commands such
    /// as `backfill`) until `stop` says so.
    pub stay: bool,
}

/// What `sim.json` keeps.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Progress {
    start: DateTime<Utc>,
    handed_over: u64,
}

/// How a run ended.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub readings: u64,
    pub gateways: usize,
    /// Readings that went through GATT bytes (the others were handed over as readings).
    pub via_gatt: u64,
    pub pending: u64,
}

fn load_progress(path: &Path) -> Result<Option<Progress>, String> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| format!("{}: not a simulation state file: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn save_progress(path: &Path, p: &Progress) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(p).unwrap_or_default())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| format!("{}: {e}", path.display()))
}

/// The fleet a state directory runs (for `--print-registry`, and the tests).
pub fn fleet(options: &SimulateOptions, start: DateTime<Utc>) -> Fleet {
    Fleet::new(FleetConfig {
        patients: options.patients,
        seed: options.seed,
        start,
        incident_every: Some(TimeDelta::minutes(30)),
    })
}

/// The start recorded in the state directory, or a new one `history` before `now`,
/// recorded there (so `--print-registry` and the run that follows agree).
pub fn start_of(options: &SimulateOptions, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let path = options.state_dir.join("sim.json");
    if let Some(p) = load_progress(&path)? {
        return Ok(p.start);
    }
    std::fs::create_dir_all(&options.state_dir)
        .map_err(|e| format!("{}: {e}", options.state_dir.display()))?;
    let start = now - options.history;
    save_progress(
        &path,
        &Progress {
            start,
            handed_over: 0,
        },
    )?;
    Ok(start)
}

/// Runs the fleet until `options.readings` readings are handed over and every outbox
/// has drained (then calls `drained`, and with `options.stay` waits for `stop`);
/// `progress` is called about once a second.
pub async fn run(
    options: SimulateOptions,
    clock: Arc<dyn Clock>,
    mut progress: impl FnMut(u64, u64),
    drained: impl FnOnce(&Summary),
    stop: impl Future<Output = ()>,
) -> Result<Summary, String> {
    std::fs::create_dir_all(&options.state_dir)
        .map_err(|e| format!("{}: {e}", options.state_dir.display()))?;
    let progress_path = options.state_dir.join("sim.json");
    let start = start_of(&options, clock.now())?;
    let mut state = load_progress(&progress_path)?.unwrap_or(Progress {
        start,
        handed_over: 0,
    });
    save_progress(&progress_path, &state)?;
    let mut fleet = fleet(&options, start);
    let mut forwarders: HashMap<GatewayId, Forwarder> = HashMap::new();
    for p in fleet.patients() {
        let dir = options.state_dir.join("gateways").join(p.gateway.as_str());
        let (store, _) = Store::open(&dir, vigil_outbox::Config::default())
            .map_err(|e| format!("gateway {}: {e}", p.gateway))?;
        let mut config = ForwarderConfig::new(p.gateway.clone(), &options.host, options.port);
        config.batch_size = options.batch_size;
        config.linger = options.linger;
        config.drop_batches = options
            .drop_batches
            .iter()
            .filter(|(g, _)| g == &p.gateway)
            .map(|(_, b)| *b)
            .collect();
        forwarders.insert(
            p.gateway.clone(),
            Forwarder::start(config, store, clock.clone()),
        );
    }
    // Regenerate what earlier runs handed over, without handing it again.
    let mut skip = state.handed_over;
    let mut generated = state.handed_over;
    let mut via_gatt = 0u64;
    let mut sim_now = fleet.now();
    let mut last_report = std::time::Instant::now();
    while generated < options.readings {
        let real_now = clock.now();
        sim_now = (sim_now + TimeDelta::milliseconds((options.speed * 100.0) as i64)).min(real_now);
        let publishes = fleet.advance(sim_now);
        for publish in publishes {
            let gateway = publish.envelope.gateway_id.clone();
            let mut batch = Vec::new();
            for r in publish.envelope.readings {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                if generated + batch.len() as u64 >= options.readings {
                    break;
                }
                let (r, gatt) = through_gatt(r);
                via_gatt += u64::from(gatt);
                batch.push(r);
            }
            if batch.is_empty() {
                continue;
            }
            let n = batch.len() as u64;
            if let Some(f) = forwarders.get(&gateway) {
                f.handle()
                    .add(batch)
                    .await
                    .map_err(|e| format!("gateway {gateway}: {e}"))?;
            }
            generated += n;
            state.handed_over = generated;
            save_progress(&progress_path, &state)?;
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = std::time::Instant::now();
            progress(generated, pending(&forwarders).await);
        }
        if sim_now >= real_now && generated < options.readings {
            // Caught up with the clock: wait for more simulated time to exist.
            tokio::time::sleep(Duration::from_millis(100)).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
    // Drain: every outbox empty.
    loop {
        let left = pending(&forwarders).await;
        if left == 0 {
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = std::time::Instant::now();
            progress(generated, left);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let summary = Summary {
        readings: generated,
        gateways: forwarders.len(),
        via_gatt,
        pending: 0,
    };
    drained(&summary);
    if options.stay {
        stop.await;
    }
    for (_, f) in forwarders {
        f.shutdown().await;
    }
    Ok(summary)
}

async fn pending(forwarders: &HashMap<GatewayId, Forwarder>) -> u64 {
    let mut n = 0;
    for f in forwarders.values() {
        let h = f.handle();
        n += h.depth().await + h.envelopes_pending().await;
    }
    n
}

/// Sends a reading through its device's GATT bytes and back, when its type has a
/// simulated characteristic; returns the reading the gateway gets and whether it went
/// through GATT. A reading the bytes cannot carry exactly is handed over as it is.
pub fn through_gatt(r: Reading) -> (Reading, bool) {
    let ctx = ReadingContext::new(r.device_id.clone(), r.time);
    let decoded = match &r.measurement {
        Measurement::Bp(bp) => bp_bytes(bp, &r)
            .and_then(|bytes| BloodPressureMeasurement::decode(&bytes).ok())
            .and_then(|m| to_reading::blood_pressure(&m, &ctx).ok()),
        Measurement::Glucose(g) => glucose_bytes(g, &r)
            .and_then(|bytes| GlucoseMeasurement::decode(&bytes).ok())
            .and_then(|m| to_reading::glucose(&m, None, &ctx).ok())
            .map(|mut back| {
                // The meal context and sample type travel in the Context characteristic
                // and the type nibble: carried over as the meter keeps them.
                if let (Measurement::Glucose(b), Measurement::Glucose(orig)) =
                    (&mut back.measurement, &r.measurement)
                {
                    b.context = orig.context;
                    b.sample_type.clone_from(&orig.sample_type);
                }
                back
            }),
        _ => None,
    };
    match decoded {
        Some(mut back) => {
            // What the gateway knows beyond the bytes.
            back.record_seq = r.record_seq;
            back.symptoms.clone_from(&r.symptoms);
            if back.status.is_empty() {
                back.status.clone_from(&r.status);
            }
            if back.device_time.is_none() {
                back.device_time = r.device_time;
            }
            if back == r { (back, true) } else { (r, false) }
        }
        None => (r, false),
    }
}

/// `value` as an SFLOAT, exactly: the first exponent from `finest` up at which the
/// mantissa is a whole number that fits 12 bits; `None` when there is none.
fn sfloat(value: f64, finest: i32) -> Option<SFloat> {
    (finest..=finest + 10).find_map(|e| {
        let m = value * 10f64.powi(-e);
        let whole = m.round();
        ((m - whole).abs() <= 1e-6 * whole.abs().max(1.0) && whole.abs() <= 2047.0)
            .then(|| SFloat::number(whole as i32, e))
            .flatten()
    })
}

fn bp_bytes(bp: &BloodPressure, r: &Reading) -> Option<Vec<u8>> {
    let unit = match bp.unit {
        ModelPressureUnit::MmHg => PressureUnit::MmHg,
        ModelPressureUnit::KPa => PressureUnit::KPa,
    };
    let exp = -2;
    let m = BloodPressureMeasurement {
        unit,
        systolic: sfloat(bp.systolic, exp)?,
        diastolic: sfloat(bp.diastolic, exp)?,
        mean_arterial_pressure: match bp.mean {
            Some(v) => sfloat(v, exp)?,
            None => SFloat::special(Kind::NaN)?,
        },
        optional: BpOptional {
            timestamp: r.device_time.and_then(GattDateTime::from_naive),
            pulse_rate: match bp.pulse {
                Some(p) => Some(sfloat(p, -2)?),
                None => None,
            },
            user_id: None,
            measurement_status: None,
        },
    };
    Some(m.encode())
}

fn glucose_bytes(g: &Glucose, r: &Reading) -> Option<Vec<u8>> {
    let base_time = r.device_time.and_then(GattDateTime::from_naive)?;
    let seq = u16::try_from(r.record_seq?).ok()?;
    let (unit, concentration) = match (g.value, g.flag, g.unit) {
        (Some(v), _, GlucoseUnit::MmolPerL) => {
            (ConcentrationUnit::MolPerL, sfloat(v / 1000.0, -8)?)
        }
        (Some(v), _, GlucoseUnit::MgPerDl) => {
            // 1 mg/dL is 10^-5 kg/L.
            (ConcentrationUnit::KgPerL, sfloat(v / 100_000.0, -8)?)
        }
        (None, Some(GlucoseFlag::Hi), u) => {
            (conc_unit(u), SFloat::special(Kind::PositiveInfinity)?)
        }
        (None, Some(GlucoseFlag::Lo), u) => {
            (conc_unit(u), SFloat::special(Kind::NegativeInfinity)?)
        }
        (None, None, _) => return None,
    };
    Some(
        GlucoseMeasurement {
            sequence_number: seq,
            base_time,
            time_offset_min: None,
            sample: Some(GlucoseSample {
                concentration,
                sample_type: 1,
                sample_location: 1,
            }),
            unit,
            sensor_status: None,
            context_follows: false,
        }
        .encode(),
    )
}

fn conc_unit(u: GlucoseUnit) -> ConcentrationUnit {
    match u {
        GlucoseUnit::MmolPerL => ConcentrationUnit::MolPerL,
        GlucoseUnit::MgPerDl => ConcentrationUnit::KgPerL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blood_pressure_and_glucose_go_through_their_gatt_bytes_unchanged() {
        let start: DateTime<Utc> = "2026-11-20T00:00:00Z".parse().unwrap_or_default();
        let mut f = Fleet::new(FleetConfig {
            patients: 30,
            seed: 7,
            start,
            incident_every: Some(TimeDelta::minutes(30)),
        });
        let (mut bp, mut glucose, mut other) = (0, 0, 0);
        for p in f.advance(start + TimeDelta::days(2)) {
            for r in p.envelope.readings {
                let kind = r.measurement.reading_type();
                let (back, gatt) = through_gatt(r.clone());
                assert_eq!(back, r, "a reading changed on its way through GATT");
                match &r.measurement {
                    Measurement::Bp(_) => {
                        assert!(gatt, "{r:?}");
                        bp += 1;
                    }
                    Measurement::Glucose(_) => {
                        assert!(gatt, "{r:?}");
                        glucose += 1;
                    }
                    _ => {
                        assert!(!gatt, "{kind:?}");
                        other += 1;
                    }
                }
            }
        }
        assert!(
            bp > 100 && glucose > 20 && other > 0,
            "{bp} {glucose} {other}"
        );
    }
}
