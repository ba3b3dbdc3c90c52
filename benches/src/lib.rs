//! Criterion benches of Vigil's hot paths live in `benches/`; this library holds what
//! several of them feed the pipeline. Run them with `cargo bench -p vigil-benches`;
//! results go to `BENCHMARKS.md`.

/// A readings envelope as a gateway publishes it: batch `batch_seq` of `gateway`,
/// `readings` blood-pressure readings of `cuff` numbered on from
/// `batch_seq × readings` (so each batch's are new), JSON text.
pub fn bp_envelope(gateway: &str, cuff: &str, batch_seq: u64, readings: u64) -> Vec<u8> {
    let body: Vec<String> = (0..readings)
        .map(|i| {
            let seq = batch_seq * readings + i;
            format!(
                r#"{{"device_id":"{cuff}","record_seq":{seq},"type":"bp","time":"2026-11-22T07:58:03+08:00","unit":"mm[Hg]","values":{{"systolic":{},"diastolic":80,"pulse":70}}}}"#,
                120 + seq % 50
            )
        })
        .collect();
    format!(
        r#"{{"schema":"vigil.readings.v1","gateway_id":"{gateway}","batch_seq":{batch_seq},"sent_at":"2026-11-22T08:00:01+08:00","readings":[{}]}}"#,
        body.join(",")
    )
    .into_bytes()
}
