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

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;

use echo_client::run_timed;

const WARMUP_CONNS: usize = 20;
const LINE: usize = 64;

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

    run_timed(nthreads, duration, move |id, run| {
        let mut msg: Vec<u8> = (0..LINE - 1)
            .map(|i| b'a' + ((i + id * 7) % 26) as u8)
            .collect();
        msg.push(b'\n');
        let mut buf = Vec::with_capacity(LINE);
        let mut ok = true;
        for _ in 0..WARMUP_CONNS {
            if let Err(e) = one_conn(&addr, &msg, &mut buf) {
                run.fail(e);
                ok = false;
                break;
            }
        }
        run.start();
        let mut n = 0u64;
        while ok && !run.stopped() {
            if let Err(e) = one_conn(&addr, &msg, &mut buf) {
                run.fail(e);
                break;
            }
            n += 1;
        }
        n
    });
}
