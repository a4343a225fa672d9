//! The two participants of an order's execution (two-phase commit): the
//! books database's stock and the payment service's accounts, each in its
//! own Raft KV group, as one generic participant over the store.
//!
//! A participant keeps, per transaction (an order's attempt, see below),
//! a record `hold/<order id>#<attempt>` (JSON [`Hold`]): `prepared` (the debits are taken and held), `refused` (it
//! voted no), `committed`, or `aborted` (the debits given back; also written
//! when an abort arrives before its prepare, so the late prepare is
//! refused). Every change is one transaction of the store guarded by
//! compares on what was read, so the participant's state survives crashes
//! of its service replicas (stateless) and of a minority of its store.
//!
//! In doubt (a hold still `prepared` a few seconds later), a participant
//! reads the executors' decision log and applies a logged decision itself
//! ([`Participant::resolve_in_doubt`]): a logged decision is final, so this
//! needs no fencing token.
//!
//! Transactions: an order may take several attempts (an attempt whose
//! coordinator was replaced before it decided is aborted, and the order
//! tried again), each its own transaction `<order>#<attempt>`
//! ([`tx_id`]); the records here are per transaction.
//!
//! Fencing: the key `fence` holds the highest token seen. Every call
//! carries the coordinator's token; a call with a lower one is refused
//! ([`ParticipantError::Stale`]) and changes nothing, and every accepted
//! call raises `fence` in the same transaction as its effect. So once a new
//! executor leader has acted, an old one (paused, partitioned, its clock
//! slow) can no longer take or give back anything. Every accepted call is
//! reported to the participant's [`EffectSink`], if it has one: the
//! simulator checks from them that the tokens a participant accepts only
//! grow (mutual exclusion of the executors).

use crate::client::{ClientError, KvClient};
use crate::kv::cmd;
use crate::shop::rpc::kv_error;
use crate::shop::Store;
use crate::tartu_pb as pb;
use serde::{Deserialize, Serialize};
use tonic::{Request, Response, Status};

/// What a participant holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// `book/<id>`: the book's JSON, whose `stock` is debited.
    Stock,
    /// `account/<card digest>`: the balance in cents (absent = the
    /// default credit).
    Money,
}

/// A new account's balance: 10,000.00.
pub const DEFAULT_CREDIT_CENTS: i64 = 1_000_000;

pub fn account_key(account: &str) -> String {
    format!("account/{account}")
}

fn hold_key(order: &str) -> String {
    format!("hold/{order}")
}

/// Present while a transaction's hold is `prepared`: the in-doubt resolver
/// scans these, not every hold ever written.
fn prepared_key(tx: &str) -> String {
    format!("prepared/{tx}")
}

/// The transaction of an order's `attempt` (1, 2, ...; 0, the bare order
/// id, for records written before attempts existed).
pub fn tx_id(order: &str, attempt: u32) -> String {
    if attempt == 0 {
        order.to_string()
    } else {
        format!("{order}#{attempt}")
    }
}

/// A transaction's order and attempt (an id without `#`: attempt 0).
pub fn split_tx(tx: &str) -> (&str, u32) {
    match tx.rsplit_once('#') {
        Some((order, n)) => match n.parse() {
            Ok(n) => (order, n),
            Err(_) => (tx, 0),
        },
        None => (tx, 0),
    }
}

/// A coordinator's call at a participant: `op` (prepare, commit, abort)
/// of transaction `tx` with fencing `token`, which began at `started` (the
/// runtime's time) and has just been applied — or, if `refused`, refused
/// for its stale token.
#[derive(Clone, Debug)]
pub struct Effect {
    pub resource: Resource,
    pub tx: String,
    pub op: &'static str,
    pub token: u64,
    pub started: tokio::time::Instant,
    pub refused: bool,
}

/// Where a participant reports the coordinators' calls it accepted (and
/// those it refused for a stale token).
pub type EffectSink = std::sync::Arc<dyn Fn(&Effect) + Send + Sync>;

/// How a participant is set up beyond its resource and store.
#[derive(Clone)]
pub struct ParticipantOpts {
    /// Refuse calls whose token is below the highest seen (off only with
    /// the planted bug `lease-only`).
    pub fenced: bool,
    pub effects: Option<EffectSink>,
}

impl Default for ParticipantOpts {
    fn default() -> Self {
        ParticipantOpts {
            fenced: true,
            effects: None,
        }
    }
}

impl ParticipantOpts {
    pub fn with_bugs(bugs: crate::bugs::Bugs) -> ParticipantOpts {
        ParticipantOpts {
            fenced: !bugs.lease_only,
            effects: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// prepared, refused, committed, aborted
    pub state: String,
    pub token: u64,
    /// The debits taken (key, amount).
    #[serde(default)]
    pub debits: Vec<(String, i64)>,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ParticipantError {
    #[error("stale fencing token {token}: this participant has seen {fence}")]
    Stale { token: u64, fence: u64 },
    #[error("{0}")]
    Store(#[from] ClientError),
    #[error("{0}")]
    Protocol(String),
}

impl From<ParticipantError> for Status {
    fn from(e: ParticipantError) -> Status {
        match e {
            ParticipantError::Stale { .. } => Status::failed_precondition(e.to_string()),
            ParticipantError::Store(e) => kv_error(e),
            ParticipantError::Protocol(m) => Status::internal(m),
        }
    }
}

fn bad(what: &str, e: impl std::fmt::Display) -> ParticipantError {
    ParticipantError::Protocol(format!("stored {what} is not valid: {e}"))
}

/// One participant: a resource in one store group.
#[derive(Clone)]
pub struct Participant {
    pub resource: Resource,
    pub store: Store,
    pub opts: ParticipantOpts,
}

impl Participant {
    pub fn new(resource: Resource, store: Store) -> Participant {
        Participant {
            resource,
            store,
            opts: Default::default(),
        }
    }

    pub fn with_opts(mut self, opts: ParticipantOpts) -> Participant {
        self.opts = opts;
        self
    }

    /// Reports an accepted call to the sink.
    fn effect(
        &self,
        tx: &str,
        op: &'static str,
        token: Option<u64>,
        started: tokio::time::Instant,
    ) {
        self.report(tx, op, token, started, false)
    }

    fn report(
        &self,
        tx: &str,
        op: &'static str,
        token: Option<u64>,
        started: tokio::time::Instant,
        refused: bool,
    ) {
        if let (Some(sink), Some(token)) = (&self.opts.effects, token) {
            sink(&Effect {
                resource: self.resource,
                tx: tx.to_string(),
                op,
                token,
                started,
                refused,
            });
        }
    }

    /// The fence after accepting `token` (the highest seen).
    fn raised(fence: Option<&str>, token: u64) -> String {
        let f: u64 = fence.and_then(|f| f.parse().ok()).unwrap_or(0);
        f.max(token).to_string()
    }
    /// The amount a stored value holds (None: absent).
    fn amount(&self, v: Option<&str>) -> Result<Option<i64>, ParticipantError> {
        match (self.resource, v) {
            (Resource::Money, None) => Ok(Some(DEFAULT_CREDIT_CENTS)),
            (_, None) => Ok(None),
            (Resource::Stock, Some(v)) => {
                let b: tartu_core::Book = serde_json::from_str(v).map_err(|e| bad("book", e))?;
                Ok(Some(b.stock))
            }
            (Resource::Money, Some(v)) => v.parse().map(Some).map_err(|e| bad("balance", e)),
        }
    }

    /// The stored value with `amount` instead.
    fn with_amount(&self, v: Option<&str>, amount: i64) -> Result<String, ParticipantError> {
        match (self.resource, v) {
            (Resource::Stock, Some(v)) => {
                let mut b: tartu_core::Book =
                    serde_json::from_str(v).map_err(|e| bad("book", e))?;
                b.stock = amount;
                Ok(serde_json::to_string(&b).expect("serialises"))
            }
            (Resource::Stock, None) => Err(ParticipantError::Protocol("no such book".into())),
            (Resource::Money, _) => Ok(amount.to_string()),
        }
    }

    async fn fence_and_hold(
        &self,
        kv: &mut KvClient,
        order: &str,
        token: Option<u64>,
        more: &[String],
        (op, started): (&'static str, tokio::time::Instant),
    ) -> Result<(Option<String>, Option<String>, Vec<Option<String>>), ParticipantError> {
        let hk = hold_key(order);
        let mut keys: Vec<&str> = vec!["fence", &hk];
        keys.extend(more.iter().map(String::as_str));
        let mut got = kv.read(&keys).await?.into_iter();
        let fence = got.next().flatten();
        let hold = got.next().flatten();
        let f: u64 = match &fence {
            Some(f) => f.parse().map_err(|e| bad("fence", e))?,
            None => 0,
        };
        if let Some(token) = token {
            if token < f && self.opts.fenced {
                self.report(order, op, Some(token), started, true);
                return Err(ParticipantError::Stale { token, fence: f });
            }
        }
        Ok((fence, hold, got.collect()))
    }

    /// Phase one: takes every debit and holds it (yes), or takes nothing
    /// (no, with the reason). Idempotent: a retry gets the first vote.
    pub async fn prepare(
        &self,
        order: &str,
        token: u64,
        debits: &[(String, i64)],
    ) -> Result<Result<(), String>, ParticipantError> {
        let started = tokio::time::Instant::now();
        let mut kv = self.store.client();
        let keys: Vec<String> = debits.iter().map(|(k, _)| k.clone()).collect();
        loop {
            let (fence, hold, values) = self
                .fence_and_hold(&mut kv, order, Some(token), &keys, ("prepare", started))
                .await?;
            if let Some(h) = hold {
                let h: Hold = serde_json::from_str(&h).map_err(|e| bad("hold", e))?;
                return Ok(match h.state.as_str() {
                    "prepared" | "committed" => Ok(()),
                    "refused" => Err(h.reason),
                    _ => Err("aborted before it was prepared".into()),
                });
            }
            // The debits summed per key (the same book on two lines).
            let mut per_key: std::collections::BTreeMap<&str, (i64, Option<&str>)> =
                Default::default();
            for ((k, a), v) in debits.iter().zip(&values) {
                per_key.entry(k).or_insert((0, v.as_deref())).0 += a;
            }
            let mut reason = None;
            let mut compares = vec![
                cmd::compare("fence", fence.as_deref()),
                cmd::compare(&hold_key(order), None),
            ];
            let mut ops = Vec::new();
            for (k, (a, v)) in &per_key {
                match self.amount(*v)? {
                    None => reason = Some(format!("{k} does not exist")),
                    Some(have) if have < *a => {
                        reason = Some(format!("{k}: {have} left, {a} needed"))
                    }
                    Some(have) => {
                        compares.push(cmd::compare(k, *v));
                        ops.push(cmd::op_put(k, &self.with_amount(*v, have - a)?));
                    }
                }
            }
            let hold = Hold {
                state: if reason.is_some() {
                    "refused"
                } else {
                    "prepared"
                }
                .into(),
                token,
                debits: if reason.is_some() {
                    vec![]
                } else {
                    debits.to_vec()
                },
                reason: reason.clone().unwrap_or_default(),
            };
            if reason.is_some() {
                ops.clear();
                compares.truncate(2);
            }
            ops.push(cmd::op_put(
                &hold_key(order),
                &serde_json::to_string(&hold).expect("serialises"),
            ));
            if reason.is_none() {
                ops.push(cmd::op_put(&prepared_key(order), "1"));
            }
            ops.push(cmd::op_put("fence", &Self::raised(fence.as_deref(), token)));
            if kv.txn(compares, ops, vec![]).await?.succeeded {
                self.effect(order, "prepare", Some(token), started);
                return Ok(match reason {
                    None => Ok(()),
                    Some(r) => Err(r),
                });
            }
        }
    }

    /// Phase two, commit: the held debits become final.
    pub async fn commit(&self, order: &str, token: u64) -> Result<(), ParticipantError> {
        self.commit_as(order, Some(token)).await
    }

    /// Commit as the decision log says (`token` None: the participant's own
    /// resolution of an order in doubt, neither checked against nor raising
    /// the fence: a logged decision is final).
    async fn commit_as(&self, order: &str, token: Option<u64>) -> Result<(), ParticipantError> {
        let started = tokio::time::Instant::now();
        let mut kv = self.store.client();
        loop {
            let (fence, hold, _) = self
                .fence_and_hold(&mut kv, order, token, &[], ("commit", started))
                .await?;
            let Some(raw) = hold else {
                return Err(ParticipantError::Protocol(format!(
                    "commit of order {order}, which was never prepared here"
                )));
            };
            let mut h: Hold = serde_json::from_str(&raw).map_err(|e| bad("hold", e))?;
            match h.state.as_str() {
                "committed" => return Ok(()),
                "prepared" => {}
                other => {
                    return Err(ParticipantError::Protocol(format!(
                        "commit of order {order}, which is {other} here"
                    )))
                }
            }
            h.state = "committed".into();
            if let Some(token) = token {
                h.token = token;
            }
            let mut ops = vec![cmd::op_put(
                &hold_key(order),
                &serde_json::to_string(&h).expect("serialises"),
            )];
            if let Some(token) = token {
                ops.push(cmd::op_put("fence", &Self::raised(fence.as_deref(), token)));
            }
            ops.push(cmd::op_delete(&prepared_key(order)));
            let r = kv
                .txn(
                    vec![
                        cmd::compare("fence", fence.as_deref()),
                        cmd::compare(&hold_key(order), Some(&raw)),
                    ],
                    ops,
                    vec![],
                )
                .await?;
            if r.succeeded {
                self.effect(order, "commit", token, started);
                return Ok(());
            }
        }
    }

    /// Phase two, abort: the held debits are given back (or, before any
    /// prepare, a record that refuses it).
    pub async fn abort(&self, order: &str, token: u64) -> Result<(), ParticipantError> {
        self.abort_as(order, Some(token)).await
    }

    async fn abort_as(&self, order: &str, token: Option<u64>) -> Result<(), ParticipantError> {
        let started = tokio::time::Instant::now();
        let mut kv = self.store.client();
        loop {
            let (fence, hold, _) = self
                .fence_and_hold(&mut kv, order, token, &[], ("abort", started))
                .await?;
            let mut h = match &hold {
                None => Hold {
                    state: "aborted".into(),
                    token: token.unwrap_or(0),
                    debits: vec![],
                    reason: "aborted before prepare".into(),
                },
                Some(raw) => serde_json::from_str(raw).map_err(|e| bad("hold", e))?,
            };
            let mut compares = vec![
                cmd::compare("fence", fence.as_deref()),
                cmd::compare(&hold_key(order), hold.as_deref()),
            ];
            let mut ops = Vec::new();
            match h.state.as_str() {
                "aborted" if hold.is_some() => return Ok(()),
                "committed" => {
                    return Err(ParticipantError::Protocol(format!(
                        "abort of order {order}, which is committed here"
                    )))
                }
                "prepared" => {
                    let keys: Vec<&str> = h.debits.iter().map(|(k, _)| k.as_str()).collect();
                    let values = kv.read(&keys).await?;
                    let mut per_key: std::collections::BTreeMap<&str, (i64, Option<&str>)> =
                        Default::default();
                    for ((k, a), v) in h.debits.iter().zip(&values) {
                        per_key.entry(k).or_insert((0, v.as_deref())).0 += a;
                    }
                    for (k, (a, v)) in &per_key {
                        let have = self.amount(*v)?.unwrap_or(0);
                        compares.push(cmd::compare(k, *v));
                        ops.push(cmd::op_put(k, &self.with_amount(*v, have + a)?));
                    }
                }
                _ => {}
            }
            h.state = "aborted".into();
            if let Some(token) = token {
                h.token = token;
                ops.push(cmd::op_put("fence", &Self::raised(fence.as_deref(), token)));
            }
            ops.push(cmd::op_put(
                &hold_key(order),
                &serde_json::to_string(&h).expect("serialises"),
            ));
            ops.push(cmd::op_delete(&prepared_key(order)));
            if kv.txn(compares, ops, vec![]).await?.succeeded {
                self.effect(order, "abort", token, started);
                return Ok(());
            }
        }
    }

    /// Resolves the transactions in doubt: every hold that was `prepared`
    /// at the previous call (`seen`) and still is now (the `prepared/`
    /// index, kept in the same transactions as the holds, so a pass costs
    /// what is in doubt, not every order ever held) is looked up in the
    /// executors' decision log (`exec/tx/<order>` in the state group), and
    /// a logged decision is applied here: the attempt's own, or abort if
    /// the log has gone on to a later attempt (only an aborted attempt is
    /// followed by another). Returns how many were resolved.
    /// The services call this every few seconds, so a prepared hold does
    /// not wait for a coordinator that is slow to come back.
    pub async fn resolve_in_doubt(
        &self,
        state: &Store,
        seen: &mut std::collections::BTreeSet<String>,
    ) -> Result<usize, ParticipantError> {
        let prepared: std::collections::BTreeSet<String> = self
            .store
            .client()
            .scan("prepared/")
            .await?
            .into_iter()
            .map(|(k, _)| k.trim_start_matches("prepared/").to_string())
            .collect();
        let mut resolved = 0;
        for tx in prepared.intersection(seen) {
            let (order, attempt) = split_tx(tx);
            let Some(raw) = state.client().get(&format!("exec/tx/{order}")).await? else {
                continue;
            };
            let rec: super::executor::TxRecord =
                serde_json::from_str(&raw).map_err(|e| bad("decision", e))?;
            let decision = match rec.decision.as_str() {
                _ if rec.attempt > attempt => "aborted",
                _ if rec.attempt < attempt => continue,
                d => d,
            };
            let r = match decision {
                "committed" => self.commit_as(tx, None).await,
                "aborted" => self.abort_as(tx, None).await,
                _ => continue,
            };
            if let Err(e) = r {
                // The others are still resolved.
                tracing::warn!("transaction {tx} in doubt: {decision} failed: {e}");
                continue;
            }
            tracing::info!(
                "transaction {tx} was in doubt here: {decision} as the decision log says"
            );
            resolved += 1;
        }
        *seen = prepared;
        Ok(resolved)
    }

    /// Every transaction's record here (tests, the simulator's final
    /// state).
    pub async fn holds(&self) -> Result<Vec<(String, Hold)>, ParticipantError> {
        let mut kv = self.store.client();
        kv.scan("hold/")
            .await?
            .into_iter()
            .map(|(k, v)| {
                let h = serde_json::from_str(&v).map_err(|e| bad("hold", e))?;
                Ok((k.trim_start_matches("hold/").to_string(), h))
            })
            .collect()
    }
}

/// The debits of an order at a participant.
pub async fn debits(
    resource: Resource,
    books: &super::books::BooksDb,
    r: &pb::PrepareRequest,
) -> Result<Vec<(String, i64)>, Status> {
    match resource {
        Resource::Money => Ok(vec![(account_key(&r.account), r.amount_cents)]),
        Resource::Stock => {
            let titles: Vec<String> = r.lines.iter().map(|l| l.title.clone()).collect();
            let found = books.by_titles(&titles).await?;
            let mut out = Vec::new();
            for (l, b) in r.lines.iter().zip(found) {
                match b {
                    Some(b) => out.push((super::books::book_key(&b.id), l.quantity as i64)),
                    None => out.push((format!("book/unknown:{}", l.title), l.quantity as i64)),
                }
            }
            Ok(out)
        }
    }
}

/// The `Participant` gRPC service (served by the books and payment
/// services' replicas).
#[derive(Clone)]
pub struct ParticipantService {
    pub participant: Participant,
    pub books: super::books::BooksDb,
}

#[tonic::async_trait]
impl pb::participant_server::Participant for ParticipantService {
    async fn prepare(
        &self,
        r: Request<pb::PrepareRequest>,
    ) -> Result<Response<pb::VoteReply>, Status> {
        let r = r.into_inner();
        let debits = debits(self.participant.resource, &self.books, &r).await?;
        let vote = self
            .participant
            .prepare(&r.order_id, r.token, &debits)
            .await?;
        Ok(Response::new(match vote {
            Ok(()) => pb::VoteReply {
                yes: true,
                reason: String::new(),
            },
            Err(reason) => pb::VoteReply { yes: false, reason },
        }))
    }

    async fn commit(&self, r: Request<pb::DecisionRequest>) -> Result<Response<pb::Empty>, Status> {
        let r = r.into_inner();
        self.participant.commit(&r.order_id, r.token).await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn abort(&self, r: Request<pb::DecisionRequest>) -> Result<Response<pb::Empty>, Status> {
        let r = r.into_inner();
        self.participant.abort(&r.order_id, r.token).await?;
        Ok(Response::new(pb::Empty {}))
    }
}

/// The `Payment` gRPC service's account lookups.
#[derive(Clone)]
pub struct PaymentService {
    pub participant: Participant,
}

#[tonic::async_trait]
impl pb::payment_server::Payment for PaymentService {
    async fn get(&self, r: Request<pb::AccountId>) -> Result<Response<pb::Account>, Status> {
        let account = r.into_inner().account;
        let v = self
            .participant
            .store
            .client()
            .get(&account_key(&account))
            .await
            .map_err(kv_error)?;
        let balance_cents = self.participant.amount(v.as_deref())?.unwrap_or(0);
        Ok(Response::new(pb::Account {
            account,
            balance_cents,
        }))
    }
}
