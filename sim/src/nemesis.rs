//! Plays a fault schedule against the cluster: each fault starts at its
//! time and ends after its duration; every start and end is recorded in the
//! history. At the end of the phase every fault still active is ended.

use crate::cluster::SimCluster;
use crate::recorder::Recorder;
use crate::schedule::{Fault, FaultEvent};
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;

pub async fn play(cluster: &mut SimCluster, rec: &Recorder, faults: &[FaultEvent], phase_ms: u64) {
    let start = Instant::now();
    // (time, is_start, fault id), ends before starts at the same instant.
    let mut timeline: Vec<(u64, bool, usize)> = Vec::new();
    for (i, f) in faults.iter().enumerate() {
        if f.at_ms < phase_ms {
            timeline.push((f.at_ms, true, i));
            timeline.push(((f.at_ms + f.duration_ms).min(phase_ms), false, i));
        }
    }
    timeline.sort();
    let mut active: std::collections::BTreeMap<usize, Fault> = Default::default();
    for (at, is_start, i) in timeline {
        tokio::time::sleep_until(start + Duration::from_millis(at)).await;
        if is_start {
            let applied = cluster.start_fault(i, &faults[i].fault);
            rec.nemesis("start", json!({"id": i, "fault": applied}));
            active.insert(i, applied);
        } else if let Some(f) = active.remove(&i) {
            cluster.end_fault(i, &f);
            rec.nemesis("end", json!({"id": i, "fault": f}));
        }
    }
    tokio::time::sleep_until(start + Duration::from_millis(phase_ms)).await;
    for (i, f) in std::mem::take(&mut active) {
        cluster.end_fault(i, &f);
        rec.nemesis("end", json!({"id": i, "fault": f}));
    }
}
