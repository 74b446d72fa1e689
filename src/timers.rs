//! The timer heap behind `call_later`/`call_at`.
//!
//! A binary min-heap ordered by `(when, sequence)`: equal deadlines fire in
//! the order they were scheduled. Cancelled timers are counted; when they are
//! more than half of a heap of over 100 entries the heap is rebuilt without
//! them (asyncio's rule), otherwise they are dropped as they reach the top.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::atomic::Ordering::Relaxed;

use pyo3::prelude::*;

use crate::handle::TimerHandle;

const MIN_SCHEDULED_TIMER_HANDLES: usize = 100;
const MIN_CANCELLED_TIMER_HANDLES_FRACTION: f64 = 0.5;

pub struct Entry {
    when: f64,
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
            .when
            .total_cmp(&self.when)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

#[derive(Default)]
pub struct TimerHeap {
    heap: BinaryHeap<Entry>,
    seq: u64,
    cancelled: usize,
}

impl TimerHeap {
    pub fn push(&mut self, when: f64, handle: Py<TimerHandle>) {
        self.seq += 1;
        self.heap.push(Entry {
            when,
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
                .into_iter()
                .partition(|e| !is_cancelled(e));
            self.heap = BinaryHeap::from(keep);
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
