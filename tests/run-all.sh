#!/bin/sh
# The whole test suite, as `make test` runs it:
#  1. build (plain) and run the unit tests;
#  2. generated docs match their tables (docs/events.md, docs/configuration.md);
#  3. end-to-end tests (pytest, real daemon, real clients) on the plain build,
#     then the catalog coverage check over every event they made happen;
#  4. build with AddressSanitizer + UndefinedBehaviorSanitizer, unit and
#     end-to-end tests again;
#  5. libFuzzer targets, sharing one budget of 240 seconds (FUZZ_SECONDS).
# Ends with one line "N passed, N failed" over all steps.
set -u
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
passed=0
failed=0
t_step=$(date +%s)
t_all=$t_step
# Each step's heading; the time the previous step took goes before it.
step() {
	now=$(date +%s)
	[ -n "${step_name:-}" ] && echo "time: ${step_name}: $((now - t_step)) s"
	step_name="$*"
	t_step=$now
	echo; echo "==== $*"
}
ok() { passed=$((passed + 1)); echo "ok: $*"; }
bad() { failed=$((failed + 1)); echo "FAILED: $*"; }
# Adds the counts of a "N passed"/"N failed" summary in file $1.
count() {
	p=$(grep -Eo '[0-9]+ passed' "$1" | awk '{s+=$1} END {print s+0}')
	f=$(grep -Eo '[0-9]+ (failed|error|errors)' "$1" | awk '{s+=$1} END {print s+0}')
	passed=$((passed + p)); failed=$((failed + f))
}
log=$(mktemp)

step "build"
if make -s build > "$log" 2>&1; then ok build; else cat "$log"; bad build; echo "$passed passed, $failed failed"; exit 1; fi

# Unit tests through meson (it passes each test its data paths); every
# program prints "N passed, N failed" over its checks.
unit() {
	if meson test -C "$1" -v > "$log" 2>&1; then :; else grep -E 'FAIL|failed|want' "$log" | head -n 60; fi
	grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | sed "s|^|$1 unit: |"
	p=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | awk '{s+=$1} END {print s+0}')
	f=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | awk '{s+=$3} END {print s+0}')
	passed=$((passed + p)); failed=$((failed + f))
	grep -qE '^Fail: +0' "$log" || { bad "$1 unit tests"; }
}

step "unit tests (plain build)"
unit build

step "generated docs are in sync"
if ./build/postern catalog | cmp -s - docs/events.md; then ok "docs/events.md"; else bad "docs/events.md differs from 'postern catalog' (make docs)"; fi
if ./build/postern config-doc | cmp -s - docs/configuration.md; then ok "docs/configuration.md"; else bad "docs/configuration.md differs from 'postern config-doc' (make docs)"; fi

step "end-to-end tests (plain build)"
events=$(mktemp)
# Each pytest run gets a folder of its own: pytest prunes old basetemp
# folders of the same user, which would pull files from under another
# run's servers.
base=$(mktemp -d)
if POSTERN_BIN=build/postern POSTERN_EVENTS_LOG="$events" $PY -m pytest -q -p no:cacheprovider \
	--basetemp="$base/plain" tests/e2e > "$log" 2>&1; then :; fi
tail -n 30 "$log"
count "$log"
if POSTERN_BIN=build/postern POSTERN_EVENTS_LOG="$events" $PY tests/e2e/check_coverage.py; then ok "catalog coverage"; else bad "catalog coverage"; fi
rm -f "$events"

step "sanitizer build (ASan + UBSan)"
export ASAN_OPTIONS=abort_on_error=0:detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
if make -s build-asan > "$log" 2>&1; then ok build-asan; else cat "$log"; bad build-asan; fi
unit build-asan
if [ -x build-asan/postern ]; then
	if POSTERN_BIN=build-asan/postern $PY -m pytest -q -p no:cacheprovider \
		--basetemp="$base/asan" tests/e2e > "$log" 2>&1; then :; fi
	tail -n 30 "$log"
	count "$log"
fi

step "fuzzing"
if make -s build-fuzz > "$log" 2>&1; then
	if sh tests/run-fuzz.sh "${FUZZ_SECONDS:-240}"; then ok fuzz; else bad fuzz; fi
else
	cat "$log"; bad build-fuzz
fi

rm -rf "$log" "$base"
now=$(date +%s)
echo "time: ${step_name}: $((now - t_step)) s"
echo "time: all steps: $((now - t_all)) s"
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
