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

use std::io::{Read, Write};
use std::net::TcpStream;

use echo_client::run_timed;

const WARMUP_ROUNDS: usize = 20;

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

    run_timed(conns, duration, move |id, run| {
        // A payload unique to this connection, so crossed streams show.
        let msg: Vec<u8> = (0..size).map(|i| (i * 31 + id * 7) as u8).collect();
        let mut buf = vec![0u8; size];
        let stream = TcpStream::connect(&addr).and_then(|s| s.set_nodelay(true).map(|_| s));
        let mut stream = match stream {
            Ok(s) => Some(s),
            Err(e) => {
                run.fail(format!("connect: {e}"));
                None
            }
        };
        if let Some(s) = stream.as_mut() {
            for _ in 0..WARMUP_ROUNDS {
                if let Err(e) = round_trip(s, &msg, &mut buf) {
                    run.fail(e);
                    stream = None;
                    break;
                }
            }
        }
        run.start();
        let mut n = 0u64;
        if let Some(mut s) = stream {
            while !run.stopped() {
                if let Err(e) = round_trip(&mut s, &msg, &mut buf) {
                    run.fail(e);
                    break;
                }
                n += 1;
            }
        }
        n
    });
}
