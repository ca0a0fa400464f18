#!/bin/bash
# Meridian beside the peers in ../shared/bench/dns/reload_bench.sh (1,000,000-record zone:
# cold load, reload under query load, restart, memory). That harness knows only the peers'
# reload commands, so this runs a copy of it with Meridian added: the zone is edited in a
# staging copy, then installed by rename and SIGHUP (the file watcher sees the rename too;
# whichever reload finishes first serves the new serial).
#   benches/peers/reload_bench.sh [SERVER...]      default: meridian knot nsd gdnsd
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SHARED=${SHARED_BENCH:-$HERE/../../../shared/bench/dns}
COPY=$(mktemp -d -t meridian-reload-bench.XXXXXX)
trap 'rm -rf "$COPY"' EXIT
cp -r "$SHARED/." "$COPY/"
chmod -R u+w "$COPY"
cat > "$COPY/servers/meridian.sh" <<ADAPTER
#!/bin/bash
case "\${1:-}" in
info)  echo "Meridian \$("$HERE/../../target/release/meridian" --version | awk '{print \$2}'); workers=\${THREADS:-1}" ;;
modes) echo "static" ;;
run)   NO_CDN=1 exec "$HERE/meridian.sh" "\$2" "\$3" "\$4" "\${THREADS:-1}" ;;
esac
ADAPTER
chmod +x "$COPY/servers/meridian.sh"
python3 - "$COPY/reload_bench.sh" <<'PY'
import sys
p = sys.argv[1]; s = open(p).read()
s = s.replace('case $1 in gdnsd) echo "$2/etc/zones/cdn.example.net" ;;',
              'case $1 in gdnsd) echo "$2/etc/zones/cdn.example.net" ;; meridian) echo "$2/staging.zone" ;;')
s = s.replace('    *)     echo "no reload command for $1" >&2; return 1 ;;',
              '    meridian) cp "$2/staging.zone" "$2/zones/.next" && mv "$2/zones/.next" "$2/zones/cdn.example.net.zone" && pkill -HUP -f -- "--zones $2/zones" ;;\n'
              '    *)     echo "no reload command for $1" >&2; return 1 ;;')
open(p, 'w').write(s)
PY
cd "$COPY"
OUT=${OUT:-$HERE/../../target/bench-results/reload-$(date +%Y%m%d-%H%M%S)} ./reload_bench.sh "${@:-meridian knot nsd gdnsd}"
