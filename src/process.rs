//! `ChildWatcher`: child exits noticed through pidfds (Linux ≥ 5.3).
//!
//! asyncio 3.11's default watcher starts a thread per child, blocked in
//! `waitpid`. Here each child gets a pidfd, watched by the loop's own poll
//! like any reader: it becomes readable when the child exits, and the exit
//! status is then collected with `waitid(P_PIDFD, WNOHANG)`, which cannot
//! block and cannot reach another process that reuses the pid. No thread,
//! no SIGCHLD handler, and children the loop did not start are left alone.
//! Children still running when the loop closes are waited for (by pidfd)
//! on a background thread, so no zombie is left.
//!
//! Each pidfd is owned by its entry's `OwnedFdWatch`: registered through it,
//! unregistered through it (only its own registration), closed with it.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use pyo3::{intern, PyTraverseError};

use crate::event_loop::LoopCore;
use crate::fd_watch::OwnedFdWatch;
use crate::gil_cell::GilCell;
use crate::handle::Args;
use crate::live::{Live, Pidfds};
use crate::pyhelpers::os_error;
use crate::reactor::Side;
use crate::traverse::{Traverse, TraverseResult};

/// An open pidfd, counted (`live`) until closed.
struct Pidfd {
    fd: OwnedFd,
    _live: Live<Pidfds>,
}

impl AsRawFd for Pidfd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

struct Child {
    /// The pidfd and its registration; the fd is closed when the entry is
    /// dropped, on every path.
    pidfd: OwnedFdWatch<Pidfd>,
    callback: Py<PyAny>,
    args: Vec<Py<PyAny>>,
}

impl Traverse for Child {
    fn traverse(&self, visit: &PyVisit<'_>) -> TraverseResult {
        (&self.pidfd, &self.callback, &self.args).traverse(visit)
    }
}

#[pyclass(frozen, module = "ferroloop._ferroloop")]
pub struct ChildWatcher {
    loop_: Py<LoopCore>,
    children: GilCell<HashMap<i32, Child>>,
}

fn pidfd_open(pid: i32) -> std::io::Result<Pidfd> {
    // SAFETY: a plain syscall; the returned fd (if any) is ours to close.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened for us and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    Ok(Pidfd {
        fd,
        _live: Live::new(),
    })
}

/// `os.waitstatus_to_exitcode`, from what `waitid` reports.
fn exit_code(code: libc::c_int, status: libc::c_int) -> i32 {
    match code {
        libc::CLD_EXITED => status,
        libc::CLD_KILLED | libc::CLD_DUMPED => -status,
        _ => 255,
    }
}

enum Reaped {
    Exited(i32),
    Running,
    /// Someone else already collected the status (`Popen.poll()` in
    /// `send_signal()`, say).
    Unknown,
}

/// Collect the child behind `pidfd` with `waitid(P_PIDFD)`: never by pid
/// (the pid may have been reaped elsewhere and reused), and with `WNOHANG`
/// from the loop, so it never blocks with the GIL held.
fn reap(pidfd: &Pidfd, block: bool) -> Reaped {
    let flags = libc::WEXITED | if block { 0 } else { libc::WNOHANG };
    loop {
        // SAFETY: an all-zero siginfo_t is valid; waitid fills it in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: plain syscall on an fd we own, with a valid out-pointer.
        let r = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                flags,
            )
        };
        if r == 0 {
            // SAFETY: waitid succeeded, so si_pid/si_status are the child's
            // fields (si_pid stays 0 when WNOHANG found nothing).
            let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
            if pid == 0 {
                return Reaped::Running;
            }
            return Reaped::Exited(exit_code(info.si_code, status));
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Reaped::Unknown;
        }
    }
}

/// Wait, on a thread of their own, for children still running when the
/// loop closed, so none is left a zombie (by pidfd, as above).
fn reap_in_background(pidfds: Vec<Pidfd>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("ferroloop-reaper".into())
        .spawn(move || {
            for pidfd in pidfds {
                reap(&pidfd, true);
            }
        })
        .map(drop)
}

#[pymethods]
impl ChildWatcher {
    #[new]
    fn new(loop_: Py<LoopCore>) -> Self {
        ChildWatcher {
            loop_,
            children: GilCell::new(HashMap::new()),
        }
    }

    /// Whether this kernel has pidfds (else the caller uses asyncio's watcher).
    #[staticmethod]
    fn supported() -> bool {
        // SAFETY: getpid cannot fail.
        pidfd_open(unsafe { libc::getpid() }).is_ok()
    }

    /// Call `callback(pid, returncode, *args)` once `pid` has exited;
    /// `returncode` is None if its status was collected by someone else
    /// (the caller knows where to look: `Popen.returncode`).
    #[pyo3(signature = (pid, callback, *args))]
    fn add_child_handler(
        slf: &Bound<'_, Self>,
        pid: i32,
        callback: Py<PyAny>,
        args: &Bound<'_, PyTuple>,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let args: Vec<Py<PyAny>> = args.iter().map(Bound::unbind).collect();
        let replaced = match this.children.borrow_mut(py).get_mut(&pid) {
            Some(child) => Some((
                std::mem::replace(&mut child.callback, callback.clone_ref(py)),
                std::mem::replace(
                    &mut child.args,
                    args.iter().map(|a| a.clone_ref(py)).collect(),
                ),
            )),
            None => None,
        };
        if replaced.is_some() {
            drop(replaced);
            return Ok(());
        }
        let pidfd = OwnedFdWatch::new(pidfd_open(pid).map_err(os_error)?);
        let on_exit = slf.getattr(intern!(py, "_child_exited"))?;
        let pid_obj = pid.into_pyobject(py)?.into_any().unbind();
        pidfd.add_with_args(
            this.loop_.bind(py),
            Side::Read,
            on_exit,
            Args::from_iter([pid_obj]),
            None,
        )?;
        let old = this.children.borrow_mut(py).insert(
            pid,
            Child {
                pidfd,
                callback,
                args,
            },
        );
        drop(old);
        Ok(())
    }

    fn remove_child_handler(&self, py: Python<'_>, pid: i32) -> PyResult<bool> {
        let child = self.children.borrow_mut(py).remove(&pid);
        match child {
            Some(child) => {
                let removed = child.pidfd.remove(Some(self.loop_.bind(py)), Side::Read);
                drop(child);
                removed.map(|_| true)
            }
            None => Ok(false),
        }
    }

    /// The pidfd is readable: the child exited. Collect it and report.
    fn _child_exited(&self, py: Python<'_>, pid: i32) -> PyResult<()> {
        let Some(child) = self.children.borrow_mut(py).remove(&pid) else {
            return Ok(());
        };
        let Child {
            pidfd,
            callback,
            args,
        } = child;
        let (pidfd, removed) = pidfd.into_fd(Some(self.loop_.bind(py)));
        let returncode = match reap(&pidfd, false) {
            Reaped::Exited(code) => Some(code),
            Reaped::Running | Reaped::Unknown => None,
        };
        drop(pidfd);
        removed?;
        let mut call_args = vec![
            pid.into_pyobject(py)?.into_any().unbind(),
            returncode.into_pyobject(py)?.into_any().unbind(),
        ];
        call_args.extend(args);
        callback
            .bind(py)
            .call1(PyTuple::new(py, call_args)?)
            .map(drop)
    }

    /// Stop watching (the loop is closing). Children that already exited
    /// are reaped here; those still running are waited for on a background
    /// thread (by pidfd), so no zombie is left. Returns their pids.
    fn close(&self, py: Python<'_>) -> PyResult<Vec<i32>> {
        let children: Vec<(i32, Child)> = self.children.borrow_mut(py).drain().collect();
        let mut running = Vec::new();
        let mut pidfds = Vec::new();
        for (pid, child) in children {
            // The loop may already be closed: its registrations are gone.
            let (pidfd, _) = child.pidfd.into_fd(Some(self.loop_.bind(py)));
            if let Reaped::Running = reap(&pidfd, false) {
                running.push(pid);
                pidfds.push(pidfd);
            }
        }
        if !pidfds.is_empty() {
            reap_in_background(pidfds).map_err(os_error)?;
        }
        Ok(running)
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        self.children.borrow(py).len()
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.loop_.traverse(&visit)?;
        if let Some(children) = self.children.unguarded() {
            children.values().try_for_each(|c| c.traverse(&visit))?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        let taken: Option<Vec<Child>> = self
            .children
            .unguarded()
            .map(|mut c| c.drain().map(|(_, child)| child).collect());
        drop(taken);
    }
}
