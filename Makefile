# Postern - thin wrapper over Meson/Ninja.
#   make run    install missing Debian packages, build, run on etc/postern.conf
#   make test   the same install step, then every test (unit, end-to-end,
#               sanitizers, fuzzing, generated-docs checks)
# Other targets: build, build-asan, build-fuzz, docs, fuzz, clean.

DEBS = gcc meson ninja-build pkg-config libssl-dev libsqlite3-dev libcrypt-dev \
       clang libclang-rt-14-dev python3-pytest swaks libnet-ssleay-perl openssl procps \
       fetchmail
# tests/unit/test_smtp_client.c runs a real peer: Postfix's smtp-sink
DEBS += postfix
DEBS += dovecot-core dovecot-pop3d
# the DNS resolver links c-ares; test_dns.py (and outbound tests) serve zones
# with NSD and failures with python3-dnslib (tests/e2e/dnszone.py)
DEBS += libc-ares-dev nsd python3-dnslib
# strace: test_commit_path.py checks the order of the flush and the 250
DEBS += strace
# linux-perf: bench/syscalls.py counts system calls (perf trace) and hand-offs (perf probe); not used by make test
DEBS += linux-perf
# tests/e2e/test_spf_suite.py reads the RFC 7208 suite (YAML)
DEBS += python3-yaml
# libpsl, publicsuffix: core/regdomain.c groups MX hosts by registered domain (test_regdomain)
DEBS += libpsl-dev publicsuffix
# libpcre2: the access map's /regex/ patterns (policy/access_map.c, test_access.py)
DEBS += libpcre2-dev
# hiredis: the Redis state back end (store/state_redis*.c); redis-server:
# tests/e2e/redisfix.py starts one for test_greylist.py and test_state_redis.py
DEBS += redis-server libhiredis-dev
# tests/e2e/test_metrics.py parses /metrics with the Prometheus client's own parser
DEBS += python3-prometheus-client
# iproute2 (ss): tests/e2e/test_stalls.py reads each listening socket's backlog
DEBS += iproute2

.PHONY: all deps build build-asan build-fuzz run test unit e2e docs docs-check fuzz clean

all: build

deps:
	@sh tests/install-deps.sh $(DEBS)

build/build.ninja:
	meson setup build --buildtype=debugoptimized

build: build/build.ninja
	ninja -C build

build-asan/build.ninja:
	meson setup build-asan --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false

build-asan: build-asan/build.ninja
	ninja -C build-asan

build-fuzz/build.ninja:
	CC=clang meson setup build-fuzz --buildtype=debug -Dfuzz=true -Db_lundef=false

build-fuzz: build-fuzz/build.ninja
	ninja -C build-fuzz

run: deps build
	@test -s etc/accounts || { echo "etc/accounts missing"; exit 1; }
	./build/postern make-cert -c etc/postern.conf
	./build/postern serve -c etc/postern.conf

# Regenerates the generated reference pages from the tables.
docs: build
	./build/postern catalog > docs/events.md
	./build/postern config-doc > docs/configuration.md

test: deps
	@sh tests/run-all.sh

fuzz: build-fuzz
	@sh tests/run-fuzz.sh 1800

clean:
	rm -rf build build-asan build-fuzz
