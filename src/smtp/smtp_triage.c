/*
 * smtp_triage.c - pre-greeting triage, as Postfix's postscreen and
 * smtpf: with smtp.greet_pause the greeting waits; a client that talks
 * before it (an early talker) or sends a command behind its HELO/EHLO
 * before the reply (pipelining it was never offered) is refused with
 * 554 5.5.1 and the connection closed. A client that passed is
 * remembered by address for smtp.greet_pass_ttl, and skips the pause
 * and the checks: the pass cache.
 *
 * The pass cache is in memory, bounded (TRIAGE_SLOTS), shared by every
 * loop under one mutex (a lookup is a few compares). Seam: issue 9
 * moves it to the state store (kv.h) so that nodes share it; only
 * cache_passed() and cache_remember() change then.
 */
#include "smtp_session_private.h"

#include <netinet/in.h>
#include <pthread.h>
#include <string.h>

#include "hash.h"

#define TRIAGE_SLOTS 4096	/* addresses remembered */
#define TRIAGE_PROBE 8		/* slots looked at per address */

struct triage_pass {
	uint8_t addr[16];	/* IPv6, IPv4 mapped */
	uint64_t until_ms;	/* 0: free */
};

static struct triage_pass cache[TRIAGE_SLOTS];
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;

/* The peer as 16 octets; -1 if not IP. */
static int
peer_key(const struct sockaddr_storage *ss, uint8_t key[16])
{
	if (ss->ss_family == AF_INET) {
		memset(key, 0, 10);
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
		return 0;
	}
	if (ss->ss_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
		return 0;
	}
	return -1;
}

static int
cache_passed(const struct sockaddr_storage *peer, uint64_t now)
{
	uint8_t key[16];
	int hit = 0;

	if (peer_key(peer, key) < 0)
		return 0;
	size_t h = (size_t)hash_bytes(key, sizeof(key));
	pthread_mutex_lock(&cache_mu);
	for (size_t i = 0; i < TRIAGE_PROBE && !hit; i++) {
		const struct triage_pass *p = &cache[(h + i) % TRIAGE_SLOTS];
		hit = p->until_ms > now && memcmp(p->addr, key, sizeof(key)) == 0;
	}
	pthread_mutex_unlock(&cache_mu);
	return hit;
}

/* Takes the address's own slot, a free or expired one, or else the one
 * that expires first among those probed. */
static void
cache_remember(const struct sockaddr_storage *peer, uint64_t now, uint64_t ttl_ms)
{
	uint8_t key[16];

	if (peer_key(peer, key) < 0)
		return;
	size_t h = (size_t)hash_bytes(key, sizeof(key));
	pthread_mutex_lock(&cache_mu);
	struct triage_pass *best = &cache[h % TRIAGE_SLOTS];
	for (size_t i = 0; i < TRIAGE_PROBE; i++) {
		struct triage_pass *p = &cache[(h + i) % TRIAGE_SLOTS];
		if (memcmp(p->addr, key, sizeof(key)) == 0 || p->until_ms <= now) {
			best = p;
			break;
		}
		if (p->until_ms < best->until_ms)
			best = p;
	}
	memcpy(best->addr, key, sizeof(key));
	best->until_ms = now + ttl_ms;
	pthread_mutex_unlock(&cache_mu);
}

int
smtp_triage_begin(struct smtp_session *s)
{
	if (s->cfg->smtp_greet_pause == 0 || s->trusted || s->env->draining ||
	    (s->lst != NULL && s->lst->role != CONFIG_ROLE_MX) ||
	    cache_passed(&s->conn.peer, loop_clock_ms()))
		return 0;
	s->triage = 1;
	s->greet_wait = 1;
	smtp_session_flag(s, "greet-pause");
	net_session_deadline(&s->ns, (uint64_t)s->cfg->smtp_greet_pause * 1000u);
	return 1;
}

/* Refuses and closes: the reply is logged as its event. */
static void
triage_refuse(struct smtp_session *s, enum cond_id cond, const struct kv *kv, size_t n)
{
	s->greet_wait = 0;
	s->triage = 0;
	smtp_session_reply(s, cond, kv, n);
	s->state = SMTP_STATE_CLOSING;
	s->end_cause = cond;
}

int
smtp_triage_input(struct smtp_session *s)
{
	struct slice u = buf_unread(&s->in, s->in_off);

	if (u.len == 0)
		return 0;
	struct kv kv[] = { KV("client", s->conn.peer_text), KVU("bytes", u.len),
			   KVU("waited_ms", loop_clock_ms() - s->started_ms) };
	triage_refuse(s, COND_SMTP_EARLY_TALKER, kv, ARRAY_LEN(kv));
	return 1;
}

void
smtp_triage_pause_over(struct smtp_session *s)
{
	s->greet_wait = 0;
	s->active_ms = loop_clock_ms();
	smtp_greet(s);
}

int
smtp_triage_line(struct smtp_session *s, const uint8_t *line, size_t len)
{
	struct slice l = { line, len };

	if (!slice_starts_nocase(l, "EHLO") && !slice_starts_nocase(l, "HELO"))
		return 0;
	if (s->in_off < s->in.len) {
		struct kv kv[] = { KV("client", s->conn.peer_text), KVM("cmd", line, 4),
				   KVU("bytes", s->in.len - s->in_off) };
		triage_refuse(s, COND_SMTP_PIPELINING_EARLY, kv, ARRAY_LEN(kv));
		return 1;
	}
	s->triage = 0;
	cache_remember(&s->conn.peer, loop_clock_ms(),
		       (uint64_t)s->cfg->smtp_greet_pass_ttl * 1000u);
	struct log_ctx ctx = { .sid = s->sid };
	struct kv kv[] = { KV("client", s->conn.peer_text),
			   KVU("ttl_s", s->cfg->smtp_greet_pass_ttl) };
	catalog_log(COND_SMTP_TRIAGE_PASSED, &ctx, kv, ARRAY_LEN(kv));
	return 0;
}
