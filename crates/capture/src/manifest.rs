//! The manifest written beside a series of dumps, and UTC time stamps.

use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// Version of the manifest's JSON layout; bumped on incompatible changes.
pub const MANIFEST_SCHEMA_VERSION: u32 = 1;

/// File name of the manifest inside the output directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// What was captured, from where, and with what; rewritten after every dump
/// so an interrupted series still describes the dumps it finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// This tool and its version.
    pub tool: String,
    /// `"libvirt"` or `"qmp"`.
    pub method: String,
    /// The libvirt URI, or the QMP socket path.
    pub target: String,
    /// The domain's name (libvirt), or QEMU's `-name` (QMP), or the socket path.
    pub domain: String,
    /// The domain's UUID, when known.
    pub uuid: Option<String>,
    /// The host the capture ran on.
    pub host: String,
    /// QEMU's version (libvirt's "Running hypervisor", or QMP `query-version`).
    pub qemu_version: Option<String>,
    /// libvirt's version ("Using library"), for libvirt captures.
    pub libvirt_version: Option<String>,
    /// The dump format asked of QEMU (`elf`, `kdump-zlib`, ...).
    pub format: String,
    /// Guest RAM in bytes, as the hypervisor reports it.
    pub guest_memory_bytes: Option<u64>,
    /// Number of vCPUs, as the hypervisor reports it.
    pub vcpus: Option<u32>,
    /// Whether the tool suspended the guest around each dump (`--pause`).
    pub pause: bool,
    /// Dumps asked for.
    pub count: u32,
    /// Seconds between the starts of two dumps.
    pub interval_secs: f64,
    /// When the series started (RFC 3339, UTC).
    pub started: String,
    /// When the series ended, or `None` while it runs.
    pub ended: Option<String>,
    /// The dumps written, in order.
    pub dumps: Vec<DumpRecord>,
    /// Why the series stopped early, if it did.
    pub error: Option<String>,
}

/// One dump file of a series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpRecord {
    /// File name, relative to the manifest.
    pub file: String,
    /// 0-based position in the series.
    pub sequence: u32,
    /// The dump format.
    pub format: String,
    /// When the dump started (RFC 3339, UTC).
    pub started: String,
    /// When the file was complete (RFC 3339, UTC).
    pub ended: String,
    /// Milliseconds the hypervisor took to write it.
    pub duration_ms: u64,
    /// File size in bytes.
    pub size: u64,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
    /// The guest's run state before the dump (`running`, `paused`, ...).
    pub guest_state: String,
}

/// Now as RFC 3339 UTC with milliseconds, e.g. `2024-05-01T12:00:00.123Z`.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// `t` as RFC 3339 UTC with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (date, secs) = civil(d.as_secs());
    format!(
        "{date}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        d.subsec_millis()
    )
}

/// `t` as a compact UTC stamp for file names, e.g. `20240501T120000Z`.
pub fn file_stamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (date, secs) = civil(d.as_secs());
    format!(
        "{}T{:02}{:02}{:02}Z",
        date.replace('-', ""),
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Split Unix seconds into a `YYYY-MM-DD` date and seconds into the day
/// (Howard Hinnant's days-to-civil algorithm on the proleptic Gregorian calendar).
fn civil(unix: u64) -> (String, u64) {
    let days = (unix / 86400) as i64;
    let secs = unix % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (format!("{year:04}-{month:02}-{day:02}"), secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 is a leap day; 951782400 = 2000-02-29T00:00:00Z.
        let t = UNIX_EPOCH + Duration::from_millis(951_782_400_000 + 3_723_456);
        assert_eq!(rfc3339(t), "2000-02-29T01:02:03.456Z");
        assert_eq!(file_stamp(t), "20000229T010203Z");
        // 1700000000 = 2023-11-14T22:13:20Z.
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            "2023-11-14T22:13:20.000Z"
        );
    }
}
