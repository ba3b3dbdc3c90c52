//! Simulated devices behind the same [`Link`] as real ones, speaking real GATT bytes:
//! the sessions of [`crate::device`] cannot tell them from a meter.
//!
//! [`SimGlucometer`] keeps a memory of Glucose Measurement records (sequence numbers
//! from 1, as meters number them), stamps each with its own clock (which can be off by
//! any amount: a meter that lost its battery says 2000-01-01), answers the Record Access
//! Control Point as the Glucose Profile says (all records, records from a sequence
//! number, the last record; then a response code), offers Current Time to read and to
//! write, and counts what it sent, so tests can check that only what was asked for
//! crossed the link.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use vigil_gatt::cts::CurrentTime;
use vigil_gatt::glucose::{ConcentrationUnit, GlucoseMeasurement, GlucoseSample};
use vigil_gatt::racp::{Message, Operand, RequestOpcode, Response, operator, response_code};
use vigil_gatt::{DateTime as GattDateTime, SFloat};
use vigil_model::clock::Clock;

use crate::device::{Link, LinkError, uuid};

/// A device's own clock: the gateway's clock (true time) plus an offset, shown in the
/// device's zone; readable and settable through Current Time (0x2A2B).
#[derive(Debug)]
pub struct SimClock {
    /// The device clock minus true time.
    pub offset: TimeDelta,
    zone: FixedOffset,
    clock: Arc<dyn Clock>,
}

impl SimClock {
    pub fn new(zone: FixedOffset, clock: Arc<dyn Clock>) -> SimClock {
        SimClock {
            offset: TimeDelta::zero(),
            zone,
            clock,
        }
    }

    /// What the device's clock says now.
    pub fn now(&self) -> chrono::NaiveDateTime {
        self.stamp(self.clock.now())
    }

    /// What the device's clock said at true time `at`.
    pub fn stamp(&self, at: DateTime<Utc>) -> chrono::NaiveDateTime {
        (at + self.offset).with_timezone(&self.zone).naive_local()
    }

    /// The Current Time value the device answers with.
    fn read(&self) -> Result<Vec<u8>, LinkError> {
        CurrentTime::at(self.now(), 0)
            .map(|ct| ct.encode())
            .ok_or_else(|| LinkError::Refused("the clock is out of range".into()))
    }

    /// Sets the clock from a written Current Time value.
    fn write(&mut self, value: &[u8]) -> Result<(), LinkError> {
        let set = CurrentTime::decode(value)
            .ok()
            .and_then(|ct| ct.to_naive())
            .ok_or_else(|| LinkError::Refused("not a possible time".into()))?;
        self.offset += set - self.now();
        Ok(())
    }
}

/// A simulated Bluetooth glucometer.
#[derive(Debug)]
pub struct SimGlucometer {
    pub address: String,
    pub clock: SimClock,
    /// Whether it offers the Current Time Service, and lets the clock be written.
    pub current_time: bool,
    pub clock_writable: bool,
    records: Vec<GlucoseMeasurement>,
    next_seq: u16,
    subscribed: HashSet<u128>,
    queue: VecDeque<(u128, Vec<u8>)>,
    /// Every RACP request written to it, as bytes.
    pub racp_requests: Vec<Vec<u8>>,
    /// Glucose Measurement notifications sent.
    pub records_sent: usize,
}

impl SimGlucometer {
    pub fn new(address: &str, zone: FixedOffset, clock: Arc<dyn Clock>) -> SimGlucometer {
        SimGlucometer {
            address: address.to_owned(),
            clock: SimClock::new(zone, clock),
            current_time: true,
            clock_writable: true,
            records: Vec::new(),
            next_seq: 1,
            subscribed: HashSet::new(),
            queue: VecDeque::new(),
            racp_requests: Vec::new(),
            records_sent: 0,
        }
    }

    /// A test taken at true time `at`, of `mmol_per_l` (to 0.1), stamped by the device
    /// clock; returns its sequence number.
    pub fn measure(&mut self, at: DateTime<Utc>, mmol_per_l: f64) -> u16 {
        let stamp = self.clock.stamp(at);
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        // mmol/L to mol/L: tenths of mmol/L are 10^-4 mol/L.
        let tenths = (mmol_per_l * 10.0).round() as i32;
        self.records.push(GlucoseMeasurement {
            sequence_number: seq,
            base_time: GattDateTime::from_naive(stamp).unwrap_or(GattDateTime {
                year: 0,
                month: 0,
                day: 0,
                hours: 0,
                minutes: 0,
                seconds: 0,
            }),
            time_offset_min: None,
            sample: SFloat::number(tenths, -4).map(|concentration| GlucoseSample {
                concentration,
                sample_type: 1,     // capillary whole blood
                sample_location: 1, // finger
            }),
            unit: ConcentrationUnit::MolPerL,
            sensor_status: None,
            context_follows: false,
        });
        seq
    }

    /// Clears the memory and restarts the numbering, as a battery change does on some
    /// meters.
    pub fn reset_memory(&mut self) {
        self.records.clear();
        self.next_seq = 1;
    }

    pub fn records(&self) -> &[GlucoseMeasurement] {
        &self.records
    }

    fn respond(&mut self, request_opcode: u8, code: u8) {
        self.queue.push_back((
            uuid::RACP,
            Response::ResponseCode {
                request_opcode,
                response_code: code,
            }
            .encode(),
        ));
    }

    fn racp(&mut self, value: &[u8]) -> Result<(), LinkError> {
        self.racp_requests.push(value.to_vec());
        if !self.subscribed.contains(&uuid::RACP) {
            // The profile requires indications on before a request.
            return Err(LinkError::Refused(
                "client characteristic configuration descriptor improperly configured".into(),
            ));
        }
        let request = match Message::decode(value, Some(vigil_gatt::Direction::ClientToServer)) {
            Ok(Message::Request(r)) => r,
            _ => {
                self.respond(value.first().copied().unwrap_or(0), 2); // op code not supported
                return Ok(());
            }
        };
        if request.opcode != RequestOpcode::ReportStoredRecords {
            self.respond(request.opcode.code(), 2);
            return Ok(());
        }
        let chosen: Vec<GlucoseMeasurement> = match (request.operator, &request.operand) {
            (operator::ALL_RECORDS, _) => self.records.clone(),
            (operator::LAST_RECORD, _) => self.records.last().copied().into_iter().collect(),
            (operator::FIRST_RECORD, _) => self.records.first().copied().into_iter().collect(),
            (operator::GREATER_THAN_OR_EQUAL_TO, Operand::SequenceNumber { min: Some(n), .. }) => {
                self.records
                    .iter()
                    .filter(|r| r.sequence_number >= *n)
                    .copied()
                    .collect()
            }
            _ => {
                self.respond(request.opcode.code(), 3); // invalid operator
                return Ok(());
            }
        };
        let code = if chosen.is_empty() {
            response_code::NO_RECORDS_FOUND
        } else {
            response_code::SUCCESS
        };
        for r in chosen {
            self.records_sent += 1;
            self.queue
                .push_back((uuid::GLUCOSE_MEASUREMENT, r.encode()));
        }
        self.respond(request.opcode.code(), code);
        Ok(())
    }
}

impl Link for SimGlucometer {
    fn address(&self) -> String {
        self.address.clone()
    }

    fn mtu(&self) -> u16 {
        23
    }

    fn has_characteristic(&self, characteristic: u128) -> bool {
        match characteristic {
            uuid::GLUCOSE_MEASUREMENT | uuid::RACP => true,
            uuid::CURRENT_TIME => self.current_time,
            _ => false,
        }
    }

    async fn read(&mut self, characteristic: u128) -> Result<Vec<u8>, LinkError> {
        match characteristic {
            uuid::CURRENT_TIME if self.current_time => self.clock.read(),
            other => Err(LinkError::NotSupported(other)),
        }
    }

    async fn write(&mut self, characteristic: u128, value: &[u8]) -> Result<(), LinkError> {
        match characteristic {
            uuid::RACP => self.racp(value),
            uuid::CURRENT_TIME if self.current_time && self.clock_writable => {
                self.clock.write(value)
            }
            other => Err(LinkError::NotSupported(other)),
        }
    }

    async fn subscribe(&mut self, characteristic: u128) -> Result<(), LinkError> {
        if self.has_characteristic(characteristic) {
            self.subscribed.insert(characteristic);
            Ok(())
        } else {
            Err(LinkError::NotSupported(characteristic))
        }
    }

    async fn notification(&mut self, timeout: Duration) -> Result<(u128, Vec<u8>), LinkError> {
        loop {
            let Some((ch, value)) = self.queue.pop_front() else {
                return Err(LinkError::Timeout(timeout));
            };
            if self.subscribed.contains(&ch) {
                return Ok((ch, value));
            }
        }
    }
}

/// A simulated blood-pressure cuff: keeps its results in memory and indicates them all
/// (Blood Pressure Measurement 0x2A35, timestamped by its own clock) once the gateway
/// subscribes, as cuffs do at each connection; offers Current Time like the meter.
#[derive(Debug)]
pub struct SimCuff {
    pub address: String,
    pub clock: SimClock,
    pub current_time: bool,
    results: Vec<vigil_gatt::bpm::BloodPressureMeasurement>,
    queue: VecDeque<(u128, Vec<u8>)>,
}

impl SimCuff {
    pub fn new(address: &str, zone: FixedOffset, clock: Arc<dyn Clock>) -> SimCuff {
        SimCuff {
            address: address.to_owned(),
            clock: SimClock::new(zone, clock),
            current_time: true,
            results: Vec::new(),
            queue: VecDeque::new(),
        }
    }

    /// A measurement at true time `at`, stamped by the cuff's clock.
    pub fn measure(&mut self, at: DateTime<Utc>, systolic: i32, diastolic: i32, pulse: i32) {
        use vigil_gatt::bpm::{BloodPressureMeasurement, BpOptional, PressureUnit};
        use vigil_gatt::ieee11073::Kind;
        let stamp = self.clock.stamp(at);
        let n = |v: i32| SFloat::number(v, 0);
        if let (Some(s), Some(d), Some(p), Some(map)) = (
            n(systolic),
            n(diastolic),
            n(pulse),
            SFloat::special(Kind::NaN),
        ) {
            self.results.push(BloodPressureMeasurement {
                unit: PressureUnit::MmHg,
                systolic: s,
                diastolic: d,
                mean_arterial_pressure: map,
                optional: BpOptional {
                    timestamp: GattDateTime::from_naive(stamp),
                    pulse_rate: Some(p),
                    user_id: None,
                    measurement_status: None,
                },
            });
        }
    }
}

impl Link for SimCuff {
    fn address(&self) -> String {
        self.address.clone()
    }

    fn mtu(&self) -> u16 {
        23
    }

    fn has_characteristic(&self, characteristic: u128) -> bool {
        characteristic == uuid::BLOOD_PRESSURE_MEASUREMENT
            || (characteristic == uuid::CURRENT_TIME && self.current_time)
    }

    async fn read(&mut self, characteristic: u128) -> Result<Vec<u8>, LinkError> {
        match characteristic {
            uuid::CURRENT_TIME if self.current_time => self.clock.read(),
            other => Err(LinkError::NotSupported(other)),
        }
    }

    async fn write(&mut self, characteristic: u128, value: &[u8]) -> Result<(), LinkError> {
        match characteristic {
            uuid::CURRENT_TIME if self.current_time => self.clock.write(value),
            other => Err(LinkError::NotSupported(other)),
        }
    }

    async fn subscribe(&mut self, characteristic: u128) -> Result<(), LinkError> {
        if characteristic != uuid::BLOOD_PRESSURE_MEASUREMENT {
            return Err(LinkError::NotSupported(characteristic));
        }
        // The whole memory, then the cuff goes quiet (and would disconnect).
        for r in &self.results {
            self.queue
                .push_back((uuid::BLOOD_PRESSURE_MEASUREMENT, r.encode()));
        }
        Ok(())
    }

    async fn notification(&mut self, timeout: Duration) -> Result<(u128, Vec<u8>), LinkError> {
        self.queue.pop_front().ok_or(LinkError::Timeout(timeout))
    }
}

/// A simulated Polar ECG strap (H10-like): the PMD service with its control point and
/// data characteristic, ECG at 130 Hz in frames of 73 samples taken from the real
/// recording embedded in `vigil-sim` (resampled), timestamped by its own clock, which
/// counts from 2019-01-01 when it was never set.
#[derive(Debug)]
pub struct SimEcgPatch {
    pub address: String,
    pub mtu: u16,
    /// The device clock, ns since 2000-01-01, at the first sample.
    start_ns: u64,
    streaming: bool,
    sent_samples: usize,
    queue: VecDeque<(u128, Vec<u8>)>,
    subscribed: HashSet<u128>,
}

impl SimEcgPatch {
    pub const SAMPLES_PER_FRAME: usize = 73;

    /// A strap whose clock reads `device_now_ns` (ns since 2000-01-01) now.
    pub fn new(address: &str, device_now_ns: u64) -> SimEcgPatch {
        SimEcgPatch {
            address: address.to_owned(),
            mtu: 232,
            start_ns: device_now_ns,
            streaming: false,
            sent_samples: 0,
            queue: VecDeque::new(),
            subscribed: HashSet::new(),
        }
    }

    fn respond(&mut self, opcode: u8, status: u8, parameters: Vec<u8>) {
        let r = vigil_gatt::pmd::Response {
            opcode,
            type_byte: vigil_gatt::pmd::MEASUREMENT_TYPE_ECG,
            status,
            more: (!parameters.is_empty()).then_some(0),
            parameters,
        };
        self.queue.push_back((uuid::PMD_CONTROL_POINT, r.encode()));
    }

    /// The next data frame of the stream.
    fn frame(&mut self) -> Vec<u8> {
        let rate = f64::from(vigil_gatt::pmd::H10_ECG_SAMPLE_RATE_HZ);
        let n = Self::SAMPLES_PER_FRAME;
        let samples = vigil_sim::ecg::strip(self.sent_samples as f64 / rate, n as f64 / rate, rate);
        let last = self.sent_samples + n - 1;
        let ts = self.start_ns + (last as f64 / rate * 1e9).round() as u64;
        self.sent_samples += n;
        vigil_gatt::pmd::DataFrame::ecg(ts, samples)
            .encode()
            .unwrap_or_default()
    }
}

impl Link for SimEcgPatch {
    fn address(&self) -> String {
        self.address.clone()
    }

    fn mtu(&self) -> u16 {
        self.mtu
    }

    fn has_characteristic(&self, characteristic: u128) -> bool {
        characteristic == uuid::PMD_CONTROL_POINT || characteristic == uuid::PMD_DATA
    }

    async fn read(&mut self, characteristic: u128) -> Result<Vec<u8>, LinkError> {
        Err(LinkError::NotSupported(characteristic))
    }

    async fn write(&mut self, characteristic: u128, value: &[u8]) -> Result<(), LinkError> {
        use vigil_gatt::pmd::{Command as Pmd, ControlPoint, Settings};
        if characteristic != uuid::PMD_CONTROL_POINT {
            return Err(LinkError::NotSupported(characteristic));
        }
        match ControlPoint::decode(value, Some(vigil_gatt::Direction::ClientToServer)) {
            Ok(ControlPoint::Command(Pmd::GetSettings { .. })) => {
                let params = Settings::h10_ecg().encode().unwrap_or_default();
                self.respond(1, 0, params);
            }
            Ok(ControlPoint::Command(Pmd::Start { .. })) => {
                self.streaming = true;
                self.respond(2, 0, Vec::new());
            }
            Ok(ControlPoint::Command(Pmd::Stop { .. })) => {
                self.streaming = false;
                self.respond(3, 0, Vec::new());
            }
            _ => self.respond(value.first().copied().unwrap_or(0), 1, Vec::new()),
        }
        Ok(())
    }

    async fn subscribe(&mut self, characteristic: u128) -> Result<(), LinkError> {
        if self.has_characteristic(characteristic) {
            self.subscribed.insert(characteristic);
            Ok(())
        } else {
            Err(LinkError::NotSupported(characteristic))
        }
    }

    async fn notification(&mut self, timeout: Duration) -> Result<(u128, Vec<u8>), LinkError> {
        if let Some(n) = self.queue.pop_front() {
            return Ok(n);
        }
        if self.streaming && self.subscribed.contains(&uuid::PMD_DATA) {
            return Ok((uuid::PMD_DATA, self.frame()));
        }
        Err(LinkError::Timeout(timeout))
    }
}
