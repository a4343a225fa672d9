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
        let child = Command::new(&self.bin)
            .args(&self.args)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
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

    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args(["-s", sig, &c.id().to_string()])
                .status();
        }
    }

    pub fn pause(&mut self) {
        if self.child.is_some() {
            self.signal("STOP");
            self.paused = true;
        }
    }

    pub fn resume(&mut self) {
        if self.paused {
            self.signal("CONT");
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
        let _ = Command::new("kill")
            .args(["-s", "TERM", &c.id().to_string()])
            .status();
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
