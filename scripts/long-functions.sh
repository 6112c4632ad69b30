#!/usr/bin/env bash
# Lists the functions longer than LIMIT lines (default 60) in the given directories (default
# src), longest first: "LINES FILE:LINE NAME SCOPE". Prints nothing when there are none.
# Reads ctags' end: field (universal-ctags); lambdas and bodies ctags cannot see are not listed.
set -euo pipefail
LIMIT=${LIMIT:-60}
command -v ctags >/dev/null || { echo "long-functions.sh: ctags not found (apt-get install universal-ctags)" >&2; exit 2; }
ctags --fields=+ne --kinds-c++=f -o - -R "${@:-src}" 2>/dev/null |
awk -F'\t' -v lim="$LIMIT" '{ l=""; e=""; cls="";
  for (i=4;i<=NF;i++) { if ($i ~ /^line:/) l=substr($i,6); if ($i ~ /^end:/) e=substr($i,5); if ($i ~ /^(class|struct|namespace):/) cls=$i }
  if (l!="" && e!="" && e-l+1>lim) printf "%4d %s:%s %s %s\n", e-l+1, $2, l, $1, cls }' | sort -rn
