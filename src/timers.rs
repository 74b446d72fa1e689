//! The timer heap behind `call_later`/`call_at`.
//!
//! A 4-ary min-heap ordered by `(when, sequence)`: equal deadlines fire in
//! the order they were scheduled. Four children per node halve the depth of
//! a binary heap; with many timers each level is a cache miss, and popping
//! the due timers was a sixth of `call_later`'s time (perf, 200k timers). Cancelled timers are counted; when they are
//! more than half of a heap of over 100 entries the heap is rebuilt without
//! them (asyncio's rule), otherwise they are dropped as they reach the top.

use std::cmp::Ordering;
use std::sync::atomic::Ordering::Relaxed;

use pyo3::prelude::*;

use pyo3::gc::PyVisit;

use crate::handle::{Handle, OwnedEdge, TimerHandle};
use crate::traverse::{Traverse, TraverseResult};

const MIN_SCHEDULED_TIMER_HANDLES: usize = 100;
const MIN_CANCELLED_TIMER_HANDLES_FRACTION: f64 = 0.5;

pub struct Entry {
    when: f64,
    /// What the heap orders by: `when`, except for NaN (see `push`).
    key: f64,
    seq: u64,
    pub handle: Py<TimerHandle>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Reversed, so `BinaryHeap` (a max-heap) pops the earliest deadline.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .key
            .total_cmp(&self.key)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// A min-heap with four children per node (`Entry`'s `Ord` is reversed
/// for a max-heap: here `a > b` means `a` fires first).
#[derive(Default)]
struct QuadHeap(Vec<Entry>);

impl QuadHeap {
    fn from_vec(v: Vec<Entry>) -> QuadHeap {
        let mut heap = QuadHeap(v);
        let n = heap.0.len();
        if n > 1 {
            for i in (0..=(n - 2) / 4).rev() {
                heap.sift_down(i);
            }
        }
        heap
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn peek(&self) -> Option<&Entry> {
        self.0.first()
    }

    fn push(&mut self, entry: Entry) {
        self.0.push(entry);
        let mut i = self.0.len() - 1;
        while i > 0 {
            let parent = (i - 1) / 4;
            if self.0[i] <= self.0[parent] {
                break;
            }
            self.0.swap(i, parent);
            i = parent;
        }
    }

    fn pop(&mut self) -> Option<Entry> {
        let last = self.0.pop()?;
        if self.0.is_empty() {
            return Some(last);
        }
        let top = std::mem::replace(&mut self.0[0], last);
        self.sift_down(0);
        Some(top)
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.0.len();
        loop {
            let first = 4 * i + 1;
            if first >= n {
                return;
            }
            let mut best = first;
            for c in first + 1..(first + 4).min(n) {
                if self.0[c] > self.0[best] {
                    best = c;
                }
            }
            if self.0[best] <= self.0[i] {
                return;
            }
            self.0.swap(i, best);
            i = best;
        }
    }

    fn into_vec(self) -> Vec<Entry> {
        self.0
    }

    fn iter(&self) -> std::slice::Iter<'_, Entry> {
        self.0.iter()
    }
}

#[derive(Default)]
pub struct TimerHeap {
    heap: QuadHeap,
    seq: u64,
    cancelled: usize,
}

impl TimerHeap {
    /// A NaN deadline orders as asyncio's `heapq` leaves it, which no
    /// comparison moves: pushed onto an empty heap it is the top, due at
    /// once (`nan >= end_time` is false); pushed onto a non-empty one it
    /// stays below the rest, and runs after them.
    pub fn push(&mut self, when: f64, handle: Py<TimerHandle>) {
        self.seq += 1;
        let key = match when.is_nan() {
            false => when,
            true if self.heap.len() == 0 => f64::NEG_INFINITY,
            true => f64::INFINITY,
        };
        self.heap.push(Entry {
            when,
            key,
            seq: self.seq,
            handle,
        });
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn note_cancelled(&mut self) {
        self.cancelled += 1;
    }

    /// Deadline of the earliest timer.
    pub fn next_when(&self) -> Option<f64> {
        self.heap.peek().map(|e| e.when)
    }

    /// Drop cancelled timers (all of them, or those at the top). Returns the
    /// dropped handles: the caller releases them after its borrow ends.
    pub fn purge_cancelled(&mut self, py: Python<'_>) -> Vec<Entry> {
        let count = self.heap.len();
        let mut removed = Vec::new();
        let is_cancelled = |e: &Entry| e.handle.bind(py).as_super().get().is_cancelled();
        if count > MIN_SCHEDULED_TIMER_HANDLES
            && self.cancelled as f64 / count as f64 > MIN_CANCELLED_TIMER_HANDLES_FRACTION
        {
            let (keep, drop): (Vec<Entry>, Vec<Entry>) = std::mem::take(&mut self.heap)
                .into_vec()
                .into_iter()
                .partition(|e| !is_cancelled(e));
            self.heap = QuadHeap::from_vec(keep);
            removed = drop;
            self.cancelled = 0;
        } else {
            while let Some(top) = self.heap.peek() {
                if !is_cancelled(top) {
                    break;
                }
                self.cancelled = self.cancelled.saturating_sub(1);
                if let Some(e) = self.heap.pop() {
                    removed.push(e);
                }
            }
        }
        for e in &removed {
            e.handle.get().scheduled.store(false, Relaxed);
        }
        removed
    }

    /// Pop the next timer due before `end_time`.
    pub fn pop_due(&mut self, end_time: f64) -> Option<Py<TimerHandle>> {
        if self.heap.peek()?.when >= end_time {
            return None;
        }
        let e = self.heap.pop()?;
        e.handle.get().scheduled.store(false, Relaxed);
        Some(e.handle)
    }

    /// Empty the heap (on close); the caller drops the result.
    pub fn take_all(&mut self) -> Vec<Entry> {
        self.cancelled = 0;
        let all: Vec<Entry> = std::mem::take(&mut self.heap).into_vec();
        for e in &all {
            e.handle.get().scheduled.store(false, Relaxed);
        }
        all
    }

    pub fn handles(&self) -> impl Iterator<Item = &Py<TimerHandle>> {
        self.heap.iter().map(|e| &e.handle)
    }
}

/// Pending timers are the loop's own edges (see `OwnedEdge`).
impl Traverse for TimerHeap {
    fn traverse(&self, visit: &PyVisit<'_>) -> TraverseResult {
        self.handles().try_for_each(|timer| {
            // SAFETY: `Py<T>` is a transparent pointer, and a TimerHandle
            // object is a Handle object (its base class, same layout prefix).
            let base: &Py<Handle> =
                unsafe { &*(timer as *const Py<TimerHandle>).cast::<Py<Handle>>() };
            OwnedEdge(base).traverse(visit)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_loop::LoopCore;
    use crate::handle::{Args, Handle};

    fn timer(py: Python<'_>, lp: &Py<LoopCore>, when: f64) -> Py<TimerHandle> {
        let callback = py.None();
        let base = Handle::build(
            py,
            callback,
            Args::new(),
            None,
            lp.clone_ref(py),
            false,
            true,
        )
        .expect("handle");
        TimerHandle::create(py, when, None, true, base).expect("timer")
    }

    fn with_loop(f: impl FnOnce(Python<'_>, &Py<LoopCore>)) {
        Python::initialize();
        Python::attach(|py| {
            let lp = py
                .get_type::<LoopCore>()
                .call0()
                .and_then(|l| Ok(l.cast_into::<LoopCore>()?.unbind()))
                .expect("loop");
            f(py, &lp);
        });
    }

    #[test]
    fn earliest_first_and_fifo_for_equal_deadlines() {
        with_loop(|py, lp| {
            let mut heap = TimerHeap::default();
            let whens = [3.0, 1.0, 2.0, 1.0, f64::NEG_INFINITY];
            let handles: Vec<_> = whens.iter().map(|&w| timer(py, lp, w)).collect();
            for (w, h) in whens.iter().zip(&handles) {
                heap.push(*w, h.clone_ref(py));
            }
            assert_eq!(heap.next_when(), Some(f64::NEG_INFINITY));
            let mut order = Vec::new();
            while let Some(t) = heap.pop_due(f64::INFINITY) {
                let i = handles.iter().position(|h| h.as_ptr() == t.as_ptr());
                order.push(i.expect("one of ours"));
            }
            // -inf, then 1.0 (pushed second), 1.0 (fourth), 2.0, 3.0.
            assert_eq!(order, vec![4, 1, 3, 2, 0]);
            assert_eq!(heap.len(), 0);
        });
    }

    #[test]
    fn many_timers_come_out_sorted_and_fifo_among_equals() {
        with_loop(|py, lp| {
            let mut heap = TimerHeap::default();
            let mut pushed: Vec<(f64, usize)> = Vec::new();
            let mut out: Vec<(f64, usize)> = Vec::new();
            let mut ids: Vec<Py<TimerHandle>> = Vec::new();
            let mut state: u64 = 12345;
            let mut next = || {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                state >> 33
            };
            let find = |ids: &[Py<TimerHandle>], t: &Py<TimerHandle>| {
                ids.iter()
                    .position(|h| h.as_ptr() == t.as_ptr())
                    .expect("ours")
            };
            for round in 0..40 {
                for _ in 0..50 {
                    let when = (next() % 64) as f64; // many equal deadlines
                    let t = timer(py, lp, when);
                    pushed.push((when, ids.len()));
                    heap.push(when, t.clone_ref(py));
                    ids.push(t);
                }
                // Pop everything due at or before `round` so far.
                while let Some(t) = heap.pop_due(f64::from(round) + 0.5) {
                    let i = find(&ids, &t);
                    out.push((pushed[i].0, i));
                }
            }
            while let Some(t) = heap.pop_due(f64::INFINITY) {
                let i = find(&ids, &t);
                out.push((pushed[i].0, i));
            }
            assert_eq!(out.len(), pushed.len());
            // Interleaved pushes and pops: every timer comes out once.
            let mut seen: Vec<usize> = out.iter().map(|&(_, i)| i).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..pushed.len()).collect::<Vec<_>>());
            // A heap filled at once drains in (when, push order).
            let mut heap2 = TimerHeap::default();
            let mut expect: Vec<(f64, usize)> = Vec::new();
            for (k, &(w, _)) in pushed.iter().enumerate().take(500) {
                heap2.push(w, ids[k].clone_ref(py));
                expect.push((w, k));
            }
            expect.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let mut got = Vec::new();
            while let Some(t) = heap2.pop_due(f64::INFINITY) {
                got.push(find(&ids, &t));
            }
            assert_eq!(got, expect.iter().map(|&(_, k)| k).collect::<Vec<_>>());
        });
    }

    #[test]
    fn pop_due_stops_at_end_time() {
        with_loop(|py, lp| {
            let mut heap = TimerHeap::default();
            for w in [1.0, 2.0, 3.0] {
                heap.push(w, timer(py, lp, w));
            }
            assert!(heap.pop_due(2.0).is_some());
            assert!(heap.pop_due(2.0).is_none()); // 2.0 >= end_time
            assert_eq!(heap.len(), 2);
        });
    }

    fn cancel(py: Python<'_>, heap: &mut TimerHeap, t: &Py<TimerHandle>) {
        Handle::cancel_handle(t.bind(py).as_super()).expect("cancel");
        heap.note_cancelled();
    }

    #[test]
    fn cancelled_at_the_top_are_dropped_one_by_one() {
        with_loop(|py, lp| {
            let mut heap = TimerHeap::default();
            let ts: Vec<_> = (0..10).map(|i| timer(py, lp, f64::from(i))).collect();
            for (i, t) in ts.iter().enumerate() {
                heap.push(i as f64, t.clone_ref(py));
            }
            cancel(py, &mut heap, &ts[0]);
            cancel(py, &mut heap, &ts[1]);
            cancel(py, &mut heap, &ts[5]);
            let removed = heap.purge_cancelled(py);
            assert_eq!(removed.len(), 2); // only those at the top
            assert_eq!(heap.len(), 8);
            assert_eq!(heap.next_when(), Some(2.0));
        });
    }

    #[test]
    fn compaction_when_most_are_cancelled() {
        with_loop(|py, lp| {
            let mut heap = TimerHeap::default();
            let ts: Vec<_> = (0..200).map(|i| timer(py, lp, f64::from(i))).collect();
            for (i, t) in ts.iter().enumerate() {
                heap.push(i as f64, t.clone_ref(py));
            }
            // Cancel 150 from the end: none at the top.
            for t in &ts[50..] {
                cancel(py, &mut heap, t);
            }
            let removed = heap.purge_cancelled(py);
            assert_eq!(removed.len(), 150);
            assert_eq!(heap.len(), 50);
            for e in &removed {
                assert!(!e.handle.get().scheduled.load(Relaxed));
            }
            // The survivors still come out in order.
            let mut last = f64::NEG_INFINITY;
            while let Some(t) = heap.pop_due(f64::INFINITY) {
                assert!(t.get().when >= last);
                last = t.get().when;
            }
        });
    }

    #[test]
    fn no_compaction_under_the_threshold() {
        with_loop(|py, lp| {
            let mut heap = TimerHeap::default();
            let ts: Vec<_> = (0..100).map(|i| timer(py, lp, f64::from(i))).collect();
            for (i, t) in ts.iter().enumerate() {
                heap.push(i as f64, t.clone_ref(py));
            }
            for t in &ts[10..] {
                cancel(py, &mut heap, t);
            }
            // 100 timers is not over MIN_SCHEDULED_TIMER_HANDLES.
            assert!(heap.purge_cancelled(py).is_empty());
            assert_eq!(heap.len(), 100);
        });
    }
}
