//! # hostio: a host's disk, clock and network quirks
//!
//! What a host gives the processes that run on it, for real and in the
//! deterministic simulator alike:
//! - [`disk`]: a directory of named files with an explicit durability model,
//!   real ([`disk::FsDir`]) or simulated ([`disk::SimDir`], which loses
//!   unsynced writes on a crash);
//! - [`coverage`]: named counters that code bumps when something worth
//!   testing happened, counted per simulation run;
//! - [`clock`]: the host's time ([`clock::Clock`]), the runtime's clock plus
//!   an offset, a drift and jumps that the simulator's nemesis controls
//!   (madsim has one clock for every node);
//! - [`net`]: duplication and reordering of the messages a service sends,
//!   which a reliable stream never shows ([`net::Net`]).
//!
//! It knows nothing of Raft, of any service or of the simulator that drives
//! it: the harness gives one of each to every host, services read their
//! time and keep their files through them.

pub mod clock;
pub mod coverage;
pub mod disk;
pub mod net;

pub use clock::Clock;
pub use disk::{CrashFaults, Damage, Dir, FsDir, IoFault, SimDir};
pub use net::Net;
