//! madsim-tonic (vendored, `vendor/madsim-tonic`, change 1) opens one
//! connection per call. Upstream's channel opened a handshake connection
//! first (its own network delays, the server's accept loop waiting on
//! it), so each unary
//! call cost four madsim messages instead of three. Run with
//! `cargo simtest --test one_connection_per_call`.
#![cfg(madsim)]

use hostio::{Clock, SimDir};
use register_example::pb::{register_client::RegisterClient, Value};
use std::sync::Arc;
use std::time::Duration;

#[madsim::test]
async fn ten_calls_are_thirty_messages() {
    let handle = madsim::runtime::Handle::current();
    let server = handle.create_node().ip([10, 0, 0, 1].into()).build();
    server.spawn(async {
        register_example::serve(
            Arc::new(SimDir::new()),
            Clock::new(),
            "10.0.0.1:7000".parse().unwrap(),
            false,
        )
        .await
    });
    let client = handle.create_node().ip([10, 0, 0, 2].into()).build();
    let sent = client
        .spawn(async {
            madsim::time::sleep(Duration::from_secs(1)).await;
            let ch = tonic::transport::Endpoint::from_static("http://10.0.0.1:7000").connect_lazy();
            let mut c = RegisterClient::new(ch);
            let net = madsim::net::NetSim::current();
            let before = net.stat().msg_count;
            for value in 0..10 {
                c.write(Value { value })
                    .await
                    .expect("the write is answered");
            }
            net.stat().msg_count - before
        })
        .await
        .unwrap();
    // Per call: the connection, the request and the answer.
    assert_eq!(sent, 30, "madsim messages for ten unary calls");
}
