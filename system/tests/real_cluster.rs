//! Real mode: three `bookstore node` processes on loopback with data on disk.
//! Kill the leader, keep writing, restart it, and read every acknowledged
//! write back from every node.
#![cfg(not(madsim))]

use bookstore::client::{ClientOptions, KvClient};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Cluster {
    base_port: u16,
    data: std::path::PathBuf,
    procs: BTreeMap<u64, Child>,
}

impl Cluster {
    fn start(&mut self, id: u64) {
        let child = Command::new(env!("CARGO_BIN_EXE_bookstore"))
            .args([
                "node",
                "--id",
                &id.to_string(),
                "--base-port",
                &self.base_port.to_string(),
                "--data-dir",
            ])
            .arg(&self.data)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn bookstore node");
        self.procs.insert(id, child);
    }

    fn kill(&mut self, id: u64) {
        let mut c = self.procs.remove(&id).unwrap();
        c.kill().unwrap();
        c.wait().unwrap();
    }

    fn peers(&self) -> BTreeMap<u64, String> {
        (1..=3)
            .map(|i| (i, format!("127.0.0.1:{}", self.base_port as u64 + i - 1)))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.procs.values_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

async fn leader(c: &mut KvClient) -> u64 {
    for _ in 0..100 {
        for id in 1..=3 {
            if let Ok(s) = c.status(id).await {
                if s.role == "Leader" {
                    return id;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no leader");
}

#[tokio::test]
async fn killing_and_restarting_the_leader_loses_no_acknowledged_write() {
    let base_port = 20000 + (std::process::id() % 2000) as u16 * 3;
    let data = std::env::temp_dir().join(format!("bookstore-real-{}", std::process::id()));
    let mut cluster = Cluster {
        base_port,
        data,
        procs: BTreeMap::new(),
    };
    for id in 1..=3 {
        cluster.start(id);
    }
    let opts = ClientOptions {
        total_timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    };
    let mut client = KvClient::new(cluster.peers(), 42, opts.clone());
    let mut acked = BTreeMap::new();
    let mut unknown = 0;
    for i in 0..60 {
        if i == 20 {
            let l = leader(&mut client).await;
            cluster.kill(l);
        }
        if i == 40 {
            for id in 1..=3 {
                if !cluster.procs.contains_key(&id) {
                    cluster.start(id);
                }
            }
        }
        let (k, v) = (format!("k{i}"), format!("v{i}"));
        match client.put(&k, &v).await {
            Ok(_) => {
                acked.insert(k, v);
            }
            Err(e) => {
                assert!(e.is_unknown(), "{e}");
                unknown += 1;
            }
        }
    }
    assert!(
        acked.len() >= 50,
        "only {} of 60 writes acknowledged ({unknown} unknown)",
        acked.len()
    );
    // Every node, the restarted one included, ends up with every acknowledged write.
    let keys: Vec<&str> = acked.keys().map(String::as_str).collect();
    for id in 1..=3 {
        let mut last = None;
        for _ in 0..100 {
            if let Ok((values, _)) = client.local_read(id, &keys).await {
                let got: BTreeMap<String, String> = keys
                    .iter()
                    .zip(values)
                    .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
                    .collect();
                if got == acked {
                    last = None;
                    break;
                }
                last = Some(got.len());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(last, None, "node {id} is missing acknowledged writes");
    }
    // And a linearizable read through the leader agrees.
    let mut reader = KvClient::new(cluster.peers(), 43, opts);
    for (k, v) in &acked {
        assert_eq!(reader.get(k).await.unwrap().as_ref(), Some(v));
    }
}
