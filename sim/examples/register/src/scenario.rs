//! The scenario: the register on host 1 under crashes, pauses, loss,
//! latency and clock faults; three clients write and read it; the history
//! must be linearizable (the checker's register model, initial value 0).
use crate::pb::{register_client::RegisterClient as Client, Empty, Value};
use checker::{history::History, ModelKind};
use harness::recorder::{Completion, Recorder};
use harness::scenario::{RunCtx, RunFuture, Scenario, Verdicts};
use harness::{nemesis, schedule::FaultSelection, schedule::Schedule, sim::Sim};
use serde_json::{json, Value::Null};
use std::{sync::Arc, time::Duration};
use tonic::{transport::Channel, Status};

const KINDS: [&str; 5] = ["crash", "pause", "loss", "latency", "clock"];
pub struct RegisterScenario;

/// One call on a fresh connection, with a 500 ms deadline.
async fn call<T>(op: impl AsyncFnOnce(Client<Channel>) -> Result<T, Status>) -> Result<T, String> {
    let once = async {
        let c = Client::connect(format!("http://{}", harness::sim::addr(1, 7000))).await;
        op(c.map_err(|e| e.to_string())?)
            .await
            .map_err(|e| e.to_string())
    };
    tokio::time::timeout(Duration::from_millis(500), once)
        .await
        .unwrap_or(Err("timed out".into()))
}

/// 150 operations, writes and reads in turn, 50 ms apart, or fewer: a
/// client stops after the schedule's `ops_per_client` operations or at the
/// end of its workload phase (the shrinker lowers both).
async fn client(p: u64, rec: Recorder, ops: u64, phase: Duration) {
    let end = tokio::time::Instant::now() + phase;
    for i in 0..150u64.min(ops) {
        if tokio::time::Instant::now() >= end {
            break;
        }
        let v = (p * 1_000 + i) as i64;
        if i % 2 == 0 {
            let w = async { call(async |mut c| c.write(Value { value: v }).await).await };
            let done = async { Completion::of(w.await.map(|_| json!(v)), json!(v), false) };
            rec.op(p, "write", None, json!(v), done).await;
        } else {
            let r = async { call(async |mut c| c.read(Empty {}).await).await };
            let done =
                async { Completion::of(r.await.map(|r| json!(r.get_ref().value)), Null, true) };
            rec.op(p, "read", None, Null, done).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Scenario for RegisterScenario {
    fn name(&self) -> &'static str {
        "register"
    }
    fn about(&self) -> &'static str {
        "a tonic register on one host, three clients"
    }
    fn fault_kinds(&self) -> Vec<&'static str> {
        KINDS.to_vec()
    }
    fn bugs(&self) -> Vec<&'static str> {
        vec!["ack-before-sync"]
    }
    fn generate(&self, seed: u64, bug: Option<&str>, faults: &FaultSelection) -> Schedule {
        let mut s = Schedule::draw("register", seed, bug, &KINDS, faults, 1, 10_000);
        s.clients = 3;
        s
    }
    fn run<'a>(&'a self, s: &'a Schedule, ctx: RunCtx) -> RunFuture<'a> {
        Box::pin(async move {
            let (mut sim, bug) = (Sim::new(s.seed), s.bug.is_some());
            sim.host(1, "register", move |h| {
                crate::serve(Arc::new(h.disk), h.clock, (h.ip, 7000).into(), bug)
            });
            let phase = Duration::from_millis(s.duration_ms);
            let spawn = |p| {
                sim.client(p)
                    .spawn(client(p, ctx.rec.clone(), s.ops_per_client, phase))
            };
            let clients: Vec<_> = (1..=s.clients).map(spawn).collect();
            nemesis::play(&mut sim, &ctx, &s.faults, s.duration_ms).await;
            sim.heal_all();
            for c in clients {
                c.await.expect("a client panicked");
            }
            Vec::new() // no liveness check
        })
    }
    fn check(&self, _: &Schedule, history: &History) -> Verdicts {
        Verdicts::linearizability(history, ModelKind::Register, json!(0))
    }
}
