//! The stall watchdog (`--stall-timeout-s`): a rank that stops (SIGSTOP, a hung file system, a
//! wedged device) would otherwise hang every other rank inside the next collective until something
//! outside kills the job.
//!
//! Each rank runs a thread that, every second, writes a heartbeat file `rank-<r>` (its pid, the
//! step it is on, the time of its last progress and the time now) into `<out>/.heartbeat/`, which
//! every rank can read when the run directory is on a shared file system (on one host it always is). The training loop reports progress at each step and
//! after each evaluation. When a rank has made no progress for the timeout, it reads every
//! heartbeat and names the culprit: the ranks whose heartbeat stopped (the process is stopped or
//! gone), else the ranks still on an earlier step, else the step every rank is waiting in. The
//! lowest-numbered rank that still answers prints that one line; every stalled rank then exits with
//! [`EXIT_CODE`], and the launcher ends the rest of the job.
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The exit status of a job ended by the watchdog (as `timeout(1)`'s).
pub const EXIT_CODE: i32 = 124;
/// How often the heartbeat is written.
const BEAT: Duration = Duration::from_secs(1);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// One rank's heartbeat as read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Beat {
    pub pid: u32,
    pub step: u64,
    pub progress_ms: u64,
    pub written_ms: u64,
}

impl Beat {
    fn line(&self) -> String {
        format!("{} {} {} {}\n", self.pid, self.step, self.progress_ms, self.written_ms)
    }

    pub fn parse(s: &str) -> Option<Beat> {
        let v: Vec<u64> = s.split_whitespace().map(|w| w.parse().ok()).collect::<Option<_>>()?;
        match v[..] {
            [pid, step, progress_ms, written_ms] => Some(Beat { pid: pid as u32, step, progress_ms, written_ms }),
            _ => None,
        }
    }
}

/// The heartbeat directory of a run writing into `out`.
pub fn heartbeat_dir(out: &Path) -> PathBuf {
    out.join(".heartbeat")
}

/// The one-line diagnosis from every rank's heartbeat (`None`: no file, e.g. a rank on another
/// host when the run directory is not shared) at `now_ms`, and the ranks it blames. A heartbeat
/// older than `stale_ms` means the rank stopped answering.
pub fn diagnose(beats: &[Option<Beat>], now_ms: u64, stale_ms: u64, timeout_s: f64) -> (String, Vec<usize>) {
    let stale: Vec<usize> = (0..beats.len()).filter(|&r| beats[r].is_some_and(|b| now_ms.saturating_sub(b.written_ms) > stale_ms)).collect();
    let list = |rs: &[usize]| rs.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", ");
    let plural = |rs: &[usize]| if rs.len() == 1 { "rank" } else { "ranks" };
    if !stale.is_empty() {
        let ages: Vec<String> = stale.iter().filter_map(|&r| beats[r].map(|b| format!("{:.0} s", now_ms.saturating_sub(b.written_ms) as f64 / 1000.0))).collect();
        let steps: Vec<String> = stale.iter().filter_map(|&r| beats[r].map(|b| b.step.to_string())).collect();
        return (
            format!(
                "no progress for {timeout_s} s (--stall-timeout-s): {} {} stopped answering (no heartbeat for {}{}); ending the job",
                plural(&stale),
                list(&stale),
                ages.join(", "),
                if steps.is_empty() { String::new() } else { format!(", last at step {}", steps.join(", ")) }
            ),
            stale,
        );
    }
    let seen: Vec<usize> = (0..beats.len()).filter(|&r| beats[r].is_some()).collect();
    let unseen: Vec<usize> = (0..beats.len()).filter(|&r| beats[r].is_none()).collect();
    if seen.is_empty() {
        return (format!("no progress for {timeout_s} s (--stall-timeout-s) and no heartbeat readable; ending the job"), Vec::new());
    }
    let step = |r: usize| beats[r].map_or(0, |b| b.step);
    let (lo, hi) = (seen.iter().map(|&r| step(r)).min().unwrap_or(0), seen.iter().map(|&r| step(r)).max().unwrap_or(0));
    let unseen_note = if unseen.is_empty() { String::new() } else { format!(" ({} {} not visible: is the run directory shared?)", plural(&unseen), list(&unseen)) };
    if lo < hi {
        let behind: Vec<usize> = seen.iter().copied().filter(|&r| step(r) == lo).collect();
        return (
            format!("no progress for {timeout_s} s (--stall-timeout-s): {} {} still at step {lo}, the others at step {hi}{unseen_note}; ending the job", plural(&behind), list(&behind)),
            behind,
        );
    }
    let oldest = seen.iter().copied().min_by_key(|&r| beats[r].map_or(0, |b| b.progress_ms)).unwrap_or(0);
    (
        format!("no progress for {timeout_s} s (--stall-timeout-s): every rank is in step {lo}, rank {oldest} the longest{unseen_note}; ending the job (raise --stall-timeout-s if a step can take this long)"),
        vec![oldest],
    )
}

/// The watchdog of one rank; stops its thread when dropped.
pub struct Watchdog {
    step: Arc<AtomicU64>,
    progress_ms: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    file: PathBuf,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    /// Starts the thread of `rank` of `ranks`, writing heartbeats into `dir`. `timeout_s` > 0.
    pub fn start(rank: usize, ranks: usize, timeout_s: f64, dir: PathBuf) -> std::io::Result<Watchdog> {
        std::fs::create_dir_all(&dir)?;
        let step = Arc::new(AtomicU64::new(0));
        let progress_ms = Arc::new(AtomicU64::new(now_ms()));
        let done = Arc::new(AtomicBool::new(false));
        let file = dir.join(format!("rank-{rank}"));
        let (s, p, d, f) = (step.clone(), progress_ms.clone(), done.clone(), file.clone());
        let timeout_ms = (timeout_s * 1000.0) as u64;
        // A heartbeat is stale after a tenth of the timeout, at least three beats, at most half the
        // timeout (so that a rank stopped when progress stopped is stale at the diagnosis).
        let stale_ms = (3 * BEAT.as_millis() as u64).max(timeout_ms / 10).min(timeout_ms / 2);
        let thread = std::thread::Builder::new().name("scadles-watchdog".into()).spawn(move || {
            let pid = std::process::id();
            while !d.load(Ordering::SeqCst) {
                let now = now_ms();
                let beat = Beat { pid, step: s.load(Ordering::SeqCst), progress_ms: p.load(Ordering::SeqCst), written_ms: now };
                let tmp = f.with_extension("tmp");
                if std::fs::write(&tmp, beat.line()).is_ok() {
                    let _ = std::fs::rename(&tmp, &f);
                }
                if now.saturating_sub(beat.progress_ms) > timeout_ms {
                    let dir = f.parent().map(Path::to_path_buf).unwrap_or_default();
                    let beats: Vec<Option<Beat>> = (0..ranks).map(|r| std::fs::read_to_string(dir.join(format!("rank-{r}"))).ok().and_then(|t| Beat::parse(&t))).collect();
                    let (line, culprits) = diagnose(&beats, now, stale_ms, timeout_s);
                    let reporter = (0..ranks).find(|r| !culprits.contains(r) || culprits.len() == ranks).unwrap_or(0);
                    if rank == reporter {
                        let _ = std::io::stderr().write_all(format!("scadles: error: {line}\n").as_bytes());
                    } else {
                        std::thread::sleep(Duration::from_secs(2));
                    }
                    // SAFETY: ends the process at once; the main thread is blocked in MPI and
                    // cannot be unwound, and nothing this rank still holds needs flushing (the
                    // run's files are written atomically).
                    unsafe { libc::_exit(EXIT_CODE) };
                }
                std::thread::sleep(BEAT);
            }
            let _ = std::fs::remove_file(&f);
        })?;
        Ok(Watchdog { step, progress_ms, done, file, thread: Some(thread) })
    }

    /// The training loop made progress (it is on `step`).
    pub fn progress(&self, step: u64) {
        self.step.store(step, Ordering::SeqCst);
        self.progress_ms.store(now_ms(), Ordering::SeqCst);
    }

    /// The heartbeat file of this rank.
    pub fn file(&self) -> &Path {
        &self.file
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(d) = self.file.parent() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(step: u64, progress_ms: u64, written_ms: u64) -> Option<Beat> {
        Some(Beat { pid: 1, step, progress_ms, written_ms })
    }

    #[test]
    fn a_stopped_rank_is_named_by_its_stale_heartbeat() {
        let now = 100_000;
        let (line, who) = diagnose(&[b(7, 90_000, 99_500), b(7, 60_000, 61_000), b(7, 90_000, 99_800)], now, 5_000, 30.0);
        assert_eq!(who, vec![1]);
        assert!(line.contains("rank 1 stopped answering (no heartbeat for 39 s, last at step 7)"), "{line}");
        let (line, who) = diagnose(&[b(7, 90_000, 99_500), None], now, 5_000, 30.0);
        assert_eq!(who, vec![0]);
        assert!(line.contains("rank 1 not visible"), "{line}");
    }

    #[test]
    fn without_a_stale_heartbeat_the_rank_behind_or_the_oldest_is_named() {
        let now = 100_000;
        let (line, who) = diagnose(&[b(9, 60_000, 99_500), b(8, 50_000, 99_500), b(9, 60_000, 99_000)], now, 5_000, 30.0);
        assert_eq!(who, vec![1]);
        assert!(line.contains("rank 1 still at step 8, the others at step 9"), "{line}");
        let (line, who) = diagnose(&[b(9, 60_000, 99_500), b(9, 50_000, 99_500)], now, 5_000, 30.0);
        assert_eq!(who, vec![1]);
        assert!(line.contains("every rank is in step 9, rank 1 the longest"), "{line}");
    }

    #[test]
    fn heartbeats_round_trip_and_the_thread_cleans_up() {
        assert_eq!(Beat::parse("12 3 4 5\n"), Some(Beat { pid: 12, step: 3, progress_ms: 4, written_ms: 5 }));
        assert_eq!(Beat::parse("12 3 4"), None);
        assert_eq!(Beat::parse("12 x 4 5"), None);
        let dir = std::env::temp_dir().join(format!("scadles-watchdog-{}", std::process::id()));
        let w = Watchdog::start(0, 1, 60.0, dir.clone()).unwrap();
        w.progress(4);
        std::thread::sleep(Duration::from_millis(1300));
        let beat = Beat::parse(&std::fs::read_to_string(w.file()).unwrap()).unwrap();
        assert_eq!((beat.pid, beat.step), (std::process::id(), 4));
        drop(w);
        assert!(!dir.exists(), "heartbeat directory left behind");
    }
}
