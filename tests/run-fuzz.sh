#!/bin/sh
# Runs every libFuzzer target in build-fuzz/fuzz for $1 seconds each
# (default 60) on a copy of its seed corpus. Exit 1 if any target fails.
secs=${1:-60}
rc=0
for t in build-fuzz/fuzz/fuzz_*; do
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
