//! Kernel time: jiffies, the tick rate, uptime, and the per-CPU areas
//! (each CPU's runqueue clock lives in one).

use crate::kallsyms::Kallsyms;
use hangscope_x64::{VirtAddr, VirtualMemory};

/// Most CPUs believed (`NR_CPUS` of the largest distribution configs).
pub const MAX_CPUS: u32 = 8192;

/// Nanoseconds per second.
const NSEC_PER_SEC: u64 = 1_000_000_000;

/// What the kernel's clocks say.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Clock {
    /// `jiffies_64`.
    pub jiffies: Option<u64>,
    /// Ticks per second.
    pub hz: Option<u64>,
    /// Seconds since boot, from jiffies.
    pub uptime_s: Option<f64>,
}

/// Read jiffies and derive HZ and uptime.
///
/// HZ is not recorded anywhere as a number; `tick_nsec` (the length of a
/// tick in ns, `(NSEC_PER_SEC + HZ/2) / HZ` adjusted by NTP by parts per
/// million) gives it by rounding 1e9 / tick_nsec. Jiffies start at
/// `INITIAL_JIFFIES` = (u32)(-300 * HZ), five minutes before the 32-bit
/// wrap, so uptime is (jiffies_64 - INITIAL_JIFFIES) / HZ.
pub fn clock(mem: &dyn VirtualMemory, kallsyms: &Kallsyms) -> Clock {
    let read = |n: &str| kallsyms.get(n).and_then(|a| mem.read_u64(VirtAddr(a)).ok());
    let jiffies = read("jiffies_64");
    let hz = read("tick_nsec").and_then(hz_from_tick_nsec);
    let uptime_s = match (jiffies, hz) {
        (Some(j), Some(hz)) => Some(j.wrapping_sub(initial_jiffies(hz)) as f64 / hz as f64),
        _ => None,
    };
    Clock {
        jiffies,
        hz,
        uptime_s,
    }
}

/// HZ from the tick length in ns; `None` unless it is a plausible rate.
pub fn hz_from_tick_nsec(tick_nsec: u64) -> Option<u64> {
    if tick_nsec == 0 {
        return None;
    }
    let hz = (NSEC_PER_SEC + tick_nsec / 2) / tick_nsec;
    (10..=10_000).contains(&hz).then_some(hz)
}

/// `INITIAL_JIFFIES` for a tick rate.
pub fn initial_jiffies(hz: u64) -> u64 {
    u64::from((300u64.wrapping_mul(hz) as u32).wrapping_neg())
}

/// `nr_cpu_ids`, when plausible.
pub fn cpu_count(mem: &dyn VirtualMemory, kallsyms: &Kallsyms) -> Option<u32> {
    let a = kallsyms.get("nr_cpu_ids")?;
    let n = mem.read_u32(VirtAddr(a)).ok()?;
    (1..=MAX_CPUS).contains(&n).then_some(n)
}

/// Each CPU's per-CPU offset (`__per_cpu_offset[cpu]`): a per-CPU
/// variable's address on a CPU is its symbol plus this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerCpu {
    /// Indexed by CPU number, `nr_cpu_ids` entries.
    pub offsets: Vec<u64>,
}

impl PerCpu {
    /// Read `__per_cpu_offset[0 .. nr_cpu_ids]`.
    pub fn read(mem: &dyn VirtualMemory, kallsyms: &Kallsyms) -> Option<PerCpu> {
        let n = cpu_count(mem, kallsyms)?;
        let base = kallsyms.get("__per_cpu_offset")?;
        let bytes = mem
            .read_vec(VirtAddr(base), u64::from(n) * 8, u64::from(MAX_CPUS) * 8)
            .ok()?;
        Some(PerCpu {
            offsets: bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
        })
    }

    /// The address of per-CPU variable `sym` on `cpu`.
    pub fn addr(&self, sym: u64, cpu: u32) -> Option<VirtAddr> {
        let off = *self.offsets.get(cpu as usize)?;
        Some(VirtAddr(sym.wrapping_add(off)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hz_and_initial_jiffies() {
        assert_eq!(hz_from_tick_nsec(4_000_000), Some(250));
        assert_eq!(hz_from_tick_nsec(3_999_987), Some(250));
        assert_eq!(hz_from_tick_nsec(999_848), Some(1000));
        assert_eq!(hz_from_tick_nsec(10_000_000), Some(100));
        assert_eq!(hz_from_tick_nsec(0), None);
        assert_eq!(hz_from_tick_nsec(1), None);
        assert_eq!(initial_jiffies(250), 4_294_892_296);
        // The drgn ground truth of the 6.1 guest: jiffies_64 4294903562 at
        // HZ 250 is 45.064 s of uptime.
        let up = (4_294_903_562u64 - initial_jiffies(250)) as f64 / 250.0;
        assert!((up - 45.064).abs() < 1e-9);
    }
}
