use super::*;
use std::{
    fmt,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Poll, Waker},
};

/// Waits until `duration` has elapsed.
pub fn sleep(duration: Duration) -> Sleep {
    let handle = TimeHandle::current();
    handle.sleep(duration)
}

/// Waits until `deadline` is reached.
pub fn sleep_until(deadline: Instant) -> Sleep {
    let handle = TimeHandle::current();
    handle.sleep_until(deadline)
}

/// Future returned by [`sleep`] and [`sleep_until`].
///
/// [`sleep`]: sleep()
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Sleep {
    pub(super) handle: TimeHandle,
    pub(super) deadline: Instant,
    /// vendored change 4: the timer this sleep armed, if any: its deadline
    /// and the slot its callback takes the waker from. Upstream armed a new
    /// timer on every poll and never took one back, so every stale timer
    /// (an earlier poll's, a reset or dropped sleep's) woke its task later
    /// for nothing.
    pub(super) armed: Option<(Instant, Arc<Mutex<Option<Waker>>>)>,
}

impl Sleep {
    /// Returns the instant at which the future will complete.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Returns `true` if `Sleep` has elapsed.
    ///
    /// A `Sleep` instance is elapsed when the requested duration has elapsed.
    pub fn is_elapsed(&self) -> bool {
        self.handle.clock.now_instant() >= self.deadline
    }

    /// Resets the `Sleep` instance to a new deadline.
    pub fn reset(mut self: Pin<&mut Self>, deadline: Instant) {
        self.deadline = deadline;
    }

    /// vendored change 4: the armed timer, if any, wakes no one.
    fn disarm(&mut self) {
        if let Some((_, slot)) = self.armed.take() {
            slot.lock().unwrap().take();
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.disarm();
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        if self.is_elapsed() {
            return Poll::Ready(());
        }
        // vendored change 4: one timer per deadline. A poll with the same
        // deadline only updates the waker the armed timer will wake.
        let this = self.get_mut();
        if let Some((deadline, slot)) = &this.armed {
            if *deadline == this.deadline {
                let mut waker = slot.lock().unwrap();
                match &mut *waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    w => *w = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
        }
        this.disarm();
        let slot = Arc::new(Mutex::new(Some(cx.waker().clone())));
        let fire = slot.clone();
        this.handle.add_timer_at(this.deadline, move || {
            let waker = fire.lock().unwrap().take();
            if let Some(waker) = waker {
                waker.wake();
            }
        });
        this.armed = Some((this.deadline, slot));
        Poll::Pending
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish()
    }
}
