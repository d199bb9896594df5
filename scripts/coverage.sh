#!/usr/bin/env bash
# Per-package statement coverage of the test runs whose raw coverage data
# (go test -cover -covermode=atomic ... -args -test.gocoverdir=DIR) is in
# the directories given, merged by `go tool covdata`: a package's figure
# counts the tests of every run (make test: the -race run and the run
# without -race). Prints every package of PKGS, sorted, and fails naming
# each package of FLOOR_PKGS below MIN percent or without coverage data.
#
#   scripts/coverage.sh MIN 'PKGS' 'FLOOR_PKGS' DIR...
#
# PKGS and FLOOR_PKGS are go package patterns (./..., ./actors/...). A
# package with no test files writes no coverage data: it is listed as
# such. The figures are those of the runs that last wrote the directories
# (make test-race and make test-norace each recreate their own). GO names
# the go command (default go).
set -euo pipefail

if [ $# -lt 4 ]; then
  echo "usage: $0 MIN 'PKGS' 'FLOOR_PKGS' DIR..." >&2
  exit 2
fi
min=$1 pkgs=$2 floor_pkgs=$3
shift 3
GO=${GO:-go}

dirs=
for d in "$@"; do
  if [ ! -d "$d" ]; then
    echo "coverage: no coverage data in $d (run make test-race test-norace first)" >&2
    exit 1
  fi
  dirs=${dirs:+$dirs,}$d
done

module=$($GO list -m)
# One line per package: its import path, and "notests" when it has no
# test files.
# shellcheck disable=SC2086 # the patterns are word lists
all=$($GO list -f '{{.ImportPath}}{{if not (or .TestGoFiles .XTestGoFiles)}} notests{{end}}' $pkgs | LC_ALL=C sort)
# shellcheck disable=SC2086
floor=$($GO list $floor_pkgs)
# "<tab>pkg<tab><tab>coverage: 84.1% of statements" for each package with
# data; a package without statements is "<tab>pkg<tab><tab>" with no
# newline after it.
percent=$($GO tool covdata percent -i="$dirs")

# A package without test files has data when the tests of packages that
# import it ran its code (go test -cover instruments such packages in
# every test binary): shown, but it is not the package's own coverage.
awk -v min="$min" -v module="$module/" -v all="$all" -v floor="$floor" -v percent="$percent" '
BEGIN {
  m = split(percent, tok, /[ \t\n]+/)
  pkg = ""
  for (i = 1; i <= m; i++) {
    if (tok[i] == "" || tok[i] == "coverage:" || tok[i] == "of" || tok[i] == "statements") continue
    if (tok[i] ~ /^[0-9.]+%$/) { if (pkg != "") cov[pkg] = tok[i]; continue }
    pkg = tok[i]
    cov[pkg] = "[no statements]"
  }
  split(floor, fl, "\n")
  for (i in fl) if (fl[i] != "") isfloor[fl[i]] = 1
  printf "statement coverage per package, all test runs merged (* : floor %s%%):\n", min
  bad = 0
  n = split(all, pk, "\n")
  for (i = 1; i <= n; i++) {
    split(pk[i], w, " ")
    p = w[1]
    if (p == "") continue
    listed[p] = 1
    name = p
    if (index(p, module) == 1) name = substr(p, length(module) + 1)
    mark = (p in isfloor) ? "*" : " "
    if (w[2] == "notests") {
      figure = "no test files"
      if (p in cov) figure = figure " (" cov[p] " run by other packages\047 tests)"
      if (p in isfloor) fail[++bad] = sprintf("%s: %s", name, figure)
    } else if (p in cov) {
      figure = cov[p]
      if ((p in isfloor) && figure ~ /%$/ && figure + 0 < min + 0)
        fail[++bad] = sprintf("%s: %s of statements, below the %s%% floor", name, figure, min)
    } else {
      figure = "no coverage data"
      if (p in isfloor) fail[++bad] = sprintf("%s: %s", name, figure)
    }
    printf "  %s %-36s %s\n", mark, name, figure
  }
  for (p in isfloor)
    if (!(p in listed)) fail[++bad] = sprintf("%s: a floor package outside the packages tested", p)
  for (i = 1; i <= bad; i++) printf "coverage: %s\n", fail[i] > "/dev/stderr"
  exit (bad > 0 ? 1 : 0)
}'
