//! What both load generators share: one thread per connection (or client
//! loop), the warm-up, the handshake with the Python driver (print `ready`,
//! wait for a line on stdin while it samples the server's CPU time), the
//! timed window and the one-line JSON report:
//! {"requests", "elapsed", "rps", "client_user", "client_sys", "errors"}.

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

/// What a worker thread sees of the run.
pub struct Run {
    warmed: Barrier,
    go: Barrier,
    stop: AtomicBool,
    errors: Mutex<Vec<String>>,
}

impl Run {
    /// Record an error (reported in the JSON line).
    pub fn fail(&self, e: String) {
        if let Ok(mut v) = self.errors.lock() {
            v.push(e);
        }
    }

    /// The warm-up is over: wait until the timed window opens.
    pub fn start(&self) {
        self.warmed.wait();
        self.go.wait();
    }

    /// The timed window is over.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

fn cpu_times() -> (f64, f64) {
    // SAFETY: getrusage fills the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime), secs(ru.ru_stime))
}

/// Run `worker(id, run)` in `nthreads` threads for `duration` seconds of
/// timed window; each worker warms up, calls `run.start()`, works until
/// `run.stopped()` and returns how many requests it completed.
pub fn run_timed<F>(nthreads: usize, duration: f64, worker: F)
where
    F: Fn(usize, &Run) -> u64 + Send + Sync + 'static,
{
    let run = Arc::new(Run {
        warmed: Barrier::new(nthreads + 1),
        go: Barrier::new(nthreads + 1),
        stop: AtomicBool::new(false),
        errors: Mutex::new(Vec::new()),
    });
    let worker = Arc::new(worker);
    let threads: Vec<_> = (0..nthreads)
        .map(|id| {
            let (run, worker) = (run.clone(), worker.clone());
            std::thread::spawn(move || worker(id, &run))
        })
        .collect();
    run.warmed.wait();
    println!("ready");
    std::io::stdout().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).ok();
    let (u0, s0) = cpu_times();
    let t0 = Instant::now();
    run.go.wait();
    std::thread::sleep(Duration::from_secs_f64(duration));
    run.stop.store(true, Ordering::Relaxed);
    let requests: u64 = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    let elapsed = t0.elapsed().as_secs_f64();
    let (u1, s1) = cpu_times();
    let errors = run.errors.lock().map(|v| v.clone()).unwrap_or_default();
    let errors_json: Vec<String> = errors
        .iter()
        .map(|e| format!("\"{}\"", e.replace('\\', "\\\\").replace('"', "'")))
        .collect();
    println!(
        "{{\"requests\": {requests}, \"elapsed\": {elapsed}, \"rps\": {}, \"client_user\": {}, \"client_sys\": {}, \"errors\": [{}]}}",
        requests as f64 / elapsed,
        u1 - u0,
        s1 - s0,
        errors_json.join(", ")
    );
}
