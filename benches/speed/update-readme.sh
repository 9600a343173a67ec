#!/usr/bin/env bash
# Runs `cargo bench --bench speed` and puts its table in README.md, between
# the "speed table" markers, so the numbers there are one run's, side by side.
set -euo pipefail
cd "$(dirname "$0")/../.."
table=$(mktemp)
trap 'rm -f "$table"' EXIT
# The bench fails (after printing) when a refusal's cost tells its reason:
# such a table must not reach the README.
cargo bench --bench speed 2>/dev/null >"$table"
grep -q '^xmpp-token-auth .* SHA extensions' "$table" || {
  echo "update-readme: the bench printed no table" >&2
  exit 1
}
awk -v table="$table" '
  /<!-- speed table: begin -->/ {
    print; print "```"
    while ((getline line < table) > 0) print line
    print "```"; skipping = 1; next
  }
  /<!-- speed table: end -->/ { skipping = 0 }
  !skipping
' README.md >README.md.new
grep -q '<!-- speed table: end -->' README.md.new || {
  echo "update-readme: README.md has no speed table markers" >&2
  rm -f README.md.new
  exit 1
}
mv README.md.new README.md
echo "README.md: speed table updated"
