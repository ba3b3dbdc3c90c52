//! Small state files written so that a crash or power loss leaves either the old file
//! or the new one, never a part.

use std::io::Write;
use std::path::Path;

/// Replaces `path` with `bytes`: a new file beside it, synced, renamed over it, and the
/// directory synced so the rename itself is durable. The error names the file.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| format!("{}: {e}", path.display()))
}
