//! Planted bugs: switches that re-introduce classic mistakes, all off by
//! default, so the simulation harness can prove that its checks find them.
//! This is the one place they are listed; `sim sweep --bug NAME` turns one on.
//!
//! | name              | what it breaks                                                   |
//! |-------------------|------------------------------------------------------------------|
//! | `vote-no-log-check` | votes granted without the log up-to-date check (Raft 5.4.1)    |
//! | `figure8`         | an earlier term's entry committed by counting replicas (5.4.2)   |
//! | `stale-read`      | reads answered by a leader without confirming leadership (6.4)   |
//! | `stale-append-truncates` | a follower drops the entries after a stale Append's last one, though they match (found with fault `reorder`) |
//! | `unsynced-vote`   | term and vote not fsynced before the reply that depends on them  |
//! | `duplicate-apply` | a retried client request applied twice (no session dedup)        |
//! | `unsynced-log`    | log entries acknowledged before they are fsynced                 |
//! | `ignore-sync-error` | a failed fsync of the log ignored: the entries are acknowledged though the disk dropped them (found with fault `disk-error`) |
//! | `wal-no-checksum` | WAL records taken on recovery without checking their checksums: a corrupt torn write is read back as entries |
//! | `snapshot-without-sessions` | snapshots leave out the client session table: a replica restored from one differs from its peers |
//! | `no-log-floor`    | a node whose disk lost synced entries (damage) votes and campaigns with the shorter log it kept: an entry it acknowledged no longer counts in elections (found only with damaged synced writes, any kind) |
//! | `zeros-end-log`   | a zero-filled WAL frame is taken as the clean end of the log: a lost write silently cuts every later record, votes included (found only with `lost-write` or `misdirected-write` damage, whose range reads as zeros) |
//! | `wal-no-order-check` | WAL records taken in file order without checking their numbers and that entries follow the log: a misdirected write is read back where it landed (found only with `misdirected-write` damage) |
//!
//! The transactional scenario's (`txn`):
//!
//! | name                | what it breaks                                                  |
//! |---------------------|-----------------------------------------------------------------|
//! | `split-multi-read`  | a read of several keys is answered key by key, each at its own read index: every key is linearizable, the set is not one snapshot |
//!
//! The shop's (scenario `checkout`):
//!
//! | name                     | what it breaks                                            |
//! |--------------------------|-----------------------------------------------------------|
//! | `no-compensation`        | a SAGA whose payment is refused keeps the reserved stock  |
//! | `non-idempotent-payment` | a retried charge is applied again (the charge record is not checked) |
//! | `unguarded-stock`        | a reservation reads the stock, then writes without a condition |
//!
//! The Tartu bookstore's (scenario `tartu`; its vector-clock log, `checker vclock`):
//!
//! | name               | what it breaks                                              |
//! |--------------------|-------------------------------------------------------------|
//! | `vclock-no-merge`  | the fraud service ticks its own clock entry without merging the incoming clock: (d) and (e) no longer follow (b) and (c) |
//! | `ack-before-decide` | the executor removes an order from the queue as soon as it takes it, before its transaction is decided: if it dies then, nobody finishes the order |
//! | `lease-only`       | the participants and the decision log ignore the executors' fencing tokens: mutual exclusion rests on the leader's lease alone, so a paused or slow-clocked old leader still prepares, commits and aborts |
//! | `deliver-before-log` | the coordinator tells the participants its decision before writing it to the decision log: if it dies in between, its successor presumes abort for a transaction a participant has committed |
//!
//! The third course's platform's (scenario `pad`):
//!
//! | name               | what it breaks                                              |
//! |--------------------|-------------------------------------------------------------|
//! | `pad-local-revocation` | a token's family is read from the auth store's local replica, not linearizably: a logout is not seen at once everywhere |
//! | `pad-expiry-own-clock` | the auth service judges a token's expiry by its own clock, not by the gateway's that asks |
//! | `pad-paid-before-charge` | an order is marked PAID before its charge is confirmed (a refused charge still ends PAID, units kept) |
//! | `pad-take-clears-cart` | a PAID order's step that takes its units out of the cart clears the whole cart: what the shopper added after `initOrder` is lost |
//! | `pad-stale-view` | service discovery keeps the registry's listing for 10 s and judges its leases at the time of the listing: an instance that died is still routed to seconds after its lease lapsed |

use std::fmt;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    pub raft: raft::Bugs,
    pub unsynced_vote: bool,
    pub duplicate_apply: bool,
    pub unsynced_log: bool,
    pub snapshot_without_sessions: bool,
    pub wal_no_checksum: bool,
    pub ignore_sync_error: bool,
    pub no_compensation: bool,
    pub non_idempotent_payment: bool,
    pub unguarded_stock: bool,
    pub split_multi_read: bool,
    pub vclock_no_merge: bool,
    pub ack_before_decide: bool,
    pub lease_only: bool,
    pub deliver_before_log: bool,
    pub zeros_end_log: bool,
    pub wal_no_order_check: bool,
    pub pad_local_revocation: bool,
    pub pad_expiry_own_clock: bool,
    pub pad_paid_before_charge: bool,
    pub pad_stale_view: bool,
    pub pad_take_clears_cart: bool,
}

pub const ALL: &[&str] = &[
    "vote-no-log-check",
    "figure8",
    "stale-read",
    "stale-append-truncates",
    "unsynced-vote",
    "duplicate-apply",
    "unsynced-log",
    "snapshot-without-sessions",
    "wal-no-checksum",
    "ignore-sync-error",
    "no-log-floor",
    "zeros-end-log",
    "wal-no-order-check",
];

/// The transactional scenario's planted bugs (scenario `txn`).
pub const TXN: &[&str] = &["split-multi-read"];

/// The shop's planted bugs (scenario `checkout`).
pub const SHOP: &[&str] = &[
    "no-compensation",
    "non-idempotent-payment",
    "unguarded-stock",
];

/// The third course's platform's planted bugs.
pub const PAD: &[&str] = &[
    "pad-local-revocation",
    "pad-expiry-own-clock",
    "pad-paid-before-charge",
    "pad-stale-view",
    "pad-take-clears-cart",
];

/// The Tartu bookstore's planted bugs.
pub const TARTU: &[&str] = &[
    "vclock-no-merge",
    "ack-before-decide",
    "lease-only",
    "deliver-before-log",
];

impl Bugs {
    /// Parses one bug name (see the table above).
    pub fn from_name(name: &str) -> Result<Bugs, String> {
        let mut b = Bugs::default();
        match name {
            "vote-no-log-check" => b.raft.vote_without_log_check = true,
            "figure8" => b.raft.commit_old_term = true,
            "stale-read" => b.raft.read_without_quorum = true,
            "stale-append-truncates" => b.raft.truncate_on_stale_append = true,
            "unsynced-vote" => b.unsynced_vote = true,
            "duplicate-apply" => b.duplicate_apply = true,
            "unsynced-log" => b.unsynced_log = true,
            "snapshot-without-sessions" => b.snapshot_without_sessions = true,
            "wal-no-checksum" => b.wal_no_checksum = true,
            "ignore-sync-error" => b.ignore_sync_error = true,
            "no-log-floor" => b.raft.ignore_log_floor = true,
            "zeros-end-log" => b.zeros_end_log = true,
            "wal-no-order-check" => b.wal_no_order_check = true,
            "no-compensation" => b.no_compensation = true,
            "non-idempotent-payment" => b.non_idempotent_payment = true,
            "unguarded-stock" => b.unguarded_stock = true,
            "split-multi-read" => b.split_multi_read = true,
            "vclock-no-merge" => b.vclock_no_merge = true,
            "ack-before-decide" => b.ack_before_decide = true,
            "lease-only" => b.lease_only = true,
            "deliver-before-log" => b.deliver_before_log = true,
            "pad-local-revocation" => b.pad_local_revocation = true,
            "pad-expiry-own-clock" => b.pad_expiry_own_clock = true,
            "pad-paid-before-charge" => b.pad_paid_before_charge = true,
            "pad-stale-view" => b.pad_stale_view = true,
            "pad-take-clears-cart" => b.pad_take_clears_cart = true,
            other => {
                return Err(format!(
                    "unknown bug '{other}'; known bugs: {}, {}, {}, {}, {}",
                    ALL.join(", "),
                    TXN.join(", "),
                    SHOP.join(", "),
                    TARTU.join(", "),
                    PAD.join(", ")
                ))
            }
        }
        Ok(b)
    }

    pub fn is_none(&self) -> bool {
        *self == Bugs::default()
    }
}

impl fmt::Display for Bugs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on: Vec<&str> = ALL
            .iter()
            .chain(TXN)
            .chain(SHOP)
            .chain(TARTU)
            .chain(PAD)
            .copied()
            .filter(|n| {
                Bugs::from_name(n)
                    .map(|b| self.contains(b))
                    .unwrap_or(false)
            })
            .collect();
        if on.is_empty() {
            write!(f, "none")
        } else {
            write!(f, "{}", on.join(","))
        }
    }
}

impl Bugs {
    fn contains(&self, o: Bugs) -> bool {
        (!o.raft.vote_without_log_check || self.raft.vote_without_log_check)
            && (!o.raft.commit_old_term || self.raft.commit_old_term)
            && (!o.raft.read_without_quorum || self.raft.read_without_quorum)
            && (!o.raft.truncate_on_stale_append || self.raft.truncate_on_stale_append)
            && (!o.unsynced_vote || self.unsynced_vote)
            && (!o.duplicate_apply || self.duplicate_apply)
            && (!o.unsynced_log || self.unsynced_log)
            && (!o.snapshot_without_sessions || self.snapshot_without_sessions)
            && (!o.wal_no_checksum || self.wal_no_checksum)
            && (!o.ignore_sync_error || self.ignore_sync_error)
            && (!o.no_compensation || self.no_compensation)
            && (!o.non_idempotent_payment || self.non_idempotent_payment)
            && (!o.unguarded_stock || self.unguarded_stock)
            && (!o.split_multi_read || self.split_multi_read)
            && (!o.vclock_no_merge || self.vclock_no_merge)
            && (!o.ack_before_decide || self.ack_before_decide)
            && (!o.lease_only || self.lease_only)
            && (!o.deliver_before_log || self.deliver_before_log)
            && (!o.raft.ignore_log_floor || self.raft.ignore_log_floor)
            && (!o.zeros_end_log || self.zeros_end_log)
            && (!o.wal_no_order_check || self.wal_no_order_check)
            && (!o.pad_local_revocation || self.pad_local_revocation)
            && (!o.pad_expiry_own_clock || self.pad_expiry_own_clock)
            && (!o.pad_paid_before_charge || self.pad_paid_before_charge)
            && (!o.pad_stale_view || self.pad_stale_view)
            && (!o.pad_take_clears_cart || self.pad_take_clears_cart)
    }
}
