//! Builds `geoip/asn.mmdb`, the shipped IP-to-ASN database, from the ip-location-db
//! project's CSV files (RouteViews, the five RIRs and DB-IP ASN Lite, CC BY 4.0).
//!
//! ```sh
//! npm pack @ip-location-db/asn@<version> && tar xzf ip-location-db-asn-*.tgz
//! cargo run --release --example build_asn_mmdb -- package/asn-ipv4.csv package/asn-ipv6.csv geoip/asn.mmdb
//! ```
//!
//! Each CSV row is `first,last,asn,organisation`; the database gets the MaxMind
//! GeoLite2-ASN schema (`autonomous_system_number`, `autonomous_system_organization`), so
//! that `--asn` reads it exactly as it reads a GeoLite2-ASN or DB-IP ASN file. The build
//! epoch is pinned so that the same CSVs always give the same bytes (and hash).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use mmdb_writer::{IpVersion, Value, Writer};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((out, inputs)) = args.split_last().filter(|(_, inputs)| !inputs.is_empty()) else {
        eprintln!("usage: build_asn_mmdb CSV... OUT.mmdb");
        std::process::exit(2);
    };
    let mut writer = Writer::builder("GeoLite2-ASN")
        .ip_version(IpVersion::V6)
        .build_epoch(UNIX_EPOCH + Duration::from_secs(1_780_000_000))
        .build();
    // One Value per ASN: the writer deduplicates equal records, and cloning a cached one is
    // cheaper than building it again for each of the ~500,000 ranges.
    let mut records: HashMap<u32, Value> = HashMap::new();
    let mut rows = 0usize;
    let mut skipped = 0usize;
    for input in inputs {
        let text = std::fs::read_to_string(input).unwrap_or_else(|e| {
            eprintln!("{input}: {e}");
            std::process::exit(1);
        });
        for (number, line) in text.lines().enumerate() {
            let fail = |what: &str| -> ! {
                eprintln!("{input}:{}: {what}", number + 1);
                std::process::exit(1);
            };
            let mut fields = line.splitn(4, ',');
            let (Some(first), Some(last), Some(asn)) =
                (fields.next(), fields.next(), fields.next())
            else {
                fail("expected first,last,asn,organisation");
            };
            let first: IpAddr = first.parse().unwrap_or_else(|_| fail("bad first address"));
            let last: IpAddr = last.parse().unwrap_or_else(|_| fail("bad last address"));
            let asn: u32 = asn.parse().unwrap_or_else(|_| fail("bad ASN"));
            let organisation = fields.next().unwrap_or("").trim_matches('"').to_string();
            let record = records.entry(asn).or_insert_with(|| {
                Value::map([
                    ("autonomous_system_number", Value::from(asn)),
                    (
                        "autonomous_system_organization",
                        Value::from(organisation.as_str()),
                    ),
                ])
            });
            match writer.insert_range(first, last, record) {
                Ok(()) => rows += 1,
                // Teredo (2001::/32) and 6to4 (2002::/16) are aliases of the IPv4 tree in a
                // MaxMind database: an address there is looked up by its embedded IPv4.
                Err(mmdb_writer::Error::AliasedNetwork(_)) => skipped += 1,
                Err(e) => fail(&e.to_string()),
            }
        }
    }
    let bytes = writer.to_bytes().unwrap_or_else(|e| {
        eprintln!("writing the database: {e}");
        std::process::exit(1);
    });
    std::fs::write(out, &bytes).unwrap_or_else(|e| {
        eprintln!("{out}: {e}");
        std::process::exit(1);
    });
    println!(
        "{out}: {rows} ranges, {} ASNs, {} bytes ({skipped} ranges in the IPv4-aliased \
         Teredo and 6to4 networks left out)",
        records.len(),
        bytes.len()
    );
}
