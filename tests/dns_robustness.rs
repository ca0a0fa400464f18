//! Bad input never stops the server (issue 2, "malformed input"): random datagrams,
//! truncated and oversized messages, and garbage over TCP.

mod common;

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::path::PathBuf;

use common::dns::{Server, query_message};
use hickory_proto::rr::RecordType;
use rand::{Rng, SeedableRng};

fn server() -> Server {
    Server::with_zones(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/dns")).start()
}

#[test]
fn random_truncated_and_oversized_datagrams_do_not_stop_the_server() {
    let mut s = server();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6d65_7269);
    let valid = query_message(
        "www.example.test.",
        RecordType::A,
        true,
        Some(("192.0.2.0", 24)),
    )
    .to_vec()
    .unwrap();
    for i in 0..5000 {
        let datagram: Vec<u8> = match if i % 40 == 3 { 3 } else { i % 3 } {
            // Pure noise of any length.
            0 => (0..rng.random_range(0..600))
                .map(|_| rng.random())
                .collect(),
            // A valid query cut short.
            1 => valid[..rng.random_range(0..valid.len())].to_vec(),
            // A valid query with random bytes flipped.
            2 => {
                let mut v = valid.clone();
                for _ in 0..rng.random_range(1..6) {
                    let at = rng.random_range(0..v.len());
                    v[at] = rng.random();
                }
                v
            }
            // Oversized: a valid header then 60 KB of noise.
            _ => {
                let mut v = valid[..12].to_vec();
                v.extend((0..60_000).map(|_| rng.random::<u8>()));
                v
            }
        };
        let _ = socket.send_to(&datagram, s.dns);
        if i % 500 == 0 {
            // The server keeps answering good queries in between.
            assert_eq!(
                s.query("www.example.test.", RecordType::A).answers.len(),
                1,
                "after {i} bad datagrams"
            );
        }
    }
    assert!(s.is_running(), "server died; log:\n{}", s.log());
    assert_eq!(s.query("www.example.test.", RecordType::A).answers.len(), 1);
    assert!(!s.log().contains("panicked"), "{}", s.log());
}

#[test]
fn garbage_over_tcp_closes_only_that_connection() {
    let mut s = server();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..50 {
        let mut stream = TcpStream::connect(s.dns).unwrap();
        let noise: Vec<u8> = (0..rng.random_range(1..3000))
            .map(|_| rng.random())
            .collect();
        let _ = stream.write_all(&noise);
    }
    // A frame announcing more than it sends, then the client goes away.
    let mut stream = TcpStream::connect(s.dns).unwrap();
    stream.write_all(&[0xff, 0xff, 1, 2, 3]).unwrap();
    drop(stream);
    assert!(s.is_running());
    let answers = common::dns::tcp_exchange(
        s.dns,
        &[query_message(
            "www.example.test.",
            RecordType::A,
            false,
            None,
        )],
    );
    assert_eq!(answers[0].answers.len(), 1);
}
