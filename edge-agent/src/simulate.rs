//! `vigil-edge simulate`: a fleet of simulated patients at home, each with a gateway of
//! its own (its own outbox under the state directory and its own MQTT connection),
//! running the gateway's real path: device bytes → decode → outbox → forwarder.
//!
//! The patients and their physiology come from `vigil-sim` (the same fleet as `vigil
//! demo`, so `--print-registry` gives the registry the platform needs). Blood pressure,
//! glucose, SpO2 (good signal), temperature and weight readings go through their GATT
//! characteristics: encoded to the bytes the device sends (Blood Pressure Measurement
//! 0x2A35, Glucose Measurement 0x2A18, PLX Spot-Check 0x2A5E, Temperature Measurement
//! 0x2A1C, Weight Measurement 0x2A9D), then decoded and mapped by the same code as real
//! devices' bytes; what a device does not send (the meal context a meter keeps in its
//! Context characteristic, symptoms entered on the gateway) is carried over. Heart rate,
//! ECG strips and poor-signal SpO2 are handed over as readings (their sessions are
//! tested against simulated devices in `crate::sim`).
//!
//! Faults can be injected ([`Faults`]): device clocks reset to 2000, memories read and
//! sent again, impossible values.
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
use vigil_gatt::plx::PlxSpotCheck;
use vigil_gatt::temperature::TemperatureMeasurement;
use vigil_gatt::to_reading::{self, ReadingContext};
use vigil_gatt::weight::WeightMeasurement;
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
    pub faults: Faults,
    /// At most this many devices per patient; `None`: the kit their conditions call for.
    pub devices_per_patient: Option<usize>,
}

/// Fault injection: the chance, per reading (per envelope for `resend_memory`), of
/// what real devices do. Decided by the seed and the reading's place in the run, so a
/// resumed run injects the same faults.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    /// The device clock restarted at 2000-01-01 (a battery change): `device_time` says
    /// 2000, `time` stays right (the gateway corrected it).
    pub clock_reset: f64,
    /// The gateway re-reads a device's memory and sends its last readings again (the
    /// platform counts them as duplicates).
    pub resend_memory: f64,
    /// An impossible value (a systolic of 400 mmHg, a glucose of 99 mmol/L): quarantined.
    pub out_of_range: f64,
}

/// How many faults were injected.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Injected {
    pub clock_reset: u64,
    pub out_of_range: u64,
    /// Readings sent again.
    pub resent: u64,
}

/// A number in [0, 1) from the seed, the reading's place and the fault (SplitMix64).
fn draw(seed: u64, index: u64, fault: u64) -> f64 {
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ fault.rotate_left(17);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// Applies the per-reading faults to reading number `index`.
fn inject(mut r: Reading, index: u64, seed: u64, faults: &Faults, n: &mut Injected) -> Reading {
    if draw(seed, index, 1) < faults.out_of_range {
        let hit = match &mut r.measurement {
            Measurement::Bp(bp) => {
                bp.systolic = 400.0;
                true
            }
            Measurement::Glucose(g) if g.value.is_some() => {
                g.value = Some(match g.unit {
                    GlucoseUnit::MmolPerL => 99.0,
                    GlucoseUnit::MgPerDl => 1800.0,
                });
                true
            }
            _ => false,
        };
        n.out_of_range += u64::from(hit);
    }
    if draw(seed, index, 2) < faults.clock_reset
        && let Some(t) = r.device_time
        && let Some(epoch) = chrono::NaiveDate::from_ymd_opt(2000, 1, 1)
    {
        // As if the clock restarted at 2000-01-01 00:00 at the start of that day.
        r.device_time = Some(epoch.and_time(t.time()));
        n.clock_reset += 1;
    }
    r
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
    pub faults: Injected,
    pub gateways: usize,
    /// Readings that went through GATT bytes (the others were handed over as readings).
    pub via_gatt: u64,
    /// Readings whose GATT bytes decoded to something else (an encoder or decoder
    /// bug; handed over as they were): 0 in a healthy build.
    pub gatt_mismatches: u64,
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
    crate::durable::write_atomically(path, &serde_json::to_vec(p).unwrap_or_default())
}

/// The fleet a state directory runs (for `--print-registry`, and the tests).
pub fn fleet(options: &SimulateOptions, start: DateTime<Utc>) -> Fleet {
    Fleet::new(FleetConfig {
        patients: options.patients,
        seed: options.seed,
        start,
        incident_every: Some(TimeDelta::minutes(30)),
        devices_per_patient: options.devices_per_patient,
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
    let mut gatt_mismatches = 0u64;
    let mut sim_now = fleet.now();
    let mut injected = Injected::default();
    // Per gateway, the last readings handed over (what a memory re-read sends again).
    let mut recent: HashMap<GatewayId, std::collections::VecDeque<Reading>> = HashMap::new();
    let mut envelopes = 0u64;
    let mut last_report = std::time::Instant::now();
    // Simulated time runs `speed` times the wall clock from `pace` (wall, simulated);
    // what earlier runs handed over is regenerated without pacing, in steps.
    let step = TimeDelta::milliseconds((options.speed * 100.0) as i64);
    let mut pace = (clock.now(), sim_now);
    while generated < options.readings {
        let real_now = clock.now();
        let catching_up = skip > 0;
        let target = if catching_up {
            sim_now + step
        } else {
            let elapsed = (real_now - pace.0).num_milliseconds().max(0) as f64;
            pace.1 + TimeDelta::milliseconds((elapsed * options.speed) as i64)
        };
        sim_now = target.max(sim_now).min(real_now);
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
                let index = generated + batch.len() as u64;
                let r = inject(r, index, options.seed, &options.faults, &mut injected);
                let (r, gatt) = through_gatt(r);
                match gatt {
                    Gatt::Through => via_gatt += 1,
                    Gatt::Differs => {
                        if gatt_mismatches == 0 {
                            eprintln!(
                                "vigil-edge simulate: a {} reading came back different from its GATT bytes (an encoder or decoder bug); such readings are handed over as they were and counted",
                                r.measurement.reading_type()
                            );
                        }
                        gatt_mismatches += 1;
                    }
                    Gatt::NotCarried => {}
                }
                batch.push(r);
            }
            if batch.is_empty() {
                continue;
            }
            let n = batch.len() as u64;
            envelopes += 1;
            let memory = recent.entry(gateway.clone()).or_default();
            let mut again: Vec<Reading> = Vec::new();
            if draw(options.seed, envelopes, 3) < options.faults.resend_memory {
                again.extend(memory.iter().cloned());
                injected.resent += again.len() as u64;
            }
            for r in &batch {
                memory.push_back(r.clone());
                if memory.len() > 20 {
                    memory.pop_front();
                }
            }
            if let Some(f) = forwarders.get(&gateway) {
                f.handle()
                    .add(batch)
                    .await
                    .map_err(|e| format!("gateway {gateway}: {e}"))?;
                if !again.is_empty() {
                    f.handle()
                        .add(again)
                        .await
                        .map_err(|e| format!("gateway {gateway}: {e}"))?;
                }
            }
            generated += n;
            state.handed_over = generated;
            save_progress(&progress_path, &state)?;
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = std::time::Instant::now();
            progress(generated, pending(&forwarders).await);
        }
        if catching_up {
            pace = (clock.now(), sim_now);
            tokio::task::yield_now().await;
        } else if generated < options.readings {
            // Wait for more simulated time to exist (at `speed`, and never past the clock).
            tokio::time::sleep(Duration::from_millis(100)).await;
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
        faults: injected,
        gateways: forwarders.len(),
        via_gatt,
        gatt_mismatches,
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

/// How a reading reached the gateway in the simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gatt {
    /// Encoded to its characteristic's bytes and decoded back, unchanged.
    Through,
    /// Its type has no simulated characteristic, or the bytes cannot carry its value
    /// (an injected impossible value): handed over as it is.
    NotCarried,
    /// Encoded and decoded, but it came back different: an encoder or decoder bug.
    /// Handed over as it was, and counted ([`Summary::gatt_mismatches`]).
    Differs,
}

/// Sends a reading through its device's GATT bytes and back, when its type has a
/// simulated characteristic; returns the reading the gateway gets and how it got it.
/// A reading the bytes cannot carry exactly is handed over as it is.
pub fn through_gatt(r: Reading) -> (Reading, Gatt) {
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
        Measurement::Spo2(o) => spo2_bytes(o, &r)
            .and_then(|bytes| PlxSpotCheck::decode(&bytes).ok())
            .and_then(|m| to_reading::plx_spot_check(&m, &ctx).ok()),
        Measurement::Temperature(t) => temperature_bytes(t, &r)
            .and_then(|bytes| TemperatureMeasurement::decode(&bytes).ok())
            .and_then(|m| to_reading::temperature(&m, &ctx).ok()),
        Measurement::Weight(w) => weight_bytes(w, &r)
            .and_then(|bytes| WeightMeasurement::decode(&bytes).ok())
            .and_then(|m| to_reading::weight(&m, &ctx).ok()),
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
            if back == r {
                (back, Gatt::Through)
            } else {
                (r, Gatt::Differs)
            }
        }
        None => (r, Gatt::NotCarried),
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

/// A PLX Spot-Check (0x2A5E): SpO2 and pulse rate, timestamped; a good signal only
/// (a poor one is a status bit the fleet does not model).
fn spo2_bytes(o: &vigil_model::measurement::Spo2, r: &Reading) -> Option<Vec<u8>> {
    use vigil_gatt::plx::{PlxStatus, Spo2Pr};
    if o.signal_quality == Some(vigil_model::vocab::SignalQuality::Poor) {
        return None;
    }
    Some(
        PlxSpotCheck {
            reading: Spo2Pr {
                spo2: sfloat(o.value, -2)?,
                pulse_rate: match o.pulse_rate {
                    Some(p) => sfloat(p, -2)?,
                    None => SFloat::special(Kind::NaN)?,
                },
            },
            timestamp: r.device_time.and_then(GattDateTime::from_naive),
            status: PlxStatus {
                measurement_status: None,
                device_sensor_status: None,
                // The perfusion index travels as the pulse amplitude index.
                pulse_amplitude_index: match o.perfusion_index {
                    Some(p) => Some(sfloat(p, -2)?),
                    None => None,
                },
            },
            device_clock_not_set: false,
        }
        .encode(),
    )
}

/// A Temperature Measurement (0x2A1C) in °C or °F, with the site's type code.
fn temperature_bytes(t: &vigil_model::measurement::Temperature, r: &Reading) -> Option<Vec<u8>> {
    use vigil_gatt::temperature::TemperatureUnit;
    use vigil_model::units::TemperatureUnit as Model;
    use vigil_model::vocab::TemperatureSite;
    let tenths = (t.value * 100.0).round();
    if (t.value * 100.0 - tenths).abs() > 1e-6 {
        return None;
    }
    Some(
        TemperatureMeasurement {
            temperature: vigil_gatt::Float::number(tenths as i32, -2)?,
            unit: match t.unit {
                Model::Cel => TemperatureUnit::Celsius,
                Model::DegF => TemperatureUnit::Fahrenheit,
            },
            timestamp: r.device_time.and_then(GattDateTime::from_naive),
            temperature_type: match t.site {
                None => None,
                Some(TemperatureSite::Axillary) => Some(1),
                Some(TemperatureSite::Tympanic) => Some(9),
                Some(TemperatureSite::Oral) => Some(6),
                Some(TemperatureSite::Rectal) => Some(7),
                Some(_) => return None,
            },
        }
        .encode(),
    )
}

/// A Weight Measurement (0x2A9D): SI at 0.005 kg, imperial at 0.01 lb.
fn weight_bytes(w: &vigil_model::measurement::Weight, r: &Reading) -> Option<Vec<u8>> {
    use vigil_gatt::weight::UnitSystem;
    use vigil_model::units::WeightUnit;
    let (unit_system, raw) = match w.unit {
        WeightUnit::Kg => (UnitSystem::Si, w.value / 0.005),
        WeightUnit::LbAv => (UnitSystem::Imperial, w.value / 0.01),
        _ => return None,
    };
    if (raw - raw.round()).abs() > 1e-6 || !(0.0..65535.0).contains(&raw) {
        return None;
    }
    Some(
        WeightMeasurement {
            unit_system,
            weight_raw: raw.round() as u16,
            timestamp: r.device_time.and_then(GattDateTime::from_naive),
            user_id: None,
            bmi_height: None,
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
    fn devices_per_patient_bounds_each_patients_kit() {
        let start: DateTime<Utc> = "2026-11-20T00:00:00Z".parse().unwrap_or_default();
        let options = |n| SimulateOptions {
            host: String::new(),
            port: 0,
            state_dir: PathBuf::new(),
            patients: 16,
            seed: 5,
            readings: 0,
            speed: 1.0,
            history: TimeDelta::zero(),
            drop_batches: Vec::new(),
            batch_size: 1,
            linger: Duration::ZERO,
            stay: false,
            faults: Faults::default(),
            devices_per_patient: n,
        };
        let kit = |n| {
            fleet(&options(n), start)
                .patients()
                .iter()
                .map(|p| p.devices.len())
                .max()
                .unwrap_or(0)
        };
        assert_eq!(kit(None), 3);
        assert_eq!(kit(Some(1)), 1);
        assert_eq!(kit(Some(2)), 2);
    }

    #[test]
    fn faults_are_the_same_for_the_same_reading_and_do_what_they_say() {
        let start: DateTime<Utc> = "2026-11-20T00:00:00Z".parse().unwrap_or_default();
        let mut f = Fleet::new(FleetConfig {
            patients: 10,
            seed: 3,
            start,
            incident_every: None,
            devices_per_patient: None,
        });
        let readings: Vec<Reading> = f
            .advance(start + TimeDelta::days(1))
            .into_iter()
            .flat_map(|p| p.envelope.readings)
            .collect();
        let all = Faults {
            clock_reset: 1.0,
            resend_memory: 0.0,
            out_of_range: 1.0,
        };
        let mut n = Injected::default();
        for (i, r) in readings.iter().enumerate() {
            let a = inject(r.clone(), i as u64, 3, &all, &mut n);
            let b = inject(r.clone(), i as u64, 3, &all, &mut Injected::default());
            assert_eq!(a, b, "deterministic");
            if let Measurement::Bp(bp) = &a.measurement {
                assert_eq!(bp.systolic, 400.0);
            }
            if let Some(t) = a.device_time {
                assert_eq!(t.format("%Y-%m-%d").to_string(), "2000-01-01");
                assert_eq!(a.time, r.time, "the corrected time stays right");
            }
        }
        assert!(n.out_of_range > 0 && n.clock_reset > 0, "{n:?}");
        let none = inject(readings[0].clone(), 0, 3, &Faults::default(), &mut n);
        assert_eq!(none, readings[0]);
        // About the asked share.
        let hits = (0..10_000).filter(|i| draw(9, *i, 1) < 0.1).count();
        assert!((800..1200).contains(&hits), "{hits}");
    }

    #[test]
    fn readings_go_through_their_gatt_bytes_unchanged() {
        let start: DateTime<Utc> = "2026-11-20T00:00:00Z".parse().unwrap_or_default();
        let mut f = Fleet::new(FleetConfig {
            patients: 30,
            seed: 7,
            start,
            incident_every: Some(TimeDelta::minutes(30)),
            devices_per_patient: None,
        });
        let (mut bp, mut glucose, mut other, mut via_other) = (0, 0, 0, 0);
        for p in f.advance(start + TimeDelta::days(2)) {
            for r in p.envelope.readings {
                let (back, how) = through_gatt(r.clone());
                assert_eq!(back, r, "a reading changed on its way through GATT");
                assert_ne!(how, Gatt::Differs, "{r:?}");
                let gatt = how == Gatt::Through;
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
                        other += 1;
                        if gatt {
                            via_other += 1;
                        }
                    }
                }
            }
        }
        assert!(
            bp > 100 && glucose > 20 && other > 0,
            "{bp} {glucose} {other}"
        );
        // SpO2, temperature and weight go through their bytes too.
        eprintln!("{bp} BP, {glucose} glucose, {via_other} of {other} others through GATT");
        assert!(via_other > 0, "{via_other} of {other}");
    }
}
