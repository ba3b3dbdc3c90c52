//! The pure stages of the ingester for one envelope.

use chrono::{DateTime, Utc};
use vigil_model::vocab::QuarantineReason;
use vigil_model::{GatewayId, Reading};
use vigil_registry::{Assignment, Device, Registry};
use vigil_rules::validate::{Context, validate};
use vigil_store::{EnvelopeCommit, Item, Quarantined};
use vigil_wire::envelope::ReadingJson;
use vigil_wire::{EnvelopeError, decode_envelope};

/// An envelope that cannot be processed at all; the ingester keeps the raw payload
/// with this reason and acknowledges it (redelivery would not change it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeRejected {
    pub message: String,
}

/// Runs decode → bind → validate → attribute over one envelope received from
/// `topic_gateway` at `received`. Every reading of the envelope yields exactly one
/// [`Item`], in envelope order.
pub fn prepare(
    topic_gateway: &GatewayId,
    payload: &[u8],
    received: DateTime<Utc>,
    registry: &Registry,
) -> Result<EnvelopeCommit, EnvelopeRejected> {
    let envelope = decode_envelope(payload)
        .map_err(|e: EnvelopeError| EnvelopeRejected { message: e.message })?;
    if &envelope.gateway_id != topic_gateway {
        return Err(EnvelopeRejected {
            message: format!(
                "the envelope says gateway_id {} but was published on the topic of gateway {topic_gateway}: a gateway may publish only its own readings",
                envelope.gateway_id
            ),
        });
    }
    let mut lookups = Lookups::new(registry);
    let items = envelope
        .readings
        .into_iter()
        .enumerate()
        .map(|(index, decoded)| match decoded {
            Err(e) => Item::Quarantine(Quarantined {
                reason: QuarantineReason::Malformed,
                message: e.to_string(),
                index,
                device_id: None,
                time: None,
                raw: e.raw,
            }),
            Ok(reading) => stage_reading(index, reading, topic_gateway, received, &mut lookups),
        })
        .collect();
    Ok(EnvelopeCommit {
        gateway_id: envelope.gateway_id,
        batch_seq: envelope.batch_seq,
        received,
        items,
    })
}

fn quarantine(index: usize, reading: &Reading, reason: QuarantineReason, message: String) -> Item {
    Item::Quarantine(Quarantined {
        reason,
        message,
        index,
        device_id: Some(reading.device_id.clone()),
        time: Some(reading.time),
        raw: serde_json::to_value(ReadingJson(reading)).unwrap_or(serde_json::Value::Null),
    })
}

/// The registry, with the entries of the device last looked up kept. An envelope's
/// readings mostly come from one device in a row (a cuff's session, a meter's memory),
/// and each lookup is a binary search over every device (262 501 with 100 000
/// patients).
struct Lookups<'r> {
    registry: &'r Registry,
    device: Option<&'r Device>,
    /// Its assignments.
    assignments: &'r [Assignment],
}

impl<'r> Lookups<'r> {
    fn new(registry: &'r Registry) -> Lookups<'r> {
        Lookups {
            registry,
            device: None,
            assignments: &[],
        }
    }

    fn device(&mut self, id: &vigil_model::DeviceId) -> Option<&'r Device> {
        if self.device.is_none_or(|d| &d.id != id) {
            let found = self.registry.device_with_assignments(id);
            self.device = found.map(|(device, _)| device);
            self.assignments = found.map_or(&[], |(_, assignments)| assignments);
        }
        self.device
    }
}

fn stage_reading(
    index: usize,
    reading: Reading,
    gateway: &GatewayId,
    received: DateTime<Utc>,
    lookups: &mut Lookups<'_>,
) -> Item {
    // Bind: the device must be registered and bound to the publishing gateway.
    let Some(device) = lookups.device(&reading.device_id) else {
        let message = format!(
            "device {} is not registered: add it to the registry with its gateway",
            reading.device_id
        );
        return quarantine(index, &reading, QuarantineReason::UnknownDevice, message);
    };
    if &device.gateway != gateway {
        let message = format!(
            "device {} belongs to gateway {}, not {gateway}: a reading is stored only from its device's gateway",
            reading.device_id, device.gateway
        );
        return quarantine(
            index,
            &reading,
            QuarantineReason::DeviceNotOnGateway,
            message,
        );
    }
    // Validate.
    let ctx = Context {
        received,
        device_registered: Some(device.registered.with_timezone(&Utc)),
        // The reference weight (§0.8) is in the store: applied after attribution by
        // `check_weight_changes`, which knows the patient.
        reference_weight_kg: None,
    };
    let validated = match validate(reading, &ctx) {
        Ok(v) => v,
        Err(rejected) => {
            let r = *rejected;
            return quarantine(index, &r.reading, r.reason, r.message);
        }
    };
    // Attribute: the assignment valid at the measurement time (of the device bound
    // above).
    let measured = validated.reading().time.with_timezone(&Utc);
    match lookups.assignments.iter().find(|a| a.covers(measured)) {
        Some(a) => Item::Store {
            patient: a.patient.clone(),
            reading: Box::new(validated),
        },
        None => {
            let message = format!(
                "no assignment covers device {} at {}: it is re-processed when one is added",
                validated.reading().device_id,
                validated.reading().time.to_rfc3339()
            );
            quarantine(
                index,
                validated.reading(),
                QuarantineReason::UnassignedDevice,
                message,
            )
        }
    }
}

/// What [`reprocess_unassigned`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reprocessed {
    /// Readings now stored as their patient's.
    pub stored: u64,
    /// Readings that turned out to be stored already.
    pub duplicates: u64,
    /// Readings still without an assignment (or no longer valid), left in quarantine.
    pub left: u64,
}

/// Re-runs binding, validation and attribution for readings quarantined as
/// `unassigned_device`, with the current registry: those an assignment now covers
/// move into the store, judged as at their original receipt.
pub async fn reprocess_unassigned(
    store: &vigil_store::SqliteStore,
    registry: &Registry,
    now: DateTime<Utc>,
) -> Result<Reprocessed, vigil_store::Error> {
    let mut done = Reprocessed::default();
    let mut after = 0;
    loop {
        let page = store
            .unresolved(QuarantineReason::UnassignedDevice, after, 1000)
            .await?;
        let Some((last, _)) = page.last() else {
            return Ok(done);
        };
        after = *last;
        let mut lookups = Lookups::new(registry);
        for (id, record) in page {
            let item = vigil_wire::envelope::decode_reading_value(record.index, &record.raw)
                .ok()
                .map(|reading| {
                    stage_reading(
                        record.index,
                        reading,
                        &record.gateway_id,
                        record.received,
                        &mut lookups,
                    )
                });
            match item {
                Some(Item::Store { reading, patient }) => {
                    if store.release(id, &record, &reading, &patient, now).await? {
                        done.stored += 1;
                    } else {
                        done.duplicates += 1;
                    }
                }
                _ => done.left += 1,
            }
        }
    }
}

/// The weight plausibility check of §0.8 over prepared envelopes, in order: a stored
/// weight more than 5 kg from the patient's most recent accepted weight of the
/// preceding 48 h (in the store, or earlier in these envelopes) is quarantined as
/// `unit_suspect` instead. Runs after [`prepare`], which cannot see the store.
pub async fn check_weight_changes<S: vigil_store::ClinicalStore>(
    commits: &mut [EnvelopeCommit],
    store: &S,
) -> Result<(), vigil_store::Error> {
    use vigil_model::measurement::Measurement;
    use vigil_rules::validate::{WEIGHT_REFERENCE_WINDOW, weight_change};
    // Weights accepted so far in these envelopes: (patient, measured, kg).
    let mut accepted: Vec<(vigil_model::PatientId, DateTime<Utc>, f64)> = Vec::new();
    for commit in commits.iter_mut() {
        for (index, item) in commit.items.iter_mut().enumerate() {
            let Item::Store { reading, patient } = item else {
                continue;
            };
            let Measurement::Weight(w) = &reading.reading().measurement else {
                continue;
            };
            let at = reading.reading().time.with_timezone(&Utc);
            // The most recent accepted weight of the 48 h before: earlier in these
            // envelopes, or in the store.
            let local = accepted
                .iter()
                .filter(|(p, t, _)| p == patient && *t < at && *t >= at - WEIGHT_REFERENCE_WINDOW)
                .map(|(_, t, kg)| (*t, *kg))
                .max_by_key(|(t, _)| *t);
            let stored = store.reference_weight(patient, at).await?;
            let reference = [local, stored]
                .into_iter()
                .flatten()
                .max_by_key(|(t, _)| *t)
                .map(|(_, kg)| kg);
            match reference.map(|r| weight_change(w, r)) {
                Some(Err((reason, message))) => {
                    let r = reading.reading();
                    *item = quarantine(index, r, reason, message);
                }
                _ => accepted.push((patient.clone(), at, w.unit.to_kg(w.value))),
            }
        }
    }
    Ok(())
}
