//! Shared pieces of HQ's benchmarks: running `wrk` and reading its figures.

use std::process::Command;

/// What one `wrk` run measured.
#[derive(Debug, Clone, Copy)]
pub struct WrkRun {
    pub requests: u64,
    pub non_2xx: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
}

impl WrkRun {
    pub fn ok_per_sec(&self) -> f64 {
        (self.requests - self.non_2xx) as f64 / self.seconds
    }
}

/// The machine's CPU time so far, busy and in total (all cores, `/proc/stat`):
/// the busy share during a run says whether it was CPU-bound or waited
/// (the disk, the scheduler) with cores idle.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MachineTimes {
    pub busy: u64,
    pub total: u64,
}

impl MachineTimes {
    /// Zero where `/proc` is not available.
    pub fn now() -> Self {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        read_machine(&stat).unwrap_or_default()
    }

    /// Busy share of the machine since `earlier`, 0..=1.
    pub fn busy_since(self, earlier: Self) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0.0;
        }
        self.busy.saturating_sub(earlier.busy) as f64 / total as f64
    }
}

/// The `cpu` line of `/proc/stat`: user nice system idle iowait irq softirq
/// steal ...; idle and iowait are not busy.
fn read_machine(stat: &str) -> Option<MachineTimes> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    let total: u64 = fields.iter().sum();
    let idle = fields.get(3)? + fields.get(4)?;
    Some(MachineTimes {
        busy: total - idle,
        total,
    })
}

/// CPU seconds (user + system) used so far by this process and by the children
/// it has waited for (`wrk`), from `/proc/self/stat`. The per-request CPU cost
/// is a steadier figure than requests/s on a machine whose speed drifts.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTimes {
    pub own: f64,
    pub children: f64,
}

impl CpuTimes {
    /// Zero where `/proc` is not available.
    pub fn now() -> Self {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        match read_stat(&stat).map(|(_, times)| times) {
            Some([ut, st, cut, cst]) => Self {
                own: ut + st,
                children: cut + cst,
            },
            None => Self::default(),
        }
    }

    pub fn since(self, earlier: Self) -> Self {
        Self {
            own: self.own - earlier.own,
            children: self.children - earlier.children,
        }
    }
}

/// The command name of a `/proc/.../stat` line and its CPU times in seconds:
/// user, system, waited-for children's user and system.
fn read_stat(stat: &str) -> Option<(&str, [f64; 4])> {
    // The name is in parentheses and may hold spaces; utime is the 12th field
    // after it.
    let (head, rest) = stat.rsplit_once(')')?;
    let (_, name) = head.split_once('(')?;
    let mut f = rest
        .split_whitespace()
        .skip(11)
        .map(|v| v.parse::<f64>().ok());
    let mut next = || -> Option<f64> { Some(f.next()?? / 100.0) }; // USER_HZ is 100 for /proc
    Some((name, [next()?, next()?, next()?, next()?]))
}

/// CPU seconds used so far by each of this process's threads, by thread id,
/// with the thread's name (`/proc/self/task/*`): where HQ's time goes (HTTP
/// workers, the journal writer, the applier). Empty where `/proc` is not
/// available.
pub fn cpu_by_thread() -> std::collections::BTreeMap<u64, (String, f64)> {
    let mut out = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        if let Some((name, [ut, st, ..])) = read_stat(&stat) {
            out.insert(tid, (name.to_owned(), ut + st));
        }
    }
    out
}

/// CPU seconds each thread name used since `before` (a [`cpu_by_thread`]).
/// Deltas are taken per thread id: tokio's blocking threads share the workers'
/// name and exit when idle, and keyed by name alone a thread that exited (the
/// seeding's password hashing) would be subtracted from the workers' time.
pub fn cpu_by_thread_since(
    before: &std::collections::BTreeMap<u64, (String, f64)>,
) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    for (tid, (name, t)) in cpu_by_thread() {
        let start = before.get(&tid).map_or(0.0, |(_, t)| *t);
        *out.entry(name).or_default() += t - start;
    }
    out
}

/// Runs wrk with a Lua script and parses its summary (`--latency` percentiles).
pub fn wrk(
    url: &str,
    script: &std::path::Path,
    connections: u32,
    seconds: u32,
) -> anyhow::Result<WrkRun> {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(url)
        .output()
        .map_err(|e| anyhow::anyhow!("running wrk ({e}); install it with `apt-get install wrk`"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_wrk(&text).ok_or_else(|| anyhow::anyhow!("could not read wrk's output:\n{text}"))
}

fn duration_ms(s: &str) -> Option<f64> {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let v: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        "m" => v * 60_000.0,
        _ => return None,
    })
}

fn parse_wrk(text: &str) -> Option<WrkRun> {
    let mut run = WrkRun {
        requests: 0,
        non_2xx: 0,
        seconds: 0.0,
        p50_ms: 0.0,
        p90_ms: 0.0,
        p99_ms: 0.0,
    };
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", v] => run.p50_ms = duration_ms(v)?,
            ["90%", v] => run.p90_ms = duration_ms(v)?,
            ["99%", v] => run.p99_ms = duration_ms(v)?,
            [n, "requests", "in", t, ..] => {
                run.requests = n.parse().ok()?;
                run.seconds = duration_ms(t.trim_end_matches(','))? / 1000.0;
            }
            ["Non-2xx", "or", "3xx", "responses:", n] => run.non_2xx = n.parse().ok()?,
            _ => {}
        }
    }
    (run.requests > 0).then_some(run)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_cpu_times_of_a_stat_line() {
        let line = "42 (tokio rt) S 1 2 3 4 5 6 7 8 9 10 250 50 30 20 0 0";
        assert_eq!(
            super::read_stat(line),
            Some(("tokio rt", [2.5, 0.5, 0.3, 0.2]))
        );
        assert_eq!(super::read_stat("garbage"), None);
        let m = super::read_machine("cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 1 2 3 4\n").unwrap();
        assert_eq!((m.busy, m.total), (160, 1000));
        assert_eq!(super::read_machine("intr 1 2"), None);
    }

    #[test]
    fn reads_wrk_output() {
        let text = "  Latency Distribution\n     50%  520.00us\n     75%    1.2ms\n     90%    2.5ms\n     99%    4.10ms\n  123456 requests in 10.00s, 20.00MB read\n  Non-2xx or 3xx responses: 6\n";
        let run = super::parse_wrk(text).unwrap();
        assert_eq!((run.requests, run.non_2xx), (123456, 6));
        assert!((run.p50_ms - 0.52).abs() < 1e-9 && (run.p99_ms - 4.1).abs() < 1e-9);
        assert!((run.p90_ms - 2.5).abs() < 1e-9);
        assert!((run.seconds - 10.0).abs() < 1e-9);
    }
}
