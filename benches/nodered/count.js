// The function node after the HTTP write: a reading counts once its envelope's write
// was accepted (2xx); a refused write is counted apart (and its readings are lost, as
// in a flow that does not retry).
const ok = msg.statusCode >= 200 && msg.statusCode < 300;
if (ok) {
    global.set('received', (global.get('received') || 0) + msg.readings);
    global.set('stored', (global.get('stored') || 0) + msg.valid);
    global.set('quarantined', (global.get('quarantined') || 0) + msg.invalid);
} else {
    global.set('write_errors', (global.get('write_errors') || 0) + 1);
}
return null;
