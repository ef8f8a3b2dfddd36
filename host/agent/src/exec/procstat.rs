//! What the kernel says about one process: CPU time, run-queue delay, migrations.

/// Per-process scheduler counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskStats {
    pub cpu_time_ns: u64,
    pub run_delay_ns: u64,
    pub migrations: u64,
}

/// Reads `pid`'s counters; a field the kernel does not provide stays 0.
pub fn read(pid: u32) -> TaskStats {
    let file = |name: &str| std::fs::read_to_string(format!("/proc/{pid}/{name}")).ok();
    let mut s = TaskStats::default();
    if let Some((run, delay)) = file("schedstat").as_deref().and_then(parse_schedstat) {
        (s.cpu_time_ns, s.run_delay_ns) = (run, delay);
    } else if let Some(ticks) = file("stat").as_deref().and_then(parse_stat_ticks) {
        s.cpu_time_ns = ticks.saturating_mul(1_000_000_000) / clock_ticks();
    }
    s.migrations = file("sched").as_deref().and_then(|t| sched_field(t, "se.nr_migrations")).unwrap_or(0);
    s
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// `/proc/<pid>/schedstat`: time on CPU (ns), time waiting on a run queue (ns), slices.
pub fn parse_schedstat(text: &str) -> Option<(u64, u64)> {
    let mut f = text.split_whitespace().map(str::parse::<u64>);
    Some((f.next()?.ok()?, f.next()?.ok()?))
}

/// `/proc/<pid>/stat`: utime + stime in clock ticks. The comm (field 2) may hold spaces
/// and parentheses, so fields are counted after its closing `)`.
pub fn parse_stat_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the comm: state is field 3, utime field 14, stime field 15.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// A `key : value` line of `/proc/<pid>/sched`.
pub fn sched_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if k.trim() != key {
            return None;
        }
        let v = v.trim();
        v.parse::<u64>().ok().or_else(|| v.split('.').next()?.parse().ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat() {
        assert_eq!(parse_schedstat("123456789 2345 17\n"), Some((123456789, 2345)));
        assert_eq!(parse_schedstat("12"), None);
        assert_eq!(parse_schedstat(""), None);
    }

    #[test]
    fn stat_with_a_hostile_comm() {
        let line = "42 (a) b (c) R 1 42 42 0 -1 4194560 97 0 0 0 150 25 0 0 20 0 1 0 300 1000 10 0\n";
        assert_eq!(parse_stat_ticks(line), Some(175));
        assert_eq!(parse_stat_ticks("42 (x) R 1"), None);
    }

    #[test]
    fn sched_fields() {
        let text = "sbx-worker-0 (57, #threads: 1)\n\
                    -------------------------------------------------------------------\n\
                    se.exec_start                                :         12345.678901\n\
                    se.nr_migrations                             :                   12\n\
                    nr_switches                                  :                  340\n";
        assert_eq!(sched_field(text, "se.nr_migrations"), Some(12));
        assert_eq!(sched_field(text, "nr_switches"), Some(340));
        assert_eq!(sched_field(text, "se.exec_start"), Some(12345));
        assert_eq!(sched_field(text, "missing"), None);
    }
}
