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
//! **Two-phase commit** (the leader coordinates): the decision log
//! `exec/tx/<order>` is created `preparing` (status `executing`); both
//! participants prepare (take and hold the stock, charge the card's
//! account); the decision, `committed` if both voted yes, else `aborted`,
//! is written to the log before either participant hears it; then both
//! commit or both abort; then the log says `done` and the queue item is
//! acknowledged with the order's final status (`executed`, or `failed` with
//! the reason). A new leader first delivers every decision it finds in the
//! log that is not done; an undecided transaction is finished when its
//! queue item comes back (the old leader's queue lease expired): prepared
//! again under the new token (the participants repeat their first vote),
//! then decided. An old leader's late decision is refused by the fence on
//! the log. Every step is idempotent by order id, so an order is
//! executed at most once whatever is retried or redone, and a dequeued
//! order whose executor dies is executed by the next leader (its queue
//! lease expires and the item is given out again).

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
    /// A leader stops acting this long before its lease ends.
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

/// One order's entry in the decision log `exec/tx/<order>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxRecord {
    /// preparing, committed, aborted, done
    pub state: String,
    /// The decision (for done: committed or aborted).
    #[serde(default)]
    pub decision: String,
    #[serde(default)]
    pub reason: String,
    pub token: u64,
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

pub struct Executor {
    cfg: ExecutorConfig,
    /// Clients of the state group (one per concurrent call).
    store: crate::shop::Store,
    books: Replicas,
    payment: Replicas,
    /// My lease while I lead.
    lease: Option<LeaderLease>,
    poll: Duration,
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
            poll: cfg.poll_min,
            store,
            lease: None,
            cfg,
        }
    }

    fn now(&self) -> u64 {
        self.cfg.wall.now_ms()
    }

    /// Do I still lead, by my clock (with the margin)?
    fn leading(&self) -> Option<u64> {
        let l = self.lease.as_ref()?;
        (self.now() + self.cfg.margin.as_millis() as u64 <= l.until_ms).then_some(l.token)
    }

    /// Takes or renews the lease. Returns true when this replica has just
    /// become leader (it must then finish its predecessors' transactions).
    async fn campaign(&mut self) -> Result<bool, ClientError> {
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
            Some(l)
                if l.owner == self.cfg.id
                    && Some(l.token) == self.lease.as_ref().map(|m| m.token) =>
            {
                (
                    LeaderLease {
                        until_ms: until,
                        ..l.clone()
                    },
                    false,
                )
            }
            Some(l) if l.until_ms > now => {
                self.lease = None;
                return Ok(false);
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
            }
            self.lease = Some(new);
            Ok(fresh)
        } else {
            self.lease = None;
            Ok(false)
        }
    }

    /// Runs until `shutdown`.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let clock = self.cfg.wall.clock.clone();
        let mut next_campaign = clock.now();
        loop {
            if clock.now() >= next_campaign || self.leading().is_none() {
                next_campaign = clock.now() + self.cfg.renew_every;
                match self.campaign().await {
                    Ok(true) => {
                        if let Err(e) = self.recover().await {
                            tracing::warn!("executor {}: recovery: {e}", self.cfg.id);
                            if matches!(e, ExecError::Deposed(_)) {
                                self.lease = None;
                            }
                        }
                    }
                    Ok(false) => {}
                    Err(e) => tracing::debug!("executor {}: campaign: {e}", self.cfg.id),
                }
            }
            let pause = match self.leading() {
                None => self.cfg.renew_every,
                Some(token) => match self.step(token).await {
                    Ok(true) => {
                        self.poll = (self.poll / 2).max(self.cfg.poll_min);
                        Duration::ZERO
                    }
                    Ok(false) => {
                        self.poll = (self.poll + self.cfg.poll_step).min(self.cfg.poll_max);
                        self.poll
                    }
                    Err(e) => {
                        tracing::warn!("executor {}: {e}", self.cfg.id);
                        if matches!(e, ExecError::Deposed(_)) {
                            self.lease = None;
                        }
                        self.cfg.renew_every
                    }
                },
            };
            let pause = pause.min(next_campaign.saturating_sub(clock.now()));
            tokio::select! {
                _ = &mut shutdown => return,
                _ = clock.sleep(pause) => {}
            }
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

    /// Finishes every transaction of the decision log that is not done.
    async fn recover(&self) -> Result<(), ExecError> {
        let open = self.store.client().scan("exec/tx/").await?;
        for (k, v) in open {
            let order = k.trim_start_matches("exec/tx/").to_string();
            let rec: TxRecord =
                serde_json::from_str(&v).map_err(|e| ExecError::Unavailable(e.to_string()))?;
            if rec.state == "done" {
                continue;
            }
            let Some(token) = self.leading() else {
                return Err(ExecError::Deposed("lease ended during recovery".into()));
            };
            tracing::info!(
                "executor {} finishes order {order} ({})",
                self.cfg.id,
                rec.state
            );
            if rec.state == "preparing" {
                // Undecided: its queue item comes back when the old
                // leader's queue lease expires, and is then prepared again
                // under this token (the participants answer with their
                // first vote) and decided.
                continue;
            }
            // The participants need only the order id for commit and abort.
            let st = self.status(&order).await?.unwrap_or_else(|| OrderStatus {
                order_id: order.clone(),
                status: String::new(),
                reason: None,
                shipping_method: String::new(),
                priority: 0,
                amount_cents: 0,
            });
            self.deliver(token, &order, &rec).await?;
            self.finish(token, &order, &rec, &decided(st, &rec)).await?;
        }
        Ok(())
    }

    /// Writes the decision to the log (fenced: only the current leader).
    async fn decide(
        &self,
        token: u64,
        order: &str,
        raw: &str,
        decision: &str,
        reason: &str,
    ) -> Result<TxRecord, ExecError> {
        let rec = TxRecord {
            state: decision.into(),
            decision: decision.into(),
            reason: reason.into(),
            token,
        };
        let r = self
            .store
            .client()
            .txn(
                vec![
                    cmd::compare(&tx_key(order), Some(raw)),
                    cmd::compare("exec/token", Some(&token.to_string())),
                ],
                vec![cmd::op_put(
                    &tx_key(order),
                    &serde_json::to_string(&rec).expect("serialises"),
                )],
                vec![],
            )
            .await?;
        if !r.succeeded {
            return Err(ExecError::Deposed(format!(
                "order {order}: the decision log moved on"
            )));
        }
        Ok(rec)
    }

    async fn deliver(&self, token: u64, order: &str, rec: &TxRecord) -> Result<(), ExecError> {
        let req = pb::DecisionRequest {
            order_id: order.to_string(),
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

    /// Marks the log entry done and sets the order's final status.
    async fn finish(
        &self,
        token: u64,
        order: &str,
        rec: &TxRecord,
        st: &OrderStatus,
    ) -> Result<(), ExecError> {
        let done = TxRecord {
            state: "done".into(),
            ..rec.clone()
        };
        let r = self
            .store
            .client()
            .txn(
                vec![
                    cmd::compare(
                        &tx_key(order),
                        Some(&serde_json::to_string(rec).expect("serialises")),
                    ),
                    cmd::compare("exec/token", Some(&token.to_string())),
                ],
                vec![
                    cmd::op_put(
                        &tx_key(order),
                        &serde_json::to_string(&done).expect("serialises"),
                    ),
                    cmd::op_put(
                        &queue::status_key(order),
                        &serde_json::to_string(&st).expect("serialises"),
                    ),
                ],
                vec![],
            )
            .await?;
        if !r.succeeded {
            return Err(ExecError::Deposed(format!(
                "order {order}: the decision log moved on"
            )));
        }
        Ok(())
    }

    /// Executes one dequeued order (or only acknowledges it, if a previous
    /// leader did).
    async fn execute(&self, token: u64, item: &Leased) -> Result<(), ExecError> {
        let order = item.order.order_id.clone();
        let key = tx_key(&order);
        if self.cfg.bugs.ack_before_decide {
            // Planted bug: the order leaves the queue before its
            // transaction is decided.
            let st = OrderStatus {
                status: "executing".into(),
                ..queued_status(item)
            };
            queue::ack(&mut self.store.client(), item, &st).await?;
        }
        let mut raw = self.store.client().get(&key).await?;
        if raw.is_none() {
            // Start: the log entry and the status, fenced.
            let rec = TxRecord {
                state: "preparing".into(),
                decision: String::new(),
                reason: String::new(),
                token,
            };
            let json = serde_json::to_string(&rec).expect("serialises");
            let mut st: OrderStatus =
                match self.store.client().get(&queue::status_key(&order)).await? {
                    Some(s) => serde_json::from_str(&s)
                        .map_err(|e| ExecError::Unavailable(e.to_string()))?,
                    None => {
                        return Err(ExecError::Unavailable(format!(
                            "order {order} has no status"
                        )))
                    }
                };
            st.status = "executing".into();
            let r = self
                .store
                .client()
                .txn(
                    vec![
                        cmd::compare(&key, None),
                        cmd::compare("exec/token", Some(&token.to_string())),
                    ],
                    vec![
                        cmd::op_put(&key, &json),
                        cmd::op_put(
                            &queue::status_key(&order),
                            &serde_json::to_string(&st).expect("serialises"),
                        ),
                    ],
                    vec![],
                )
                .await?;
            if !r.succeeded {
                return Err(ExecError::Deposed(format!(
                    "order {order}: cannot start it"
                )));
            }
            raw = Some(json);
        }
        let raw = raw.expect("set");
        let mut rec: TxRecord =
            serde_json::from_str(&raw).map_err(|e| ExecError::Unavailable(e.to_string()))?;
        if rec.state == "preparing" {
            let (decision, reason) = self.prepare(token, item).await?;
            rec = self.decide(token, &order, &raw, decision, &reason).await?;
        }
        let st = self
            .status(&order)
            .await?
            .unwrap_or_else(|| queued_status(item));
        let st = decided(st, &rec);
        if rec.state != "done" {
            self.deliver(token, &order, &rec).await?;
            self.finish(token, &order, &rec, &st).await?;
        }
        queue::ack(&mut self.store.client(), item, &st).await?;
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
        item: &Leased,
    ) -> Result<(&'static str, String), ExecError> {
        let checkout: tartu_core::Checkout = serde_json::from_value(item.order.order.clone())
            .map_err(|e| ExecError::Unavailable(format!("queued order is not a checkout: {e}")))?;
        let req = pb::PrepareRequest {
            order_id: item.order.order_id.clone(),
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
