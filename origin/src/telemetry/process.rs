//! The standard `process_*` metrics, read from `/proc/self` at each scrape (Linux, where the
//! origin runs): CPU time, memory, file descriptors and start time. Absent values are left
//! out rather than reported as zero.

/// What `/proc/self` says now.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessReadings {
    /// User plus system CPU time (seconds).
    pub cpu_seconds: Option<f64>,
    /// Resident memory (bytes).
    pub resident_bytes: Option<u64>,
    /// Virtual memory (bytes).
    pub virtual_bytes: Option<u64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit on file descriptors.
    pub max_fds: Option<u64>,
    /// When the process started (seconds since the Unix epoch).
    pub start_time_seconds: Option<f64>,
}

/// Clock ticks per second of `/proc/self/stat` times (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

impl ProcessReadings {
    /// Reads this process's figures.
    pub fn read() -> Self {
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        let boot = std::fs::read_to_string("/proc/stat").ok();
        let mut readings = stat
            .as_deref()
            .map(|s| parse_stat(s, boot.as_deref()))
            .unwrap_or_default();
        readings.open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as u64);
        readings.max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|l| max_open_files(&l));
        readings
    }
}

/// The fields of `/proc/self/stat` (after the command name, which may hold spaces) and the
/// boot time from `/proc/stat`.
fn parse_stat(stat: &str, proc_stat: Option<&str>) -> ProcessReadings {
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return ProcessReadings::default();
    };
    // Fields from the state (field 3) on; utime is field 14, stime 15, starttime 22,
    // vsize 23, rss (pages) 24.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    let page = 4096u64;
    let boot_time = proc_stat.and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    ProcessReadings {
        cpu_seconds: field(14)
            .zip(field(15))
            .map(|(u, s)| (u + s) as f64 / TICKS_PER_SECOND),
        resident_bytes: field(24).map(|pages| pages * page),
        virtual_bytes: field(23),
        start_time_seconds: field(22)
            .zip(boot_time)
            .map(|(ticks, boot)| boot + ticks as f64 / TICKS_PER_SECOND),
        ..ProcessReadings::default()
    }
}

fn max_open_files(limits: &str) -> Option<u64> {
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_are_read_past_a_command_name_with_spaces() {
        let stat = "4242 (surge origin) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 \
                    1000 123456789 2048 18446744073709551615";
        let r = parse_stat(stat, Some("cpu  1 2 3\nbtime 1700000000\n"));
        assert_eq!(r.cpu_seconds, Some(3.0));
        assert_eq!(r.virtual_bytes, Some(123_456_789));
        assert_eq!(r.resident_bytes, Some(2048 * 4096));
        assert_eq!(r.start_time_seconds, Some(1_700_000_010.0));
        assert_eq!(parse_stat("garbage", None), ProcessReadings::default());
        assert_eq!(
            max_open_files(
                "Limit  Soft Limit Hard Limit Units\nMax open files            1024                 524288               files\n"
            ),
            Some(1024)
        );
    }

    #[test]
    fn this_process_can_be_read() {
        let r = ProcessReadings::read();
        assert!(r.resident_bytes.is_some_and(|b| b > 0), "{r:?}");
        assert!(r.open_fds.is_some_and(|n| n > 0), "{r:?}");
    }
}
