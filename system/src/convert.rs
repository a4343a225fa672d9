//! Conversions between the Raft core's types and their protobuf forms (the
//! wire format of the Raft transport and the write-ahead log's records).

use crate::pb::{self, raft_message::Kind};
use raft::{Entry, HardState, Message, MsgKind, Snapshot};

pub fn entry_to_pb(e: Entry) -> pb::Entry {
    pb::Entry {
        term: e.term,
        index: e.index,
        data: e.data,
    }
}

pub fn entry_from_pb(e: pb::Entry) -> Entry {
    Entry {
        term: e.term,
        index: e.index,
        data: e.data,
    }
}

pub fn hard_state_to_pb(h: &HardState) -> pb::HardState {
    pb::HardState {
        term: h.term,
        vote: h.vote.unwrap_or(0),
        commit: h.commit,
    }
}

pub fn hard_state_from_pb(h: pb::HardState) -> HardState {
    HardState {
        term: h.term,
        vote: (h.vote != 0).then_some(h.vote),
        commit: h.commit,
    }
}

pub fn snapshot_to_pb(s: Snapshot) -> pb::Snapshot {
    pb::Snapshot {
        index: s.index,
        term: s.term,
        data: s.data,
    }
}

/// The bytes of `snapshot_to_pb(s.clone()).encode_to_vec()`, appended to
/// `buf` without a copy of the snapshot's data in between.
pub fn encode_snapshot_pb(s: &Snapshot, buf: &mut Vec<u8>) {
    use prost::encoding::{bytes, uint64};
    // proto3: fields at their default value are left out, as prost does.
    if s.index != 0 {
        uint64::encode(1, &s.index, buf);
    }
    if s.term != 0 {
        uint64::encode(2, &s.term, buf);
    }
    if !s.data.is_empty() {
        bytes::encode(3, &s.data, buf);
    }
}

/// The length [`encode_snapshot_pb`] appends.
pub fn snapshot_pb_len(s: &Snapshot) -> usize {
    use prost::encoding::{bytes, uint64};
    (if s.index != 0 {
        uint64::encoded_len(1, &s.index)
    } else {
        0
    }) + (if s.term != 0 {
        uint64::encoded_len(2, &s.term)
    } else {
        0
    }) + (if s.data.is_empty() {
        0
    } else {
        bytes::encoded_len(3, &s.data)
    })
}

pub fn snapshot_from_pb(s: pb::Snapshot) -> Snapshot {
    Snapshot {
        index: s.index,
        term: s.term,
        data: s.data,
    }
}

pub fn message_to_pb(m: Message) -> pb::RaftMessage {
    let vote = |last_index, last_term| pb::VoteRequest {
        last_index,
        last_term,
    };
    let kind = match m.kind {
        MsgKind::PreVote {
            last_index,
            last_term,
        } => Kind::PreVote(vote(last_index, last_term)),
        MsgKind::PreVoteResp { reject } => Kind::PreVoteResp(pb::VoteResponse { reject }),
        MsgKind::Vote {
            last_index,
            last_term,
        } => Kind::Vote(vote(last_index, last_term)),
        MsgKind::VoteResp { reject } => Kind::VoteResp(pb::VoteResponse { reject }),
        MsgKind::Append {
            prev_index,
            prev_term,
            entries,
            commit,
        } => Kind::Append(pb::Append {
            prev_index,
            prev_term,
            entries: entries.into_iter().map(entry_to_pb).collect(),
            commit,
        }),
        MsgKind::AppendResp {
            reject,
            index,
            hint_term,
            hint_index,
        } => Kind::AppendResp(pb::AppendResponse {
            reject,
            index,
            hint_term,
            hint_index,
        }),
        MsgKind::Heartbeat { commit, ctx } => Kind::Heartbeat(pb::Heartbeat { commit, ctx }),
        MsgKind::HeartbeatResp { ctx } => Kind::HeartbeatResp(pb::Heartbeat { commit: 0, ctx }),
        MsgKind::InstallSnapshot { snapshot } => Kind::InstallSnapshot(snapshot_to_pb(snapshot)),
    };
    pb::RaftMessage {
        from: m.from,
        to: m.to,
        term: m.term,
        kind: Some(kind),
    }
}

pub fn message_from_pb(m: pb::RaftMessage) -> Option<Message> {
    let kind = match m.kind? {
        Kind::PreVote(v) => MsgKind::PreVote {
            last_index: v.last_index,
            last_term: v.last_term,
        },
        Kind::PreVoteResp(v) => MsgKind::PreVoteResp { reject: v.reject },
        Kind::Vote(v) => MsgKind::Vote {
            last_index: v.last_index,
            last_term: v.last_term,
        },
        Kind::VoteResp(v) => MsgKind::VoteResp { reject: v.reject },
        Kind::Append(a) => MsgKind::Append {
            prev_index: a.prev_index,
            prev_term: a.prev_term,
            entries: a.entries.into_iter().map(entry_from_pb).collect(),
            commit: a.commit,
        },
        Kind::AppendResp(a) => MsgKind::AppendResp {
            reject: a.reject,
            index: a.index,
            hint_term: a.hint_term,
            hint_index: a.hint_index,
        },
        Kind::Heartbeat(h) => MsgKind::Heartbeat {
            commit: h.commit,
            ctx: h.ctx,
        },
        Kind::HeartbeatResp(h) => MsgKind::HeartbeatResp { ctx: h.ctx },
        Kind::InstallSnapshot(s) => MsgKind::InstallSnapshot {
            snapshot: snapshot_from_pb(s),
        },
    };
    Some(Message {
        from: m.from,
        to: m.to,
        term: m.term,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    /// The snapshot file's payload is prost's encoding of `pb::Snapshot`,
    /// also when fields are at their default value (which prost leaves
    /// out).
    #[test]
    fn snapshots_are_encoded_as_prost_encodes_them() {
        for (index, term, data) in [
            (0, 0, vec![]),
            (7, 0, vec![]),
            (0, 3, vec![1]),
            (300, 5, vec![9; 200]),
            (u64::MAX, u64::MAX, vec![0; 70_000]),
        ] {
            let s = Snapshot { index, term, data };
            let mut buf = vec![0xAA];
            encode_snapshot_pb(&s, &mut buf);
            let want = snapshot_to_pb(s.clone()).encode_to_vec();
            assert_eq!(&buf[1..], &want[..]);
            assert_eq!(snapshot_pb_len(&s), want.len());
        }
    }
}
