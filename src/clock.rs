//! The loop's clock: the same `CLOCK_MONOTONIC` reading as `time.monotonic()`,
//! converted to seconds the way CPython does, so `loop.time()` and
//! `time.monotonic()` can be compared directly.

pub fn monotonic() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    // time_t and c_long are i64 on every 64-bit Linux, i32 on 32-bit ones.
    #[allow(clippy::unnecessary_cast)]
    let ns = ts.tv_sec as i64 * 1_000_000_000 + ts.tv_nsec as i64;
    ns as f64 / 1e9
}
