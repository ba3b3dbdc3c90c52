// The function node "range checks -> line protocol" of flows.json (kept here as a file
// to read; flows.json holds the same text): what a hospital IT team's flow would do
// with an envelope from a gateway: the plausibility ranges of clinical rules §3.1 on
// each reading, the valid ones as InfluxDB line protocol, the others counted and
// dropped.
const env = msg.payload;
const readings = (env && Array.isArray(env.readings)) ? env.readings : [];
const gw = String(env && env.gateway_id || 'unknown').replace(/[ ,=]/g, '_');
const within = (v, lo, hi) => typeof v === 'number' && v >= lo && v <= hi;
const lines = [];
let invalid = 0;
for (const r of readings) {
    const v = r && r.values || {};
    const t = Date.parse(r && r.time);
    const dev = String(r && r.device_id || 'unknown').replace(/[ ,=]/g, '_');
    let fields = null;
    switch (r && r.type) {
        case 'bp':
            if (within(v.systolic, 40, 300) && within(v.diastolic, 20, 200) && v.diastolic < v.systolic
                && (v.pulse === undefined || within(v.pulse, 25, 250))) {
                fields = `systolic=${v.systolic},diastolic=${v.diastolic}` + (v.pulse !== undefined ? `,pulse=${v.pulse}` : '');
            }
            break;
        case 'glucose': {
            const mmol = r.unit === 'mg/dL' ? v.value / 18 : v.value;
            if (within(mmol, 0.6, 33.3)) fields = `glucose_mmol_l=${mmol}`;
            break;
        }
        case 'spo2':
            if (within(v.value, 50, 100)) fields = `spo2_pct=${v.value}`;
            break;
        case 'heart_rate':
            if (within(v.value, 25, 250)) fields = `heart_rate=${v.value}`;
            break;
        case 'temperature': {
            const c = r.unit === '[degF]' ? (v.value - 32) * 5 / 9 : v.value;
            if (within(c, 32, 43)) fields = `temperature_cel=${c}`;
            break;
        }
        case 'weight':
            if (within(v.value, 20, 300)) fields = `weight_kg=${v.value}`;
            break;
    }
    if (fields === null || Number.isNaN(t)) {
        invalid += 1;
        continue;
    }
    lines.push(`${r.type},gateway=${gw},device=${dev} ${fields} ${t}000000`);
}
// (Joined 200 at a time into one write: one HTTP request per envelope overwhelms the
// TSDB's connections at these rates and loses writes.)
msg.payload = { lines: lines.join('\n'), readings: readings.length, valid: lines.length, invalid };
return msg;
