#!/usr/bin/env bash
# run_bad.sh IREPAC CASE.expected
# Runs one case of the bad-program corpus and checks the exit status and
# the exact stderr. CASE.expected holds, on its first line, the command and
# status:
#     # irepac ARGS... => exit N
# optionally followed by " (file-level error)" when the diagnostics may
# name no line (unreadable, empty or model-less files); the rest of the
# file is the exact stderr. The compiler runs in this directory on
# relative paths, so messages read "NAME.irg:3:5"; cases named gen_* run
# on inputs that make_generated.sh writes into a temporary directory.
# Checks: no crash, the status, every error of a status-1 case located
# (file:line:col) unless marked file-level, and the stderr text.
# With UPDATE_GOLDEN=1 the stderr (and status) are written back instead.
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 IREPAC CASE.expected" >&2
  exit 2
fi
irepac=$(realpath "$1") expected=$(realpath "$2")
here=$(dirname "$(realpath "$0")")
name=$(basename "$expected" .expected)
header=$(head -n 1 "$expected")
re='^# irepac (.*) => exit ([0-9]+)( \(file-level error\))?$'
if ! [[ $header =~ $re ]]; then
  echo "FAIL: $expected: first line must be '# irepac ARGS => exit N'" >&2
  exit 1
fi
read -r -a args <<<"${BASH_REMATCH[1]}"
want_rc=${BASH_REMATCH[2]} file_level=${BASH_REMATCH[3]}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
workdir=$here
if [[ $name == gen_* ]]; then
  "$here/make_generated.sh" "$tmp/gen" "$name"
  workdir=$tmp/gen
fi
rc=0
(cd "$workdir" && "$irepac" "${args[@]}") >"$tmp/out" 2>"$tmp/err" || rc=$?

if [ "$rc" -ge 128 ] || grep -q -e 'Sanitizer' -e 'runtime error:' "$tmp/err"; then
  echo "FAIL: irepac ${args[*]} crashed (status $rc):" >&2
  cat "$tmp/err" >&2
  exit 1
fi
if [ "${UPDATE_GOLDEN:-0}" = 1 ]; then
  { printf '# irepac %s => exit %d%s\n' "${args[*]}" "$rc" "$file_level"; cat "$tmp/err"; } >"$expected"
  echo "rewrote $expected (exit $rc)"
  exit 0
fi
fail=0
if [ "$rc" -ne "$want_rc" ]; then
  echo "FAIL: irepac ${args[*]}: exit status $rc, expected $want_rc" >&2
  fail=1
fi
if [ "$want_rc" -eq 1 ] && [ -z "$file_level" ] &&
   grep -E -e '^[^ ]*: error: ' "$tmp/err" | grep -v -E -q '^[^ :]+:[0-9]+:[0-9]+: error: '; then
  echo "FAIL: irepac ${args[*]}: an error without file:line:col:" >&2
  grep -E '^[^ ]*: error: ' "$tmp/err" | grep -v -E '^[^ :]+:[0-9]+:[0-9]+: error: ' >&2
  fail=1
fi
if ! diff -u <(tail -n +2 "$expected") "$tmp/err"; then
  echo "FAIL: irepac ${args[*]}: stderr differs from $expected" >&2
  fail=1
fi
if [ "$fail" -ne 0 ]; then
  echo "(if the change is intended: UPDATE_GOLDEN=1 ctest -L golden, then review the diff)" >&2
  exit 1
fi
echo "OK: irepac ${args[*]} => exit $rc, $(wc -l <"$tmp/err") lines of diagnostics as expected"
