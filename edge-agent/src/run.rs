//! `vigil-edge run`: the gateway. The forwarder publishes the outbox (`<state_dir>/outbox`)
//! whatever else happens; the Bluetooth loop (cargo feature `bluetooth`) finds the
//! allowed devices, runs a session with each as it comes in range (the ECG session,
//! a minute at a time, for Polar straps; the glucometer session for devices with a
//! Record Access Control Point; the measurement session for the others), puts the readings in the outbox and only then remembers what it read
//! (`<state_dir>/devices.json`). Platform commands about devices act on that memory
//! (`backfill` by record: the next connection re-reads from that record) or are
//! reported (`remeasure`).

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vigil_model::clock::Clock;
use vigil_wire::command::Command;

use crate::config::Checked;
use crate::device::DeviceMemory;
use crate::forward::{Forwarder, ForwarderConfig, Handle};
use crate::store::Store;

/// Runs until `stop` completes, then stops in order (the forwarder last, with its
/// `offline` status).
pub async fn run(
    checked: Checked,
    state_dir: PathBuf,
    (batch_size, linger): (usize, Duration),
    clock: Arc<dyn Clock>,
    stop: impl Future<Output = ()>,
) -> Result<(), String> {
    std::fs::create_dir_all(&state_dir).map_err(|e| format!("{}: {e}", state_dir.display()))?;
    let (store, reports) = Store::open(&state_dir.join("outbox"), checked.outbox.clone())
        .map_err(|e| e.to_string())?;
    for r in reports {
        if r.torn_bytes > 0 || r.torn_ack_bytes > 0 {
            eprintln!(
                "vigil-edge: the outbox was cut at a record torn by a crash ({} bytes; never confirmed, nothing lost)",
                r.torn_bytes + r.torn_ack_bytes
            );
        }
        for (file, offset) in &r.corrupt {
            eprintln!(
                "vigil-edge: the outbox file {} is corrupt from byte {offset}: the records after it cannot be read (a disk fault); it is left for inspection",
                file.display()
            );
        }
    }
    let memory = Arc::new(Mutex::new(DeviceMemory::load(
        &state_dir.join("devices.json"),
    )?));
    let mut config = ForwarderConfig::new(checked.gateway_id.clone(), &checked.host, checked.port);
    config.tls = checked.tls.clone();
    config.credentials = checked.credentials.clone();
    config.batch_size = batch_size;
    config.linger = linger;
    config.offset = checked.offset;
    let mut forwarder = Forwarder::start(config, store, clock.clone());
    eprintln!(
        "vigil-edge: gateway {} forwarding to {}:{}; {} allowed device(s); outbox {} pending",
        checked.gateway_id,
        checked.host,
        checked.port,
        checked.devices.len(),
        forwarder.handle().depth().await
    );
    let mut commands = forwarder.commands.take();
    let handle = forwarder.handle();
    let devices = bluetooth(checked, handle, memory.clone(), clock);
    let commands = async {
        while let Some(c) = match commands.as_mut() {
            Some(rx) => rx.recv().await,
            None => std::future::pending().await,
        } {
            device_command(&memory, c);
        }
    };
    tokio::select! {
        _ = stop => {}
        _ = devices => {}
        _ = commands => {}
    }
    eprintln!("vigil-edge: stopping");
    forwarder.shutdown().await;
    Ok(())
}

/// Acts on a platform command about a device: `backfill` by record sets the device's
/// memory back (its next session reads from that record), `remeasure` is logged.
pub fn device_command(memory: &Mutex<DeviceMemory>, c: Command) {
    match c {
        Command::BackfillDevice {
            device_id,
            from_record_seq,
        } => {
            let Ok(mut m) = memory.lock() else { return };
            let mut r = m.get(&device_id);
            r.last_seq = u16::try_from(from_record_seq.saturating_sub(1))
                .ok()
                .filter(|n| *n > 0);
            match m.set(&device_id, r) {
                Ok(()) => eprintln!(
                    "vigil-edge: backfill asked for {device_id} from record {from_record_seq}: read at its next connection"
                ),
                Err(e) => eprintln!("vigil-edge: backfill for {device_id} not remembered: {e}"),
            }
        }
        Command::Remeasure { device_id, reason } => {
            // A gateway without a screen: the request is logged for the care team's
            // app; the reason is the platform's, never a person's data.
            eprintln!(
                "vigil-edge: the platform asks for a new measurement with {device_id}: {reason}"
            );
        }
        Command::BackfillBatches { .. } => {} // the forwarder's
    }
}

#[cfg(not(feature = "bluetooth"))]
async fn bluetooth(
    checked: Checked,
    _handle: Handle,
    _memory: Arc<Mutex<DeviceMemory>>,
    _clock: Arc<dyn Clock>,
) {
    if !checked.devices.is_empty() {
        eprintln!(
            "vigil-edge: this vigil-edge was built without Bluetooth (cargo feature `bluetooth`): no device is read; the outbox is still forwarded"
        );
    }
    std::future::pending::<()>().await;
}

/// Finds the allowed devices and runs a session with each one in range, again and
/// again; an adapter that is missing is looked for every 30 s.
#[cfg(feature = "bluetooth")]
async fn bluetooth(
    checked: Checked,
    handle: Handle,
    memory: Arc<Mutex<DeviceMemory>>,
    clock: Arc<dyn Clock>,
) {
    use btleplug::api::{Central, Peripheral as _, ScanFilter};
    use std::collections::HashMap;
    if checked.devices.is_empty() {
        eprintln!("vigil-edge: no device is allowed (no [[device]] in the configuration)");
        return std::future::pending().await;
    }
    // Per device: when it may be tried again (backoff after a failed session).
    let mut not_before: HashMap<String, tokio::time::Instant> = HashMap::new();
    let mut backoff: HashMap<String, Duration> = HashMap::new();
    loop {
        let adapter = match crate::ble::adapter().await {
            Ok(a) => a,
            Err(e) => {
                eprintln!("vigil-edge: {e}; looking again in 30 s");
                tokio::time::sleep(Duration::from_secs(30)).await;
                continue;
            }
        };
        if let Err(e) = adapter.start_scan(ScanFilter::default()).await {
            eprintln!("vigil-edge: the adapter cannot scan ({e}); again in 30 s");
            tokio::time::sleep(Duration::from_secs(30)).await;
            continue;
        }
        // Several devices at once: a session per device, each its own task.
        let mut sessions: tokio::task::JoinSet<(
            String,
            vigil_model::DeviceId,
            Result<usize, String>,
        )> = tokio::task::JoinSet::new();
        let mut busy: std::collections::HashSet<String> = std::collections::HashSet::new();
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            while let Some(Ok((address, id, result))) = sessions.try_join_next() {
                busy.remove(&address);
                let wait = match result {
                    Ok(n) => {
                        eprintln!("vigil-edge: {id}: {n} reading(s) taken");
                        backoff.remove(&address);
                        Duration::from_secs(30)
                    }
                    Err(e) => {
                        let b = backoff.get(&address).map_or(Duration::from_secs(5), |b| {
                            (*b * 2).min(Duration::from_secs(300))
                        });
                        backoff.insert(address.clone(), b);
                        eprintln!("vigil-edge: {id}: {e}; trying again in {} s", b.as_secs());
                        b
                    }
                };
                not_before.insert(address, tokio::time::Instant::now() + wait);
            }
            let Ok(peripherals) = adapter.peripherals().await else {
                break; // the adapter went away: look for it again
            };
            for p in peripherals {
                let Ok(Some(props)) = p.properties().await else {
                    continue;
                };
                let address = props.address.to_string();
                let services: Vec<u128> = props.services.iter().map(|u| u.as_u128()).collect();
                let Some(device) = checked
                    .devices
                    .iter()
                    .find(|d| d.matches(&address, props.local_name.as_deref(), &services))
                else {
                    continue;
                };
                if busy.contains(&address)
                    || not_before
                        .get(&address)
                        .is_some_and(|t| *t > tokio::time::Instant::now())
                {
                    continue;
                }
                busy.insert(address.clone());
                let (id, handle, memory, clock, zone) = (
                    device.id.clone(),
                    handle.clone(),
                    memory.clone(),
                    clock.clone(),
                    checked.offset,
                );
                sessions.spawn(async move {
                    let r = match crate::ble::BleLink::connect(p.clone(), Duration::from_secs(20))
                        .await
                    {
                        Ok(mut link) => {
                            let r = session(&mut link, &id, &handle, &memory, &clock, zone).await;
                            let _ = p.disconnect().await;
                            r
                        }
                        Err(e) => Err(e.to_string()),
                    };
                    (address, id, r)
                });
            }
        }
    }
}

/// One session with one connected device (the caller connects and disconnects): the
/// session its characteristics call for (ECG streaming for a Polar strap, RACP backfill
/// for a glucometer, the measurement session for the others), its readings into the
/// outbox, and only then, what was read into the device memory: a refused outbox
/// leaves the memory as it was, so the next session reads the same records again.
/// Returns the readings taken.
pub async fn session<L: crate::device::Link>(
    link: &mut L,
    device_id: &vigil_model::DeviceId,
    handle: &Handle,
    memory: &Mutex<DeviceMemory>,
    clock: &Arc<dyn Clock>,
    zone: chrono::FixedOffset,
) -> Result<usize, String> {
    use crate::device::{Remembered, ecg_session, glucose_session, measurement_session, uuid};
    if link.has_characteristic(uuid::PMD_CONTROL_POINT) {
        // An ECG strap streams while worn: a minute at a time into the outbox, until it
        // goes away.
        let mut total = 0;
        loop {
            let c = clock.clone();
            match ecg_session(link, device_id, 60.0, move || c.now(), zone).await {
                Ok(out) => {
                    total += out.readings.len();
                    handle
                        .add(out.readings)
                        .await
                        .map_err(|e| format!("outbox: {e}"))?;
                }
                Err(_) if total > 0 => break,
                Err(e) => return Err(e.to_string()),
            }
        }
        return Ok(total);
    }
    let remembered = memory.lock().map(|m| m.get(device_id)).unwrap_or_default();
    let (readings, last_seq, correction) = if link.has_characteristic(uuid::RACP)
        && link.has_characteristic(uuid::GLUCOSE_MEASUREMENT)
    {
        let out = glucose_session(link, device_id, remembered.last_seq, clock.now(), zone)
            .await
            .map_err(|e| e.to_string())?;
        (
            out.readings,
            out.last_seq,
            out.clock.map(|c| c.correction()),
        )
    } else {
        let c = clock.clone();
        let out = measurement_session(
            link,
            device_id,
            (Duration::from_secs(10), Duration::from_secs(60)),
            move || c.now(),
            zone,
        )
        .await
        .map_err(|e| e.to_string())?;
        (
            out.readings,
            remembered.last_seq,
            out.clock.map(|c| c.correction()),
        )
    };
    let n = readings.len();
    if n > 0 {
        handle
            .add(readings)
            .await
            .map_err(|e| format!("outbox: {e}"))?;
    }
    // Remembered only once the outbox has the readings.
    if let Ok(mut m) = memory.lock() {
        m.set(
            device_id,
            Remembered {
                last_seq,
                clock_correction_s: correction
                    .map_or(remembered.clock_correction_s, |c| c.num_seconds()),
            },
        )?;
    }
    Ok(n)
}
