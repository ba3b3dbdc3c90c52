//! Bluetooth LE sessions with health devices, written against [`Link`]: what a GATT
//! connection offers (read, write, subscribe, notifications), reduced to what the
//! sessions need. The btleplug backend implements it for real devices; the simulator
//! ([`crate::sim`]) implements it with real GATT byte payloads, so the session code the
//! tests run is the code that talks to real meters.
//!
//! A glucometer session ([`glucose_session`]), at every connection:
//!
//! 1. reads the device's clock (Current Time 0x2A2B, when it offers the Current Time
//!    Service) against the gateway's, and keeps the difference ([`ClockCheck`]);
//! 2. subscribes to Glucose Measurement, its Context, and the Record Access Control
//!    Point (RACP);
//! 3. asks the RACP for the records **after the last sequence number the gateway already
//!    holds** (all of them the first time), so a meter that was out of range for a week
//!    is backfilled and nothing is read twice; when none are found, it asks for the last
//!    record, and a sequence number below the one it knows means the meter's memory was
//!    reset: then it reads everything (identity dedups what was already sent);
//! 4. turns each record into a reading: `time` is the device's own timestamp corrected
//!    by the clock difference (when that is a minute or more), `device_time` the raw
//!    timestamp as the device gave it; control-solution tests and unusable records are
//!    reported, not sent;
//! 5. sets the device's clock to the gateway's when it was a minute or more off and
//!    the device lets it be written.
//!
//! The caller adds the readings to the outbox (durable) and only then remembers the new
//! last sequence number ([`DeviceMemory`]): a crash in between reads some records again,
//! which the platform deduplicates by identity; the other order could lose them.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeDelta, Utc};
use vigil_gatt::cts::{CurrentTime, EXTERNAL_REFERENCE_UPDATE};
use vigil_gatt::glucose::{GlucoseContext, GlucoseMeasurement};
use vigil_gatt::racp::{self, Message, Request, RequestOpcode, Response, operator, response_code};
use vigil_gatt::to_reading::{self, ReadingContext};
use vigil_model::{DeviceId, Reading};

/// The characteristic UUIDs the sessions use, as 128-bit numbers.
pub mod uuid {
    /// A 16-bit SIG UUID on the Bluetooth base UUID (0000xxxx-0000-1000-8000-00805F9B34FB).
    pub const fn sig(short: u16) -> u128 {
        ((short as u128) << 96) | 0x0000_1000_8000_0080_5F9B_34FB
    }
    pub const GLUCOSE_MEASUREMENT: u128 = sig(0x2A18);
    pub const GLUCOSE_CONTEXT: u128 = sig(0x2A34);
    pub const RACP: u128 = sig(0x2A52);
    pub const CURRENT_TIME: u128 = sig(0x2A2B);
    pub const BLOOD_PRESSURE_MEASUREMENT: u128 = sig(0x2A35);
    pub const HEART_RATE_MEASUREMENT: u128 = sig(0x2A37);
    pub const PLX_SPOT_CHECK: u128 = sig(0x2A5E);
    pub const PLX_CONTINUOUS: u128 = sig(0x2A5F);
    pub const TEMPERATURE_MEASUREMENT: u128 = sig(0x2A1C);
    pub const WEIGHT_MEASUREMENT: u128 = sig(0x2A9D);
    /// Polar PMD control point and data (vendor UUIDs).
    pub const PMD_CONTROL_POINT: u128 = 0xFB00_5C81_02E7_F387_1CAD_8ACD_2D8D_F0C8;
    pub const PMD_DATA: u128 = 0xFB00_5C82_02E7_F387_1CAD_8ACD_2D8D_F0C8;

    /// How a UUID is shown in messages: `0x2A18` for a SIG one, in full otherwise.
    pub fn show(uuid: u128) -> String {
        let short = (uuid >> 96) as u16;
        if sig(short) == uuid {
            format!("0x{short:04X}")
        } else {
            format!("{uuid:032X}")
        }
    }
}

/// A clock difference below this is not corrected: it is below what a home
/// measurement's time means, and correcting it would only add the link's latency.
pub const CLOCK_TOLERANCE: TimeDelta = TimeDelta::minutes(1);

/// How long a session waits for the next notification before giving up.
pub const NOTIFICATION_TIMEOUT: Duration = Duration::from_secs(10);

/// A failure of the link (the device went away, did not answer, refused).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the device disconnected")]
    Disconnected,
    #[error("the device did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the device does not offer characteristic {}", uuid::show(*.0))]
    NotSupported(u128),
    #[error("the device refused: {0}")]
    Refused(String),
    #[error("the device sent what cannot be decoded: {0}")]
    Garbled(String),
}

/// A GATT connection to one device.
pub trait Link: Send {
    /// The device's Bluetooth address (or the simulator's name for it).
    fn address(&self) -> String;
    fn has_characteristic(&self, characteristic: u128) -> bool;
    fn read(
        &mut self,
        characteristic: u128,
    ) -> impl Future<Output = Result<Vec<u8>, LinkError>> + Send;
    /// A write with response.
    fn write(
        &mut self,
        characteristic: u128,
        value: &[u8],
    ) -> impl Future<Output = Result<(), LinkError>> + Send;
    /// Enables notifications or indications.
    fn subscribe(
        &mut self,
        characteristic: u128,
    ) -> impl Future<Output = Result<(), LinkError>> + Send;
    /// The next notification or indication: (characteristic, value).
    fn notification(
        &mut self,
        timeout: Duration,
    ) -> impl Future<Output = Result<(u128, Vec<u8>), LinkError>> + Send;
    /// The ATT MTU agreed for the connection.
    fn mtu(&self) -> u16;
}

/// The device's clock against the gateway's, at one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockCheck {
    /// What the device's clock said (its local time, no zone).
    pub device: NaiveDateTime,
    /// The gateway's clock at that moment, in the gateway's zone.
    pub gateway: NaiveDateTime,
}

impl ClockCheck {
    /// The corrected time of a record the device stamped `stamp`, or `None` when the
    /// stamp is later than the device's clock at the check: it was stamped by a clock
    /// since changed (a record kept from before a reset) and the difference measured
    /// now does not apply to it.
    pub fn correct(&self, stamp: NaiveDateTime) -> Option<NaiveDateTime> {
        if stamp > self.device + CLOCK_TOLERANCE {
            None
        } else {
            Some(stamp + self.correction())
        }
    }

    /// How much to add to the device's timestamps (zero under [`CLOCK_TOLERANCE`]).
    pub fn correction(&self) -> TimeDelta {
        let d = self.gateway - self.device;
        if d.abs() < CLOCK_TOLERANCE {
            TimeDelta::zero()
        } else {
            d
        }
    }
}

/// What a glucometer session brought.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GlucoseOutcome {
    pub readings: Vec<Reading>,
    /// Records not sent, with why (a control-solution test, an unusable value).
    pub rejected: Vec<(u16, String)>,
    /// The RACP request made first.
    pub request: Vec<u8>,
    /// The highest sequence number the device holds, as far as this session saw.
    pub last_seq: Option<u16>,
    pub clock: Option<ClockCheck>,
    /// Whether the device's clock was set to the gateway's.
    pub clock_set: bool,
    /// The meter's numbering went back: its memory was reset, and all of it was read.
    pub reset: bool,
}

/// Runs a glucometer session (see the module docs). `last_seq` is the highest sequence
/// number already held; `now` and `zone` are the gateway's clock and zone.
pub async fn glucose_session<L: Link>(
    link: &mut L,
    device_id: &DeviceId,
    last_seq: Option<u16>,
    now: DateTime<Utc>,
    zone: FixedOffset,
) -> Result<GlucoseOutcome, LinkError> {
    let mut out = GlucoseOutcome::default();
    let gateway_local = now.with_timezone(&zone).naive_local();
    out.clock = clock_check(link, gateway_local).await?;
    for ch in [uuid::GLUCOSE_MEASUREMENT, uuid::GLUCOSE_CONTEXT, uuid::RACP] {
        if ch == uuid::GLUCOSE_CONTEXT && !link.has_characteristic(ch) {
            continue;
        }
        link.subscribe(ch).await?;
    }
    let request = match last_seq {
        Some(n) if n < u16::MAX => Request::report_records_from(n + 1),
        _ => Request::report_all_records(),
    };
    out.request = request.encode();
    let (mut records, mut garbled) = collect(link, &request).await?;
    if records.is_empty()
        && let Some(known) = last_seq
    {
        let last = Request {
            opcode: RequestOpcode::ReportStoredRecords,
            operator: operator::LAST_RECORD,
            operand: racp::Operand::None,
        };
        let (newest, _) = collect(link, &last).await?;
        if newest.keys().next_back().is_some_and(|&seq| seq < known) {
            out.reset = true;
            (records, garbled) = collect(link, &Request::report_all_records()).await?;
        }
    }
    for (seq, (m, context)) in &records {
        let device_time = m
            .time_offset_min
            .map_or(Some(m.base_time), |o| m.base_time.plus_minutes(o))
            .and_then(|t| t.to_naive());
        let (time, flag) = timed(device_time, out.clock, now, zone);
        let ctx = ReadingContext::new(device_id.clone(), time);
        match to_reading::glucose(m, context.as_ref(), &ctx) {
            Ok(mut r) => {
                r.status.extend(flag);
                out.readings.push(r);
            }
            Err(e) => out.rejected.push((*seq, e.to_string())),
        }
    }
    out.rejected.extend(garbled.into_iter().map(|e| (0, e)));
    out.last_seq = match (records.keys().next_back().copied(), last_seq) {
        (Some(seen), _) if out.reset => Some(seen),
        (Some(seen), Some(known)) => Some(seen.max(known)),
        (seen, known) => seen.or(known),
    };
    out.clock_set = set_clock(link, out.clock, gateway_local).await;
    Ok(out)
}

/// The device's clock against the gateway's, when it offers Current Time.
async fn clock_check<L: Link>(
    link: &mut L,
    gateway_local: NaiveDateTime,
) -> Result<Option<ClockCheck>, LinkError> {
    if !link.has_characteristic(uuid::CURRENT_TIME) {
        return Ok(None);
    }
    // Best effort: a clock that cannot be read (or read sense from) leaves the records
    // uncorrected; the session goes on. A lost link is still a lost link.
    let raw = match link.read(uuid::CURRENT_TIME).await {
        Ok(raw) => raw,
        Err(LinkError::Disconnected) => return Err(LinkError::Disconnected),
        Err(_) => return Ok(None),
    };
    Ok(CurrentTime::decode(&raw)
        .ok()
        .and_then(|ct| ct.to_naive())
        .map(|device| ClockCheck {
            device,
            gateway: gateway_local,
        }))
}

/// Sets the device's clock to the gateway's when it was off and the device allows it;
/// returns whether it was set.
async fn set_clock<L: Link>(
    link: &mut L,
    clock: Option<ClockCheck>,
    gateway_local: NaiveDateTime,
) -> bool {
    match clock {
        Some(c) if c.correction() != TimeDelta::zero() => {
            match CurrentTime::at(gateway_local, EXTERNAL_REFERENCE_UPDATE) {
                Some(ct) => link.write(uuid::CURRENT_TIME, &ct.encode()).await.is_ok(),
                None => false,
            }
        }
        _ => false,
    }
}

/// The measurement characteristics a device may send without being asked (a cuff's
/// stored and new results, an oximeter, a thermometer, a scale, a heart-rate strap).
pub const MEASUREMENTS: [u128; 6] = [
    uuid::BLOOD_PRESSURE_MEASUREMENT,
    uuid::HEART_RATE_MEASUREMENT,
    uuid::PLX_SPOT_CHECK,
    uuid::PLX_CONTINUOUS,
    uuid::TEMPERATURE_MEASUREMENT,
    uuid::WEIGHT_MEASUREMENT,
];

/// What a measurement session brought.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeasurementOutcome {
    pub readings: Vec<Reading>,
    /// Values not sent, with why.
    pub rejected: Vec<String>,
    pub clock: Option<ClockCheck>,
    pub clock_set: bool,
}

/// A session with a device that sends its measurements as notifications or
/// indications: checks its clock, subscribes to every measurement characteristic it
/// has, and takes what arrives until it has been quiet for `idle` (or disconnects, as
/// cuffs do once they have sent their memory), at most for `max` (a streaming device is
/// never quiet). Each value is decoded and mapped; a timestamped one keeps its raw
/// clock in `device_time` and is corrected by the clock difference (not when its stamp
/// is later than the device clock: a record from before a clock reset), one without a
/// timestamp takes the gateway's time of receipt.
pub async fn measurement_session<L: Link>(
    link: &mut L,
    device_id: &DeviceId,
    (idle, max): (Duration, Duration),
    now: impl Fn() -> DateTime<Utc>,
    zone: FixedOffset,
) -> Result<MeasurementOutcome, LinkError> {
    let mut out = MeasurementOutcome::default();
    let gateway_local = now().with_timezone(&zone).naive_local();
    out.clock = clock_check(link, gateway_local).await?;
    let mut subscribed = 0;
    for ch in MEASUREMENTS {
        if link.has_characteristic(ch) {
            link.subscribe(ch).await?;
            subscribed += 1;
        }
    }
    if subscribed == 0 {
        return Err(LinkError::NotSupported(uuid::BLOOD_PRESSURE_MEASUREMENT));
    }
    // A streaming device (a heart-rate strap, a continuous oximeter) is never quiet:
    // the session ends after `max`, and the caller puts what it took in the outbox.
    let until = tokio::time::Instant::now() + max;
    while tokio::time::Instant::now() < until {
        let (ch, value) = match link.notification(idle).await {
            Ok(n) => n,
            Err(LinkError::Timeout(_) | LinkError::Disconnected) => break,
            Err(e) => return Err(e),
        };
        let received = now().with_timezone(&zone);
        match measurement_reading(ch, &value, device_id, received) {
            Some(Ok(mut r)) => {
                if r.device_time.is_some() {
                    let (time, flag) = timed(r.device_time, out.clock, now(), zone);
                    r.time = time;
                    r.status.extend(flag);
                }
                out.readings.push(r);
            }
            Some(Err(e)) => out.rejected.push(e),
            None => {}
        }
    }
    let at_end = now().with_timezone(&zone).naive_local();
    out.clock_set = set_clock(link, out.clock, at_end).await;
    Ok(out)
}

/// One measurement value as a reading at `time` (`None`: not a measurement).
fn measurement_reading(
    ch: u128,
    value: &[u8],
    device_id: &DeviceId,
    time: DateTime<FixedOffset>,
) -> Option<Result<Reading, String>> {
    use vigil_gatt::bpm::BloodPressureMeasurement;
    use vigil_gatt::hrm::HeartRateMeasurement;
    use vigil_gatt::plx::{PlxContinuous, PlxSpotCheck};
    use vigil_gatt::temperature::TemperatureMeasurement;
    use vigil_gatt::weight::WeightMeasurement;
    let ctx = ReadingContext::new(device_id.clone(), time);
    let r = match ch {
        uuid::BLOOD_PRESSURE_MEASUREMENT => BloodPressureMeasurement::decode(value)
            .and_then(|m| to_reading::blood_pressure(&m, &ctx)),
        uuid::HEART_RATE_MEASUREMENT => {
            HeartRateMeasurement::decode(value).and_then(|m| to_reading::heart_rate(&m, &ctx))
        }
        uuid::PLX_SPOT_CHECK => {
            PlxSpotCheck::decode(value).and_then(|m| to_reading::plx_spot_check(&m, &ctx))
        }
        uuid::PLX_CONTINUOUS => {
            PlxContinuous::decode(value).and_then(|m| to_reading::plx_continuous(&m, &ctx))
        }
        uuid::TEMPERATURE_MEASUREMENT => {
            TemperatureMeasurement::decode(value).and_then(|m| to_reading::temperature(&m, &ctx))
        }
        uuid::WEIGHT_MEASUREMENT => {
            WeightMeasurement::decode(value).and_then(|m| to_reading::weight(&m, &ctx))
        }
        _ => return None,
    };
    Some(r.map_err(|e| e.to_string()))
}

type Records = BTreeMap<u16, (GlucoseMeasurement, Option<GlucoseContext>)>;

/// When a record happened: its stamp corrected by the clock check, and a status flag
/// when it could not be (no stamp: the time of receipt; a stamp from a clock since
/// changed: taken as it is).
fn timed(
    device_time: Option<NaiveDateTime>,
    clock: Option<ClockCheck>,
    now: DateTime<Utc>,
    zone: FixedOffset,
) -> (DateTime<FixedOffset>, Option<String>) {
    let local = |t: NaiveDateTime| t.and_local_timezone(zone).single();
    match (device_time, clock) {
        (None, _) => (
            now.with_timezone(&zone),
            Some("device_time_unknown".to_owned()),
        ),
        (Some(t), None) => (local(t).unwrap_or_else(|| now.with_timezone(&zone)), None),
        (Some(t), Some(c)) => match c.correct(t) {
            Some(corrected) => (
                local(corrected).unwrap_or_else(|| now.with_timezone(&zone)),
                None,
            ),
            None => (
                local(t).unwrap_or_else(|| now.with_timezone(&zone)),
                Some("device_clock_changed".to_owned()),
            ),
        },
    }
}

/// Sends an RACP request and gathers the records it reports until the RACP's answer.
/// A record that cannot be decoded is reported (second list) and skipped; a transfer
/// cut off after some records keeps them (the next session asks from the last one).
async fn collect<L: Link>(
    link: &mut L,
    request: &Request,
) -> Result<(Records, Vec<String>), LinkError> {
    link.write(uuid::RACP, &request.encode()).await?;
    let mut records = Records::new();
    let mut garbled = Vec::new();
    loop {
        let (ch, value) = match link.notification(NOTIFICATION_TIMEOUT).await {
            Ok(n) => n,
            Err(LinkError::Timeout(_) | LinkError::Disconnected) if !records.is_empty() => {
                return Ok((records, garbled));
            }
            Err(e) => return Err(e),
        };
        match ch {
            uuid::GLUCOSE_MEASUREMENT => match GlucoseMeasurement::decode(&value) {
                Ok(m) => {
                    records.insert(m.sequence_number, (m, None));
                }
                Err(e) => garbled.push(format!("an unreadable record: {e}")),
            },
            uuid::GLUCOSE_CONTEXT => {
                if let Ok(c) = GlucoseContext::decode(&value)
                    && let Some(slot) = records.get_mut(&c.sequence_number)
                {
                    slot.1 = Some(c);
                }
            }
            uuid::RACP => {
                match Message::decode(&value, Some(vigil_gatt::Direction::ServerToClient))
                    .map_err(|e| LinkError::Garbled(e.to_string()))?
                {
                    Message::Response(Response::ResponseCode { response_code, .. })
                        if response_code == response_code::SUCCESS
                            || response_code == response_code::NO_RECORDS_FOUND =>
                    {
                        return Ok((records, garbled));
                    }
                    Message::Response(Response::ResponseCode { response_code, .. }) => {
                        return Err(LinkError::Refused(format!(
                            "the record access control point answered response code {response_code}"
                        )));
                    }
                    other => {
                        return Err(LinkError::Garbled(format!(
                            "unexpected record access control point message {other:?}"
                        )));
                    }
                }
            }
            _ => {} // another characteristic's notification: not this session's
        }
    }
}

/// What the gateway remembers per device across connections and reboots: the last
/// record sequence number it holds, and the clock difference last measured. Written
/// atomically (a new file, synced, renamed over the old).
#[derive(Debug)]
pub struct DeviceMemory {
    path: PathBuf,
    devices: HashMap<String, Remembered>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Remembered {
    pub last_seq: Option<u16>,
    /// Seconds to add to the device's clock, as last measured.
    pub clock_correction_s: i64,
}

impl DeviceMemory {
    /// Loads `path` (an absent file is an empty memory).
    pub fn load(path: &Path) -> Result<DeviceMemory, String> {
        let devices = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: not a device memory file: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Ok(DeviceMemory {
            path: path.to_owned(),
            devices,
        })
    }

    pub fn get(&self, device: &DeviceId) -> Remembered {
        self.devices
            .get(device.as_str())
            .cloned()
            .unwrap_or_default()
    }

    /// Remembers `value` for `device`, durably.
    pub fn set(&mut self, device: &DeviceId, value: Remembered) -> Result<(), String> {
        self.devices.insert(device.to_string(), value);
        let bytes = serde_json::to_vec_pretty(&self.devices).map_err(|e| e.to_string())?;
        crate::durable::write_atomically(&self.path, &bytes)
    }
}

/// The ATT MTU a Polar ECG stream needs: a frame of 73 samples is 10 + 73 × 3 bytes,
/// plus 3 of ATT header.
pub const PMD_MIN_MTU: u16 = 232;

/// What an ECG session brought.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EcgOutcome {
    /// One `ecg_waveform` reading per data frame.
    pub readings: Vec<Reading>,
    pub sample_rate_hz: u16,
    /// Added to the device's frame times (its clock was off by a minute or more, as an
    /// H10 whose clock was never set, which counts from 2019-01-01).
    pub correction: Option<TimeDelta>,
    pub samples: usize,
}

/// Streams ECG from a Polar device through its PMD service for `seconds` of signal
/// (by the frames' own times): checks the MTU, asks the ECG settings, starts the
/// stream at the device's sample rate, turns each data frame into an `ecg_waveform`
/// reading (timed at its first sample, corrected when the device clock is off; the
/// raw time kept in `device_time`), then stops the stream.
pub async fn ecg_session<L: Link>(
    link: &mut L,
    device_id: &DeviceId,
    seconds: f64,
    now: impl Fn() -> DateTime<Utc>,
    zone: FixedOffset,
) -> Result<EcgOutcome, LinkError> {
    use vigil_gatt::pmd::{
        Command as Pmd, ControlPoint, DataFrame, MEASUREMENT_TYPE_ECG, Setting, Settings,
    };
    for ch in [uuid::PMD_CONTROL_POINT, uuid::PMD_DATA] {
        if !link.has_characteristic(ch) {
            return Err(LinkError::NotSupported(ch));
        }
    }
    if link.mtu() < PMD_MIN_MTU {
        return Err(LinkError::Refused(format!(
            "the connection's MTU is {}, below the {PMD_MIN_MTU} an ECG frame needs",
            link.mtu()
        )));
    }
    link.subscribe(uuid::PMD_CONTROL_POINT).await?;
    link.subscribe(uuid::PMD_DATA).await?;
    let garbled = |e: vigil_gatt::Error| LinkError::Garbled(e.to_string());
    let encode = |c: Pmd| c.encode().map_err(garbled);
    // The answer to a control-point command (data frames meanwhile are not ours yet).
    async fn answer<L: Link>(link: &mut L) -> Result<vigil_gatt::pmd::Response, LinkError> {
        loop {
            let (ch, value) = link.notification(NOTIFICATION_TIMEOUT).await?;
            if ch != uuid::PMD_CONTROL_POINT {
                continue;
            }
            match ControlPoint::decode(&value, Some(vigil_gatt::Direction::ServerToClient)) {
                Ok(ControlPoint::Response(r)) => return Ok(r),
                Ok(_) => continue, // a notice
                Err(e) => return Err(LinkError::Garbled(e.to_string())),
            }
        }
    }
    link.write(
        uuid::PMD_CONTROL_POINT,
        &encode(Pmd::GetSettings {
            type_byte: MEASUREMENT_TYPE_ECG,
        })?,
    )
    .await?;
    let settings = answer(link).await?;
    if settings.status != 0 {
        return Err(LinkError::Refused(format!(
            "the ECG settings were refused: {}",
            settings.status_name()
        )));
    }
    let rate = settings
        .settings()
        .and_then(|s| s.sample_rate_hz())
        .unwrap_or(vigil_gatt::pmd::H10_ECG_SAMPLE_RATE_HZ);
    link.write(
        uuid::PMD_CONTROL_POINT,
        &encode(Pmd::Start {
            type_byte: MEASUREMENT_TYPE_ECG,
            settings: Settings(vec![
                Setting::SampleRateHz(vec![rate]),
                Setting::ResolutionBits(vec![14]),
            ]),
        })?,
    )
    .await?;
    let started = answer(link).await?;
    if started.status != 0 {
        return Err(LinkError::Refused(format!(
            "the ECG stream did not start: {}",
            started.status_name()
        )));
    }
    let mut out = EcgOutcome {
        sample_rate_hz: rate,
        ..EcgOutcome::default()
    };
    let wanted = (seconds * f64::from(rate)).ceil() as usize;
    while out.samples < wanted {
        let (ch, value) = link.notification(NOTIFICATION_TIMEOUT).await?;
        if ch != uuid::PMD_DATA {
            if let Ok(ControlPoint::Notice(_)) =
                ControlPoint::decode(&value, Some(vigil_gatt::Direction::ServerToClient))
            {
                break; // the device stopped the stream itself
            }
            continue;
        }
        let frame = DataFrame::decode(&value).map_err(garbled)?;
        let mut r = to_reading::ecg_waveform(&frame, rate, device_id, zone).map_err(garbled)?;
        // The device clock against the gateway's, at the first frame (its last sample
        // was taken just now).
        let correction = *out.correction.get_or_insert_with(|| {
            let last = r.time
                + TimeDelta::nanoseconds(
                    ((frame.samples_uv.len().saturating_sub(1)) as i64) * 1_000_000_000
                        / i64::from(rate),
                );
            let d = now().with_timezone(&zone) - last;
            if d.abs() < CLOCK_TOLERANCE {
                TimeDelta::zero()
            } else {
                d
            }
        });
        if correction != TimeDelta::zero() {
            r.device_time = Some(r.time.naive_local());
            r.time += correction;
        }
        out.samples += frame.samples_uv.len();
        out.readings.push(r);
    }
    if out.correction == Some(TimeDelta::zero()) {
        out.correction = None;
    }
    link.write(
        uuid::PMD_CONTROL_POINT,
        &encode(Pmd::Stop {
            type_byte: MEASUREMENT_TYPE_ECG,
        })?,
    )
    .await?;
    Ok(out)
}
