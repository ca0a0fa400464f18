//! TSIG (RFC 8945), the shared-secret signatures secondaries use for zone transfers and
//! NOTIFY: the keys given with `--tsig-key`, checking a request's signature, and signing each
//! message of an answer: the first over the request's MAC, each later one over the previous
//! message's MAC and the timers (section 5.3.1), as NSD, Knot and BIND expect.
//!
//! hickory-proto provides the record, the MAC algorithms and the to-be-signed bytes of a
//! received message; this module owns the key format and the signing of outgoing messages.

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hickory_proto::rr::Name;
use hickory_proto::rr::rdata::tsig::{
    TSIG, TsigAlgorithm, make_tsig_record, signed_bitmessage_to_buf,
};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

/// Seconds a signature's time may differ from ours (RFC 8945 recommends 300).
const FUDGE: u16 = 300;

/// A shared secret, named like the secondary names it.
#[derive(Clone)]
pub struct TsigKey {
    pub name: Name,
    pub algorithm: TsigAlgorithm,
    secret: Vec<u8>,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(f, "TsigKey({} {})", self.algorithm.to_name(), self.name)
    }
}

impl FromStr for TsigKey {
    type Err = String;

    /// `[ALGORITHM:]NAME:BASE64-SECRET`, as `dig -y` takes it; the algorithm defaults to
    /// hmac-sha256.
    fn from_str(text: &str) -> Result<TsigKey, String> {
        let usage = || {
            format!(
                "TSIG key {:?}: expected [ALGORITHM:]NAME:BASE64-SECRET, like hmac-sha256:transfer:c2VjcmV0",
                text.split(':').take(2).collect::<Vec<_>>().join(":")
            )
        };
        let parts: Vec<&str> = text.split(':').collect();
        let (algorithm, name, secret) = match parts.as_slice() {
            [name, secret] => ("hmac-sha256", *name, *secret),
            [algorithm, name, secret] => (*algorithm, *name, *secret),
            _ => return Err(usage()),
        };
        let algorithm = Name::from_ascii(algorithm)
            .map(TsigAlgorithm::from_name)
            .map_err(|_| usage())?;
        if !algorithm.supported() || matches!(algorithm, TsigAlgorithm::Unknown(_)) {
            return Err(format!(
                "TSIG algorithm {} is not supported: use hmac-sha256, hmac-sha384 or hmac-sha512",
                algorithm.to_name()
            ));
        }
        let mut name = Name::from_ascii(name).map_err(|_| usage())?;
        name.set_fqdn(true);
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret)
            .map_err(|e| format!("TSIG key {name}: the secret is not base64: {e}"))?;
        if secret.is_empty() {
            return Err(format!("TSIG key {name}: the secret is empty"));
        }
        Ok(TsigKey {
            name,
            algorithm,
            secret,
        })
    }
}

/// What a request's signature says.
#[derive(Debug)]
pub enum Verified<'a> {
    Unsigned,
    /// Signed with `key`; `mac` starts the answer's signature chain.
    Valid {
        key: &'a TsigKey,
        mac: Vec<u8>,
    },
    /// Signed, but not with a key we have, or not validly, or at the wrong time.
    Invalid(String),
}

/// Checks the TSIG of `request` (the last additional record, if any) against `keys`.
pub fn verify<'a>(keys: &'a [TsigKey], request: &[u8]) -> Verified<'a> {
    let Ok((tbs, record)) = signed_bitmessage_to_buf(request, None, true) else {
        return Verified::Unsigned;
    };
    let tsig = &record.data;
    let Some(key) = keys
        .iter()
        .find(|k| k.name == record.name && k.algorithm == tsig.algorithm)
    else {
        return Verified::Invalid(format!("unknown TSIG key {}", record.name));
    };
    if key
        .algorithm
        .verify_mac(&key.secret, &tbs, &tsig.mac)
        .is_err()
    {
        return Verified::Invalid(format!("bad TSIG signature with key {}", key.name));
    }
    if now().abs_diff(tsig.time) > u64::from(tsig.fudge) {
        return Verified::Invalid(format!(
            "TSIG time {} is more than {} s from ours",
            tsig.time, tsig.fudge
        ));
    }
    Verified::Valid {
        key,
        mac: tsig.mac.clone(),
    }
}

/// Signs the messages of one answer (or one request: no previous MAC) in order.
pub struct Signer<'a> {
    key: &'a TsigKey,
    previous_mac: Option<Vec<u8>>,
    first: bool,
}

impl<'a> Signer<'a> {
    /// For an answer to a request signed with `key` whose MAC was `request_mac`; `None`
    /// for a request of our own (NOTIFY).
    pub fn new(key: &'a TsigKey, request_mac: Option<Vec<u8>>) -> Signer<'a> {
        Signer {
            key,
            previous_mac: request_mac,
            first: true,
        }
    }

    /// `message` (encoded, without TSIG) with its TSIG record appended.
    pub fn sign(&mut self, mut message: Vec<u8>) -> Result<Vec<u8>, String> {
        if message.len() < 12 {
            return Err("message too short to sign".into());
        }
        let id = u16::from_be_bytes([message[0], message[1]]);
        let stub = TSIG::new(
            self.key.algorithm.clone(),
            now(),
            FUDGE,
            Vec::new(),
            id,
            None,
            Vec::new(),
        );
        let mut tbs = Vec::with_capacity(message.len() + 128);
        let mut encoder = BinEncoder::new(&mut tbs);
        let encode_error = |e: hickory_proto::ProtoError| format!("TSIG: {e}");
        if let Some(previous) = &self.previous_mac {
            encoder
                .emit_u16(previous.len() as u16)
                .map_err(encode_error)?;
            encoder.emit_vec(previous).map_err(encode_error)?;
        }
        encoder.emit_vec(&message).map_err(encode_error)?;
        if self.first {
            stub.emit_tsig_for_mac(&mut encoder, &self.key.name)
                .map_err(encode_error)?;
        } else {
            encoder
                .emit_u16((stub.time >> 32) as u16)
                .map_err(encode_error)?;
            encoder.emit_u32(stub.time as u32).map_err(encode_error)?;
            encoder.emit_u16(stub.fudge).map_err(encode_error)?;
        }
        let mac = self
            .key
            .algorithm
            .mac_data(&self.key.secret, &tbs)
            .map_err(|e| format!("TSIG: {e}"))?;
        let record = make_tsig_record(self.key.name.clone(), stub.set_mac(mac.clone()));
        let mut encoder = BinEncoder::new(&mut message);
        encoder.set_offset(encoder.len());
        record.emit(&mut encoder).map_err(encode_error)?;
        let additionals = u16::from_be_bytes([message[10], message[11]]) + 1;
        message[10..12].copy_from_slice(&additionals.to_be_bytes());
        self.previous_mac = Some(mac);
        self.first = false;
        Ok(message)
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::RecordType;

    fn key() -> TsigKey {
        "hmac-sha256:xfr.example.:c2VjcmV0LXNlY3JldC1zZWNyZXQ="
            .parse()
            .unwrap()
    }

    fn query() -> Vec<u8> {
        let mut message = Message::new(7, MessageType::Query, OpCode::Query);
        message.queries.push(Query::query(
            Name::from_ascii("example.").unwrap(),
            RecordType::AXFR,
        ));
        message.to_vec().unwrap()
    }

    #[test]
    fn keys_parse_like_dig_y_and_bad_ones_say_why() {
        let plain: TsigKey = "xfr:c2VjcmV0".parse().unwrap();
        assert_eq!(plain.algorithm, TsigAlgorithm::HmacSha256);
        assert_eq!(plain.name, Name::from_ascii("xfr.").unwrap());
        assert!("xfr".parse::<TsigKey>().unwrap_err().contains("expected"));
        assert!("xfr:***".parse::<TsigKey>().unwrap_err().contains("base64"));
        assert!(
            "hmac-bogus:xfr:c2VjcmV0"
                .parse::<TsigKey>()
                .unwrap_err()
                .contains("not supported")
        );
        assert!(
            !format!("{:?}", key()).contains("c2Vj"),
            "no secret in logs"
        );
    }

    #[test]
    fn a_signed_request_verifies_and_a_changed_or_foreign_one_does_not() {
        let keys = [key()];
        let signed = Signer::new(&keys[0], None).sign(query()).unwrap();
        assert!(matches!(verify(&keys, &signed), Verified::Valid { .. }));
        assert!(matches!(verify(&keys, &query()), Verified::Unsigned));

        let mut tampered = signed.clone();
        tampered[13] ^= 0x01; // a letter of the question's name

        assert!(matches!(verify(&keys, &tampered), Verified::Invalid(_)));

        let other: TsigKey = "hmac-sha256:xfr.example.:b3RoZXI=".parse().unwrap();
        assert!(matches!(verify(&[other], &signed), Verified::Invalid(_)));
    }

    /// The chain a secondary checks: the first answer over the request's MAC, later ones
    /// over the previous MAC and the timers, verified with hickory's own reader.
    #[test]
    fn answer_messages_chain_their_signatures() {
        let keys = [key()];
        let request = Signer::new(&keys[0], None).sign(query()).unwrap();
        let Verified::Valid { key, mac } = verify(&keys, &request) else {
            panic!("request signature");
        };
        let mut signer = Signer::new(key, Some(mac.clone()));
        let mut previous = mac;
        for i in 0..3 {
            let answer = Message::new(7, MessageType::Response, OpCode::Query);
            let signed = signer.sign(answer.to_vec().unwrap()).unwrap();
            let (tbs, record) = signed_bitmessage_to_buf(&signed, Some(&previous), i == 0).unwrap();
            key.algorithm
                .verify_mac(&key.secret, &tbs, &record.data.mac)
                .unwrap();
            previous = record.data.mac.clone();
        }
    }
}
