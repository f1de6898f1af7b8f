#!/usr/bin/env bash
# make_generated.sh OUTDIR [NAME...]
# Writes the generated bad programs (too big or too odd to commit: a 1 MB
# line, 10,000 nested brackets, NUL and non-UTF-8 bytes, ...) into OUTDIR as
# NAME.irg; all of them, or only the NAMEs given. Their expected stderr is
# committed as NAME.expected beside this script, like the other cases.
set -euo pipefail
out=$1
shift
mkdir -p "$out"

# repeat STRING COUNT: STRING COUNT times, without a newline.
repeat() { local s=$1 n=$2; printf "%${n}s" '' | sed "s/ /$s/g"; }

gen_long_ident() {     # one identifier of 1 MiB on one line
  printf '# A 1 MiB identifier.\nmodule M() {\n  x = '
  repeat a 1048576
  printf ';\n}\n'
}
gen_long_expr() {      # 1+1+...+1 on one line, 1 MiB long
  printf '# 1+1+...+1 on one line of 1 MiB: too deep an expression.\nmodule M() {\n  x = 1'
  repeat '+1' 524288
  printf ';\n}\n'
}
gen_long_line_error() { # an error in the middle of a 1 MiB line
  printf '# A stray character in the middle of a 1 MiB line.\nmodule M() {\n  x = [0'
  repeat ', 0' 174762
  printf ' $'
  repeat ', 0' 174762
  printf '];\n}\n'
}
gen_deep_parens() {    # 10,000 nested parentheses
  printf '# 10,000 nested parentheses.\nmodule M() {\n  x = '
  repeat '(' 10000
  printf 1
  repeat ')' 10000
  printf ';\n}\n'
}
gen_deep_braces() {    # 10,000 nested braces at file level
  printf '# 10,000 nested braces.\n'
  repeat '{' 10000
  repeat '}' 10000
  printf '\n'
}
gen_deep_ifs() {       # 10,000 nested if blocks (valid syntax, too deep)
  printf '# 10,000 nested if blocks.\nmodule M() {\n'
  repeat 'if true {' 10000
  repeat '}' 10000
  printf '\n}\n'
}
gen_deep_unary() {     # - - - ... - 1, 10,000 deep
  printf '# 10,000 unary minus signs.\nmodule M() {\n  x = '
  repeat '-' 10000
  printf '1;\n}\n'
}
gen_long_string() {    # a string literal of 5,000 bytes
  printf '# A string literal beyond the 4096-byte limit.\nmodule M(s: str = "'
  repeat s 5000
  printf '") {}\n'
}
gen_many_errors() {    # 60 syntax errors: 50 are shown, then a count
  printf '# 60 errors: the first 50 are shown.\nmodule M() {\n'
  for i in $(seq 60); do printf '  x%d = $;\n' "$i"; done
  printf '}\n'
}
gen_non_utf8() {       # a Latin-1 byte in a comment
  printf '# A Latin-1 byte where UTF-8 is expected.\nmodule M() {\n  # caf\xe9\n}\n'
}
gen_nul() {            # a NUL byte
  printf '# A NUL byte.\nmodule M() {\n  x = 1;\0\n}\n'
}
gen_empty() {          # an empty file (irepac params: no model)
  :
}
gen_crlf() {           # CRLF line endings and an error on the second line
  printf '# CRLF line endings.\r\nmodule M() {\r\n  x = 1 $ 2;\r\n}\r\n'
}

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  names=(gen_long_ident gen_long_expr gen_long_line_error gen_deep_parens gen_deep_braces
         gen_deep_ifs gen_deep_unary gen_long_string gen_many_errors gen_non_utf8 gen_nul
         gen_empty gen_crlf)
fi
for name in "${names[@]}"; do
  if [ "$(type -t "$name")" != function ]; then
    echo "$0: no generated case '$name'" >&2
    exit 2
  fi
  "$name" >"$out/$name.irg"
done
