//! Compiled load generator for the connection-churn benchmark
//! (bench/churn_run.py): THREADS threads, each in a loop: connect, send one
//! 64-byte line, read until the server closes, check the echo byte for byte.
//!
//!     churn-client ADDR DURATION THREADS
//!
//! ADDR is `HOST:PORT` (TCP) or `unix:PATH`. After a warm-up it prints
//! `ready`, waits for a line on stdin (the driver samples the server's CPU
//! time), runs for DURATION seconds and prints one JSON line:
//! {"requests", "elapsed", "rps", "client_user", "client_sys", "errors"}
//! (`requests` counts completed connections).

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

const WARMUP_CONNS: usize = 20;
const LINE: usize = 64;

fn cpu_times() -> (f64, f64) {
    // SAFETY: getrusage fills the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime), secs(ru.ru_stime))
}

fn exchange<S: Read + Write>(mut s: S, msg: &[u8], buf: &mut Vec<u8>) -> Result<(), String> {
    s.write_all(msg).map_err(|e| format!("send: {e}"))?;
    buf.clear();
    s.read_to_end(buf).map_err(|e| format!("recv: {e}"))?;
    if buf.as_slice() != msg {
        return Err(format!("echo mismatch ({} bytes back)", buf.len()));
    }
    Ok(())
}

fn one_conn(addr: &str, msg: &[u8], buf: &mut Vec<u8>) -> Result<(), String> {
    if let Some(path) = addr.strip_prefix("unix:") {
        let s = UnixStream::connect(path).map_err(|e| format!("connect: {e}"))?;
        exchange(s, msg, buf)
    } else {
        let s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        s.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
        exchange(s, msg, buf)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: churn-client ADDR DURATION THREADS");
        std::process::exit(2);
    }
    let addr = args[1].clone();
    let duration: f64 = args[2].parse().expect("DURATION");
    let nthreads: usize = args[3].parse().expect("THREADS");

    let go = Arc::new(Barrier::new(nthreads + 1));
    let warmed = Arc::new(Barrier::new(nthreads + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut threads = Vec::new();
    for id in 0..nthreads {
        let (addr, go, warmed, stop, errors) =
            (addr.clone(), go.clone(), warmed.clone(), stop.clone(), errors.clone());
        threads.push(std::thread::spawn(move || -> u64 {
            let mut msg: Vec<u8> = (0..LINE - 1).map(|i| b'a' + ((i + id * 7) % 26) as u8).collect();
            msg.push(b'\n');
            let mut buf = Vec::with_capacity(LINE);
            let fail = |e: String| errors.lock().map(|mut v| v.push(e)).ok();
            let mut ok = true;
            for _ in 0..WARMUP_CONNS {
                if let Err(e) = one_conn(&addr, &msg, &mut buf) {
                    fail(e);
                    ok = false;
                    break;
                }
            }
            warmed.wait();
            go.wait();
            let mut n = 0u64;
            while ok && !stop.load(Ordering::Relaxed) {
                if let Err(e) = one_conn(&addr, &msg, &mut buf) {
                    fail(e);
                    break;
                }
                n += 1;
            }
            n
        }));
    }
    warmed.wait();
    println!("ready");
    std::io::stdout().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).ok();
    let (u0, s0) = cpu_times();
    let t0 = Instant::now();
    go.wait();
    std::thread::sleep(Duration::from_secs_f64(duration));
    stop.store(true, Ordering::Relaxed);
    let requests: u64 = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    let elapsed = t0.elapsed().as_secs_f64();
    let (u1, s1) = cpu_times();
    let errors = errors.lock().map(|v| v.clone()).unwrap_or_default();
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
