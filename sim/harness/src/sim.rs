//! The simulated world: hosts, each with its own address, clock and disk,
//! and the nemesis's hands on them: crash and restart (the disk loses its
//! unsynced writes), pause, network cuts, loss, latency, and the hosts'
//! clocks. In the spirit of turmoil's `sim.host(name, || async {..})`: a
//! host runs whatever the scenario gives it, and nothing here knows what
//! that is.
//!
//! Network faults are kept as a set of active faults; whenever one starts
//! or ends, every link's state is recomputed from the set, so overlapping
//! faults heal correctly.

use crate::schedule::Fault;
use hostio::disk::Damage;
use hostio::net::Mangling;
use hostio::{Clock, CrashFaults, IoFault, Net, SimDir};
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle};
use madsim::task::NodeId;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

/// What a host gives the process it runs, again after every restart: its
/// number, address, clock and disk (both outlive restarts).
#[derive(Clone, Debug)]
pub struct HostEnv {
    pub id: u64,
    pub ip: IpAddr,
    pub clock: Clock,
    pub disk: SimDir,
    /// Duplication and reordering of the messages the host's services send
    /// through it (fault `reorder`).
    pub net: Net,
    /// The host's supervisor (systemd's `Restart=always`): a process that
    /// stops itself (fail-stop, e.g. on an I/O error) asks it to be
    /// started again.
    pub supervisor: Supervisor,
}

/// Restarts its host's process on request, after a delay: the process is
/// killed at once (every task of the host stops, its ports are freed; the
/// disk keeps even its unsynced writes, which a process exit does not
/// lose) and its `init` runs again from the disk.
#[derive(Clone)]
pub struct Supervisor {
    /// The host's madsim node, known once it is built.
    node: std::sync::Arc<std::sync::Mutex<Option<madsim::task::NodeId>>>,
    /// Where the restart timer runs (not on the host, whose tasks die).
    runner: NodeHandle,
    /// What the supervisor and the nemesis both change: a restart timer
    /// must not start a process that was started meanwhile (madsim would
    /// run a second copy beside the first, which keeps its ports), nor
    /// one that a crash fault holds down.
    life: std::sync::Arc<std::sync::Mutex<Life>>,
}

/// A host's process, as its supervisor and the nemesis see it.
#[derive(Default)]
struct Life {
    /// Counts the process's starts.
    incarnation: u64,
    /// Down for a crash fault, until the nemesis restarts it.
    crashed: bool,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Supervisor")
    }
}

impl Supervisor {
    /// Stops the host's process (at once, from the supervisor's own task)
    /// and starts it again after `delay`, unless it was started meanwhile
    /// (by a crash fault's end, or an earlier request of the same process)
    /// or a crash fault holds it down (its end starts it).
    pub fn restart_after(&self, delay: Duration) {
        let Some(id) = *self.node.lock().unwrap() else {
            return;
        };
        let life = self.life.clone();
        let born = life.lock().unwrap().incarnation;
        self.runner.spawn(async move {
            let h = Handle::current();
            h.kill(id);
            tokio::time::sleep(delay).await;
            let mut l = life.lock().unwrap();
            if l.incarnation == born && !l.crashed {
                l.incarnation += 1;
                drop(l);
                h.restart(id);
            }
        });
    }

    /// The nemesis crashed the host (`true`) or started it again.
    fn crashed(&self, down: bool) {
        let mut l = self.life.lock().unwrap();
        l.crashed = down;
        if !down {
            l.incarnation += 1;
        }
    }
}

/// One host and its state.
pub struct Host {
    pub handle: NodeHandle,
    pub env: HostEnv,
    pub down: bool,
    pub paused: bool,
}

/// The hosts of one run and the faults acting on them.
pub struct Sim {
    hosts: BTreeMap<u64, Host>,
    /// Active network faults by (fault id, part): part 0 is the fault
    /// itself, others what a triggered fault did (see `nemesis`).
    net_faults: BTreeMap<(usize, u32), Fault>,
    crash_seed: u64,
    /// Client hosts by client number (for faults that include clients).
    client_hosts: std::sync::Mutex<BTreeMap<u64, madsim::task::NodeId>>,
    /// The links clogged in madsim's network (by `apply_network` and
    /// `isolate_now`): a change of the network faults clogs and unclogs
    /// only the links that change, not every pair of hosts.
    clogged: Arc<std::sync::Mutex<BTreeSet<(NodeId, NodeId)>>>,
    /// Runs the supervisors' restart timers.
    supervisor: NodeHandle,
}

/// Host `id`'s address: 10.0.0.`id`.
pub fn ip(id: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, id as u8))
}

/// Host `id`'s address with a port, as a client dials it: "10.0.0.`id`:`port`".
pub fn addr(id: u64, port: u16) -> String {
    format!("{}:{port}", ip(id))
}

impl Sim {
    /// No hosts yet. `seed` seeds what crashes do to disks.
    pub fn new(seed: u64) -> Sim {
        Sim {
            hosts: BTreeMap::new(),
            net_faults: BTreeMap::new(),
            crash_seed: seed,
            client_hosts: Default::default(),
            clogged: Default::default(),
            supervisor: Handle::current().create_node().name("supervisor").build(),
        }
    }

    /// Adds host `id` (from 1; at most 254) named `name`: `init` runs the
    /// host's process, at the start and again after every restart, given
    /// the host's [`HostEnv`]. Returns that environment.
    pub fn host<F, Fut>(&mut self, id: u64, name: impl Into<String>, init: F) -> HostEnv
    where
        F: Fn(HostEnv) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        assert!((1..=254).contains(&id), "host ids are 1..=254, not {id}");
        assert!(!self.hosts.contains_key(&id), "host {id} added twice");
        let env = HostEnv {
            id,
            ip: ip(id),
            disk: SimDir::new(),
            clock: Clock::new(),
            net: Net::simulated(self.crash_seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            supervisor: Supervisor {
                node: Default::default(),
                runner: self.supervisor.clone(),
                life: Default::default(),
            },
        };
        let e = env.clone();
        let name = name.into();
        crate::runner::name_host(&name, id);
        let handle = Handle::current()
            .create_node()
            .name(name)
            .ip(env.ip)
            .init(move || init(e.clone()))
            .build();
        *env.supervisor.node.lock().unwrap() = Some(handle.id());
        self.hosts.insert(
            id,
            Host {
                handle,
                env: env.clone(),
                down: false,
                paused: false,
            },
        );
        env
    }

    /// A client's host (address 10.0.1.`i`), to spawn a client task on. A
    /// client is not a fault target itself, but islands may include it.
    pub fn client(&self, i: u64) -> NodeHandle {
        let h = Handle::current()
            .create_node()
            .name(format!("client-{i}"))
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 1, i as u8)))
            .build();
        self.client_hosts.lock().unwrap().insert(i, h.id());
        h
    }

    /// Host ids, in order.
    pub fn ids(&self) -> Vec<u64> {
        self.hosts.keys().copied().collect()
    }

    pub fn get(&self, id: u64) -> &Host {
        &self.hosts[&id]
    }

    /// Host `id`'s clock (the nemesis jumps and skews it; so may a test).
    pub fn clock(&self, id: u64) -> &Clock {
        &self.hosts[&id].env.clock
    }

    /// Host `id`'s disk.
    pub fn disk(&self, id: u64) -> &SimDir {
        &self.hosts[&id].env.disk
    }

    fn madsim_id(&self, id: u64) -> madsim::task::NodeId {
        self.hosts[&id].handle.id()
    }

    /// Kills host `id` (its disk loses what was not synced; `torn_write`
    /// may keep part of one file's unsynced tail, which `corrupt` damages).
    pub fn crash(&mut self, id: u64, torn_write: bool, corrupt: bool) {
        self.crash_damaged(id, torn_write, corrupt, None)
    }

    /// [`Sim::crash`], and `damage` strikes one of the disk's synced writes
    /// while the host is down.
    pub fn crash_damaged(
        &mut self,
        id: u64,
        torn_write: bool,
        corrupt: bool,
        damage: Option<Damage>,
    ) {
        let n = self.hosts.get_mut(&id).expect("no such host");
        if !n.down {
            Handle::current().kill(n.handle.id());
            self.crash_seed = self
                .crash_seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1);
            n.env.disk.crash(CrashFaults {
                seed: self.crash_seed,
                torn_write,
                corrupt,
                damage,
            });
            n.down = true;
            n.env.supervisor.crashed(true);
        }
    }

    /// Restarts a crashed host: its process starts again from its disk.
    pub fn restart(&mut self, id: u64) {
        let n = self.hosts.get_mut(&id).expect("no such host");
        if n.down {
            Handle::current().restart(n.handle.id());
            n.down = false;
            n.paused = false;
            n.env.supervisor.crashed(false);
        }
    }

    /// Freezes host `id` (it keeps its state).
    pub fn pause(&mut self, id: u64) {
        let n = self.hosts.get_mut(&id).expect("no such host");
        if !n.down && !n.paused {
            Handle::current().pause(n.handle.id());
            n.paused = true;
        }
    }

    pub fn resume(&mut self, id: u64) {
        let n = self.hosts.get_mut(&id).expect("no such host");
        if n.paused {
            Handle::current().resume(n.handle.id());
            n.paused = false;
        }
    }

    /// A fault that cuts `node` off from every other host.
    pub fn isolation(&self, node: u64) -> Fault {
        let rest: Vec<u64> = self.hosts.keys().copied().filter(|&i| i != node).collect();
        Fault::Partition {
            groups: vec![vec![node], rest],
        }
    }

    /// A function that cuts a host off from every other host at once,
    /// without going through the nemesis (for a fault that must act inside
    /// a process's event, before its queued messages leave). The nemesis
    /// then starts the same cut as a part of the fault, which keeps it, or
    /// a crash of that host, which ends it.
    pub fn isolate_now(&self) -> impl Fn(u64) + Send + Sync + 'static {
        let ids: BTreeMap<u64, madsim::task::NodeId> = self
            .hosts
            .iter()
            .map(|(&i, n)| (i, n.handle.id()))
            .collect();
        let clogged = self.clogged.clone();
        move |node| {
            let net = NetSim::current();
            let mut clogged = clogged.lock().unwrap_or_else(|e| e.into_inner());
            for (&i, &m) in &ids {
                if i != node {
                    for link in [(ids[&node], m), (m, ids[&node])] {
                        net.clog_link(link.0, link.1);
                        clogged.insert(link);
                    }
                }
            }
        }
    }

    /// Starts part `part` of fault `fid` (part 0 is the scheduled fault,
    /// others are what a triggered fault does). Only the harness's own
    /// kinds act; a scenario's kinds are played by its plugin.
    pub fn start_part(&mut self, fid: usize, part: u32, fault: &Fault) {
        match fault {
            Fault::Crash {
                node,
                torn_write,
                corrupt,
                damage,
            } => {
                let damage = damage
                    .as_deref()
                    .map(|d| Damage::by_name(d).expect("a known kind of disk damage"));
                self.crash_damaged(*node, *torn_write, *corrupt, damage);
                // A cut of this host made by `isolate_now` (a fault that
                // crashes the host it cut inside its event) ends with the
                // crash; the network faults that are on keep theirs, and
                // other hosts' links are left as they are.
                self.set_links(Some(self.madsim_id(*node)));
            }
            Fault::Pause { node } => self.pause(*node),
            Fault::Island { node, slow_ppm, .. } => {
                self.hosts[node].env.clock.set_drift_ppm(-slow_ppm);
                self.net_faults.insert((fid, part), fault.clone());
                self.apply_network();
            }
            Fault::ClockJump { node, offset_ms } => {
                self.hosts[node].env.clock.jump(offset_ms * 1_000_000)
            }
            Fault::ClockDrift { node, ppm } => self.hosts[node].env.clock.set_drift_ppm(*ppm),
            Fault::DiskError { node, error } => {
                let f = IoFault::by_name(error).expect("a known disk error");
                self.hosts[node].env.disk.set_fault(f);
            }
            f if f.is_network() => {
                self.net_faults.insert((fid, part), fault.clone());
                self.apply_network();
            }
            _ => {}
        }
    }

    /// Ends part `part` of fault `fid`.
    pub fn end_part(&mut self, fid: usize, part: u32, fault: &Fault) {
        match fault {
            Fault::Crash { node, .. } => self.restart(*node),
            Fault::Pause { node } => self.resume(*node),
            Fault::ClockJump { node, offset_ms } => {
                self.hosts[node].env.clock.jump(-offset_ms * 1_000_000)
            }
            Fault::ClockDrift { node, .. } => self.hosts[node].env.clock.set_drift_ppm(0),
            Fault::DiskError { node, .. } => self.hosts[node].env.disk.clear_fault(),
            Fault::Island { node, .. } => {
                self.hosts[node].env.clock.set_drift_ppm(0);
                self.net_faults.remove(&(fid, part));
                self.apply_network();
            }
            f if f.is_network() => {
                self.net_faults.remove(&(fid, part));
                self.apply_network();
            }
            _ => {}
        }
    }

    /// Recomputes every link from the active network faults.
    pub fn refresh_network(&self) {
        self.apply_network();
    }

    fn apply_network(&self) {
        self.set_links(None);
    }

    /// Brings madsim's links to what the active network faults cut, and
    /// sets loss, latency and mangling; with `only`, just the links of that
    /// host (and nothing else).
    fn set_links(&self, only: Option<NodeId>) {
        let net = NetSim::current();
        let ids: Vec<u64> = self.hosts.keys().copied().collect();
        let hosts = self.client_hosts.lock().unwrap().clone();
        // The links the active faults cut; madsim's network is then brought
        // from the links clogged now to these (clogging a link and
        // unclogging it draw nothing, so only the set matters).
        // A host is never cut from itself (a partition whose groups share
        // a host, or a one-way fault from a host to itself, cuts nothing
        // there).
        let mut want: BTreeSet<(NodeId, NodeId)> = BTreeSet::new();
        let mut cut = |a: NodeId, b: NodeId| {
            if a != b {
                want.insert((a, b));
            }
        };
        let id = |h: u64| self.madsim_id(h);
        let mut loss: f64 = 0.0;
        let mut latency: Option<(u64, u64)> = None;
        let mut mangling = Mangling::default();
        for f in self.net_faults.values() {
            match f {
                Fault::Partition { groups } => {
                    for (i, g) in groups.iter().enumerate() {
                        for (j, h) in groups.iter().enumerate() {
                            if i != j {
                                for &a in g {
                                    for &b in h {
                                        cut(id(a), id(b));
                                    }
                                }
                            }
                        }
                    }
                }
                Fault::OneWay { from, to } => cut(id(*from), id(*to)),
                Fault::Bridge { left, right, .. } => {
                    for &a in left {
                        for &b in right {
                            cut(id(a), id(b));
                            cut(id(b), id(a));
                        }
                    }
                }
                Fault::Island { node, clients, .. } => {
                    for &b in &ids {
                        if b != *node {
                            cut(id(*node), id(b));
                            cut(id(b), id(*node));
                        }
                    }
                    for (c, &h) in &hosts {
                        for &b in &ids {
                            if (b == *node) != clients.contains(c) {
                                cut(h, id(b));
                                cut(id(b), h);
                            }
                        }
                    }
                }
                Fault::Loss { rate } => loss = loss.max(*rate),
                Fault::Reorder {
                    duplicate,
                    reorder,
                    max_delay_ms,
                } => {
                    mangling.duplicate = mangling.duplicate.max(*duplicate);
                    mangling.reorder = mangling.reorder.max(*reorder);
                    mangling.max_delay_ms = mangling.max_delay_ms.max(*max_delay_ms);
                }
                Fault::Latency { min_ms, max_ms } => {
                    let (lo, hi) = latency.unwrap_or((0, 0));
                    latency = Some((lo.max(*min_ms), hi.max(*max_ms)));
                }
                _ => {}
            }
        }
        let mut clogged = self.clogged.lock().unwrap_or_else(|e| e.into_inner());
        let mine = |l: &&(NodeId, NodeId)| only.is_none_or(|n| l.0 == n || l.1 == n);
        let open: Vec<_> = clogged.difference(&want).filter(mine).copied().collect();
        let close: Vec<_> = want.difference(&clogged).filter(mine).copied().collect();
        for (a, b) in open {
            net.unclog_link(a, b);
            clogged.remove(&(a, b));
        }
        for (a, b) in close {
            net.clog_link(a, b);
            clogged.insert((a, b));
        }
        drop(clogged);
        if only.is_some() {
            return;
        }
        for h in self.hosts.values() {
            h.env.net.set(mangling);
        }
        net.update_config(|c| {
            c.packet_loss_rate = loss;
            c.send_latency = match latency {
                Some((lo, hi)) => Duration::from_millis(lo)..Duration::from_millis(hi.max(lo + 1)),
                None => Duration::from_millis(1)..Duration::from_millis(10),
            };
        });
    }

    /// Ends every fault: restarts crashed hosts, resumes paused ones, heals
    /// the network, resets clocks' drift.
    pub fn heal_all(&mut self) {
        let handle = Handle::current();
        for n in self.hosts.values_mut() {
            if n.down {
                handle.restart(n.handle.id());
                n.env.supervisor.crashed(false);
            } else if n.paused {
                handle.resume(n.handle.id());
            }
            n.down = false;
            n.paused = false;
            n.env.clock.set_drift_ppm(0);
        }
        self.net_faults.clear();
        self.apply_network();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
    use std::sync::Arc;

    /// The supervisor's restart timers and the nemesis's crashes both start
    /// and stop a host: a timer must not start a process that a crash's
    /// end started meanwhile (madsim would run a second copy beside it,
    /// whose ports stay taken), nor one a crash fault holds down.
    #[madsim::test]
    async fn a_restart_timer_does_not_start_a_process_started_meanwhile() {
        let (starts, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let mut sim = Sim::new(1);
        let (s, r) = (starts.clone(), refused.clone());
        let env = sim.host(1, "h", move |h: HostEnv| {
            let (s, r) = (s.clone(), r.clone());
            async move {
                s.fetch_add(1, SeqCst);
                match madsim::net::Endpoint::bind((h.ip, 7000)).await {
                    Ok(_port) => std::future::pending::<()>().await,
                    Err(_) => {
                        r.fetch_add(1, SeqCst);
                    }
                }
            }
        });
        let ms = |n| tokio::time::sleep(Duration::from_millis(n));
        ms(100).await;
        assert_eq!(starts.load(SeqCst), 1);
        // The process fail-stops, to be started in 1 s; a crash fault
        // starts and ends meanwhile, and its end starts the process.
        env.supervisor.restart_after(Duration::from_secs(1));
        ms(100).await;
        sim.crash(1, false, false);
        ms(200).await;
        sim.restart(1);
        ms(2_000).await;
        assert_eq!(starts.load(SeqCst), 2, "the timer started it again");
        // A timer that fires while a crash fault holds the host down.
        env.supervisor.restart_after(Duration::from_millis(100));
        ms(10).await;
        sim.crash(1, false, false);
        ms(1_000).await;
        assert_eq!(starts.load(SeqCst), 2, "started during a crash fault");
        sim.restart(1);
        ms(100).await;
        assert_eq!(starts.load(SeqCst), 3);
        // Two requests of one process: one start.
        env.supervisor.restart_after(Duration::from_millis(100));
        env.supervisor.restart_after(Duration::from_millis(100));
        ms(1_000).await;
        assert_eq!(starts.load(SeqCst), 4, "two requests, two starts");
        assert_eq!(
            refused.load(SeqCst),
            0,
            "a port still held by an earlier copy"
        );
    }
    /// Which of three hosts hear each other while network faults start and
    /// end: `apply_network` changes only the links that differ, so what a
    /// fault cut must be restored when it ends, and what another active
    /// fault cuts must stay cut.
    #[madsim::test]
    async fn network_faults_cut_and_restore_exactly_their_links() {
        // heard[dst][src]: messages host dst received from host src.
        let heard: Arc<[[AtomicU64; 4]; 4]> = Arc::new(Default::default());
        let mut sim = Sim::new(1);
        for id in 1..=3u64 {
            let heard = heard.clone();
            sim.host(id, "h", move |h: HostEnv| {
                let heard = heard.clone();
                async move {
                    let ep = Arc::new(madsim::net::Endpoint::bind((h.ip, 7000)).await.unwrap());
                    let rx = ep.clone();
                    madsim::task::spawn(async move {
                        let mut buf = [0u8; 1];
                        while let Ok((_, from)) = rx.recv_from(1, &mut buf).await {
                            let IpAddr::V4(v4) = from.ip() else { continue };
                            heard[h.id as usize][v4.octets()[3] as usize].fetch_add(1, SeqCst);
                        }
                    });
                    loop {
                        for to in (1..=3u64).filter(|&t| t != h.id) {
                            let _ = ep.send_to((ip(to), 7000), 1, &[0]).await;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            });
        }
        // Which (src, dst) links carried a message during 300 ms, from
        // 50 ms on (messages sent before a change arrive up to 10 ms later).
        let links = || {
            let heard = heard.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let count = |d: usize, s: usize| heard[d][s].load(SeqCst);
                let before: Vec<u64> = (0..16).map(|i| count(i / 4, i % 4)).collect();
                tokio::time::sleep(Duration::from_millis(300)).await;
                let mut open = BTreeSet::new();
                for (i, b) in before.iter().enumerate() {
                    if count(i / 4, i % 4) > *b {
                        open.insert(((i % 4) as u64, (i / 4) as u64));
                    }
                }
                open
            }
        };
        let all: BTreeSet<(u64, u64)> = [(1, 2), (1, 3), (2, 1), (2, 3), (3, 1), (3, 2)].into();
        let without = |cut: &[(u64, u64)]| -> BTreeSet<(u64, u64)> {
            all.iter().filter(|l| !cut.contains(l)).copied().collect()
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(links().await, all);
        let partition = Fault::Partition {
            groups: vec![vec![1], vec![2, 3]],
        };
        sim.start_part(0, 0, &partition);
        assert_eq!(links().await, without(&[(1, 2), (1, 3), (2, 1), (3, 1)]));
        // A one-way cut starts, then the partition ends: only the one-way
        // cut stays.
        let one_way = Fault::OneWay { from: 2, to: 3 };
        sim.start_part(1, 0, &one_way);
        sim.end_part(0, 0, &partition);
        assert_eq!(links().await, without(&[(2, 3)]));
        // A cut made at once (outside the nemesis) is undone by the next
        // change of the faults, as before.
        (sim.isolate_now())(3);
        assert_eq!(links().await, without(&[(1, 3), (2, 3), (3, 1), (3, 2)]));
        sim.end_part(1, 0, &one_way);
        assert_eq!(links().await, all);
        // Groups that share a host: no host is cut from itself, and the
        // fault's end restores every link.
        let overlapping = Fault::Partition {
            groups: vec![vec![1, 2], vec![2, 3]],
        };
        sim.start_part(2, 0, &overlapping);
        assert_eq!(
            links().await,
            without(&[(1, 2), (1, 3), (2, 3), (2, 1), (3, 1), (3, 2)])
        );
        sim.end_part(2, 0, &overlapping);
        assert_eq!(links().await, all);
    }

    /// madsim (vendored, `vendor/madsim`) gives an ephemeral port as
    /// upstream's probe from port 1 does: the lowest free one.
    #[madsim::test]
    async fn an_ephemeral_port_is_the_lowest_free_one() {
        let bind = || madsim::net::Endpoint::bind("0.0.0.0:0");
        let port = |e: &madsim::net::Endpoint| e.local_addr().unwrap().port();
        let a = bind().await.unwrap();
        let b = bind().await.unwrap();
        let c = bind().await.unwrap();
        assert_eq!((port(&a), port(&b), port(&c)), (1, 2, 3));
        drop(b);
        let d = bind().await.unwrap();
        assert_eq!(port(&d), 2, "the freed port is taken again");
        let e = bind().await.unwrap();
        assert_eq!(port(&e), 4);
        // A port bound explicitly is skipped.
        let _f = madsim::net::Endpoint::bind("0.0.0.0:5").await.unwrap();
        drop(a);
        let h = bind().await.unwrap();
        assert_eq!(port(&h), 1);
        let g = bind().await.unwrap();
        assert_eq!(port(&g), 6);
        // Across the vendored search's 64-port words.
        let mut more = Vec::new();
        for want in 7..=140 {
            let e = bind().await.unwrap();
            assert_eq!(port(&e), want);
            more.push(e);
        }
        // Ports 64 and 100.
        more.remove(100 - 7);
        more.remove(64 - 7);
        let (x, y, z) = (
            bind().await.unwrap(),
            bind().await.unwrap(),
            bind().await.unwrap(),
        );
        assert_eq!((port(&x), port(&y), port(&z)), (64, 100, 141));
    }

    /// madsim's `Sleep` (vendored, `vendor/madsim`, change 4) arms one
    /// timer per deadline and disarms it when dropped, or polled with a new
    /// deadline after a reset: no stale
    /// timer wakes its task later for nothing. Upstream's armed a timer on
    /// every poll and never took one back, and this task was polled at 30
    /// and 50 ms too.
    #[madsim::test]
    async fn a_dropped_or_moved_sleep_wakes_no_one() {
        use std::{future::Future, pin::Pin};
        let start = madsim::time::Instant::now();
        let ms = |n| Duration::from_millis(n);
        let mut polls = Vec::new();
        // Polled once, then dropped.
        let mut dropped = Some(madsim::time::sleep(ms(50)));
        // Polled once, then reset to a later deadline and moved.
        let mut reset = Some(madsim::time::sleep(ms(30)));
        let mut moved = None;
        std::future::poll_fn(|cx| {
            // In whole milliseconds: madsim moves its clock on a little
            // (microseconds) as tasks run.
            polls.push(start.elapsed().as_millis());
            if let Some(mut d) = dropped.take() {
                assert!(Pin::new(&mut d).poll(cx).is_pending());
            }
            if let Some(mut r) = reset.take() {
                assert!(Pin::new(&mut r).poll(cx).is_pending());
                Pin::new(&mut r).reset(start + ms(100));
                moved = Some(Box::new(r));
            }
            // Polled again on every wake, after its move.
            let r = moved.as_mut().unwrap();
            Pin::new(&mut **r).poll(cx)
        })
        .await;
        assert_eq!(polls, [0, 100], "polled at start and at the deadline only");
    }

    /// The vendored madsim drops every task's future when its runtime goes
    /// (change 6): a task's future held its own waker, so a task that never
    /// finished kept itself, and all it owned, alive after the run. Here a
    /// task sleeps past the run's end holding a channel's sender, another
    /// waits on that channel, and a third is on a paused node. With
    /// upstream's madsim none of the three was dropped.
    #[test]
    fn a_dropped_runtime_drops_the_tasks_it_left() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Flag(Arc<AtomicUsize>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicUsize::new(0));
        let rt = madsim::runtime::Runtime::new();
        let d = dropped.clone();
        rt.block_on(async move {
            let h = madsim::runtime::Handle::current();
            let node = h.create_node().name("a").build();
            let paused = h.create_node().name("b").build();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let (f1, f2, f3) = (Flag(d.clone()), Flag(d.clone()), Flag(d.clone()));
            node.spawn(async move {
                let _f = (f1, tx);
                madsim::time::sleep(Duration::from_secs(1_000_000)).await;
            });
            node.spawn(async move {
                let _f = f2;
                let _ = rx.await;
            });
            paused.spawn(async move {
                let _f = f3;
                madsim::time::sleep(Duration::from_millis(10)).await;
            });
            h.pause(paused.id());
            madsim::time::sleep(Duration::from_secs(1)).await;
            assert_eq!(d.load(Ordering::SeqCst), 0, "every task still runs");
        });
        drop(rt);
        assert_eq!(dropped.load(Ordering::SeqCst), 3, "tasks left undropped");
    }
}
