//! The order executors: replicas that elect a leader, and the leader takes
//! approved orders from the queue and executes each as a two-phase commit
//! over the books database (stock) and the payment service (money).
//!
//! **Leadership** is a lease in the state group: `exec/leader` holds the
//! leader's id, the end of its lease (its own wall clock) and its fencing
//! token; `exec/token` the last token given. A replica takes the lease when
//! it is absent or expired (by its own clock), with the next token, and
//! the leader renews it every [`ExecutorConfig::renew_every`]. The lease
//! alone is not safe — a leader paused, partitioned, or with a slow clock
//! may still believe it leads after another took over — so every side
//! effect carries the token and is refused below the highest one seen: the
//! queue's dequeue and acknowledgement (`queue/fence`), both participants'
//! prepare, commit and abort (`fence` in their groups), and the
//! coordinator's decision log (compared with `exec/token`).
//!
//! **Polling** (only the leader) takes up to
//! [`ExecutorConfig::concurrency`] orders at once (one transaction leases
//! them all) and executes them concurrently; after an empty poll the pause grows by
//! [`ExecutorConfig::poll_step`] (additive increase) up to
//! [`ExecutorConfig::poll_max`]; after an order it halves (multiplicative
//! decrease) down to [`ExecutorConfig::poll_min`].
//!
//! **Two-phase commit** (the leader coordinates), presumed abort: an
//! order's transaction is an *attempt* `<order>#<n>` at the participants,
//! and the decision log `exec/tx/<order>` holds the current attempt. It
//! is created `preparing` (attempt 1, status `executing`); both
//! participants prepare (take and hold the stock, charge the card's
//! account); the decision, `committed` if both voted yes, else `aborted`,
//! is written to the log before either participant hears it; then both
//! commit or both abort; then the log says `done` and the queue item is
//! acknowledged with the order's final status (`executed`, or `failed` with
//! the reason).
//!
//! **A new leader** first tries to finish its predecessors' work (what it
//! cannot finish then is finished when the order's queue item comes back): it delivers
//! every logged decision that is not done, and presumes abort for every
//! attempt left `preparing` (since a decision is logged before anyone
//! hears it, no participant can have committed an undecided attempt): the
//! attempt is logged `aborted` (with `retry`), both participants abort it,
//! and the log moves to attempt n+1, which is prepared when the order's
//! queue item comes back (the old leader's queue lease expires). So an
//! order is executed at most once (only the log's current attempt can be
//! decided, and only once: every write to the log compares what was read),
//! and a dequeued order whose executor dies is executed by the next
//! leader. Every write to the log is also fenced by `exec/token`, and the
//! participants refuse a token below the highest they have seen, so an
//! old leader's late calls change nothing.
//!
//! The lease is renewed by its own loop while orders are executed, so a
//! long recovery or a slow batch does not cost the leadership.

use super::queue::{self, Leased, OrderStatus};
use super::{Topology, WallClock};
use crate::client::{ClientError, ClientOptions};
use crate::kv::cmd;
use crate::shop::rpc::Replicas;
use crate::tartu_pb as pb;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tonic::Status;

/// How an executor replica behaves.
#[derive(Clone)]
pub struct ExecutorConfig {
    pub id: u64,
    pub topology: Topology,
    pub wall: WallClock,
    /// Length of the leader's lease (on its clock).
    pub lease: Duration,
    /// How often the leader renews its lease (and others look for an
    /// expired one).
    pub renew_every: Duration,
    /// A leader starts no new poll (or recovery step) this long before
    /// its lease ends; calls already under way go on, and the fencing
    /// tokens make them harmless once another leader has acted.
    pub margin: Duration,
    pub poll_min: Duration,
    pub poll_max: Duration,
    pub poll_step: Duration,
    /// How long a dequeued order stays with the leader before the queue
    /// gives it out again.
    pub queue_lease: Duration,
    pub rpc_timeout: Duration,
    /// How many dequeued orders the leader executes at once.
    pub concurrency: usize,
    pub kv_options: ClientOptions,
    pub bugs: crate::bugs::Bugs,
    /// Called with the token when this replica becomes leader (the
    /// simulator aims its executor faults with it).
    pub on_lead: Option<std::sync::Arc<dyn Fn(u64) + Send + Sync>>,
}

impl ExecutorConfig {
    /// The documented defaults: lease 3 s renewed every 500 ms, stop 500 ms
    /// before it ends; polls 20 ms to 1 s in steps of 100 ms; up to 32
    /// orders dequeued and executed at once; queue lease 10 s.
    pub fn new(id: u64, topology: Topology, wall: WallClock) -> ExecutorConfig {
        ExecutorConfig {
            id,
            topology,
            wall,
            lease: Duration::from_millis(3000),
            renew_every: Duration::from_millis(500),
            margin: Duration::from_millis(500),
            poll_min: Duration::from_millis(20),
            poll_max: Duration::from_millis(1000),
            poll_step: Duration::from_millis(100),
            queue_lease: Duration::from_secs(10),
            rpc_timeout: Duration::from_secs(2),
            concurrency: 32,
            kv_options: ClientOptions::default(),
            bugs: Default::default(),
            on_lead: None,
        }
    }
}

/// The leader's lease as stored in `exec/leader`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderLease {
    pub owner: u64,
    pub until_ms: u64,
    pub token: u64,
}

/// One order's entry in the decision log `exec/tx/<order>`: its current
/// attempt's transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxRecord {
    /// preparing, committed, aborted, done
    pub state: String,
    /// The decision (for done: committed or aborted).
    #[serde(default)]
    pub decision: String,
    #[serde(default)]
    pub reason: String,
    /// The token of the leader that started this attempt (kept when it
    /// is decided and done; a new leader presumes abort for a `preparing`
    /// attempt with a lower token).
    pub token: u64,
    /// The attempt (transaction `<order>#<attempt>` at the participants;
    /// the bare order id for attempt 0, written before attempts existed).
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// An abort of the attempt only (its coordinator was replaced before
    /// it decided): the order goes on with the next attempt.
    #[serde(default)]
    pub retry: bool,
}

/// A record written before attempts existed is attempt 0, whose
/// transaction at the participants is the bare order id.
fn first_attempt() -> u32 {
    0
}

impl TxRecord {
    fn preparing(attempt: u32, token: u64) -> TxRecord {
        TxRecord {
            state: "preparing".into(),
            decision: String::new(),
            reason: String::new(),
            token,
            attempt,
            retry: false,
        }
    }
}

/// Why an executor stopped acting.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("lost leadership: {0}")]
    Deposed(String),
    #[error("{0}")]
    Unavailable(String),
}

impl From<ClientError> for ExecError {
    fn from(e: ClientError) -> ExecError {
        let m = e.to_string();
        if m.contains("stale fencing token") {
            ExecError::Deposed(m)
        } else {
            ExecError::Unavailable(m)
        }
    }
}

fn status_error(s: Status) -> ExecError {
    if s.code() == tonic::Code::FailedPrecondition && s.message().contains("stale fencing token") {
        ExecError::Deposed(s.message().to_string())
    } else {
        ExecError::Unavailable(format!("{:?}: {}", s.code(), s.message()))
    }
}

/// An order's status as its queue item describes it (when the stored one
/// cannot be read).
fn queued_status(item: &Leased) -> OrderStatus {
    OrderStatus {
        order_id: item.order.order_id.clone(),
        status: "queued".into(),
        reason: None,
        shipping_method: item.order.shipping.name().into(),
        priority: item.order.shipping.priority(),
        amount_cents: item.order.amount_cents,
    }
}

/// The order's final status after the decision `rec`.
fn decided(mut st: OrderStatus, rec: &TxRecord) -> OrderStatus {
    if rec.decision == "committed" {
        st.status = "executed".into();
        st.reason = None;
    } else {
        st.status = "failed".into();
        st.reason = Some(rec.reason.clone());
    }
    st
}

fn tx_key(order: &str) -> String {
    format!("exec/tx/{order}")
}

fn open_key(order: &str) -> String {
    format!("exec/open/{order}")
}

pub struct Executor {
    cfg: ExecutorConfig,
    /// Clients of the state group (one per concurrent call).
    store: crate::shop::Store,
    books: Replicas,
    payment: Replicas,
    /// My lease while I lead (renewed while orders are executed).
    lease: std::sync::Mutex<Option<LeaderLease>>,
    /// The token of a leadership whose recovery is still to be done.
    recovery: std::sync::Mutex<Option<u64>>,
}

impl Executor {
    pub fn new(cfg: ExecutorConfig) -> Executor {
        let clock = cfg.wall.clock.clone();
        let store = crate::shop::Store::with_clock(
            cfg.topology.state_kv.clone(),
            cfg.kv_options.clone(),
            clock.clone(),
        );
        Executor {
            books: Replicas::with_clock(cfg.topology.books.clone(), cfg.rpc_timeout, clock.clone()),
            payment: Replicas::with_clock(cfg.topology.payment.clone(), cfg.rpc_timeout, clock),
            store,
            lease: Default::default(),
            recovery: Default::default(),
            cfg,
        }
    }

    fn now(&self) -> u64 {
        self.cfg.wall.now_ms()
    }

    /// Do I still lead, by my clock (with the margin)?
    fn leading(&self) -> Option<u64> {
        let l = self.lease.lock().unwrap().clone()?;
        (self.now() + self.cfg.margin.as_millis() as u64 <= l.until_ms).then_some(l.token)
    }

    /// Takes or renews the lease. Returns the new token when this replica
    /// has just become leader (it must then finish its predecessors'
    /// transactions).
    async fn campaign(&self) -> Result<Option<u64>, ClientError> {
        let mine = self.lease.lock().unwrap().as_ref().map(|m| m.token);
        let got = self
            .store
            .client()
            .read(&["exec/leader", "exec/token"])
            .await?;
        let now = self.now();
        let current: Option<LeaderLease> =
            got[0].as_deref().and_then(|v| serde_json::from_str(v).ok());
        let token: u64 = got[1].as_deref().and_then(|t| t.parse().ok()).unwrap_or(0);
        let until = now + self.cfg.lease.as_millis() as u64;
        let (new, fresh) = match &current {
            Some(l) if l.owner == self.cfg.id && Some(l.token) == mine => (
                LeaderLease {
                    until_ms: until,
                    ..l.clone()
                },
                false,
            ),
            Some(l) if l.until_ms > now => {
                self.depose(None);
                return Ok(None);
            }
            _ => (
                LeaderLease {
                    owner: self.cfg.id,
                    until_ms: until,
                    token: token + 1,
                },
                true,
            ),
        };
        let r = self
            .store
            .client()
            .txn(
                vec![
                    cmd::compare("exec/leader", got[0].as_deref()),
                    cmd::compare("exec/token", got[1].as_deref()),
                ],
                vec![
                    cmd::op_put(
                        "exec/leader",
                        &serde_json::to_string(&new).expect("serialises"),
                    ),
                    cmd::op_put("exec/token", &new.token.to_string()),
                ],
                vec![],
            )
            .await?;
        if r.succeeded {
            if fresh {
                tracing::info!("executor {} leads with token {}", self.cfg.id, new.token);
                if let Some(f) = &self.cfg.on_lead {
                    f(new.token);
                }
            }
            let token = new.token;
            *self.lease.lock().unwrap() = Some(new);
            Ok(fresh.then_some(token))
        } else {
            self.depose(None);
            Ok(None)
        }
    }

    /// Forgets the lease (`token`: only if it is still that one, so that
    /// a late error of an old leadership does not end a newer one).
    fn depose(&self, token: Option<u64>) {
        let mut l = self.lease.lock().unwrap();
        if token.is_none() || l.as_ref().map(|l| l.token) == token {
            *l = None;
        }
    }

    /// Runs until `shutdown`: one loop takes and renews the lease, the
    /// other (while this replica leads) first tries to finish its
    /// predecessors' transactions (what it cannot finish now, the queue
    /// brings back), then polls the queue and executes orders.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let clock = self.cfg.wall.clock.clone();
        let campaigns = async {
            loop {
                match self.campaign().await {
                    Ok(Some(token)) => *self.recovery.lock().unwrap() = Some(token),
                    Ok(None) => {}
                    Err(e) => tracing::debug!("executor {}: campaign: {e}", self.cfg.id),
                }
                clock.sleep(self.cfg.renew_every).await;
            }
        };
        let work = async {
            let mut poll = self.cfg.poll_min;
            loop {
                let pause = match self.leading() {
                    None => self.cfg.renew_every / 5,
                    Some(token) => {
                        let recover = *self.recovery.lock().unwrap() == Some(token);
                        let r = if recover {
                            let r = self.recover(token).await;
                            if !matches!(r, Err(ExecError::Deposed(_))) {
                                // Done, or not possible now: every order it
                                // could not finish comes back from the queue.
                                let mut pending = self.recovery.lock().unwrap();
                                if *pending == Some(token) {
                                    *pending = None;
                                }
                            }
                            r.map(|()| true)
                        } else {
                            self.step(token).await
                        };
                        match r {
                            Ok(true) => {
                                poll = (poll / 2).max(self.cfg.poll_min);
                                Duration::ZERO
                            }
                            Ok(false) => {
                                poll = (poll + self.cfg.poll_step).min(self.cfg.poll_max);
                                poll
                            }
                            Err(e) => {
                                tracing::warn!(
                                    "executor {}{}: {e}",
                                    self.cfg.id,
                                    if recover { ": recovery" } else { "" }
                                );
                                if matches!(e, ExecError::Deposed(_)) {
                                    self.depose(Some(token));
                                }
                                self.cfg.renew_every
                            }
                        }
                    }
                };
                clock.sleep(pause).await;
            }
        };
        tokio::select! {
            biased; // no random branch order: the same seed, the same run
            _ = &mut shutdown => {}
            _ = campaigns => {}
            _ = work => {}
        }
    }

    /// One poll: takes an order from the queue and executes it. Ok(false)
    /// if the queue had nothing to give.
    async fn step(&self, token: u64) -> Result<bool, ExecError> {
        let owner = format!("executor-{}", self.cfg.id);
        let (now, lease) = (self.now(), self.cfg.queue_lease.as_millis() as u64);
        let items = queue::dequeue_many(
            &mut self.store.client(),
            &owner,
            token,
            now,
            lease,
            self.cfg.concurrency,
        )
        .await?;
        if items.is_empty() {
            return Ok(false);
        }
        let results =
            futures_util::future::join_all(items.iter().map(|i| self.execute(token, i))).await;
        for r in results {
            r?;
        }
        Ok(true)
    }

    /// Finishes every transaction of the decision log that is not done:
    /// delivers the logged decisions, and presumes abort for the attempts
    /// a previous leader left undecided (the order is tried again when its
    /// queue item comes back).
    async fn recover(&self, token: u64) -> Result<(), ExecError> {
        let orders: Vec<String> = self
            .store
            .client()
            .scan("exec/open/")
            .await?
            .into_iter()
            .map(|(k, _)| k.trim_start_matches("exec/open/").to_string())
            .collect();
        let mut open = Vec::new();
        for chunk in orders.chunks(64) {
            let keys: Vec<String> = chunk.iter().map(|o| tx_key(o)).collect();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            let values = self.store.client().read(&keys).await?;
            for (order, v) in chunk.iter().zip(values) {
                let Some(v) = v else { continue };
                match serde_json::from_str::<TxRecord>(&v) {
                    Ok(rec) if rec.state != "done" => open.push((order.clone(), v, rec)),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(
                        "executor {}: order {order}: decision log entry is not valid: {e}",
                        self.cfg.id
                    ),
                }
            }
        }
        for chunk in open.chunks(self.cfg.concurrency.max(1)) {
            if self.leading() != Some(token) {
                return Err(ExecError::Deposed("lease ended during recovery".into()));
            }
            let runs = chunk.iter().map(|(order, v, rec)| {
                tracing::info!(
                    "executor {} finishes order {order} (attempt {}, {})",
                    self.cfg.id,
                    rec.attempt,
                    rec.state
                );
                self.drive(token, order, None, Some((v.clone(), rec.clone())))
            });
            // An order that cannot be finished now is left to its queue
            // item (it comes back to the leader); losing the leadership
            // ends the recovery.
            for (r, (order, _, _)) in futures_util::future::join_all(runs)
                .await
                .into_iter()
                .zip(chunk)
            {
                match r {
                    Err(e @ ExecError::Deposed(_)) => return Err(e),
                    Err(e) => {
                        tracing::warn!("executor {}: recovery of order {order}: {e}", self.cfg.id)
                    }
                    Ok(_) => {}
                }
            }
        }
        Ok(())
    }

    /// A compare that fences a write to the state group: `exec/token` is
    /// still `token` (none with the planted bug `lease-only`).
    fn fence(&self, token: u64) -> Vec<crate::pb::Compare> {
        if self.cfg.bugs.lease_only {
            vec![]
        } else {
            vec![cmd::compare("exec/token", Some(&token.to_string()))]
        }
    }

    /// Replaces the order's log entry `raw` by `rec` (and sets `status`),
    /// fenced; returns the new entry's text.
    async fn log(
        &self,
        token: u64,
        order: &str,
        raw: Option<&str>,
        rec: &TxRecord,
        status: Option<&OrderStatus>,
    ) -> Result<String, ExecError> {
        let json = serde_json::to_string(rec).expect("serialises");
        let mut compares = vec![cmd::compare(&tx_key(order), raw)];
        compares.extend(self.fence(token));
        let mut ops = vec![cmd::op_put(&tx_key(order), &json)];
        // `exec/open/` lists the transactions not done: recovery scans it,
        // not every order ever executed.
        if raw.is_none() {
            ops.push(cmd::op_put(&open_key(order), "1"));
        }
        if rec.state == "done" {
            ops.push(cmd::op_delete(&open_key(order)));
        }
        if let Some(st) = status {
            ops.push(cmd::op_put(
                &queue::status_key(order),
                &serde_json::to_string(st).expect("serialises"),
            ));
        }
        let r = self.store.client().txn(compares, ops, vec![]).await?;
        if !r.succeeded {
            return Err(ExecError::Deposed(format!(
                "order {order}: the decision log moved on (or another leader took over)"
            )));
        }
        Ok(json)
    }

    /// Drives an order's transaction from its logged state `at` (read if
    /// None) until it is done, and returns the done record. Without the
    /// queue item (recovery) it stops where an attempt must be prepared
    /// (None).
    async fn drive(
        &self,
        token: u64,
        order: &str,
        item: Option<&Leased>,
        at: Option<(String, TxRecord)>,
    ) -> Result<Option<TxRecord>, ExecError> {
        let mut at = match at {
            Some(a) => Some(a),
            None => match self.store.client().get(&tx_key(order)).await? {
                Some(raw) => {
                    let rec = serde_json::from_str(&raw)
                        .map_err(|e| ExecError::Unavailable(e.to_string()))?;
                    Some((raw, rec))
                }
                None => None,
            },
        };
        loop {
            let (raw, rec) = match at.take() {
                None => {
                    // Start: attempt 1, and the status `executing`.
                    if item.is_none() {
                        return Ok(None);
                    }
                    let rec = TxRecord::preparing(1, token);
                    let mut st = self.status(order).await?.ok_or_else(|| {
                        ExecError::Unavailable(format!("order {order} has no status"))
                    })?;
                    st.status = "executing".into();
                    let raw = self.log(token, order, None, &rec, Some(&st)).await?;
                    at = Some((raw, rec));
                    continue;
                }
                Some(a) => a,
            };
            let tx = super::participants::tx_id(order, rec.attempt);
            match rec.state.as_str() {
                "done" => return Ok(Some(rec)),
                "preparing" if rec.token > token => {
                    return Err(ExecError::Deposed(format!(
                        "order {order}: attempt {} belongs to a newer leader (token {})",
                        rec.attempt, rec.token
                    )));
                }
                "preparing" if rec.token < token => {
                    // A previous leader's attempt, undecided: presumed
                    // abort (no participant can have heard a commit, since
                    // a decision is logged before it is told), and the
                    // order goes on with a new attempt.
                    let next = TxRecord {
                        state: "aborted".into(),
                        decision: "aborted".into(),
                        reason: format!("its coordinator (token {}) was replaced", rec.token),
                        retry: true,
                        token,
                        ..rec
                    };
                    let raw = self.log(token, order, Some(&raw), &next, None).await?;
                    at = Some((raw, next));
                }
                "preparing" => {
                    let Some(item) = item else { return Ok(None) };
                    let (decision, reason) = self.prepare(token, &tx, item).await?;
                    let next = TxRecord {
                        state: decision.into(),
                        decision: decision.into(),
                        reason,
                        ..rec
                    };
                    if self.cfg.bugs.deliver_before_log {
                        // Planted bug: the participants hear the decision
                        // before it is logged.
                        self.deliver(token, &tx, &next).await?;
                    }
                    let raw = self.log(token, order, Some(&raw), &next, None).await?;
                    at = Some((raw, next));
                }
                _ => {
                    // Decided: tell both participants, then either go on
                    // with the next attempt or finish.
                    self.deliver(token, &tx, &rec).await?;
                    let (next, status) = if rec.retry {
                        (TxRecord::preparing(rec.attempt + 1, token), None)
                    } else {
                        let st = match self.status(order).await? {
                            Some(st) => st,
                            None => item.map(queued_status).unwrap_or_else(|| OrderStatus {
                                order_id: order.to_string(),
                                status: String::new(),
                                reason: None,
                                shipping_method: String::new(),
                                priority: 0,
                                amount_cents: 0,
                            }),
                        };
                        let done = TxRecord {
                            state: "done".into(),
                            ..rec.clone()
                        };
                        (done, Some(decided(st, &rec)))
                    };
                    let raw = self
                        .log(token, order, Some(&raw), &next, status.as_ref())
                        .await?;
                    at = Some((raw, next));
                }
            }
        }
    }

    async fn deliver(&self, token: u64, tx: &str, rec: &TxRecord) -> Result<(), ExecError> {
        let req = pb::DecisionRequest {
            order_id: tx.to_string(),
            token,
        };
        let total = self.cfg.rpc_timeout * 3;
        let commit = rec.decision == "committed";
        let call = |r: &Replicas| {
            let req = req.clone();
            let r = r.clone();
            async move {
                r.call(total, true, move |ch| {
                    let req = req.clone();
                    async move {
                        let mut c = pb::participant_client::ParticipantClient::new(ch);
                        if commit {
                            c.commit(req).await
                        } else {
                            c.abort(req).await
                        }
                    }
                })
                .await
            }
        };
        let (a, b) = futures_util::future::join(call(&self.books), call(&self.payment)).await;
        a.map_err(status_error)?;
        b.map_err(status_error)?;
        Ok(())
    }

    /// Executes one dequeued order (or only acknowledges it, if a previous
    /// leader finished it).
    async fn execute(&self, token: u64, item: &Leased) -> Result<(), ExecError> {
        let order = item.order.order_id.clone();
        if self.cfg.bugs.ack_before_decide {
            // Planted bug: the order leaves the queue before its
            // transaction is decided.
            let st = OrderStatus {
                status: "executing".into(),
                ..queued_status(item)
            };
            queue::ack(&mut self.store.client(), item, &st).await?;
        }
        let rec = self
            .drive(token, &order, Some(item), None)
            .await?
            .expect("with its queue item, a transaction is driven to done");
        let st = self
            .status(&order)
            .await?
            .unwrap_or_else(|| queued_status(item));
        queue::ack(&mut self.store.client(), item, &decided(st, &rec)).await?;
        Ok(())
    }

    /// The order's stored status (None if absent or unreadable).
    async fn status(&self, order: &str) -> Result<Option<OrderStatus>, ExecError> {
        let raw = self.store.client().get(&queue::status_key(order)).await?;
        Ok(raw.as_deref().and_then(|s| serde_json::from_str(s).ok()))
    }

    /// Phase one at both participants: the decision and its reason.
    async fn prepare(
        &self,
        token: u64,
        tx: &str,
        item: &Leased,
    ) -> Result<(&'static str, String), ExecError> {
        let checkout: tartu_core::Checkout = serde_json::from_value(item.order.order.clone())
            .map_err(|e| ExecError::Unavailable(format!("queued order is not a checkout: {e}")))?;
        let req = pb::PrepareRequest {
            order_id: tx.to_string(),
            token,
            lines: checkout
                .items
                .iter()
                .map(|i| pb::Line {
                    title: i.name.clone(),
                    quantity: i.quantity,
                })
                .collect(),
            account: tartu_core::fraud::card_key(&checkout.credit_card.number),
            amount_cents: item.order.amount_cents,
        };
        let total = self.cfg.rpc_timeout * 3;
        let call = |r: &Replicas| {
            let req = req.clone();
            let r = r.clone();
            async move {
                r.call(total, true, move |ch| {
                    let req = req.clone();
                    async move {
                        pb::participant_client::ParticipantClient::new(ch)
                            .prepare(req)
                            .await
                    }
                })
                .await
            }
        };
        let (stock, money) =
            futures_util::future::join(call(&self.books), call(&self.payment)).await;
        let stock = stock.map_err(status_error)?;
        let money = money.map_err(status_error)?;
        Ok(match (stock.yes, money.yes) {
            (true, true) => ("committed", String::new()),
            (false, _) => ("aborted", format!("stock: {}", stock.reason)),
            (_, false) => ("aborted", format!("payment: {}", money.reason)),
        })
    }
}
