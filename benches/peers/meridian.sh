#!/bin/bash
# Run Meridian under ../shared/bench/dns/run.sh beside the peers:
#   ./run.sh --server "meridian:static,geo,geo-ecs=$PWD/benches/peers/meridian.sh {PORT} {DATA} {WORK} {THREADS}"
# Builds a zones directory from the harness's data (the zone, and a cdn.toml with its edges
# for the geo modes) and execs the release binary in the foreground.
set -euo pipefail
PORT=$1 DATA=$2 WORK=$3 THREADS=${4:-1}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${MERIDIAN_BIN:-$HERE/../../target/release/meridian}
mkdir -p "$WORK/zones"
if [[ -n ${ZONEFILE:-} ]]; then
    cp "$ZONEFILE" "$WORK/zones/cdn.example.net.zone"
    cp "$ZONEFILE" "$WORK/staging.zone"   # reload_bench.sh edits this copy, then installs it
else
    # The harness's zone has the geo name as a static record; Meridian schedules it instead.
    grep -v '^www\.customer\.com\.w' "$DATA/cdn.example.net.zone" > "$WORK/zones/cdn.example.net.zone"
fi
if [[ -f $DATA/geo/edges.tsv && -z ${NO_CDN:-} ]]; then
    python3 - "$DATA/geo/edges.tsv" > "$WORK/zones/cdn.toml" <<'PY'
import sys
print('[cdn]\nzone = "cdn.example.net"\nsuffix = "w.cdn.example.net"\nttl = 60\nanswers = 1\n')
countries = {"us": "US", "eu": "DE", "jp": "JP", "cn": "CN"}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) < 4 or parts[0].startswith('#'):
        continue
    dc, lat, lon, ips = parts[0], parts[1], parts[2], parts[3]
    addrs = ", ".join(f'"{ip}"' for ip in ips.split(','))
    print(f'[[edge]]\nname = "{dc}"\ncountry = "{countries.get(dc, "US")}"\nlat = {lat}\nlon = {lon}\nipv4 = [{addrs}]\n')
print('[[domain]]\nname = "www.customer.com"\nregion = "global"\nbusiness = "small-files"\norigins = ["192.0.2.200"]\nicp = "BENCH-0001"')
PY
fi
exec "$BIN" --zones "$WORK/zones" --geoip "$DATA/GeoIP2-City.mmdb" --listen "127.0.0.1:$PORT" \
    --admin 127.0.0.1:0 --workers "$THREADS"
