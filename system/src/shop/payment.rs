//! The payment service: users with credit, kept in the payment group. Every
//! change is a compare-and-set on the user's credit (retried on conflict); a
//! checkout's charge changes the credit and writes its own record in one
//! transaction, so a retried charge is applied once.

use super::keys::{
    self, check_amount, check_id, from_json, parse_credit, to_json, Hold, HoldState,
};
use super::rpc::{kv_error, within};
use super::stock::{commit_hold, lost_race, put_all, vote_no, vote_yes};
use super::Store;
use crate::clock::Clock;
use crate::kv::cmd;
use crate::shop_pb::{self as pb, payment_server::Payment};
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct PaymentService {
    pub store: Store,
    /// Planted bug `non-idempotent-payment`: a retried charge is applied
    /// again (the charge record is not checked).
    pub non_idempotent: bool,
    pub locks: super::KeyLocks,
    /// Most time one request may take (see [`super::rpc::within`]).
    pub budget: std::time::Duration,
    /// The host's clock: the budget, contention limit and backoff pauses are
    /// measured on it.
    pub clock: Clock,
}

fn user_key(id: &str) -> String {
    format!("{}{id}", keys::USER)
}
fn charge_key(tx: &str) -> String {
    format!("{}{tx}", keys::CHARGE)
}

impl PaymentService {
    async fn read(&self, keys: &[&str]) -> Result<Vec<Option<String>>, Status> {
        self.store.client().read(keys).await.map_err(kv_error)
    }

    /// Adds `delta` to a user's credit; a `request` id makes it happen once
    /// (see the stock service's `change`).
    async fn change(&self, id: &str, delta: i64, request: &str) -> Result<pb::User, Status> {
        check_id("user", id)?;
        keys::check_request(request)?;
        let (key, rkey) = (user_key(id), keys::req_key(request));
        let _guard = self.locks.lock(std::slice::from_ref(&key)).await;
        let start = self.clock.now();
        for attempt in 0.. {
            let mut vals = self.read(&[&key, &rkey]).await?;
            let (done, old) = (vals.pop().flatten(), vals.pop().flatten());
            if let Some(done) = done.filter(|_| !request.is_empty()) {
                return Ok(pb::User {
                    user_id: id.to_string(),
                    credit: parse_credit(&rkey, &done)?,
                });
            }
            let Some(old) = old else {
                return Err(Status::not_found(format!("user {id} not found")));
            };
            let credit = parse_credit(&key, &old)?;
            if credit + delta < 0 {
                return Err(Status::failed_precondition(format!(
                    "out of credit: user {id} has {credit}, asked for {}",
                    -delta
                )));
            }
            let new = (credit + delta).to_string();
            let r = if request.is_empty() {
                self.store.client().cas(&key, Some(&old), Some(&new)).await
            } else {
                let compares = vec![cmd::compare(&key, Some(&old)), cmd::compare(&rkey, None)];
                let puts = vec![cmd::op_put(&key, &new), cmd::op_put(&rkey, &new)];
                self.store.client().txn(compares, puts, vec![]).await
            };
            if r.map_err(kv_error)?.succeeded {
                return Ok(pb::User {
                    user_id: id.to_string(),
                    credit: credit + delta,
                });
            }
            lost_race(&self.clock, start, attempt, || format!("user {id}")).await?;
        }
        unreachable!("the loop ends by returning")
    }

    async fn charge(&self, tx: &str, user: &str, amount: i64) -> Result<pb::Vote, Status> {
        check_id("transaction", tx)?;
        check_id("user", user)?;
        check_amount("amount", amount)?;
        let (ckey, ukey) = (charge_key(tx), user_key(user));
        let _guard = self.locks.lock(std::slice::from_ref(&ukey)).await;
        let start = self.clock.now();
        for attempt in 0.. {
            let vals = self.read(&[&ckey, &ukey]).await?;
            if let Some(c) = &vals[0] {
                let hold: Hold = from_json(&ckey, c)?;
                match hold.state {
                    HoldState::Released => {
                        return Ok(vote_no(format!("transaction {tx} was aborted")))
                    }
                    _ if !self.non_idempotent => return Ok(vote_yes()),
                    _ => {} // the planted bug: charge again
                }
            }
            let Some(old) = &vals[1] else {
                return Ok(vote_no(format!("user {user} not found")));
            };
            let credit = parse_credit(&ukey, old)?;
            if credit < amount {
                return Ok(vote_no(format!(
                    "out of credit: user {user} has {credit}, order costs {amount}"
                )));
            }
            let hold = Hold::charged(user, amount);
            let mut compares = vec![cmd::compare(&ukey, Some(old))];
            if !self.non_idempotent {
                compares.push(cmd::compare(&ckey, None));
            }
            let puts = vec![
                cmd::op_put(&ukey, &(credit - amount).to_string()),
                cmd::op_put(&ckey, &to_json(&hold)),
            ];
            let r = self.store.client().txn(compares, puts, vec![]).await;
            if r.map_err(kv_error)?.succeeded {
                return Ok(vote_yes());
            }
            lost_race(&self.clock, start, attempt, || format!("charge {tx}")).await?;
        }
        unreachable!("the loop ends by returning")
    }

    async fn refund(&self, tx: &str) -> Result<(), Status> {
        check_id("transaction", tx)?;
        let ckey = charge_key(tx);
        let start = self.clock.now();
        for attempt in 0.. {
            let cur = self.read(&[&ckey]).await?.pop().flatten();
            let (compares, puts) = match &cur {
                None => {
                    let tomb = Hold::tombstone();
                    (
                        vec![cmd::compare(&ckey, None)],
                        vec![cmd::op_put(&ckey, &to_json(&tomb))],
                    )
                }
                Some(s) => {
                    let mut hold: Hold = from_json(&ckey, s)?;
                    match hold.state {
                        HoldState::Released => return Ok(()),
                        HoldState::Committed => {
                            return Err(Status::internal(format!(
                                "refund of committed charge {tx}"
                            )))
                        }
                        HoldState::Held => {}
                    }
                    let ukey = user_key(&hold.user);
                    let Some(old) = self.read(&[&ukey]).await?.pop().flatten() else {
                        return Err(Status::internal(format!(
                            "charged user {} vanished",
                            hold.user
                        )));
                    };
                    let credit = parse_credit(&ukey, &old)?;
                    hold.state = HoldState::Released;
                    (
                        vec![
                            cmd::compare(&ckey, Some(s)),
                            cmd::compare(&ukey, Some(&old)),
                        ],
                        vec![
                            cmd::op_put(&ukey, &(credit + hold.amount).to_string()),
                            cmd::op_put(&ckey, &to_json(&hold)),
                        ],
                    )
                }
            };
            let r = self.store.client().txn(compares, puts, vec![]).await;
            if r.map_err(kv_error)?.succeeded {
                return Ok(());
            }
            lost_race(&self.clock, start, attempt, || format!("refund {tx}")).await?;
        }
        unreachable!("the loop ends by returning")
    }
}

#[tonic::async_trait]
impl Payment for PaymentService {
    async fn create_user(
        &self,
        req: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::UserId>, Status> {
        let request = req.into_inner().request_id;
        keys::check_request(&request)?;
        loop {
            // With a request id, the user's id is derived from it: a create
            // sent again finds the user it made.
            let id = if request.is_empty() {
                super::random_id()
            } else {
                keys::id_of_request(&request)
            };
            let r = self
                .store
                .client()
                .cas(&user_key(&id), None, Some("0"))
                .await;
            if r.map_err(kv_error)?.succeeded || !request.is_empty() {
                return Ok(Response::new(pb::UserId { user_id: id }));
            }
        }
    }

    async fn batch_init(&self, req: Request<pb::UsersInit>) -> Result<Response<pb::Empty>, Status> {
        let r = req.into_inner();
        check_amount("credit", r.credit)?;
        if r.n > 1_000_000 {
            return Err(Status::invalid_argument(format!(
                "bad n {}: at most 10^6 users",
                r.n
            )));
        }
        let pairs = (0..r.n)
            .map(|i| (user_key(&i.to_string()), r.credit.to_string()))
            .collect();
        put_all(&self.store, pairs).await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn find(&self, req: Request<pb::UserId>) -> Result<Response<pb::User>, Status> {
        let id = req.into_inner().user_id;
        check_id("user", &id)?;
        let key = user_key(&id);
        match self.read(&[&key]).await?.pop().flatten() {
            None => Err(Status::not_found(format!("user {id} not found"))),
            Some(s) => Ok(Response::new(pb::User {
                user_id: id,
                credit: parse_credit(&key, &s)?,
            })),
        }
    }

    async fn add_funds(
        &self,
        req: Request<pb::CreditChange>,
    ) -> Result<Response<pb::User>, Status> {
        let r = req.into_inner();
        check_amount("amount", r.amount)?;
        Ok(Response::new(
            within(
                &self.clock,
                self.budget,
                self.change(&r.user_id, r.amount, &r.request_id),
            )
            .await?,
        ))
    }

    async fn pay(&self, req: Request<pb::CreditChange>) -> Result<Response<pb::User>, Status> {
        let r = req.into_inner();
        check_amount("amount", r.amount)?;
        Ok(Response::new(
            within(
                &self.clock,
                self.budget,
                self.change(&r.user_id, -r.amount, &r.request_id),
            )
            .await?,
        ))
    }

    async fn charge(&self, req: Request<pb::ChargeRequest>) -> Result<Response<pb::Vote>, Status> {
        let r = req.into_inner();
        Ok(Response::new(
            within(
                &self.clock,
                self.budget,
                PaymentService::charge(self, &r.tx_id, &r.user_id, r.amount),
            )
            .await?,
        ))
    }

    async fn refund(&self, req: Request<pb::TxRef>) -> Result<Response<pb::Empty>, Status> {
        within(
            &self.clock,
            self.budget,
            PaymentService::refund(self, &req.into_inner().tx_id),
        )
        .await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn commit(&self, req: Request<pb::TxRef>) -> Result<Response<pb::Empty>, Status> {
        let tx = req.into_inner().tx_id;
        check_id("transaction", &tx)?;
        within(
            &self.clock,
            self.budget,
            commit_hold(&self.store, &charge_key(&tx), &tx),
        )
        .await?;
        Ok(Response::new(pb::Empty {}))
    }
}
