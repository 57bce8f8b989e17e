/*
 * outbound_private.h - what the outbound engine's files share (outbound.c:
 * destinations, connections, jobs; outbound_mx.c: finding the hosts).
 */
#ifndef POSTERN_OUTBOUND_PRIVATE_H
#define POSTERN_OUTBOUND_PRIVATE_H

#include <pthread.h>
#include <sys/socket.h>

#include "net_session.h"
#include "outbound.h"
#include "smtp_client.h"

_Static_assert(OUTBOUND_REPLY_MAX >= SMTP_CLIENT_TEXT_MAX + 32, "a reply fits a result");

#define OB_HOSTS_MAX 24		/* MX hosts (and route hosts) per job */
#define OB_ADDRS_MAX 4		/* addresses per host and family */
#define OB_TARGETS_MAX 48	/* addresses tried per job */
#define OB_LOOKUPS_MAX (OB_HOSTS_MAX * 3)

/* One address to try. */
struct ob_target {
	struct sockaddr_storage sa;
	socklen_t salen;
	unsigned pref;
	char host[256];		/* the host's name, for SNI, verify and logs */
	int tls_name;		/* host is a name (not a literal address) */
};

/* A host being resolved. */
struct ob_host {
	char name[256];		/* "" once replaced by its MX hosts */
	unsigned pref;
	uint16_t port;		/* 0: outbound.port */
	int from_dns;		/* found through DNS: loopback rule applies */
	int mx_lookup;		/* a route host named without brackets */
	int literal;		/* an address, not a name */
	int temp;		/* an address lookup could not find out */
	unsigned n4, n6;
	uint8_t a4[OB_ADDRS_MAX][4];
	uint8_t a6[OB_ADDRS_MAX][16];
};

enum ob_phase { OB_PHASE_MX, OB_PHASE_ADDR };

struct ob_lookup;
struct ob_conn;

/* The engine (outbound.c). */
struct outbound {
	struct loop *loop;
	struct dns_resolver *dns;
	struct workpool *wp;
	struct net_table table;		/* the client sessions */
	pthread_mutex_t mu;		/* guards cfg and inbox */
	struct config *cfg;		/* loop thread only (outbound_set_config posts) */
	struct outbound_job *inbox;	/* submitted, not taken yet */
	struct outbound_job *jobs;	/* every job taken, until done */
	struct ob_conn *conns;		/* every connection */
	int posted;
	struct ob_dest *dests;
	size_t ndests;
	struct tls_client *tls;		/* the system's CA store, verifying */
	struct tls_client *tls_any;	/* not verifying (tls = may, encrypt) */
	int read_cls;			/* the pool class of the client's spool reads */
	struct { char *ca; struct tls_client *ctx; } cas[8];
	size_t ncas;
	int stopping;
};

/* A job's resolution state, freed once it has its targets. */
struct ob_resolve {
	enum ob_phase phase;
	struct ob_host hosts[OB_HOSTS_MAX];
	size_t nhosts;
	struct ob_lookup *lookups;	/* OB_LOOKUPS_MAX */
	size_t nlookups;
	unsigned nxdomain;
	int null_mx;
	int own_addr;			/* an address of ours was found */
	unsigned own_addr_pref;
	char why[512];			/* the last DNS trouble, for the reply */
};

/* outbound_mx.c */
void outbound_mx_start(struct outbound_job *job);
void outbound_mx_finish(struct outbound_job *job);
void outbound_mx_cancel(struct outbound_job *job);
void outbound_mx_fini(struct outbound_job *job);

/* outbound_result.c */
void outbound_result_set(struct outbound_result *r, enum outbound_kind kind, enum cond_id cond,
			 const char *status, const char *reply, const char *relay);
/* The status of a reply: its enhanced code, or one made from its class
 * (buf holds it then). */
const char *outbound_reply_status(const struct smtp_client_reply *r, char *buf, size_t len);
/* A reply as the log and the DSN show it: "550 5.1.1 text", or "no reply". */
void outbound_reply_text(const struct smtp_client_reply *r, char *buf, size_t len);
/* Fills job->res for the recipients of the transaction that just ended
 * (job->pend[0..nsending)) from the peer's replies; those to send again
 * at once (452 4.5.3) are moved to the front of job->pend. ttext gets the
 * transaction's reply. Returns how many are to send again. */
size_t outbound_results_map(struct outbound_job *job, const struct smtp_client_result *res,
			    const char *relay, int dsn_offered, char *ttext, size_t ttext_len);

/* outbound.c, for outbound_mx.c */
void outbound_job_resolved(struct outbound_job *job);
void outbound_job_finish_all(struct outbound_job *job, enum outbound_kind kind,
			     enum cond_id cond, const char *status, const char *reply);

#endif
