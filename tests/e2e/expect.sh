# expect.sh: sourced by the end-to-end scripts; needs $tmp (a scratch
# directory) and a failures counter.
# expect STATUS PATTERN -- COMMAND...: the exit status and a stderr fragment.
expect() {
  local status=$1 pattern=$2
  shift 3
  "$@" >"$tmp/stdout" 2>"$tmp/stderr"
  local rc=$?
  if [[ $rc -ne $status ]] || ! grep -qF -- "$pattern" "$tmp/stderr" "$tmp/stdout"; then
    echo "FAIL: $* -> exit $rc (wanted $status), output:" >&2
    cat "$tmp/stdout" "$tmp/stderr" >&2
    failures=$((failures + 1))
  else
    echo "ok: exit $rc: $(head -n 1 "$tmp/stderr" "$tmp/stdout" | grep -v '^==>' | grep . | head -n 1)"
  fi
}

