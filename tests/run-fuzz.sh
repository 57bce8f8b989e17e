#!/bin/sh
# Runs every libFuzzer target in build-fuzz/fuzz on a copy of its seed
# corpus, sharing one total budget of $1 seconds (default 300) equally, so
# adding a target does not lengthen `make test`. `make fuzz` gives each
# target longer. Exit 1 if any target fails.
total=${1:-300}
set -- build-fuzz/fuzz/fuzz_*
n=0
for t in "$@"; do [ -f "$t" ] && [ -x "$t" ] && n=$((n + 1)); done
[ "$n" -gt 0 ] || { echo "fuzz: no targets built"; exit 1; }
secs=$((total / n))
[ "$secs" -ge 10 ] || secs=10
rc=0
for t in "$@"; do
	[ -f "$t" ] && [ -x "$t" ] || continue
	name=$(basename "$t")
	corpus=$(mktemp -d)
	seeds="fuzz/corpus/${name#fuzz_}"
	[ -d "$seeds" ] && cp "$seeds"/* "$corpus"/ 2>/dev/null
	echo "fuzz: $name for ${secs}s"
	if "$t" -max_total_time="$secs" -print_final_stats=1 "$corpus" \
		> "$corpus.log" 2>&1; then
		grep -E 'stat::number_of_executed_units' "$corpus.log" | sed "s/^/fuzz: $name /"
	else
		echo "fuzz: $name FAILED"; tail -n 40 "$corpus.log"; rc=1
	fi
	rm -rf "$corpus" "$corpus.log"
done
exit $rc
