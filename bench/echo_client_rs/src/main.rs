//! Compiled load generator for the echo benchmark: one thread per
//! connection, each sending a message and reading the echo back, checking
//! every byte. Uses far less CPU per round trip than the Python client, so
//! on a small machine the server, not the client, sets the pace.
//!
//!     echo-client HOST PORT SIZE DURATION CONNS
//!
//! Protocol with bench/echo_run.py: after the warm-up it prints `ready` and
//! waits for a line on stdin (the driver samples the server's CPU time),
//! then runs for DURATION seconds and prints one JSON line:
//! {"requests", "elapsed", "rps", "client_user", "client_sys", "errors"}.

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

const WARMUP_ROUNDS: usize = 20;

fn cpu_times() -> (f64, f64) {
    // SAFETY: getrusage fills the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime), secs(ru.ru_stime))
}

fn round_trip(stream: &mut TcpStream, msg: &[u8], buf: &mut [u8]) -> Result<(), String> {
    stream.write_all(msg).map_err(|e| format!("send: {e}"))?;
    stream.read_exact(buf).map_err(|e| format!("recv: {e}"))?;
    if buf != msg {
        return Err("echo mismatch".into());
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!("usage: echo-client HOST PORT SIZE DURATION CONNS");
        std::process::exit(2);
    }
    let addr = format!("{}:{}", args[1], args[2]);
    let size: usize = args[3].parse().expect("SIZE");
    let duration: f64 = args[4].parse().expect("DURATION");
    let conns: usize = args[5].parse().expect("CONNS");

    let go = Arc::new(Barrier::new(conns + 1));
    let warmed = Arc::new(Barrier::new(conns + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut threads = Vec::new();
    for id in 0..conns {
        let (addr, go, warmed, stop, errors) =
            (addr.clone(), go.clone(), warmed.clone(), stop.clone(), errors.clone());
        threads.push(std::thread::spawn(move || -> u64 {
            // A payload unique to this connection, so crossed streams show.
            let msg: Vec<u8> = (0..size).map(|i| (i * 31 + id * 7) as u8).collect();
            let mut buf = vec![0u8; size];
            let fail = |e: String| errors.lock().map(|mut v| v.push(e)).ok();
            let stream = TcpStream::connect(&addr).and_then(|s| s.set_nodelay(true).map(|_| s));
            let mut stream = match stream {
                Ok(s) => Some(s),
                Err(e) => {
                    fail(format!("connect: {e}"));
                    None
                }
            };
            if let Some(s) = stream.as_mut() {
                for _ in 0..WARMUP_ROUNDS {
                    if let Err(e) = round_trip(s, &msg, &mut buf) {
                        fail(e);
                        stream = None;
                        break;
                    }
                }
            }
            warmed.wait();
            go.wait();
            let mut n = 0u64;
            if let Some(mut s) = stream {
                while !stop.load(Ordering::Relaxed) {
                    if let Err(e) = round_trip(&mut s, &msg, &mut buf) {
                        fail(e);
                        break;
                    }
                    n += 1;
                }
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
