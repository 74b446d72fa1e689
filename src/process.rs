//! `ChildWatcher`: child exits noticed through pidfds (Linux ≥ 5.3).
//!
//! asyncio 3.11's default watcher starts a thread per child, blocked in
//! `waitpid`. Here each child gets a pidfd, watched by the loop's own poll
//! like any reader: it becomes readable when the child exits, and the exit
//! status is then collected with `waitpid`, which cannot block. No thread,
//! no SIGCHLD handler, and children the loop did not start are left alone.
//! Children still running when the loop closes are handed back to the
//! caller, which reaps them in the background so no zombie is left.

use std::collections::HashMap;
use std::os::fd::RawFd;

use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use pyo3::{intern, PyTraverseError};

use crate::event_loop::LoopCore;
use crate::gil_cell::GilCell;
use crate::handle::Args;
use crate::reactor::{os_error, Side};
use crate::transports::logger;

struct Child {
    pidfd: RawFd,
    callback: Py<PyAny>,
    args: Vec<Py<PyAny>>,
}

#[pyclass(frozen, module = "ferroloop._ferroloop")]
pub struct ChildWatcher {
    loop_: Py<LoopCore>,
    children: GilCell<HashMap<i32, Child>>,
}

fn pidfd_open(pid: i32) -> std::io::Result<RawFd> {
    // SAFETY: a plain syscall; the returned fd (if any) is ours to close.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd as RawFd)
}

fn close_fd(fd: RawFd) {
    // SAFETY: `fd` is a pidfd this watcher opened and closes exactly once.
    unsafe { libc::close(fd) };
}

/// `os.waitstatus_to_exitcode`.
fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        -libc::WTERMSIG(status)
    } else {
        255
    }
}

enum Reaped {
    Exited(i32),
    Running,
    /// Someone else already collected the status (asyncio reports 255).
    Unknown,
}

fn reap(pid: i32, flags: libc::c_int) -> Reaped {
    let mut status = 0;
    loop {
        // SAFETY: plain syscall with a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        if r == pid {
            return Reaped::Exited(exit_code(status));
        }
        if r == 0 {
            return Reaped::Running;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Reaped::Unknown;
        }
    }
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
        match pidfd_open(unsafe { libc::getpid() }) {
            Ok(fd) => {
                close_fd(fd);
                true
            }
            Err(_) => false,
        }
    }

    /// Call `callback(pid, returncode, *args)` once `pid` has exited.
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
        if let Some(child) = this.children.borrow_mut(py).get_mut(&pid) {
            child.callback = callback;
            child.args = args;
            return Ok(());
        }
        let pidfd = pidfd_open(pid).map_err(os_error)?;
        let on_exit = slf.getattr(intern!(py, "_child_exited"))?;
        let pid_obj = pid.into_pyobject(py)?.into_any().unbind();
        if let Err(err) = LoopCore::add_fd(
            this.loop_.bind(py),
            pidfd,
            Side::Read,
            on_exit,
            Args::from_iter([pid_obj]),
        ) {
            close_fd(pidfd);
            return Err(err);
        }
        this.children.borrow_mut(py).insert(
            pid,
            Child {
                pidfd,
                callback,
                args,
            },
        );
        Ok(())
    }

    fn remove_child_handler(&self, py: Python<'_>, pid: i32) -> PyResult<bool> {
        let child = self.children.borrow_mut(py).remove(&pid);
        match child {
            Some(child) => {
                LoopCore::remove_fd(self.loop_.bind(py), child.pidfd, Side::Read)?;
                close_fd(child.pidfd);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The pidfd is readable: the child exited. Collect it and report.
    fn _child_exited(&self, py: Python<'_>, pid: i32) -> PyResult<()> {
        let Some(child) = self.children.borrow_mut(py).remove(&pid) else {
            return Ok(());
        };
        LoopCore::remove_fd(self.loop_.bind(py), child.pidfd, Side::Read)?;
        let returncode = match reap(pid, 0) {
            Reaped::Exited(code) => code,
            Reaped::Running | Reaped::Unknown => {
                logger(py)?.call_method1(
                    intern!(py, "warning"),
                    (
                        "child process pid %d exit status already read:  will report returncode 255",
                        pid,
                    ),
                )?;
                255
            }
        };
        close_fd(child.pidfd);
        let mut call_args = vec![
            pid.into_pyobject(py)?.into_any().unbind(),
            returncode.into_pyobject(py)?.into_any().unbind(),
        ];
        call_args.extend(child.args);
        child
            .callback
            .bind(py)
            .call1(PyTuple::new(py, call_args)?)
            .map(drop)
    }

    /// Stop watching (the loop is closing). Children that already exited
    /// are reaped here; the pids of those still running are returned for
    /// the caller to reap in the background.
    fn close(&self, py: Python<'_>) -> Vec<i32> {
        let children: Vec<(i32, Child)> = self.children.borrow_mut(py).drain().collect();
        let mut running = Vec::new();
        for (pid, child) in children {
            // The loop may already be closed: its registrations are gone.
            let _ = LoopCore::remove_fd(self.loop_.bind(py), child.pidfd, Side::Read);
            close_fd(child.pidfd);
            if let Reaped::Running = reap(pid, libc::WNOHANG) {
                running.push(pid);
            }
        }
        running
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        self.children.borrow(py).len()
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.loop_)?;
        if let Some(children) = self.children.unguarded() {
            for child in children.values() {
                visit.call(&child.callback)?;
                for a in &child.args {
                    visit.call(a)?;
                }
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let taken: Option<Vec<Child>> = self
            .children
            .unguarded()
            .map(|mut c| c.drain().map(|(_, child)| child).collect());
        if let Some(children) = taken {
            for child in &children {
                close_fd(child.pidfd);
            }
        }
    }
}

impl Drop for ChildWatcher {
    fn drop(&mut self) {
        for child in self.children.get_mut().values() {
            close_fd(child.pidfd);
        }
    }
}
