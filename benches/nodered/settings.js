// Node-RED for benches/e2e.sh (NODERED=1): headless, no editor, on 127.0.0.1 and the
// port the script picks; the flow and its user directory from the environment.
module.exports = {
    uiHost: '127.0.0.1',
    uiPort: Number(process.env.NODERED_PORT),
    httpAdminRoot: false,
    httpNodeRoot: '/',
    userDir: process.env.NODERED_DIR,
    flowFile: process.env.NODERED_FLOWS,
    credentialSecret: false,
    logging: { console: { level: 'info', metrics: false, audit: false } },
    editorTheme: { tours: false },
};
