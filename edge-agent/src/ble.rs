//! The Bluetooth LE backend (cargo feature `bluetooth`): btleplug over BlueZ's D-Bus.
//!
//! [`scan`] lists the health devices in range; [`BleLink`] is a GATT connection to one,
//! implementing [`Link`] so the sessions of [`crate::device`] run on it unchanged.
//! Without a system D-Bus, or with D-Bus but no adapter, both fail at once with a
//! message that says so; neither hangs. Pairing (for meters that need encryption) is
//! done through BlueZ (`bluetoothctl`), not here; subscriptions are made again after
//! every reconnect, by the session.

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;

use btleplug::api::bleuuid::uuid_from_u16;
use btleplug::api::{
    Central, Characteristic, Manager as _, Peripheral as _, ScanFilter, ValueNotification,
    WriteType,
};
use btleplug::platform::{Adapter, Manager, Peripheral};
use futures_util::{Stream, StreamExt};

use crate::device::{Link, LinkError};

/// The health services a gateway looks for, with their names.
pub const HEALTH_SERVICES: [(u16, &str); 6] = [
    (0x1808, "Glucose"),
    (0x1810, "Blood Pressure"),
    (0x180D, "Heart Rate"),
    (0x1822, "Pulse Oximeter"),
    (0x1809, "Health Thermometer"),
    (0x181D, "Weight Scale"),
];

/// The Polar PMD service (ECG streaming).
pub const PMD_SERVICE: &str = vigil_gatt::error::PMD_SERVICE_UUID;

/// A health device seen while scanning.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Found {
    pub address: String,
    pub name: Option<String>,
    pub rssi: Option<i16>,
    /// The health services it advertises, by name.
    pub services: Vec<String>,
}

/// The first adapter, or why there is none, said plainly.
pub async fn adapter() -> Result<Adapter, String> {
    let manager = Manager::new().await.map_err(|e| {
        format!(
            "no Bluetooth: BlueZ cannot be reached over D-Bus ({e}); is this a machine with a system D-Bus and bluetoothd running?"
        )
    })?;
    let adapters = manager.adapters().await.map_err(|e| {
        format!("no Bluetooth adapter: BlueZ answered, but listing adapters failed ({e}); is bluetoothd running?")
    })?;
    adapters.into_iter().next().ok_or_else(|| {
        "no Bluetooth adapter found: plug one in or enable it (bluetoothctl power on)".to_owned()
    })
}

fn service_name(uuid: &uuid::Uuid) -> Option<String> {
    HEALTH_SERVICES
        .iter()
        .find(|(short, _)| uuid_from_u16(*short) == *uuid)
        .map(|(_, name)| (*name).to_owned())
        .or_else(|| {
            uuid.to_string()
                .eq_ignore_ascii_case(PMD_SERVICE)
                .then(|| "Polar PMD".to_owned())
        })
}

/// Scans for `duration` and lists the devices advertising a health service.
pub async fn scan(duration: Duration) -> Result<Vec<Found>, String> {
    let adapter = adapter().await?;
    adapter
        .start_scan(ScanFilter::default())
        .await
        .map_err(|e| format!("the adapter cannot scan: {e}"))?;
    tokio::time::sleep(duration).await;
    let _ = adapter.stop_scan().await;
    let mut found = Vec::new();
    for p in adapter
        .peripherals()
        .await
        .map_err(|e| format!("listing what the scan found failed: {e}"))?
    {
        let Ok(Some(props)) = p.properties().await else {
            continue;
        };
        let services: Vec<String> = props.services.iter().filter_map(service_name).collect();
        if services.is_empty() {
            continue;
        }
        found.push(Found {
            address: props.address.to_string(),
            name: props.local_name,
            rssi: props.rssi,
            services,
        });
    }
    found.sort_by(|a, b| a.address.cmp(&b.address));
    Ok(found)
}

type Notifications = Pin<Box<dyn Stream<Item = ValueNotification> + Send>>;

/// A GATT connection to one device.
pub struct BleLink {
    peripheral: Peripheral,
    /// Its characteristics, by UUID.
    characteristics: HashMap<u128, Characteristic>,
    notifications: Notifications,
}

impl std::fmt::Debug for BleLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BleLink")
            .field("address", &self.peripheral.address())
            .finish_non_exhaustive()
    }
}

impl BleLink {
    /// Connects to `peripheral` and discovers its services.
    pub async fn connect(peripheral: Peripheral, timeout: Duration) -> Result<BleLink, LinkError> {
        let refused = |e: btleplug::Error| LinkError::Refused(e.to_string());
        tokio::time::timeout(timeout, peripheral.connect())
            .await
            .map_err(|_| LinkError::Timeout(timeout))?
            .map_err(refused)?;
        tokio::time::timeout(timeout, peripheral.discover_services())
            .await
            .map_err(|_| LinkError::Timeout(timeout))?
            .map_err(refused)?;
        let characteristics = peripheral
            .characteristics()
            .into_iter()
            .map(|c| (c.uuid.as_u128(), c))
            .collect();
        let notifications = peripheral.notifications().await.map_err(refused)?;
        Ok(BleLink {
            peripheral,
            characteristics,
            notifications,
        })
    }

    fn characteristic(&self, ch: u128) -> Result<&Characteristic, LinkError> {
        self.characteristics
            .get(&ch)
            .ok_or(LinkError::NotSupported(ch))
    }
}

impl Link for BleLink {
    fn address(&self) -> String {
        self.peripheral.address().to_string()
    }

    fn has_characteristic(&self, characteristic: u128) -> bool {
        self.characteristics.contains_key(&characteristic)
    }

    async fn read(&mut self, characteristic: u128) -> Result<Vec<u8>, LinkError> {
        let c = self.characteristic(characteristic)?.clone();
        self.peripheral
            .read(&c)
            .await
            .map_err(|e| LinkError::Refused(e.to_string()))
    }

    async fn write(&mut self, characteristic: u128, value: &[u8]) -> Result<(), LinkError> {
        let c = self.characteristic(characteristic)?.clone();
        self.peripheral
            .write(&c, value, WriteType::WithResponse)
            .await
            .map_err(|e| LinkError::Refused(e.to_string()))
    }

    async fn subscribe(&mut self, characteristic: u128) -> Result<(), LinkError> {
        let c = self.characteristic(characteristic)?.clone();
        self.peripheral
            .subscribe(&c)
            .await
            .map_err(|e| LinkError::Refused(e.to_string()))
    }

    async fn notification(&mut self, timeout: Duration) -> Result<(u128, Vec<u8>), LinkError> {
        match tokio::time::timeout(timeout, self.notifications.next()).await {
            Err(_) => Err(LinkError::Timeout(timeout)),
            Ok(None) => Err(LinkError::Disconnected),
            Ok(Some(n)) => Ok((n.uuid.as_u128(), n.value)),
        }
    }

    fn mtu(&self) -> u16 {
        self.peripheral.mtu()
    }
}
