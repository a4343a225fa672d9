//! A Raft KV cluster inside madsim, and the nemesis's hands on it: crash and
//! restart (losing unsynced writes), pause, network cuts, loss, latency and
//! per-node clocks. Each node has its own simulated disk ([`SimDir`]) and
//! clock ([`Clock`]), both of which outlive the node's restarts.
//!
//! Network faults are kept as a set of active faults; whenever one starts
//! or ends, every link's state is recomputed from the set, so overlapping
//! faults heal correctly.

use crate::recorder::Recorder;
use crate::schedule::Fault;
use bookstore::bugs::Bugs;
use bookstore::client::{ClientOptions, KvClient};
use bookstore::clock::Clock;
use bookstore::node::{serve, NodeConfig};
use madsim::net::NetSim;
use madsim::runtime::{Handle, NodeHandle};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;
use storage::{CrashFaults, SimDir};

pub const PORT: u16 = 7000;

pub struct SimNode {
    pub handle: NodeHandle,
    pub disk: SimDir,
    pub clock: Clock,
    pub down: bool,
    pub paused: bool,
}

pub struct SimCluster {
    pub nodes: BTreeMap<u64, SimNode>,
    pub peers: BTreeMap<u64, String>,
    recorder: Recorder,
    /// Active network faults by (fault id, part): part 0 is the fault
    /// itself, others what a triggered fault did (see `nemesis`).
    net_faults: BTreeMap<(usize, u32), Fault>,
    crash_seed: u64,
    /// Client hosts by client number (for partitions that include clients).
    client_hosts: std::sync::Mutex<BTreeMap<u64, madsim::task::NodeId>>,
}

pub fn node_ip(id: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, id as u8))
}

impl SimCluster {
    /// One Raft KV group of `n` nodes (ids 1..=n).
    pub fn start(n: u64, bugs: Bugs, recorder: Recorder, seed: u64) -> SimCluster {
        Self::start_with(
            n,
            bugs,
            recorder,
            seed,
            crate::schedule::default_max_batch(),
        )
    }

    /// Like [`SimCluster::start`], with at most `max_batch` entries per Append.
    pub fn start_with(
        n: u64,
        bugs: Bugs,
        recorder: Recorder,
        seed: u64,
        max_batch: usize,
    ) -> SimCluster {
        let mut c = SimCluster::empty(recorder, seed);
        let ids: Vec<u64> = (1..=n).collect();
        c.peers = c.add_kv_group(&ids, bugs, seed, max_batch);
        c
    }

    /// No nodes yet: add KV groups and processes.
    pub fn empty(recorder: Recorder, seed: u64) -> SimCluster {
        SimCluster {
            nodes: BTreeMap::new(),
            peers: BTreeMap::new(),
            recorder,
            net_faults: BTreeMap::new(),
            crash_seed: seed,
            client_hosts: Default::default(),
        }
    }

    /// Adds one Raft KV group on the hosts with these (cluster-wide) ids;
    /// inside the group its replicas are numbered 1, 2, ... Returns the
    /// group's peer map (group-local id -> address), what a client needs.
    pub fn add_kv_group(
        &mut self,
        ids: &[u64],
        bugs: Bugs,
        seed: u64,
        max_batch: usize,
    ) -> BTreeMap<u64, String> {
        let handle = Handle::current();
        let peers: BTreeMap<u64, String> = ids
            .iter()
            .enumerate()
            .map(|(i, &g)| (i as u64 + 1, format!("{}:{PORT}", node_ip(g))))
            .collect();
        let group = ids[0];
        for (i, &global) in ids.iter().enumerate() {
            let id = i as u64 + 1;
            self.recorder.set_group(global, group);
            let disk = SimDir::new();
            let clock = Clock::new();
            let mut cfg = NodeConfig::new(id, peers.clone(), seed.wrapping_add(global));
            cfg.bugs = bugs;
            cfg.snapshot_every = 200;
            cfg.rpc_timeout = Duration::from_millis(200);
            cfg.max_batch = max_batch;
            // Events carry the cluster-wide id.
            let rec = self.recorder.clone();
            let offset = global - id;
            let sink: bookstore::node::EventSink =
                Arc::new(move |local, ev| rec.node_event(local + offset, &ev));
            let (d, c) = (disk.clone(), clock.clone());
            let node = handle
                .create_node()
                .name(format!("n{global}"))
                .ip(node_ip(global))
                .init(move || {
                    let (cfg, d, c, sink) = (cfg.clone(), d.clone(), c.clone(), sink.clone());
                    async move {
                        if let Err(e) =
                            serve(cfg, Arc::new(d), c, Some(sink), std::future::pending()).await
                        {
                            panic!("node {global} stopped: {e:#}");
                        }
                    }
                })
                .build();
            self.nodes.insert(
                global,
                SimNode {
                    handle: node,
                    disk,
                    clock,
                    down: false,
                    paused: false,
                },
            );
        }
        peers
    }

    /// Adds a stateless process on host `id` (no disk): `init` runs at the
    /// start and again after every restart.
    pub fn add_process<F, Fut>(&mut self, id: u64, name: &str, init: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let node = Handle::current()
            .create_node()
            .name(name)
            .ip(node_ip(id))
            .init(init)
            .build();
        self.nodes.insert(
            id,
            SimNode {
                handle: node,
                disk: SimDir::new(),
                clock: Clock::new(),
                down: false,
                paused: false,
            },
        );
    }

    /// A client running on its own simulated host.
    pub fn client_host(&self, i: u64) -> NodeHandle {
        let h = Handle::current()
            .create_node()
            .name(format!("client-{i}"))
            .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 1, i as u8)))
            .build();
        self.client_hosts.lock().unwrap().insert(i, h.id());
        h
    }

    pub fn client(&self, client_id: u64, opts: ClientOptions) -> KvClient {
        KvClient::new(self.peers.clone(), client_id, opts)
    }

    fn madsim_id(&self, id: u64) -> madsim::task::NodeId {
        self.nodes[&id].handle.id()
    }

    /// Starts fault `fid`; returns a description of what was done.
    pub fn start_fault(&mut self, fid: usize, fault: &Fault) -> Fault {
        self.start_part(fid, 0, fault)
    }

    /// Ends fault `fid` (started as `fault`, as returned by `start_fault`).
    pub fn end_fault(&mut self, fid: usize, fault: &Fault) {
        self.end_part(fid, 0, fault)
    }

    /// The node that most recently became leader of the highest term, as
    /// the nodes' events tell.
    pub fn leader(&self) -> Option<u64> {
        self.recorder.leader()
    }

    /// Cuts `node` off from every other node.
    pub fn isolation(&self, node: u64) -> Fault {
        let rest: Vec<u64> = self.nodes.keys().copied().filter(|&i| i != node).collect();
        Fault::Partition {
            groups: vec![vec![node], rest],
        }
    }

    /// A function that cuts a node off from every other node at once,
    /// without going through the nemesis (for a fault that must act inside
    /// a node's event, before its queued messages leave). The nemesis then
    /// starts the same cut as a part of the fault, which keeps it.
    pub fn isolate_now(&self) -> impl Fn(u64) + Send + Sync + 'static {
        let ids: BTreeMap<u64, madsim::task::NodeId> = self
            .nodes
            .iter()
            .map(|(&i, n)| (i, n.handle.id()))
            .collect();
        move |node| {
            let net = NetSim::current();
            for (&i, &m) in &ids {
                if i != node {
                    net.clog_link(ids[&node], m);
                    net.clog_link(m, ids[&node]);
                }
            }
        }
    }

    /// Starts part `part` of fault `fid` (part 0 is the scheduled fault,
    /// others are what a triggered fault does); returns what was done.
    pub fn start_part(&mut self, fid: usize, part: u32, fault: &Fault) -> Fault {
        let handle = Handle::current();
        match fault {
            Fault::Crash { node, torn_write } => {
                let n = self.nodes.get_mut(node).unwrap();
                if !n.down {
                    handle.kill(n.handle.id());
                    self.crash_seed = self
                        .crash_seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1);
                    n.disk.crash(CrashFaults {
                        seed: self.crash_seed,
                        torn_write: *torn_write,
                        corrupt: false,
                    });
                    n.down = true;
                }
                fault.clone()
            }
            Fault::Pause { node } => {
                let n = self.nodes.get_mut(node).unwrap();
                if !n.down && !n.paused {
                    handle.pause(n.handle.id());
                    n.paused = true;
                }
                fault.clone()
            }
            Fault::PauseLeader => match self.recorder.leader() {
                Some(l) => self.start_part(fid, part, &Fault::Pause { node: l }),
                None => fault.clone(),
            },
            // The nemesis crashes the voter; here only the leader.
            Fault::CrashVoter { torn_write, .. } => match self.recorder.leader() {
                Some(l) => self.start_part(
                    fid,
                    part,
                    &Fault::Crash {
                        node: l,
                        torn_write: *torn_write,
                    },
                ),
                None => fault.clone(),
            },
            // The nemesis isolates leaders one by one (as Partition parts).
            Fault::LeaderChurn { .. } => fault.clone(),
            Fault::LeaderIsland { clients, slow_ppm } => match self.recorder.leader() {
                Some(l) => self.start_part(
                    fid,
                    part,
                    &Fault::Island {
                        node: l,
                        clients: clients.clone(),
                        slow_ppm: *slow_ppm,
                    },
                ),
                None => fault.clone(),
            },
            Fault::Island { node, slow_ppm, .. } => {
                self.nodes[node].clock.set_drift_ppm(-slow_ppm);
                self.net_faults.insert((fid, part), fault.clone());
                self.apply_network();
                fault.clone()
            }
            Fault::IsolateLeader => {
                let resolved = match self.recorder.leader() {
                    Some(l) => self.isolation(l),
                    None => Fault::Partition { groups: vec![] },
                };
                self.net_faults.insert((fid, part), resolved.clone());
                self.apply_network();
                resolved
            }
            Fault::Partition { .. }
            | Fault::OneWay { .. }
            | Fault::Bridge { .. }
            | Fault::Loss { .. }
            | Fault::Latency { .. } => {
                self.net_faults.insert((fid, part), fault.clone());
                self.apply_network();
                fault.clone()
            }
            Fault::ClockJump { node, offset_ms } => {
                self.nodes[node].clock.jump(offset_ms * 1_000_000);
                fault.clone()
            }
            Fault::ClockDrift { node, ppm } => {
                self.nodes[node].clock.set_drift_ppm(*ppm);
                fault.clone()
            }
        }
    }

    /// Ends part `part` of fault `fid` (started as `fault`, as returned by
    /// `start_part`).
    pub fn end_part(&mut self, fid: usize, part: u32, fault: &Fault) {
        let handle = Handle::current();
        match fault {
            Fault::Crash { node, .. } => {
                let n = self.nodes.get_mut(node).unwrap();
                if n.down {
                    handle.restart(n.handle.id());
                    n.down = false;
                    n.paused = false;
                }
            }
            Fault::Pause { node } => {
                let n = self.nodes.get_mut(node).unwrap();
                if n.paused {
                    handle.resume(n.handle.id());
                    n.paused = false;
                }
            }
            Fault::ClockJump { node, offset_ms } => {
                self.nodes[node].clock.jump(-offset_ms * 1_000_000)
            }
            Fault::ClockDrift { node, .. } => self.nodes[node].clock.set_drift_ppm(0),
            // Not started (no leader), or only a window for triggered parts.
            Fault::PauseLeader
            | Fault::CrashVoter { .. }
            | Fault::LeaderChurn { .. }
            | Fault::LeaderIsland { .. } => {}
            Fault::Island { node, .. } => {
                self.nodes[node].clock.set_drift_ppm(0);
                self.net_faults.remove(&(fid, part));
                self.apply_network();
            }
            _ => {
                self.net_faults.remove(&(fid, part));
                self.apply_network();
            }
        }
    }

    /// Recomputes every link from the active network faults.
    pub fn refresh_network(&self) {
        self.apply_network();
    }

    fn apply_network(&self) {
        let net = NetSim::current();
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for &a in &ids {
            for &b in &ids {
                if a != b {
                    net.unclog_link(self.madsim_id(a), self.madsim_id(b));
                }
            }
        }
        let hosts = self.client_hosts.lock().unwrap().clone();
        for &h in hosts.values() {
            for &a in &ids {
                net.unclog_link(h, self.madsim_id(a));
                net.unclog_link(self.madsim_id(a), h);
            }
        }
        let cut = |a: u64, b: u64| net.clog_link(self.madsim_id(a), self.madsim_id(b));
        let mut loss: f64 = 0.0;
        let mut latency: Option<(u64, u64)> = None;
        for f in self.net_faults.values() {
            match f {
                Fault::Partition { groups } => {
                    for (i, g) in groups.iter().enumerate() {
                        for (j, h) in groups.iter().enumerate() {
                            if i != j {
                                for &a in g {
                                    for &b in h {
                                        cut(a, b);
                                    }
                                }
                            }
                        }
                    }
                }
                Fault::OneWay { from, to } => cut(*from, *to),
                Fault::Bridge { left, right, .. } => {
                    for &a in left {
                        for &b in right {
                            cut(a, b);
                            cut(b, a);
                        }
                    }
                }
                Fault::Island { node, clients, .. } => {
                    for &b in &ids {
                        if b != *node {
                            cut(*node, b);
                            cut(b, *node);
                        }
                    }
                    for (c, &h) in &hosts {
                        for &b in &ids {
                            if (b == *node) != clients.contains(c) {
                                net.clog_link(h, self.madsim_id(b));
                                net.clog_link(self.madsim_id(b), h);
                            }
                        }
                    }
                }
                Fault::Loss { rate } => loss = loss.max(*rate),
                Fault::Latency { min_ms, max_ms } => {
                    let (lo, hi) = latency.unwrap_or((0, 0));
                    latency = Some((lo.max(*min_ms), hi.max(*max_ms)));
                }
                _ => {}
            }
        }
        net.update_config(|c| {
            c.packet_loss_rate = loss;
            c.send_latency = match latency {
                Some((lo, hi)) => Duration::from_millis(lo)..Duration::from_millis(hi.max(lo + 1)),
                None => Duration::from_millis(1)..Duration::from_millis(10),
            };
        });
    }

    /// Ends every fault: restarts crashed nodes, resumes paused ones, heals
    /// the network, resets clocks' drift.
    pub fn heal_all(&mut self) {
        let handle = Handle::current();
        for n in self.nodes.values_mut() {
            if n.down {
                handle.restart(n.handle.id());
            } else if n.paused {
                handle.resume(n.handle.id());
            }
            n.down = false;
            n.paused = false;
            n.clock.set_drift_ppm(0);
        }
        self.net_faults.clear();
        self.apply_network();
    }
}
