//! TSIG (RFC 8945), the shared-secret signatures secondaries use for zone transfers and
//! NOTIFY: the keys given with `--tsig-key`, checking a request's signature, and signing each
//! message of an answer: the first over the request's MAC, each later one over the previous
//! message's MAC and the timers (section 5.3.1), as NSD, Knot and BIND expect.
//!
//! A signed request that fails (RFC 8945 5.2) is [`Rejected`]: its NOTAUTH answer carries a
//! TSIG record whose Error field says why, as BIND and Knot send it (section 5.3.2): BADKEY
//! (a key or algorithm we do not have) and BADSIG (the MAC does not verify) unsigned, with an
//! empty MAC; BADTIME (signed outside the fudge) signed with the key, the request's time in
//! Time Signed and ours in Other Data, so that the client can see the skew.
//!
//! hickory-proto provides the record, the MAC algorithms and the to-be-signed bytes of a
//! received message; this module owns the key format and the signing of outgoing messages.
//! It reads the clock only in [`verify`] and [`Signer::sign`]; [`verify_at`] takes the time.

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hickory_proto::rr::Name;
use hickory_proto::rr::rdata::tsig::{
    TSIG, TsigAlgorithm, TsigError, make_tsig_record, signed_bitmessage_to_buf,
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
    Invalid(Box<Rejected<'a>>),
}

/// A signed request that failed verification, and the TSIG its NOTAUTH answer carries.
#[derive(Debug)]
pub struct Rejected<'a> {
    /// BADKEY, BADSIG or BADTIME.
    pub error: TsigError,
    /// Why, for the log.
    pub why: String,
    key_name: Name,
    algorithm: TsigAlgorithm,
    /// The request's Time Signed, and our clock when it was checked.
    request_time: u64,
    now: u64,
    /// BADTIME only: the key and the request's MAC the error answer is signed with.
    signed_with: Option<(&'a TsigKey, Vec<u8>)>,
}

impl Rejected<'_> {
    /// `message` (an encoded NOTAUTH answer, without TSIG) with the TSIG record RFC 8945
    /// section 5.3.2 asks for appended.
    pub fn sign(&self, message: Vec<u8>) -> Result<Vec<u8>, String> {
        match &self.signed_with {
            Some((key, request_mac)) => {
                let stub = TSIG::new(
                    key.algorithm.clone(),
                    self.request_time,
                    FUDGE,
                    Vec::new(),
                    0,
                    Some(self.error),
                    time48(self.now).to_vec(),
                );
                Signer::new(key, Some(request_mac.clone())).sign_stub(message, stub)
            }
            None => {
                let stub = TSIG::new(
                    self.algorithm.clone(),
                    self.now,
                    FUDGE,
                    Vec::new(),
                    0,
                    Some(self.error),
                    Vec::new(),
                );
                append_tsig(message, self.key_name.clone(), stub)
            }
        }
    }
}

/// Checks the TSIG of `request` (the last additional record, if any) against `keys`.
pub fn verify<'a>(keys: &'a [TsigKey], request: &[u8]) -> Verified<'a> {
    verify_at(keys, request, now())
}

/// [`verify`] with our clock reading `now` (seconds since the epoch).
pub fn verify_at<'a>(keys: &'a [TsigKey], request: &[u8], now: u64) -> Verified<'a> {
    let Ok((tbs, record)) = signed_bitmessage_to_buf(request, None, true) else {
        return Verified::Unsigned;
    };
    let tsig = &record.data;
    let rejected = |error, why: String, signed_with| {
        Verified::Invalid(Box::new(Rejected {
            error,
            why,
            key_name: record.name.clone(),
            algorithm: tsig.algorithm.clone(),
            request_time: tsig.time,
            now,
            signed_with,
        }))
    };
    let Some(key) = keys
        .iter()
        .find(|k| k.name == record.name && k.algorithm == tsig.algorithm)
    else {
        return rejected(
            TsigError::BadKey,
            format!(
                "unknown TSIG key {} ({}): not one of --tsig-key (name and algorithm must match the client's)",
                record.name, tsig.algorithm
            ),
            None,
        );
    };
    if key
        .algorithm
        .verify_mac(&key.secret, &tbs, &tsig.mac)
        .is_err()
    {
        return rejected(
            TsigError::BadSig,
            format!(
                "bad TSIG signature with key {}: the client's secret differs from --tsig-key's",
                key.name
            ),
            None,
        );
    }
    if now.abs_diff(tsig.time) > u64::from(tsig.fudge) {
        return rejected(
            TsigError::BadTime,
            format!(
                "TSIG time {} is {} s from ours (fudge {} s): check the clocks of both hosts",
                tsig.time,
                now.abs_diff(tsig.time),
                tsig.fudge
            ),
            Some((key, tsig.mac.clone())),
        );
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
    pub fn sign(&mut self, message: Vec<u8>) -> Result<Vec<u8>, String> {
        let stub = TSIG::new(
            self.key.algorithm.clone(),
            now(),
            FUDGE,
            Vec::new(),
            0,
            None,
            Vec::new(),
        );
        self.sign_stub(message, stub)
    }

    /// Signs with the times, error and other data of `stub` (its MAC and original ID are
    /// filled in here).
    fn sign_stub(&mut self, message: Vec<u8>, mut stub: TSIG) -> Result<Vec<u8>, String> {
        if message.len() < 12 {
            return Err("message too short to sign".into());
        }
        stub.oid = u16::from_be_bytes([message[0], message[1]]);
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
        let signed = append_tsig(message, self.key.name.clone(), stub.set_mac(mac.clone()))?;
        self.previous_mac = Some(mac);
        self.first = false;
        Ok(signed)
    }
}

/// `message` with a TSIG record named `key_name` appended (`tsig`'s original ID set to the
/// message's) and the additional count raised.
fn append_tsig(mut message: Vec<u8>, key_name: Name, mut tsig: TSIG) -> Result<Vec<u8>, String> {
    if message.len() < 12 {
        return Err("message too short to sign".into());
    }
    tsig.oid = u16::from_be_bytes([message[0], message[1]]);
    let record = make_tsig_record(key_name, tsig);
    let mut encoder = BinEncoder::new(&mut message);
    encoder.set_offset(encoder.len());
    record
        .emit(&mut encoder)
        .map_err(|e| format!("TSIG: {e}"))?;
    let additionals = u16::from_be_bytes([message[10], message[11]])
        .checked_add(1)
        .ok_or("TSIG: too many additional records")?;
    message[10..12].copy_from_slice(&additionals.to_be_bytes());
    Ok(message)
}

/// A time as the 48-bit big-endian seconds TSIG carries.
fn time48(secs: u64) -> [u8; 6] {
    let b = secs.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
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

    /// The TSIG record of a rejected request's answer, read back with hickory.
    fn error_tsig(rejected: &Rejected<'_>) -> Box<hickory_proto::rr::Record<TSIG>> {
        let mut answer = Message::new(7, MessageType::Response, OpCode::Query);
        answer.metadata.response_code = hickory_proto::op::ResponseCode::NotAuth;
        let wire = rejected.sign(answer.to_vec().unwrap()).unwrap();
        let parsed = Message::from_vec(&wire).unwrap();
        assert_eq!(parsed.metadata.response_code.low(), 9, "NOTAUTH");
        assert!(parsed.additionals.is_empty());
        parsed.signature.expect("a TSIG record")
    }

    /// RFC 8945 5.3.2: an unknown key or a bad MAC is answered with the error and no MAC.
    #[test]
    fn unknown_keys_and_bad_signatures_are_answered_unsigned_with_the_error() {
        let keys = [key()];
        let foreign: TsigKey = "hmac-sha256:other.example.:b3RoZXI=".parse().unwrap();
        let signed_foreign = Signer::new(&foreign, None).sign(query()).unwrap();
        let Verified::Invalid(rejected) = verify(&keys, &signed_foreign) else {
            panic!("an unknown key must not verify");
        };
        assert_eq!(rejected.error, TsigError::BadKey);
        let tsig = error_tsig(&rejected);
        assert_eq!(tsig.name, Name::from_ascii("other.example.").unwrap());
        assert_eq!(tsig.data.error, Some(TsigError::BadKey));
        assert!(tsig.data.mac.is_empty());
        assert_eq!(tsig.data.oid, 7);

        let mut tampered = Signer::new(&keys[0], None).sign(query()).unwrap();
        tampered[13] ^= 0x01;
        let Verified::Invalid(rejected) = verify(&keys, &tampered) else {
            panic!("a changed message must not verify");
        };
        assert_eq!(rejected.error, TsigError::BadSig);
        let tsig = error_tsig(&rejected);
        assert_eq!(tsig.name, keys[0].name);
        assert_eq!(tsig.data.algorithm, TsigAlgorithm::HmacSha256);
        assert_eq!(tsig.data.error, Some(TsigError::BadSig));
        assert!(tsig.data.mac.is_empty());
        assert!(tsig.data.other.is_empty());
    }

    /// RFC 8945 5.2.3: a request signed too long ago gets BADTIME, signed over the request's
    /// MAC, with the request's time and ours in Other Data.
    #[test]
    fn a_request_outside_the_fudge_gets_a_signed_badtime() {
        let keys = [key()];
        let request = Signer::new(&keys[0], None).sign(query()).unwrap();
        let (_, request_tsig) = signed_bitmessage_to_buf(&request, None, true).unwrap();
        let ours = request_tsig.data.time + 1000;
        let Verified::Invalid(rejected) = verify_at(&keys, &request, ours) else {
            panic!("a request 1000 s old must not verify");
        };
        assert_eq!(rejected.error, TsigError::BadTime);
        assert!(rejected.why.contains("1000 s"), "{}", rejected.why);
        let tsig = error_tsig(&rejected);
        assert_eq!(tsig.data.error, Some(TsigError::BadTime));
        assert_eq!(tsig.data.time, request_tsig.data.time);
        assert_eq!(tsig.data.other, time48(ours).to_vec());
        assert_eq!(tsig.data.other.len(), 6);

        let mut answer = Message::new(7, MessageType::Response, OpCode::Query);
        answer.metadata.response_code = hickory_proto::op::ResponseCode::NotAuth;
        let wire = rejected.sign(answer.to_vec().unwrap()).unwrap();
        let (tbs, record) =
            signed_bitmessage_to_buf(&wire, Some(&request_tsig.data.mac), true).unwrap();
        keys[0]
            .algorithm
            .verify_mac(&keys[0].secret, &tbs, &record.data.mac)
            .expect("the BADTIME answer is signed with the key");
        assert!(matches!(
            verify_at(&keys, &request, request_tsig.data.time + 300),
            Verified::Valid { .. }
        ));
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
