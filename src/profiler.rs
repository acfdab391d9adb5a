//! The profiler: host<->device transfer counters, always on, and `Profiler` sessions that
//! record a span per op and per transfer and write them as a Chrome trace (Perfetto /
//! `chrome://tracing` JSON).
//!
//! Backends report through two crate hooks: `record_transfer` after every copy between the
//! host and a device, and `op_span`, a guard around each kernel (eager `dispatch::apply` and each
//! step of a traced plan). When no session runs, `op_span` costs one relaxed atomic load.
//!
//! ```
//! use ferroflow as ff;
//! # fn main() -> ff::Result<()> {
//! let prof = ff::profiler::Profiler::start();
//! let x = ff::ones(&[64, 64], ff::DType::F32)?;
//! let _y = x.matmul(&x)?.relu()?;
//! let profile = prof.stop();
//! assert!(profile.events().iter().any(|e| e.name == "matmul"));
//! println!("{profile}"); // a table: per op, count and time
//! # Ok(()) }
//! ```

use std::cell::Cell;
use std::fmt;
use std::io::Write;
use std::ops::{Add, Sub};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::device::Device;
use crate::error::{Error, Result};

/// Which way a copy went.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Direction {
    /// An upload: host memory to a device.
    HostToDevice,
    /// A download: a device to host memory (`to_ndarray` on a GPU tensor, for one).
    DeviceToHost,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::HostToDevice => "MemcpyHtoD",
            Direction::DeviceToHost => "MemcpyDtoH",
        }
    }
}

/// Copies one way: how many, how many bytes, and the time they took.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TransferTotals {
    pub count: u64,
    pub bytes: u64,
    pub time: Duration,
}

/// Host<->device copies both ways. Subtract two snapshots to count what happened between
/// them: `let before = ff::profiler::thread_transfers(); …; let d = ff::profiler::thread_transfers() - before;`
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TransferStats {
    pub host_to_device: TransferTotals,
    pub device_to_host: TransferTotals,
}

impl TransferStats {
    /// Copies both ways together.
    pub fn total_count(&self) -> u64 {
        self.host_to_device.count + self.device_to_host.count
    }
}

impl Sub for TransferTotals {
    type Output = TransferTotals;
    fn sub(self, o: TransferTotals) -> TransferTotals {
        TransferTotals {
            count: self.count.saturating_sub(o.count),
            bytes: self.bytes.saturating_sub(o.bytes),
            time: self.time.saturating_sub(o.time),
        }
    }
}

impl Add for TransferTotals {
    type Output = TransferTotals;
    fn add(self, o: TransferTotals) -> TransferTotals {
        TransferTotals { count: self.count + o.count, bytes: self.bytes + o.bytes, time: self.time + o.time }
    }
}

impl Sub for TransferStats {
    type Output = TransferStats;
    fn sub(self, o: TransferStats) -> TransferStats {
        TransferStats {
            host_to_device: self.host_to_device - o.host_to_device,
            device_to_host: self.device_to_host - o.device_to_host,
        }
    }
}

impl Add for TransferStats {
    type Output = TransferStats;
    fn add(self, o: TransferStats) -> TransferStats {
        TransferStats {
            host_to_device: self.host_to_device + o.host_to_device,
            device_to_host: self.device_to_host + o.device_to_host,
        }
    }
}

impl fmt::Display for TransferStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let row = |f: &mut fmt::Formatter<'_>, name: &str, t: &TransferTotals| {
            writeln!(f, "{name}: {} copies, {} bytes, {:.3} ms", t.count, t.bytes, t.time.as_secs_f64() * 1e3)
        };
        row(f, "host to device", &self.host_to_device)?;
        row(f, "device to host", &self.device_to_host)
    }
}

/// Process-wide counters: one atomic per field and direction.
struct Counters([AtomicU64; 6]);

static GLOBAL: Counters = Counters([const { AtomicU64::new(0) }; 6]);

thread_local! {
    static THREAD: Cell<TransferStats> = const { Cell::new(TransferStats {
        host_to_device: TransferTotals { count: 0, bytes: 0, time: Duration::ZERO },
        device_to_host: TransferTotals { count: 0, bytes: 0, time: Duration::ZERO },
    }) };
    static THREAD_ID: u64 = NEXT_THREAD.fetch_add(1, Ordering::Relaxed) as u64;
}

static NEXT_THREAD: AtomicUsize = AtomicUsize::new(1);

/// Every host<->device copy since the process started, from all threads.
pub fn transfers() -> TransferStats {
    let g = |i: usize| GLOBAL.0[i].load(Ordering::Relaxed);
    TransferStats {
        host_to_device: TransferTotals { count: g(0), bytes: g(1), time: Duration::from_nanos(g(2)) },
        device_to_host: TransferTotals { count: g(3), bytes: g(4), time: Duration::from_nanos(g(5)) },
    }
}

/// The copies this thread made since it started. Tests assert on this one: they run in
/// parallel threads, so the process-wide count also holds other tests' copies.
pub fn thread_transfers() -> TransferStats {
    THREAD.with(Cell::get)
}

// Called by device backends; a CPU-only build has no copies to count.
#[allow(dead_code)]
/// Counts one finished copy (crate hook for backends); while a profiler runs, also records
/// it as a span from `started` to now.
pub(crate) fn record_transfer(dir: Direction, bytes: u64, started: Instant, device: Device) {
    let elapsed = started.elapsed();
    let base = match dir {
        Direction::HostToDevice => 0,
        Direction::DeviceToHost => 3,
    };
    GLOBAL.0[base].fetch_add(1, Ordering::Relaxed);
    GLOBAL.0[base + 1].fetch_add(bytes, Ordering::Relaxed);
    GLOBAL.0[base + 2].fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    THREAD.with(|c| {
        let mut s = c.get();
        let one = TransferTotals { count: 1, bytes, time: elapsed };
        match dir {
            Direction::HostToDevice => s.host_to_device = s.host_to_device + one,
            Direction::DeviceToHost => s.device_to_host = s.device_to_host + one,
        }
        c.set(s);
    });
    if ACTIVE.load(Ordering::Relaxed) > 0 {
        push(Event {
            name: dir.name(),
            kind: EventKind::Transfer(dir),
            device,
            thread: THREAD_ID.with(|t| *t),
            start: started,
            duration: elapsed,
            bytes,
        });
    }
}

/// What an event was.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EventKind {
    /// A kernel: an eager op or a step of a traced function's plan.
    Op,
    /// A host<->device copy.
    Transfer(Direction),
}

/// One recorded span.
#[derive(Clone, Debug)]
pub struct Event {
    /// The op's public name (`matmul`, `fused_loop`, …) or `MemcpyHtoD` / `MemcpyDtoH`.
    pub name: &'static str,
    pub kind: EventKind,
    /// Where it ran (for a copy: the device end of it).
    pub device: Device,
    /// A small per-thread number (the Chrome trace's `tid`).
    pub thread: u64,
    pub start: Instant,
    pub duration: Duration,
    /// Bytes copied (transfers only; 0 for ops).
    pub bytes: u64,
}

/// Number of running sessions; the fast path of the hooks reads only this.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
/// The running sessions' event lists. Sessions overlap freely (tests run in parallel): each
/// one sees every event recorded while it runs, from every thread, as TensorFlow's does.
static SESSIONS: Mutex<Vec<Arc<Mutex<Vec<Event>>>>> = Mutex::new(Vec::new());

fn push(e: Event) {
    let sessions = SESSIONS.lock().unwrap_or_else(|p| p.into_inner());
    for s in sessions.iter() {
        s.lock().unwrap_or_else(|p| p.into_inner()).push(e.clone());
    }
}

/// A guard timing one kernel; recorded when dropped, if a profiler was running when it
/// started.
pub(crate) struct Span {
    start: Option<(Instant, &'static str, Device)>,
}

/// Starts timing a kernel (crate hook for `dispatch::apply` and the plan executor).
#[inline]
pub(crate) fn op_span(name: &'static str, device: Device) -> Span {
    if ACTIVE.load(Ordering::Relaxed) == 0 {
        return Span { start: None };
    }
    Span { start: Some((Instant::now(), name, device)) }
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some((start, name, device)) = self.start.take() {
            push(Event {
                name,
                kind: EventKind::Op,
                device,
                thread: THREAD_ID.with(|t| *t),
                start,
                duration: start.elapsed(),
                bytes: 0,
            });
        }
    }
}

/// A running profiling session: from `start()` to `stop()`, every op and every transfer,
/// on every thread, is recorded with its time.
#[must_use = "a profiler records until stop() is called on it"]
pub struct Profiler {
    events: Arc<Mutex<Vec<Event>>>,
    started: Instant,
    stopped: bool,
}

impl Profiler {
    /// Starts recording.
    pub fn start() -> Profiler {
        let events = Arc::new(Mutex::new(Vec::new()));
        SESSIONS.lock().unwrap_or_else(|p| p.into_inner()).push(events.clone());
        ACTIVE.fetch_add(1, Ordering::Relaxed);
        Profiler { events, started: Instant::now(), stopped: false }
    }

    /// Stops recording and returns what was recorded.
    pub fn stop(mut self) -> Profile {
        self.detach();
        let events = std::mem::take(&mut *self.events.lock().unwrap_or_else(|p| p.into_inner()));
        Profile { events, started: self.started, elapsed: self.started.elapsed() }
    }

    fn detach(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let mut sessions = SESSIONS.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|s| !Arc::ptr_eq(s, &self.events));
        ACTIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Profiler {
    fn drop(&mut self) {
        self.detach();
    }
}

/// What one session recorded.
#[derive(Clone, Debug)]
pub struct Profile {
    events: Vec<Event>,
    started: Instant,
    elapsed: Duration,
}

impl Profile {
    /// The spans in the order they finished.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The spans recorded by the calling thread only.
    pub fn thread_events(&self) -> Vec<&Event> {
        let me = THREAD_ID.with(|t| *t);
        self.events.iter().filter(|e| e.thread == me).collect()
    }

    /// The copies in this profile, summed per direction.
    pub fn transfers(&self) -> TransferStats {
        let mut s = TransferStats::default();
        for e in &self.events {
            let one = TransferTotals { count: 1, bytes: e.bytes, time: e.duration };
            match e.kind {
                EventKind::Transfer(Direction::HostToDevice) => s.host_to_device = s.host_to_device + one,
                EventKind::Transfer(Direction::DeviceToHost) => s.device_to_host = s.device_to_host + one,
                EventKind::Op => {}
            }
        }
        s
    }

    /// The trace as Chrome trace-event JSON (complete `X` events; `ts`/`dur` in µs).
    pub fn chrome_trace_json(&self) -> String {
        let mut out = String::from("{\"traceEvents\":[\n");
        for (i, e) in self.events.iter().enumerate() {
            let ts = e.start.saturating_duration_since(self.started).as_secs_f64() * 1e6;
            let cat = match e.kind {
                EventKind::Op => "op",
                EventKind::Transfer(_) => "transfer",
            };
            out.push_str(&format!(
                "{{\"name\":\"{}\",\"cat\":\"{cat}\",\"ph\":\"X\",\"ts\":{ts:.3},\"dur\":{:.3},\"pid\":1,\"tid\":{},\"args\":{{\"device\":\"{}\",\"bytes\":{}}}}}{}\n",
                json_escape(e.name),
                e.duration.as_secs_f64() * 1e6,
                e.thread,
                e.device,
                e.bytes,
                if i + 1 < self.events.len() { "," } else { "" }
            ));
        }
        out.push_str("],\"displayTimeUnit\":\"ms\"}\n");
        out
    }

    /// Writes `chrome_trace_json` to `path`: open it in `chrome://tracing` or
    /// <https://ui.perfetto.dev>.
    pub fn write_chrome_trace(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let io = |e: std::io::Error| Error::InvalidArgument {
            op: "Profile::write_chrome_trace",
            message: format!("cannot write {}: {e}", path.display()),
            location: None,
        };
        let mut f = std::fs::File::create(path).map_err(io)?;
        f.write_all(self.chrome_trace_json().as_bytes()).map_err(io)
    }
}

fn json_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c if (c as u32) < 0x20 => format!("\\u{:04x}", c as u32).chars().collect(),
            c => vec![c],
        })
        .collect()
}

/// A table: per (kind, name, device), the count, total and mean time, longest total first;
/// then the transfers.
impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rows: Vec<(String, Device, u64, Duration, u64)> = Vec::new();
        for e in &self.events {
            let name = match e.kind {
                EventKind::Op => e.name.to_string(),
                EventKind::Transfer(_) => format!("[copy] {}", e.name),
            };
            match rows.iter_mut().find(|r| r.0 == name && r.1 == e.device) {
                Some(r) => {
                    r.2 += 1;
                    r.3 += e.duration;
                    r.4 += e.bytes;
                }
                None => rows.push((name, e.device, 1, e.duration, e.bytes)),
            }
        }
        rows.sort_by_key(|r| std::cmp::Reverse(r.3));
        writeln!(f, "profile: {} events in {:.3} ms", self.events.len(), self.elapsed.as_secs_f64() * 1e3)?;
        writeln!(
            f,
            "{:<24} {:<8} {:>7} {:>12} {:>12} {:>12}",
            "op", "device", "count", "total ms", "mean us", "bytes"
        )?;
        for (name, device, count, total, bytes) in rows {
            writeln!(
                f,
                "{:<24} {:<8} {:>7} {:>12.3} {:>12.1} {:>12}",
                name,
                short(device),
                count,
                total.as_secs_f64() * 1e3,
                total.as_secs_f64() * 1e6 / count as f64,
                bytes
            )?;
        }
        Ok(())
    }
}

/// `CPU:0` / `GPU:1`, for the table's narrow column.
fn short(d: Device) -> String {
    match d {
        Device::Cpu => "CPU:0".to_string(),
        Device::Gpu(n) => format!("GPU:{n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_count_per_thread_and_process() {
        let (g0, t0) = (transfers(), thread_transfers());
        record_transfer(Direction::HostToDevice, 400, Instant::now(), Device::Gpu(0));
        record_transfer(Direction::DeviceToHost, 16, Instant::now(), Device::Gpu(0));
        let t = thread_transfers() - t0;
        assert_eq!((t.host_to_device.count, t.host_to_device.bytes), (1, 400));
        assert_eq!((t.device_to_host.count, t.device_to_host.bytes), (1, 16));
        let g = transfers() - g0;
        assert!(g.host_to_device.count >= 1 && g.device_to_host.bytes >= 16);
        // Another thread's copies are not this thread's.
        std::thread::spawn(|| record_transfer(Direction::HostToDevice, 8, Instant::now(), Device::Gpu(0)))
            .join()
            .unwrap();
        assert_eq!((thread_transfers() - t0).host_to_device.count, 1);
    }

    #[test]
    fn a_session_records_transfers_and_writes_json() {
        let prof = Profiler::start();
        record_transfer(Direction::DeviceToHost, 32, Instant::now(), Device::Gpu(0));
        {
            let _s = op_span("matmul", Device::Cpu);
        }
        let p = prof.stop();
        let mine = p.thread_events();
        assert!(mine.iter().any(|e| e.name == "MemcpyDtoH" && e.bytes == 32));
        assert!(mine.iter().any(|e| e.name == "matmul" && e.kind == EventKind::Op));
        assert!(p.transfers().device_to_host.count >= 1);
        let json = p.chrome_trace_json();
        assert!(json.starts_with("{\"traceEvents\":[") && json.trim_end().ends_with('}'));
        assert!(json.contains("\"name\":\"MemcpyDtoH\"") && json.contains("\"ph\":\"X\""));
        assert_eq!(json_escape("a\"b\\c\n"), "a\\\"b\\\\c\\u000a");
    }
}
