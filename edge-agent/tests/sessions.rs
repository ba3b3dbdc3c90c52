//! Glucometer sessions against the simulated meter, over the same link trait real
//! devices use, with real GATT bytes both ways:
//!
//! - RACP backfill: a meter holding 500 records, of which the gateway holds up to 480,
//!   is asked for the records from 481 only, sends those 20 and nothing else, and the
//!   next session asks from 501 and gets none; a first session reads all 500; a meter
//!   whose memory was reset is detected and read from its start;
//! - clock correction: a meter whose clock is 3 years behind produces readings at the
//!   right time, keeps its raw clock in `device_time`, and has its clock set;
//! - the order that keeps readings safe, in `vigil-edge run`'s own session code
//!   (`vigil_edge::run::session`, generic over the link): readings into the outbox
//!   first, then the new last sequence number into the device memory (which survives
//!   a reopen); an outbox that refuses them leaves the memory as it was; the platform's
//!   `backfill` by record makes the next session read from that record.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use vigil_edge::device::{DeviceMemory, Remembered, glucose_session};
use vigil_edge::forward::{CHINA, Forwarder, ForwarderConfig, Handle};
use vigil_edge::run::{device_command, session};
use vigil_edge::sim::SimGlucometer;
use vigil_model::clock::{Clock, ManualClock};
use vigil_model::{DeviceId, Measurement};
use vigil_wire::command::Command;

fn t0() -> DateTime<Utc> {
    "2026-11-22T00:00:00Z".parse().unwrap()
}

fn meter(clock: &Arc<ManualClock>, records: u32) -> SimGlucometer {
    let mut m = SimGlucometer::new("C4:7C:8D:6A:00:01", CHINA, clock.clone());
    for i in 0..records {
        // Four tests a day over the last 125 days.
        let at = t0() - TimeDelta::hours(6 * i64::from(records - i));
        m.measure(at, 4.0 + f64::from(i % 60) / 10.0);
    }
    m
}

fn device() -> DeviceId {
    "glu-accuchek-00a1".parse().unwrap()
}

#[tokio::test]
async fn racp_asks_only_for_records_after_the_last_one_held_and_gets_only_those() {
    let clock = Arc::new(ManualClock::new(t0()));
    let mut m = meter(&clock, 500);
    let out = glucose_session(&mut m, &device(), Some(480), clock.now(), CHINA)
        .await
        .unwrap();
    // 01 03 01 E1 01: report stored records, >=, by sequence number, 481.
    assert_eq!(out.request, [0x01, 0x03, 0x01, 0xE1, 0x01]);
    assert_eq!(m.racp_requests, [vec![0x01, 0x03, 0x01, 0xE1, 0x01]]);
    assert_eq!(
        m.records_sent, 20,
        "only the records asked for cross the link"
    );
    let seqs: Vec<u64> = out.readings.iter().map(|r| r.record_seq.unwrap()).collect();
    assert_eq!(seqs, (481..=500).collect::<Vec<_>>());
    assert_eq!(out.last_seq, Some(500));
    assert!(out.rejected.is_empty() && !out.reset);
    // Values travel as measured: record 481 was the 481st test.
    let Measurement::Glucose(g) = &out.readings[0].measurement else {
        panic!("{:?}", out.readings[0]);
    };
    assert_eq!(g.value, Some(4.0 + f64::from(480 % 60) / 10.0));

    // The next connection, nothing new: asked from 501, none sent.
    let again = glucose_session(&mut m, &device(), out.last_seq, clock.now(), CHINA)
        .await
        .unwrap();
    assert_eq!(again.request, [0x01, 0x03, 0x01, 0xF5, 0x01]);
    assert!(again.readings.is_empty());
    assert_eq!(again.last_seq, Some(500));
    assert_eq!(
        m.records_sent,
        20 + 1,
        "plus the last record, to check for a reset"
    );

    // A gateway that never saw this meter reads everything.
    let mut fresh = meter(&clock, 500);
    let all = glucose_session(&mut fresh, &device(), None, clock.now(), CHINA)
        .await
        .unwrap();
    assert_eq!(all.request, [0x01, 0x01]);
    assert_eq!(all.readings.len(), 500);
    assert_eq!(fresh.records_sent, 500);
}

#[tokio::test]
async fn a_meter_whose_memory_was_reset_is_read_from_its_start() {
    let clock = Arc::new(ManualClock::new(t0()));
    let mut m = meter(&clock, 0);
    m.reset_memory();
    for i in 0..5 {
        m.measure(t0() - TimeDelta::hours(5 - i), 6.1);
    }
    let out = glucose_session(&mut m, &device(), Some(480), clock.now(), CHINA)
        .await
        .unwrap();
    assert!(out.reset);
    assert_eq!(out.readings.len(), 5);
    assert_eq!(out.last_seq, Some(5));
}

#[tokio::test]
async fn a_meter_three_years_behind_gives_readings_at_the_right_time_and_is_set_right() {
    let clock = Arc::new(ManualClock::new(t0()));
    let mut m = SimGlucometer::new("C4:7C:8D:6A:00:02", CHINA, clock.clone());
    m.clock.offset = -TimeDelta::days(3 * 365 + 1);
    let true_times: Vec<DateTime<Utc>> = (1..=3).map(|h| t0() - TimeDelta::hours(h)).collect();
    for t in &true_times {
        m.measure(*t, 7.2);
    }
    let out = glucose_session(&mut m, &device(), None, clock.now(), CHINA)
        .await
        .unwrap();
    assert_eq!(out.readings.len(), 3);
    let check = out.clock.unwrap();
    assert_eq!(check.correction(), TimeDelta::days(3 * 365 + 1));
    for (r, t) in out.readings.iter().zip(&true_times) {
        // The right instant, in the gateway's zone; the raw clock kept as it was.
        assert_eq!(r.time, t.with_timezone(&CHINA));
        let raw = (*t - TimeDelta::days(3 * 365 + 1))
            .with_timezone(&CHINA)
            .naive_local();
        assert_eq!(r.device_time, Some(raw));
        assert_eq!(r.device_time.unwrap().format("%Y").to_string(), "2023");
        // On the wire (what the outbox keeps and the platform stores as received):
        // `time` the corrected instant, `device_time` the raw clock.
        let json = serde_json::to_value(vigil_wire::envelope::ReadingJson(r)).unwrap();
        let sent: DateTime<Utc> = json["time"].as_str().unwrap().parse().unwrap();
        assert_eq!(sent, *t);
        assert_eq!(
            json["device_time"].as_str().unwrap(),
            raw.format("%Y-%m-%dT%H:%M:%S").to_string(),
            "{json}"
        );
    }
    // The meter's clock was set: the next test is stamped with the true time.
    assert!(out.clock_set);
    assert!(
        (m.clock.now() - clock.now().with_timezone(&CHINA).naive_local()).abs()
            < TimeDelta::seconds(1)
    );
    clock.advance(TimeDelta::minutes(30));
    let seq = m.measure(clock.now(), 5.5);
    let next = glucose_session(&mut m, &device(), out.last_seq, clock.now(), CHINA)
        .await
        .unwrap();
    assert_eq!(next.readings.len(), 1);
    assert_eq!(next.readings[0].record_seq, Some(u64::from(seq)));
    assert_eq!(next.readings[0].time, clock.now().with_timezone(&CHINA));
    assert!(!next.clock_set, "a clock already right is left alone");

    // A meter without Current Time: its timestamps are taken as they are.
    let mut plain = SimGlucometer::new("C4:7C:8D:6A:00:03", CHINA, clock.clone());
    plain.current_time = false;
    plain.measure(clock.now(), 5.0);
    let out = glucose_session(&mut plain, &device(), None, clock.now(), CHINA)
        .await
        .unwrap();
    assert_eq!(out.clock, None);
    assert_eq!(out.readings[0].time, clock.now().with_timezone(&CHINA));
}

/// A forwarder with no broker to reach (its outbox only fills) on `dir`, and its handle.
fn outbox(dir: &std::path::Path, max_bytes: u64) -> (Forwarder, Handle) {
    let (store, _) = vigil_edge::store::Store::open(
        dir,
        vigil_outbox::Config {
            max_bytes,
            ..vigil_outbox::Config::default()
        },
    )
    .unwrap();
    let config = ForwarderConfig::new(
        "gw-0042".parse().unwrap(),
        "127.0.0.1",
        vigil_testkit::free_port(),
    );
    let clock: Arc<dyn Clock> = Arc::new(vigil_model::clock::SystemClock);
    let forwarder = Forwarder::start(config, store, clock);
    let handle = forwarder.handle();
    (forwarder, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_session_puts_readings_in_the_outbox_before_it_remembers_them() {
    let clock = Arc::new(ManualClock::new(t0()));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let dir = tempfile::tempdir().unwrap();
    let memory_file = dir.path().join("devices.json");
    let memory = Mutex::new(DeviceMemory::load(&memory_file).unwrap());
    let (forwarder, handle) = outbox(&dir.path().join("state"), 64 * 1024 * 1024);
    let mut m = meter(&clock, 50);
    // `vigil-edge run`'s own session code, over the simulated meter's link.
    let n = session(&mut m, &device(), &handle, &memory, &dyn_clock, CHINA)
        .await
        .unwrap();
    assert_eq!((n, handle.depth().await), (50, 50));
    // After a reboot: the memory says 50, so the next session asks from 51.
    let memory = Mutex::new(DeviceMemory::load(&memory_file).unwrap());
    assert_eq!(memory.lock().unwrap().get(&device()).last_seq, Some(50));
    m.measure(clock.now(), 8.8);
    let n = session(&mut m, &device(), &handle, &memory, &dyn_clock, CHINA)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(m.racp_requests.last().unwrap(), &[0x01, 0x03, 0x01, 51, 0]);
    // The platform's `backfill` by record: the next session reads from record 40.
    device_command(
        &memory,
        Command::BackfillDevice {
            device_id: device(),
            from_record_seq: 40,
        },
    );
    assert_eq!(memory.lock().unwrap().get(&device()).last_seq, Some(39));
    let n = session(&mut m, &device(), &handle, &memory, &dyn_clock, CHINA)
        .await
        .unwrap();
    assert_eq!(n, 12, "records 40 to 51");
    assert_eq!(m.racp_requests.last().unwrap(), &[0x01, 0x03, 0x01, 40, 0]);
    assert_eq!(handle.depth().await, 63);
    // `remeasure` is only logged (a gateway has no screen): the memory is unchanged.
    device_command(
        &memory,
        Command::Remeasure {
            device_id: device(),
            reason: "implausible_value".into(),
        },
    );
    assert_eq!(memory.lock().unwrap().get(&device()).last_seq, Some(51));
    forwarder.abort().await;

    // An outbox that refuses the readings: the session fails and the memory is left as
    // it was, so the next session reads the same records again.
    let dir = tempfile::tempdir().unwrap();
    let memory_file = dir.path().join("devices.json");
    let memory = Mutex::new(DeviceMemory::load(&memory_file).unwrap());
    let (forwarder, handle) = outbox(&dir.path().join("state"), 4_000);
    let mut m = meter(&clock, 50);
    let e = session(&mut m, &device(), &handle, &memory, &dyn_clock, CHINA)
        .await
        .unwrap_err();
    assert!(e.starts_with("outbox: "), "{e}");
    assert_eq!(handle.depth().await, 0);
    assert_eq!(memory.lock().unwrap().get(&device()).last_seq, None);
    assert_eq!(
        DeviceMemory::load(&memory_file).unwrap().get(&device()),
        Remembered::default()
    );
    forwarder.abort().await;

    // A broken memory file is an error that names it, not a panic or a silent reset.
    std::fs::write(&memory_file, b"{not json").unwrap();
    let e = DeviceMemory::load(&memory_file).unwrap_err();
    assert!(e.contains("devices.json"), "{e}");
}

#[tokio::test]
async fn a_cuff_sends_its_memory_and_its_results_are_timed_by_the_corrected_clock() {
    use vigil_edge::device::measurement_session;
    use vigil_edge::sim::SimCuff;
    let clock = Arc::new(ManualClock::new(t0()));
    let mut cuff = SimCuff::new("C4:7C:8D:6A:00:09", CHINA, clock.clone());
    // Its clock reset to 2000-01-01 when the batteries were changed.
    let offset = "2000-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() - t0();
    cuff.clock.offset = offset;
    let times = [t0() - TimeDelta::hours(30), t0() - TimeDelta::hours(6)];
    cuff.measure(times[0], 152, 96, 70);
    cuff.measure(times[1], 138, 88, 66);
    let c = clock.clone();
    let out = measurement_session(
        &mut cuff,
        &"bpm-omron-3f9a21".parse().unwrap(),
        (
            std::time::Duration::from_millis(10),
            std::time::Duration::from_secs(60),
        ),
        move || c.now(),
        CHINA,
    )
    .await
    .unwrap();
    assert_eq!(out.readings.len(), 2);
    for (r, t) in out.readings.iter().zip(times) {
        assert_eq!(r.time, t.with_timezone(&CHINA));
        // The raw clock as the cuff gave it: around 2000-01-01.
        let raw = (t + offset).with_timezone(&CHINA).naive_local();
        assert_eq!(r.device_time, Some(raw));
        let Measurement::Bp(bp) = &r.measurement else {
            panic!("{r:?}")
        };
        assert!(bp.systolic > 130.0 && bp.pulse.is_some());
    }
    assert!(out.clock_set);
}

#[tokio::test]
async fn an_ecg_strap_streams_the_real_recording_timed_by_the_gateway_clock() {
    use vigil_edge::device::ecg_session;
    use vigil_edge::sim::SimEcgPatch;
    let clock = Arc::new(ManualClock::new(t0()));
    // A strap whose clock was never set: it counts from 2019-01-01.
    let mut strap = SimEcgPatch::new(
        "A0:9E:1A:00:00:01",
        vigil_gatt::pmd::H10_UNSET_CLOCK_EPOCH_NS,
    );
    let c = clock.clone();
    let out = ecg_session(
        &mut strap,
        &"ecg-polar-h10-0001".parse().unwrap(),
        10.0,
        move || c.now(),
        CHINA,
    )
    .await
    .unwrap();
    assert_eq!(out.sample_rate_hz, 130);
    assert!(out.samples >= 1300, "{}", out.samples);
    let correction = out.correction.unwrap();
    assert!(correction > TimeDelta::days(365 * 7), "{correction}");
    // Frames follow each other at the sample rate, the first near the gateway's now.
    let first = &out.readings[0];
    assert!((first.time - clock.now().with_timezone(&CHINA)).abs() < TimeDelta::seconds(1));
    assert_eq!(
        first.device_time.unwrap().format("%Y").to_string(),
        "2019",
        "the raw clock is kept"
    );
    let step = out.readings[1].time - out.readings[0].time;
    let nominal = TimeDelta::nanoseconds(73 * 1_000_000_000 / 130);
    assert!(
        (step - nominal).abs() < TimeDelta::microseconds(1),
        "{step}"
    );
    let Measurement::EcgWaveform(w) = &first.measurement else {
        panic!("{first:?}")
    };
    assert_eq!(w.sample_rate_hz, 130.0);
    // A connection with a small MTU is refused with the reason.
    let mut small = SimEcgPatch::new("A0:9E:1A:00:00:02", 0);
    small.mtu = 23;
    let c = clock.clone();
    let e = ecg_session(
        &mut small,
        &"ecg-polar-h10-0002".parse().unwrap(),
        1.0,
        move || c.now(),
        CHINA,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("MTU is 23"), "{e}");
}

#[tokio::test]
async fn records_stamped_before_a_clock_reset_are_not_pushed_into_the_future() {
    use vigil_edge::device::measurement_session;
    use vigil_edge::sim::SimCuff;
    let clock = Arc::new(ManualClock::new(t0()));
    let mut cuff = SimCuff::new("C4:7C:8D:6A:00:0A", CHINA, clock.clone());
    let before = t0() - TimeDelta::hours(20);
    cuff.measure(before, 141, 90, 70); // stamped by a right clock
    // Then the batteries: the clock restarts at 2000-01-01.
    cuff.clock.offset = "2000-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() - t0();
    let after = t0() - TimeDelta::hours(2);
    cuff.measure(after, 136, 85, 68);
    let c = clock.clone();
    let out = measurement_session(
        &mut cuff,
        &"bpm-omron-3f9a21".parse().unwrap(),
        (
            std::time::Duration::from_millis(10),
            std::time::Duration::from_secs(60),
        ),
        move || c.now(),
        CHINA,
    )
    .await
    .unwrap();
    assert_eq!(out.readings.len(), 2);
    // The old record keeps its own (right) stamp, flagged; the new one is corrected.
    assert_eq!(out.readings[0].time, before.with_timezone(&CHINA));
    assert_eq!(out.readings[0].status, ["device_clock_changed"]);
    assert_eq!(out.readings[1].time, after.with_timezone(&CHINA));
    assert!(out.readings[1].status.is_empty());
}

/// A device with one measurement characteristic that sends what it holds once
/// subscribed, then goes quiet (a thermometer, a scale, a spot-check oximeter, a
/// heart-rate strap for a moment): real GATT bytes, from `spec/decode.md`'s examples.
struct OneCharacteristic {
    characteristic: u128,
    values: std::collections::VecDeque<Vec<u8>>,
    subscribed: bool,
}

impl vigil_edge::device::Link for OneCharacteristic {
    fn address(&self) -> String {
        "C4:7C:8D:6A:00:42".to_owned()
    }
    fn has_characteristic(&self, characteristic: u128) -> bool {
        characteristic == self.characteristic
    }
    async fn read(&mut self, c: u128) -> Result<Vec<u8>, vigil_edge::device::LinkError> {
        Err(vigil_edge::device::LinkError::NotSupported(c))
    }
    async fn write(&mut self, c: u128, _: &[u8]) -> Result<(), vigil_edge::device::LinkError> {
        Err(vigil_edge::device::LinkError::NotSupported(c))
    }
    async fn subscribe(&mut self, c: u128) -> Result<(), vigil_edge::device::LinkError> {
        self.subscribed = c == self.characteristic;
        Ok(())
    }
    async fn notification(
        &mut self,
        timeout: std::time::Duration,
    ) -> Result<(u128, Vec<u8>), vigil_edge::device::LinkError> {
        match self.values.pop_front() {
            Some(v) if self.subscribed => Ok((self.characteristic, v)),
            _ => Err(vigil_edge::device::LinkError::Timeout(timeout)),
        }
    }
    fn mtu(&self) -> u16 {
        23
    }
}

fn bytes(hex: &str) -> Vec<u8> {
    let hex: String = hex.split_whitespace().collect();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heart_rate_oximeter_thermometer_and_scale_go_through_the_gateways_session() {
    use vigil_edge::device::uuid;
    let clock = Arc::new(ManualClock::new(t0()));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let dir = tempfile::tempdir().unwrap();
    let memory = Mutex::new(DeviceMemory::load(&dir.path().join("devices.json")).unwrap());
    let (forwarder, handle) = outbox(&dir.path().join("state"), 64 * 1024 * 1024);
    // (characteristic, value, the reading's type, its value key, the value)
    let devices = [
        (
            uuid::HEART_RATE_MEASUREMENT,
            "16 48 A801 3804",
            "heart_rate",
            "bpm",
            72.0,
        ),
        (uuid::PLX_SPOT_CHECK, "00 6100 4800", "spo2", "spo2", 97.0),
        (
            uuid::TEMPERATURE_MEASUREMENT,
            "06 700100FF EA070B16073A00 01",
            "temperature",
            "temperature",
            36.8,
        ),
        (
            uuid::WEIGHT_MEASUREMENT,
            "00 C832",
            "weight",
            "weight",
            65.0,
        ),
    ];
    let mut total = 0;
    for (characteristic, hex, kind, key, value) in devices {
        let mut device = OneCharacteristic {
            characteristic,
            values: [bytes(hex)].into(),
            subscribed: false,
        };
        let id: DeviceId = format!("dev-{kind}").replace('_', "-").parse().unwrap();
        // The measurement session alone: one reading of the right kind and value.
        let c = clock.clone();
        let out = vigil_edge::device::measurement_session(
            &mut device,
            &id,
            (
                std::time::Duration::from_millis(10),
                std::time::Duration::from_secs(5),
            ),
            move || c.now(),
            CHINA,
        )
        .await
        .unwrap();
        assert_eq!(out.readings.len(), 1, "{kind}: {out:?}");
        let json =
            serde_json::to_value(vigil_wire::envelope::ReadingJson(&out.readings[0])).unwrap();
        assert_eq!(json["type"], kind, "{json}");
        let got = json["values"][key]
            .as_f64()
            .or_else(|| json["values"]["value"].as_f64())
            .unwrap_or_else(|| panic!("{kind}: no {key} in {json}"));
        assert!((got - value).abs() < 1e-9, "{kind}: {got} in {json}");
        // And through `vigil-edge run`'s session, into the outbox.
        device.values.push_back(bytes(hex));
        let n = session(&mut device, &id, &handle, &memory, &dyn_clock, CHINA)
            .await
            .unwrap();
        assert_eq!(n, 1, "{kind}");
        total += 1;
        assert_eq!(handle.depth().await, total);
    }
    forwarder.abort().await;
}
