//! The node processes of a `jepsen` run: started, SIGKILLed and restarted,
//! paused (SIGSTOP/SIGCONT), signalled (clock jumps), stopped.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct Proc {
    pub id: u64,
    bin: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl Proc {
    pub fn new(id: u64, bin: PathBuf, args: Vec<String>, log: PathBuf) -> Proc {
        Proc {
            id,
            bin,
            args,
            log,
            child: None,
            paused: false,
        }
    }

    /// Starts the process (again) with its arguments and `extra`; output
    /// is appended to its log.
    pub fn start(&mut self, extra: &[String]) -> std::io::Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut cmd = Command::new(&self.bin);
        cmd.args(&self.args)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // If the runner dies (Ctrl-C, a CI timeout), so do its processes,
        // stopped ones included: none is left holding a port.
        // SAFETY: prctl is async-signal-safe; nothing else runs here.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    pub fn paused(&self) -> bool {
        self.paused
    }

    /// SIGKILL: no chance to flush or sync anything.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.paused = false;
    }

    /// Sends `sig` (e.g. `libc::SIGSTOP`); false if it could not.
    pub fn signal(&self, sig: i32) -> bool {
        match &self.child {
            // SAFETY: kill(2) on our own child's pid.
            Some(c) => unsafe { libc::kill(c.id() as i32, sig) == 0 },
            None => false,
        }
    }

    pub fn pause(&mut self) {
        if self.child.is_some() {
            self.signal(libc::SIGSTOP);
            self.paused = true;
        }
    }

    pub fn resume(&mut self) {
        if self.paused {
            self.signal(libc::SIGCONT);
            self.paused = false;
        }
    }

    /// Whether it died on its own (and how), without waiting.
    pub fn exited(&mut self) -> Option<String> {
        let c = self.child.as_mut()?;
        match c.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                Some(status.to_string())
            }
            _ => None,
        }
    }

    /// SIGTERM, then SIGKILL if it is still there after 3 s.
    pub fn stop(&mut self) {
        self.resume();
        let Some(mut c) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        for _ in 0..30 {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.resume();
        self.kill();
    }
}
