//! `Traverse`: the Python references a value holds, for the cycle collector.
//!
//! Every pyclass's `__traverse__` is one line, `self.<state>.traverse(&visit)`,
//! and each state type says once, next to its fields, which of them the
//! collector must see. Containers (`Option`, `Box`, `Vec`, `VecDeque`,
//! tuples, `GilCell`) forward to their items, so adding a field to a state
//! means adding it to that one `impl`.

use std::collections::VecDeque;

use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::PyTraverseError;

use crate::gil_cell::GilCell;

pub type TraverseResult = Result<(), PyTraverseError>;

pub trait Traverse {
    fn traverse(&self, visit: &PyVisit<'_>) -> TraverseResult;
}

impl<T> Traverse for Py<T> {
    #[inline]
    fn traverse(&self, visit: &PyVisit<'_>) -> TraverseResult {
        visit.call(self)
    }
}

impl<T: Traverse> Traverse for Option<T> {
    #[inline]
    fn traverse(&self, visit: &PyVisit<'_>) -> TraverseResult {
        match self {
            Some(v) => v.traverse(visit),
            None => Ok(()),
        }
    }
}

impl<T: Traverse + ?Sized> Traverse for &T {
    #[inline]
    fn traverse(&self, visit: &PyVisit<'_>) -> TraverseResult {
        (**self).traverse(visit)
    }
}

impl<T: Traverse + ?Sized> Traverse for Box<T> {
    #[inline]
    fn traverse(&self, visit: &PyVisit<'_>) -> TraverseResult {
        (**self).traverse(visit)
    }
}

impl<T: Traverse> Traverse for [T] {
    fn traverse(&self, visit: &PyVisit<'_>) -> TraverseResult {
        self.iter().try_for_each(|v| v.traverse(visit))
    }
}

impl<T: Traverse> Traverse for Vec<T> {
    fn traverse(&self, visit: &PyVisit<'_>) -> TraverseResult {
        self.as_slice().traverse(visit)
    }
}

impl<T: Traverse> Traverse for VecDeque<T> {
    fn traverse(&self, visit: &PyVisit<'_>) -> TraverseResult {
        self.iter().try_for_each(|v| v.traverse(visit))
    }
}

/// Only while nobody holds a mutable borrow (the collector runs with the
/// GIL held but may interrupt a borrow): then nothing is reported, which
/// at worst keeps a cycle alive until the next collection.
impl<T: Traverse> Traverse for GilCell<T> {
    fn traverse(&self, visit: &PyVisit<'_>) -> TraverseResult {
        match self.unguarded() {
            Some(v) => v.traverse(visit),
            None => Ok(()),
        }
    }
}

macro_rules! traverse_tuple {
    ($($name:ident),+) => {
        impl<$($name: Traverse),+> Traverse for ($($name,)+) {
            #[allow(non_snake_case)]
            fn traverse(&self, visit: &PyVisit<'_>) -> TraverseResult {
                let ($($name,)+) = self;
                $($name.traverse(visit)?;)+
                Ok(())
            }
        }
    };
}

traverse_tuple!(A, B);
traverse_tuple!(A, B, C);
traverse_tuple!(A, B, C, D);
traverse_tuple!(A, B, C, D, E);
traverse_tuple!(A, B, C, D, E, F);
traverse_tuple!(A, B, C, D, E, F, G);
traverse_tuple!(A, B, C, D, E, F, G, H);
