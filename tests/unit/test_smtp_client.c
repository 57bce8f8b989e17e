/*
 * test_smtp_client.c - the SMTP client engine (deliver/smtp_client.h) on a
 * real loop against scripted peers: a thread of this program listens on
 * 127.0.0.1, plays a script (send this, expect that, read the data, start
 * TLS, stall, trickle, close) and records what arrived. Also one run
 * against Postfix's smtp-sink when it is installed (skipped otherwise,
 * said so on stdout).
 *
 * Script steps (one string each):
 *   "S:text"  send text           "E:prefix"  read a line, check its start
 *   "1:n"     one recv() must bring exactly n whole lines (pipelining)
 *   "D"       read DATA up to CRLF.CRLF, in one recv() if possible
 *   "B"       read BDAT chunks up to LAST      "T"  STARTTLS server side
 *   "C"       close                "Q"  read until the client closes
 *   "A"       close, accept the next connection
 *   "X"       an endless reply line   "M"  an endless multi-line reply
 *   "K"       trickle a reply one octet per 200 ms    "Z"  stall
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "crc32c.h"
#include "log.h"
#include "smtp_client.h"
#include "smtp_client_reply.h"
#include "testing.h"

#define PEER_BUF (4 * 1024 * 1024)

struct peer {
	int lfd, fd;
	const char *const *script;
	SSL_CTX *sctx;
	SSL *ssl;
	uint8_t *in;		/* buffered input */
	size_t inlen;
	uint8_t *rec;		/* every line received, in order */
	size_t reclen;
	uint8_t *data;		/* DATA/BDAT payload as sent (stuffed) */
	size_t datalen;
	int data_one_read;	/* D: the whole data with its end came in one recv */
	int bdat_chunks;
	int ok;			/* every step passed */
	char fail[256];
	pthread_t th;
};

static struct loop *loop;
static struct workpool *wp;
static struct net_table table;
static int read_cls;
static struct tls_client *cctx_verify, *cctx_any;
static char certfile[256], keyfile[256];

/* ---- the scripted peer ---------------------------------------------------- */

static ssize_t
p_recv(struct peer *p, void *b, size_t n)
{
	if (p->ssl != NULL) {
		int r = SSL_read(p->ssl, b, (int)n);
		return r > 0 ? r : (SSL_get_error(p->ssl, r) == SSL_ERROR_ZERO_RETURN ? 0 : -1);
	}
	return recv(p->fd, b, n, 0);
}

static int
p_send(struct peer *p, const void *b, size_t n)
{
	if (p->ssl != NULL)
		return SSL_write(p->ssl, b, (int)n) == (int)n ? 0 : -1;
	return send(p->fd, b, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

static int
p_fill(struct peer *p)
{
	if (p->inlen >= PEER_BUF)
		return -1;
	ssize_t r = p_recv(p, p->in + p->inlen, PEER_BUF - p->inlen);
	if (r <= 0)
		return -1;
	p->inlen += (size_t)r;
	return (int)r;
}

static void
p_take(struct peer *p, size_t n, int record)
{
	if (record && p->reclen + n <= PEER_BUF) {
		memcpy(p->rec + p->reclen, p->in, n);
		p->reclen += n;
	}
	memmove(p->in, p->in + n, p->inlen - n);
	p->inlen -= n;
}

/* A line with its CRLF into line (NUL-terminated); -1 at EOF. */
static int
p_line(struct peer *p, char *line, size_t size)
{
	for (;;) {
		uint8_t *lf = memchr(p->in, '\n', p->inlen);
		if (lf != NULL) {
			size_t n = (size_t)(lf - p->in) + 1;
			size_t k = n < size - 1 ? n : size - 1;
			memcpy(line, p->in, k);
			line[k] = '\0';
			p_take(p, n, 1);
			return 0;
		}
		if (p_fill(p) < 0)
			return -1;
	}
}

static void
p_fail(struct peer *p, const char *step, const char *got)
{
	if (p->ok)
		snprintf(p->fail, sizeof(p->fail), "step %s: got %.120s", step, got);
	p->ok = 0;
}

static void
p_data(struct peer *p)
{
	int reads = 0;
	for (;;) {
		uint8_t *end = p->inlen >= 5 ? memmem(p->in, p->inlen, "\r\n.\r\n", 5) : NULL;
		if (p->inlen == 3 && memcmp(p->in, ".\r\n", 3) == 0)
			end = p->in - 2;
		if (end != NULL) {
			size_t n = (size_t)(end - p->in) + 5;
			memcpy(p->data, p->in, n);
			p->datalen = n;
			p->data_one_read = reads <= 1;
			p_take(p, n, 0);
			return;
		}
		if (p_fill(p) < 0) {
			memcpy(p->data, p->in, p->inlen);
			p->datalen = p->inlen;
			p_fail(p, "D", "EOF before the end of data");
			return;
		}
		reads++;
	}
}

static void
p_bdat(struct peer *p)
{
	char line[256];
	for (;;) {
		if (p_line(p, line, sizeof(line)) < 0) {
			p_fail(p, "B", "EOF");
			return;
		}
		unsigned long n = 0;
		char last[8] = "";
		if (sscanf(line, "BDAT %lu %7s", &n, last) < 1) {
			p_fail(p, "B", line);
			return;
		}
		while (p->inlen < n)
			if (p_fill(p) < 0) {
				p_fail(p, "B", "EOF in chunk");
				return;
			}
		memcpy(p->data + p->datalen, p->in, n);
		p->datalen += n;
		p->bdat_chunks++;
		p_take(p, n, 0);
		if (strcmp(last, "LAST") == 0) {
			(void)p_send(p, "250 2.0.0 queued as B\r\n", 23);
			return;
		}
		(void)p_send(p, "250 2.0.0 chunk\r\n", 17);
	}
}

static void
p_wait_eof(struct peer *p)
{
	while (p_fill(p) >= 0)
		p_take(p, p->inlen, 1);
}

static void *
peer_main(void *arg)
{
	struct peer *p = arg;
	char line[8192];

	struct pollfd pf = { .fd = p->lfd, .events = POLLIN };
	p->fd = poll(&pf, 1, 10000) == 1 ? accept(p->lfd, NULL, NULL) : -1;
	if (p->fd < 0) {
		p_fail(p, "accept", strerror(errno));
		return NULL;
	}
	struct timeval tv = { 8, 0 };
	(void)setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(p->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	for (const char *const *s = p->script; *s != NULL; s++) {
		const char *st = *s;
		switch (st[0]) {
		case 'S':
			if (p_send(p, st + 2, strlen(st + 2)) < 0)
				p_fail(p, st, "send failed");
			break;
		case 'E':
			if (p_line(p, line, sizeof(line)) < 0)
				p_fail(p, st, "EOF");
			else if (strncmp(line, st + 2, strlen(st + 2)) != 0)
				p_fail(p, st, line);
			break;
		case '1': {
			int want = atoi(st + 2), got = 0;
			if (p->inlen != 0 || p_fill(p) < 0) {
				p_fail(p, st, "input before, or EOF");
				break;
			}
			for (size_t i = 0; i < p->inlen; i++)
				got += p->in[i] == '\n';
			if (got != want || p->in[p->inlen - 1] != '\n')
				p_fail(p, st, (const char *)p->in);
			p_take(p, p->inlen, 1);
			break;
		}
		case 'D':
			p_data(p);
			break;
		case 'B':
			p_bdat(p);
			break;
		case 'T': {
			p->ssl = SSL_new(p->sctx);
			SSL_set_fd(p->ssl, p->fd);
			if (SSL_accept(p->ssl) != 1) {
				char e[200];
				ERR_error_string_n(ERR_get_error(), e, sizeof(e));
				p_fail(p, st, e);
			}
			break;
		}
		case 'C':
			goto out;
		case 'A':	/* the client comes again */
			close(p->fd);
			p->inlen = 0;
			p->fd = poll(&pf, 1, 10000) == 1 ? accept(p->lfd, NULL, NULL) : -1;
			if (p->fd < 0) {
				p_fail(p, st, "no second connection");
				return NULL;
			}
			(void)setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			break;
		case 'Q':
			p_wait_eof(p);
			break;
		case 'X': {	/* an endless line: the client must drop us */
			static const char a[1024] = { [0 ... 1023] = 'a' };
			(void)p_send(p, "250-", 4);
			for (int i = 0; i < 4096 && p_send(p, a, sizeof(a)) == 0; i++)
				;
			p_wait_eof(p);
			break;
		}
		case 'M':
			for (int i = 0; i < 100000 && p_send(p, "250-more\r\n", 10) == 0; i++)
				;
			p_wait_eof(p);
			break;
		case 'K': {
			const char *t = "220 slow.example ESMTP\r\n";
			struct timespec ts = { 0, 200 * 1000 * 1000 };
			for (size_t i = 0; t[i] && p_send(p, t + i, 1) == 0; i++)
				nanosleep(&ts, NULL);
			p_wait_eof(p);
			break;
		}
		case 'Z':
			p_wait_eof(p);
			break;
		}
	}
out:
	if (p->ssl != NULL) {
		SSL_shutdown(p->ssl);
		SSL_free(p->ssl);
	}
	close(p->fd);
	return NULL;
}

static void
peer_start(struct peer *p, const char *const *script, struct sockaddr_in *sa)
{
	socklen_t len = sizeof(*sa);

	memset(p, 0, sizeof(*p));
	p->ok = 1;
	p->script = script;
	p->in = malloc(PEER_BUF);
	p->rec = malloc(PEER_BUF);
	p->data = malloc(PEER_BUF);
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)sa, sizeof(*sa)) < 0 ||
	    listen(p->lfd, 4) < 0 || getsockname(p->lfd, (struct sockaddr *)sa, &len) < 0) {
		perror("peer listen");
		exit(2);
	}
	p->sctx = SSL_CTX_new(TLS_server_method());
	if (SSL_CTX_use_certificate_chain_file(p->sctx, certfile) != 1 ||
	    SSL_CTX_use_PrivateKey_file(p->sctx, keyfile, SSL_FILETYPE_PEM) != 1) {
		fprintf(stderr, "peer TLS setup failed\n");
		exit(2);
	}
	if (pthread_create(&p->th, NULL, peer_main, p) != 0)
		exit(2);
}

static void
peer_join(struct peer *p)
{
	pthread_join(p->th, NULL);
	close(p->lfd);
	SSL_CTX_free(p->sctx);
	if (!p->ok)
		fprintf(stderr, "[%s] peer: %s\n", testing_case, p->fail);
	free(p->in);
	p->data[p->datalen < PEER_BUF ? p->datalen : PEER_BUF - 1] = '\0';
	p->rec[p->reclen < PEER_BUF ? p->reclen : PEER_BUF - 1] = '\0';
}

static void
peer_free(struct peer *p)
{
	free(p->rec);
	free(p->data);
}

/* ---- the client side ------------------------------------------------------ */

#define MAXR 8
static struct {
	int opened, ready_called;
	struct smtp_client_result open_res;
	const struct smtp_client_msg *msgs[2];
	int nmsgs, nsend;
	struct smtp_client_result send_res[2];
	struct smtp_client_reply rr[2][MAXR];
	int timed_out;
	int idle_ms, idle_mode, idle_closed;
	int refused_long;
} R;
static struct loop_timer guard;

static void
guard_fire(struct loop *l, void *arg)
{
	(void)arg;
	R.timed_out = 1;
	loop_stop(l);
}

static void
on_done(void *arg, struct smtp_client *c, const struct smtp_client_result *res)
{
	(void)arg;
	int k = R.nsend++;
	R.send_res[k] = *res;
	for (size_t i = 0; i < R.msgs[k]->n && i < MAXR; i++)
		R.rr[k][i] = res->rcpt[i];
	R.send_res[k].rcpt = NULL;
	if (res->reusable && R.nsend < R.nmsgs) {
		if (smtp_client_send(c, R.msgs[R.nsend], on_done, NULL) < 0)
			loop_stop(loop);
		return;
	}
	if (res->reusable)
		smtp_client_quit(c);
	loop_stop(loop);
}

static void
on_idle_closed(void *arg, struct smtp_client *c)
{
	(void)arg;
	(void)c;
	R.idle_closed++;
	loop_stop(loop);
}

static void
on_ready(void *arg, struct smtp_client *c, const struct smtp_client_result *res)
{
	(void)arg;
	R.ready_called++;
	R.open_res = *res;
	R.opened = c != NULL;
	if (c != NULL && R.nmsgs > 0) {	/* an envelope string past its bound: refused */
		static char huge[5000];
		memset(huge, 'a', sizeof(huge) - 1);
		struct smtp_client_msg bad = *R.msgs[0];
		bad.from = huge;
		R.refused_long = smtp_client_send(c, &bad, on_done, NULL) == -1 && errno == EINVAL;
	}
	if (c == NULL) {
		loop_stop(loop);
		return;
	}
	if (R.idle_mode) {
		smtp_client_on_idle(c, (unsigned)R.idle_ms, on_idle_closed, NULL);
		return;
	}
	if (R.nmsgs == 0) {
		smtp_client_quit(c);
		loop_stop(loop);
		return;
	}
	if (smtp_client_send(c, R.msgs[0], on_done, NULL) < 0) {
		smtp_client_abort(c);
		loop_stop(loop);
	}
}

static struct smtp_client_params
params(const struct sockaddr_in *sa)
{
	struct smtp_client_params p = {
		.sa = (const struct sockaddr *)sa, .salen = sizeof(*sa),
		.host = "mx.example.test", .helo = "client.example.test",
		.self = "me.example.test", .tls = SMTP_CLIENT_TLS_NONE,
		.sid = "00000000000000aa", .read_cls = read_cls,
	};
	p.t.greeting_ms = 3000;
	p.t.helo_ms = p.t.mail_ms = p.t.rcpt_ms = p.t.data_ms = p.t.dot_ms = 3000;
	p.t.block_ms = p.t.starttls_ms = p.t.auth_ms = 3000;
	return p;
}

static void
drive_msgs(const struct smtp_client_params *p, const struct smtp_client_msg *m1,
	   const struct smtp_client_msg *m2, int idle_ms)
{
	memset(&R, 0, sizeof(R));
	R.idle_mode = idle_ms >= 0;
	R.idle_ms = idle_ms;
	R.msgs[0] = m1;
	R.msgs[1] = m2;
	R.nmsgs = m1 == NULL ? 0 : m2 == NULL ? 1 : 2;
	loop = loop_new();	/* loop_stop() is for good: a loop per run */
	loop_timer_init(&guard, guard_fire, NULL);
	loop_timer_set(loop, &guard, 15000);
	struct smtp_client *c = smtp_client_open(&table, loop, wp, p, on_ready, NULL);
	CHECK(c != NULL);
	if (c != NULL)
		CHECK_INT(loop_run(loop), 0);
	loop_timer_cancel(loop, &guard);
	while (loop_step(loop) > 0)	/* the deferred frees */
		;
	loop_free(&loop);
	CHECK_INT(R.timed_out, 0);
}

static void
drive(const struct smtp_client_params *p, const struct smtp_client_msg *m1,
      const struct smtp_client_msg *m2)
{
	drive_msgs(p, m1, m2, -1);
}

static void
drive_idle(const struct smtp_client_params *p, int idle_ms)
{
	drive_msgs(p, NULL, NULL, idle_ms);
}

/* A message in a temporary file: its fd, with the CRC32C of body. */
static struct smtp_client_msg
message(const char *body, size_t len, const struct smtp_client_rcpt *rcpts, size_t n)
{
	char path[] = "/tmp/postern-sc-XXXXXX";
	int fd = mkstemp(path);
	const char *junk = "ENVELOPE";
	if (fd < 0 || write(fd, junk, 8) != 8 || (len && write(fd, body, len) != (ssize_t)len))
		exit(2);
	unlink(path);
	struct smtp_client_msg m = {
		.from = "sender@example.org", .fd = fd, .off = 8, .len = len,
		.crc = crc32c_update(0, body, len), .size = len, .rcpts = rcpts, .n = n,
	};
	return m;
}

static const char *const ehlo_full =
	"S:250-mx.example.test hello\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n"
	"250-8BITMIME\r\n250-SMTPUTF8\r\n250-DSN\r\n250 ENHANCEDSTATUSCODES\r\n";

static int
has_event(const char *logpath, const char *event)
{
	char buf[1 << 16];
	log_flush();
	FILE *f = fopen(logpath, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	return strstr(buf, event) != NULL;
}

/* ---- the reply parser ----------------------------------------------------- */

static enum smtp_client_rp
feed(struct smtp_client_rparse *p, const char *line)
{
	return smtp_client_rparse_line(p, (const uint8_t *)line, strlen(line));
}

static void
test_parser(void)
{
	struct smtp_client_rparse p;

	TEST_CASE("parser: multi-line EHLO reply and keywords");
	smtp_client_rparse_init(&p, 1);
	CHECK_INT(feed(&p, "250-mx.example.test greets you"), SMTP_CLIENT_RP_MORE);
	CHECK_INT(feed(&p, "250-PIPELINING"), SMTP_CLIENT_RP_MORE);
	CHECK_INT(feed(&p, "250-SIZE 52428800"), SMTP_CLIENT_RP_MORE);
	CHECK_INT(feed(&p, "250-auth=LOGIN"), SMTP_CLIENT_RP_MORE);
	CHECK_INT(feed(&p, "250-AUTH PLAIN CRAM-MD5"), SMTP_CLIENT_RP_MORE);
	CHECK_INT(feed(&p, "250-8bitmime"), SMTP_CLIENT_RP_MORE);
	CHECK_INT(feed(&p, "250-SMTPUTF8"), SMTP_CLIENT_RP_MORE);
	CHECK_INT(feed(&p, "250-DSN"), SMTP_CLIENT_RP_MORE);
	CHECK_INT(feed(&p, "250-STARTTLS"), SMTP_CLIENT_RP_MORE);
	CHECK_INT(feed(&p, "250 CHUNKING"), SMTP_CLIENT_RP_DONE);
	CHECK_INT(p.r.code, 250);
	CHECK_STR(p.first_word, "mx.example.test");
	CHECK_INT(p.ext.flags, SMTP_EXT_PIPELINING | SMTP_EXT_SIZE | SMTP_EXT_AUTH |
		  SMTP_EXT_8BITMIME | SMTP_EXT_SMTPUTF8 | SMTP_EXT_DSN | SMTP_EXT_STARTTLS |
		  SMTP_EXT_CHUNKING);
	CHECK_INT(p.ext.size, 52428800);
	CHECK_INT(p.ext.auth, SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN);

	TEST_CASE("parser: enhanced code kept apart from the text");
	smtp_client_rparse_init(&p, 0);
	CHECK_INT(feed(&p, "550-5.1.1 no such user"), SMTP_CLIENT_RP_MORE);
	CHECK_INT(feed(&p, "550 5.1.1 here"), SMTP_CLIENT_RP_DONE);
	CHECK_INT(p.r.code, 550);
	CHECK_STR(p.r.enh, "5.1.1");
	CHECK_STR(p.r.text, "no such user here");
	smtp_client_rparse_init(&p, 0);
	CHECK_INT(feed(&p, "451 4.7.1 greylisted"), SMTP_CLIENT_RP_DONE);
	CHECK(smtp_client_reply_is_policy(&p.r));
	smtp_client_rparse_init(&p, 0);
	CHECK_INT(feed(&p, "550 2.1.1 class does not match"), SMTP_CLIENT_RP_DONE);
	CHECK_STR(p.r.enh, "");
	smtp_client_rparse_init(&p, 0);
	CHECK_INT(feed(&p, "250"), SMTP_CLIENT_RP_DONE);
	CHECK_STR(p.r.text, "");

	TEST_CASE("parser: garbage is a protocol error");
	const char *bad[] = { "", "25", "abc", "250x", "650 no", "199 no", "2a0 x", "250 a\001b" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		smtp_client_rparse_init(&p, 0);
		CHECK_INT(feed(&p, bad[i]), SMTP_CLIENT_RP_ERROR);
	}
	smtp_client_rparse_init(&p, 0);
	CHECK_INT(feed(&p, "250-a"), SMTP_CLIENT_RP_MORE);
	CHECK_INT(feed(&p, "251 b"), SMTP_CLIENT_RP_ERROR);

	TEST_CASE("parser: bounded lines per reply and line length");
	smtp_client_rparse_init(&p, 0);
	enum smtp_client_rp rp = SMTP_CLIENT_RP_MORE;
	int lines = 0;
	while (rp == SMTP_CLIENT_RP_MORE && lines < 1000) {
		rp = feed(&p, "250-x");
		lines++;
	}
	CHECK_INT(rp, SMTP_CLIENT_RP_TOO_MANY);
	CHECK_INT(lines, SMTP_CLIENT_LINES_MAX + 1);
	static uint8_t big[SMTP_CLIENT_LINE_MAX + 10];
	memset(big, 'a', sizeof(big));
	size_t len, used;
	CHECK_INT(smtp_client_line_next((struct slice){ big, sizeof(big) }, &len, &used), -1);
	CHECK_INT(smtp_client_line_next((struct slice){ big, 100 }, &len, &used), 0);
	CHECK_INT(smtp_client_line_next(SLICE_LIT("250 ok\r\nnext"), &len, &used), 1);
	CHECK_INT(len, 6);
	CHECK_INT(used, 8);
	struct smtp_client_ext e = { 0 };
	smtp_client_ehlo_keyword(&e, (const uint8_t *)"SIZE", 4);
	CHECK_INT(e.size, 0);
	CHECK_INT(e.flags, SMTP_EXT_SIZE);
	smtp_client_ehlo_keyword(&e, (const uint8_t *)"SIZE 12x", 8);
	CHECK_INT(e.size, 0);
}

/* ---- the engine ----------------------------------------------------------- */

/* What DATA must carry for body: bare LF as CRLF, '.' at a line start
 * doubled, CRLF before the final dot. */
static size_t
stuffed(const char *tags, const char *body, size_t len, char *out)
{
	size_t o = 0;
	int bol = 1, cr = 0;
	for (int part = 0; part < 2; part++) {
		const char *p = part ? body : tags;
		size_t n = part ? len : strlen(tags);
		for (size_t i = 0; i < n; i++) {
			if (bol && p[i] == '.')
				out[o++] = '.';
			if (p[i] == '\n' && !cr)
				out[o++] = '\r';
			out[o++] = p[i];
			cr = p[i] == '\r';
			bol = p[i] == '\n';
		}
	}
	if (!bol) {
		out[o++] = '\r';
		out[o++] = '\n';
	}
	memcpy(out + o, ".\r\n", 3);
	return o + 3;
}

static void
test_pipelined(const char *logpath)
{
	struct peer pe;
	struct sockaddr_in sa;
	(void)logpath;

	TEST_CASE("pipelined transaction: params, per-RCPT replies, stuffing, one write each");
	const char *const script[] = {
		"S:220 mx.example.test ESMTP\r\n", "E:EHLO client.example.test\r\n", ehlo_full,
		"1:4",
		"S:250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n354 go\r\n",
		"D", "S:250 2.0.0 queued as A1\r\n",
		"1:3", "S:250 ok\r\n250 ok\r\n354 go\r\n", "D", "S:451 4.3.0 try later\r\n",
		"E:QUIT", "Q", NULL,
	};
	peer_start(&pe, script, &sa);
	static const char body[] = ".leading dot\r\nline\r\n..two\r\nbare\nlf\r\nend";
	struct smtp_client_rcpt rc[] = {
		{ "a@example.net", "rfc822;a@example.net", SMTP_CLIENT_NOTIFY_SUCCESS |
		  SMTP_CLIENT_NOTIFY_FAILURE },
		{ "b@example.net", NULL, 0 },
	};
	struct smtp_client_msg m = message(body, sizeof(body) - 1, rc, 2);
	struct buf tags;
	buf_init(&tags, 1024);
	CHECK_INT(buf_append_str(&tags, "X-Tag: 1\r\n"), 0);
	m.tags = &tags;
	m.body_8bit = 1;
	m.size = 1234;
	m.ret = SMTP_CLIENT_RET_HDRS;
	m.envid = "abc+2Bx";
	struct smtp_client_msg m2 = message("x\r\n", 3, rc + 1, 1);
	struct smtp_client_params p = params(&sa);
	drive(&p, &m, &m2);
	peer_join(&pe);
	CHECK(pe.ok);
	CHECK_INT(R.opened, 1);
	CHECK_INT(R.refused_long, 1);
	CHECK_INT(R.open_res.ext.flags & SMTP_EXT_PIPELINING, SMTP_EXT_PIPELINING);
	CHECK_INT(R.open_res.ext.size, 1000000);
	CHECK_INT(R.nsend, 2);
	CHECK_INT(R.send_res[0].reusable, 1);
	CHECK_INT(R.send_res[0].cond, COND__COUNT);
	CHECK_INT(R.send_res[0].naccepted, 1);
	CHECK_INT(R.rr[0][0].code, 250);
	CHECK_STR(R.rr[0][0].text, "queued as A1");
	CHECK_INT(R.rr[0][1].code, 550);
	CHECK_STR(R.rr[0][1].enh, "5.1.1");
	CHECK_INT(R.rr[1][0].code, 451);
	CHECK_INT(R.send_res[1].cond, COND_DELIVERY_REMOTE_TEMPFAIL);
	CHECK_INT(R.send_res[1].reusable, 1);
	CHECK(strstr((char *)pe.rec, "MAIL FROM:<sender@example.org> SIZE=1234 BODY=8BITMIME "
		     "RET=HDRS ENVID=abc+2Bx\r\n") != NULL);
	CHECK(strstr((char *)pe.rec, "RCPT TO:<a@example.net> NOTIFY=SUCCESS,FAILURE "
		     "ORCPT=rfc822;a@example.net\r\n") != NULL);
	CHECK(strstr((char *)pe.rec, "RCPT TO:<b@example.net>\r\n") != NULL);
	CHECK_MEM(pe.data, pe.datalen, "x\r\n.\r\n");	/* the second message */
	CHECK(pe.data_one_read);
	close(m.fd);
	close(m2.fd);
	buf_fini(&tags);
	peer_free(&pe);

	TEST_CASE("DATA is dot-stuffed byte for byte, the end with the last block");
	const char *const script2[] = {
		"S:220 mx.example.test ESMTP\r\n", "E:EHLO", ehlo_full, "1:3",
		"S:250 ok\r\n250 ok\r\n354 go\r\n", "D", "S:250 2.0.0 ok\r\n", "E:QUIT", "Q", NULL,
	};
	peer_start(&pe, script2, &sa);
	m = message(body, sizeof(body) - 1, rc, 1);
	buf_init(&tags, 1024);
	CHECK_INT(buf_append_str(&tags, "X-Tag: 1\r\n"), 0);
	m.tags = &tags;
	p = params(&sa);
	drive(&p, &m, NULL);
	peer_join(&pe);
	CHECK(pe.ok);
	CHECK_MEM(pe.data, pe.datalen,
		  "X-Tag: 1\r\n..leading dot\r\nline\r\n...two\r\nbare\r\nlf\r\nend\r\n.\r\n");
	CHECK(pe.data_one_read);
	CHECK_INT(R.rr[0][0].code, 250);
	close(m.fd);
	buf_fini(&tags);
	peer_free(&pe);
}

static void
test_helo_and_refusals(void)
{
	struct peer pe;
	struct sockaddr_in sa;
	struct smtp_client_rcpt rc[] = { { "a@example.net", "rfc822;a@example.net", 2 },
					 { "b@example.net", NULL, 0 } };

	TEST_CASE("EHLO refused: HELO, one command at a time, no extension params");
	const char *const s1[] = {
		"S:220 mx.example.test\r\n", "E:EHLO client.example.test", "S:502 5.5.2 what\r\n",
		"E:HELO client.example.test\r\n", "S:250 mx.example.test\r\n",
		"E:MAIL FROM:<sender@example.org>\r\n", "S:250 ok\r\n",
		"E:RCPT TO:<a@example.net>\r\n", "S:450 4.2.0 greylisted\r\n",
		"E:RCPT TO:<b@example.net>\r\n", "S:250 ok\r\n",
		"E:DATA\r\n", "S:354 go\r\n", "D", "S:250 ok\r\n", "E:QUIT", "Q", NULL,
	};
	peer_start(&pe, s1, &sa);
	struct smtp_client_msg m = message("hi\r\n", 4, rc, 2);
	m.body_8bit = 1;
	m.ret = SMTP_CLIENT_RET_FULL;
	m.envid = "e1";
	struct smtp_client_params p = params(&sa);
	drive(&p, &m, NULL);
	peer_join(&pe);
	CHECK(pe.ok);
	CHECK_INT(R.rr[0][0].code, 450);
	CHECK_INT(R.rr[0][1].code, 250);
	CHECK_INT(R.send_res[0].naccepted, 1);
	CHECK(strstr((char *)pe.rec, "NOTIFY") == NULL);
	CHECK_MEM(pe.data, pe.datalen, "hi\r\n.\r\n");
	close(m.fd);
	peer_free(&pe);

	TEST_CASE("5xx to MAIL fails every recipient; RSET, still reusable");
	const char *const s2[] = {
		"S:220 mx.example.test\r\n", "E:EHLO", "S:250 mx.example.test\r\n",
		"E:MAIL FROM:", "S:553 5.7.1 sender refused\r\n", "E:RSET", "S:250 ok\r\n",
		"E:QUIT", "Q", NULL,
	};
	peer_start(&pe, s2, &sa);
	m = message("hi\r\n", 4, rc, 2);
	p = params(&sa);
	drive(&p, &m, NULL);
	peer_join(&pe);
	CHECK(pe.ok);
	CHECK_INT(R.rr[0][0].code, 553);
	CHECK_INT(R.rr[0][1].code, 553);
	CHECK_INT(R.send_res[0].cond, COND_DELIVERY_REMOTE_REJECTED);
	CHECK_INT(R.send_res[0].stage, SMTP_CLIENT_MAIL);
	CHECK_INT(R.send_res[0].backoff_destination, 1);	/* 5.7.x at MAIL */
	CHECK_INT(R.send_res[0].reusable, 1);
	close(m.fd);
	peer_free(&pe);

	TEST_CASE("4.7.x to MAIL (pipelined) backs off the destination");
	const char *const s3[] = {
		"S:220 mx.example.test\r\n", "E:EHLO", ehlo_full, "1:4",
		"S:451 4.7.1 rate limited\r\n503 5.5.1 no MAIL\r\n503 5.5.1 no MAIL\r\n554 no\r\n",
		"E:RSET", "S:250 ok\r\n", "E:QUIT", "Q", NULL,
	};
	peer_start(&pe, s3, &sa);
	m = message("hi\r\n", 4, rc, 2);
	p = params(&sa);
	drive(&p, &m, NULL);
	peer_join(&pe);
	CHECK(pe.ok);
	CHECK_INT(R.rr[0][0].code, 451);
	CHECK_INT(R.rr[0][1].code, 451);
	CHECK_INT(R.send_res[0].backoff_destination, 1);
	CHECK_INT(R.send_res[0].cond, COND_DELIVERY_REMOTE_TEMPFAIL);
	close(m.fd);
	peer_free(&pe);

	TEST_CASE("5xx to DATA fails the accepted recipients");
	const char *const s4[] = {
		"S:220 mx.example.test\r\n", "E:EHLO", ehlo_full, "1:4",
		"S:250 ok\r\n550 5.1.1 unknown\r\n250 ok\r\n554 5.6.0 no data for you\r\n",
		"E:RSET", "S:250 ok\r\n", "E:QUIT", "Q", NULL,
	};
	peer_start(&pe, s4, &sa);
	m = message("hi\r\n", 4, rc, 2);
	p = params(&sa);
	drive(&p, &m, NULL);
	peer_join(&pe);
	CHECK(pe.ok);
	CHECK_INT(R.rr[0][0].code, 550);
	CHECK_STR(R.rr[0][0].enh, "5.1.1");
	CHECK_INT(R.rr[0][1].code, 554);
	CHECK_STR(R.rr[0][1].enh, "5.6.0");
	CHECK_INT(R.send_res[0].stage, SMTP_CLIENT_DATA);
	CHECK_INT(R.send_res[0].backoff_destination, 0);
	close(m.fd);
	peer_free(&pe);

	TEST_CASE("421 to RCPT: closed, destination backed off, nothing reusable");
	const char *const s5[] = {
		"S:220 mx.example.test\r\n", "E:EHLO", "S:250 mx.example.test\r\n",
		"E:MAIL", "S:250 ok\r\n", "E:RCPT", "S:421 4.3.2 shutting down\r\n", "Q", NULL,
	};
	peer_start(&pe, s5, &sa);
	m = message("hi\r\n", 4, rc, 2);
	p = params(&sa);
	drive(&p, &m, NULL);
	peer_join(&pe);
	CHECK(pe.ok);
	CHECK_INT(R.rr[0][0].code, 421);
	CHECK_INT(R.rr[0][1].code, 421);
	CHECK_INT(R.send_res[0].backoff_destination, 1);
	CHECK_INT(R.send_res[0].reusable, 0);
	close(m.fd);
	peer_free(&pe);

	TEST_CASE("greeting 554: the next host, no back-off; 421: back-off");
	const char *const s6[] = { "S:554 5.7.1 go away\r\n", "E:QUIT", "Q", NULL };
	peer_start(&pe, s6, &sa);
	p = params(&sa);
	drive(&p, NULL, NULL);
	peer_join(&pe);
	CHECK(pe.ok);
	CHECK_INT(R.opened, 0);
	CHECK_INT(R.ready_called, 1);
	CHECK_INT(R.open_res.next_host, 1);
	CHECK_INT(R.open_res.backoff_destination, 1);	/* 5.7.1 at the greeting */
	CHECK_INT(R.open_res.cond, COND_DELIVERY_REMOTE_REJECTED);
	CHECK_INT(R.open_res.reply.code, 554);
	CHECK_INT(R.open_res.stage, SMTP_CLIENT_GREETING);
	peer_free(&pe);
	const char *const s6b[] = { "S:554 no service\r\n", "E:QUIT", "Q", NULL };
	peer_start(&pe, s6b, &sa);
	drive(&p, NULL, NULL);
	peer_join(&pe);
	CHECK_INT(R.open_res.next_host, 1);
	CHECK_INT(R.open_res.backoff_destination, 0);
	peer_free(&pe);
	const char *const s7[] = { "S:421 4.3.2 busy\r\n", "Q", NULL };
	peer_start(&pe, s7, &sa);
	drive(&p, NULL, NULL);
	peer_join(&pe);
	CHECK_INT(R.open_res.backoff_destination, 1);
	CHECK_INT(R.open_res.cond, COND_DELIVERY_REMOTE_TEMPFAIL);
	peer_free(&pe);
	const char *const s8[] = { "S:220 mx.example.test\r\n", "E:EHLO",
				   "S:450 4.7.0 not now\r\n", "E:QUIT", "Q", NULL };
	peer_start(&pe, s8, &sa);
	drive(&p, NULL, NULL);
	peer_join(&pe);
	CHECK(pe.ok);
	CHECK_INT(R.open_res.next_host, 1);
	CHECK_INT(R.open_res.backoff_destination, 1);
	CHECK_INT(R.open_res.stage, SMTP_CLIENT_EHLO);
	peer_free(&pe);

	TEST_CASE("a refused connection: connect failed, the next host");
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in dead = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t dl = sizeof(dead);
	CHECK(bind(fd, (struct sockaddr *)&dead, sizeof(dead)) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&dead, &dl) == 0);
	close(fd);
	p = params(&dead);
	drive(&p, NULL, NULL);
	CHECK_INT(R.opened, 0);
	CHECK_INT(R.open_res.cond, COND_DELIVERY_CONNECT_FAILED);
	CHECK_INT(R.open_res.err, ECONNREFUSED);
	CHECK_INT(R.open_res.next_host, 1);
	CHECK_INT(R.open_res.stage, SMTP_CLIENT_CONNECT);
}

static void
test_limits_and_loops(void)
{
	struct peer pe;
	struct sockaddr_in sa;
	struct smtp_client_rcpt rc[] = { { "a@example.net", NULL, 0 }, { "b@example.net", NULL, 0 } };

	TEST_CASE("over the peer's SIZE: 552 5.3.4 each, no MAIL sent, reusable");
	const char *const s1[] = {
		"S:220 mx.example.test\r\n", "E:EHLO",
		"S:250-mx.example.test\r\n250 SIZE 1000\r\n", "E:QUIT", "Q", NULL,
	};
	peer_start(&pe, s1, &sa);
	struct smtp_client_msg m = message("hi\r\n", 4, rc, 2);
	m.size = 5000;
	struct smtp_client_params p = params(&sa);
	drive(&p, &m, NULL);
	peer_join(&pe);
	CHECK(pe.ok);
	CHECK_INT(R.nsend, 1);
	CHECK_INT(R.rr[0][0].code, 552);
	CHECK_STR(R.rr[0][0].enh, "5.3.4");
	CHECK(strstr(R.rr[0][1].text, "[DELIVERY-MESSAGE-TOO-BIG]") != NULL);
	CHECK_INT(R.send_res[0].cond, COND_DELIVERY_MESSAGE_TOO_BIG);
	CHECK_INT(R.send_res[0].reusable, 1);
	CHECK(strstr((char *)pe.rec, "MAIL") == NULL);
	close(m.fd);
	peer_free(&pe);

	TEST_CASE("SMTPUTF8 needed, not offered: 5.6.7 each, no MAIL sent");
	peer_start(&pe, s1, &sa);
	m = message("hi\r\n", 4, rc, 2);
	m.smtputf8 = 1;
	drive(&p, &m, NULL);
	peer_join(&pe);
	CHECK(pe.ok);
	CHECK_INT(R.rr[0][0].code, 550);
	CHECK_STR(R.rr[0][1].enh, "5.6.7");
	CHECK_INT(R.send_res[0].cond, COND_DELIVERY_SMTPUTF8_UNSUPPORTED);
	CHECK(strstr((char *)pe.rec, "MAIL") == NULL);
	close(m.fd);
	peer_free(&pe);

	TEST_CASE("SMTPUTF8 offered: MAIL carries it");
	const char *const s2[] = {
		"S:220 mx.example.test\r\n", "E:EHLO",
		"S:250-mx.example.test\r\n250 SMTPUTF8\r\n",
		"E:MAIL FROM:<sender@example.org> SMTPUTF8\r\n", "S:250 ok\r\n",
		"E:RCPT TO:<a@example.net>\r\n", "S:250 ok\r\n", "E:DATA", "S:354 go\r\n", "D",
		"S:250 ok\r\n", "E:QUIT", "Q", NULL,
	};
	peer_start(&pe, s2, &sa);
	m = message("hi\r\n", 4, rc, 1);
	m.smtputf8 = 1;
	drive(&p, &m, NULL);
	peer_join(&pe);
	CHECK(pe.ok);
	CHECK_INT(R.rr[0][0].code, 250);
	close(m.fd);
	peer_free(&pe);

	TEST_CASE("a greeting naming us is a loop");
	const char *const s3[] = { "S:220 me.example.test ESMTP\r\n", "E:QUIT", "Q", NULL };
	peer_start(&pe, s3, &sa);
	drive(&p, NULL, NULL);
	peer_join(&pe);
	CHECK(pe.ok);
	CHECK_INT(R.opened, 0);
	CHECK_INT(R.open_res.loop, 1);
	CHECK_INT(R.open_res.cond, COND_DELIVERY_LOOP_TO_SELF);

	peer_free(&pe);
	TEST_CASE("an EHLO reply naming us is a loop");
	const char *const s4[] = { "S:220 other ESMTP\r\n", "E:EHLO",
				   "S:250-ME.example.test\r\n250 8BITMIME\r\n", "E:QUIT", "Q", NULL };
	peer_start(&pe, s4, &sa);
	drive(&p, NULL, NULL);
	peer_join(&pe);
	CHECK(pe.ok);
	CHECK_INT(R.open_res.loop, 1);
	CHECK_INT(R.open_res.stage, SMTP_CLIENT_EHLO);
	peer_free(&pe);
}

static void
test_chunking_and_big(void)
{
	struct peer pe;
	struct sockaddr_in sa;
	struct smtp_client_rcpt rc[] = { { "a@example.net", NULL, 0 } };
	size_t big = 1536 * 1024;
	char *body = malloc(big), *want = malloc(2 * big + 16);

	for (size_t i = 0; i < big; i++)
		body[i] = (i % 61 == 60) ? '\n' : (i % 61 == 0) ? '.' : (char)('a' + i % 26);
	for (size_t i = 1; i < big; i++)
		if (body[i] == '\n')
			body[i - 1] = '\r';

	TEST_CASE("CHUNKING: BDAT chunks, the last one LAST, bytes exact");
	const char *const s1[] = {
		"S:220 mx.example.test\r\n", "E:EHLO",
		"S:250-mx.example.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n", "1:2",
		"S:250 ok\r\n250 ok\r\n", "B", "E:QUIT", "Q", NULL,
	};
	peer_start(&pe, s1, &sa);
	struct smtp_client_msg m = message(body, 200000, rc, 1);
	struct smtp_client_params p = params(&sa);
	drive(&p, &m, NULL);
	peer_join(&pe);
	CHECK(pe.ok);
	CHECK_INT(pe.datalen, 200000);
	CHECK(pe.datalen == 200000 && memcmp(pe.data, body, 200000) == 0);
	CHECK(pe.bdat_chunks >= 4);
	CHECK_INT(R.rr[0][0].code, 250);
	CHECK_STR(R.rr[0][0].text, "queued as B");
	close(m.fd);
	peer_free(&pe);

	TEST_CASE("CHUNKING without PIPELINING: one chunk's reply at a time");
	const char *const s1b[] = {
		"S:220 mx.example.test\r\n", "E:EHLO",
		"S:250-mx.example.test\r\n250 CHUNKING\r\n", "E:MAIL", "S:250 ok\r\n",
		"E:RCPT", "S:250 ok\r\n", "B", "E:QUIT", "Q", NULL,
	};
	peer_start(&pe, s1b, &sa);
	m = message(body, 200000, rc, 1);
	drive(&p, &m, NULL);
	peer_join(&pe);
	CHECK(pe.ok);
	CHECK(pe.datalen == 200000 && memcmp(pe.data, body, 200000) == 0);
	CHECK_INT(R.rr[0][0].code, 250);
	close(m.fd);
	peer_free(&pe);

	TEST_CASE("a body over 1 MiB streams through DATA, stuffed exactly");
	const char *const s2[] = {
		"S:220 mx.example.test\r\n", "E:EHLO", ehlo_full, "1:3",
		"S:250 ok\r\n250 ok\r\n354 go\r\n", "D", "S:250 ok\r\n", "E:QUIT", "Q", NULL,
	};
	peer_start(&pe, s2, &sa);
	m = message(body, big, rc, 1);
	m.size = 0;
	drive(&p, &m, NULL);
	peer_join(&pe);
	CHECK(pe.ok);
	size_t wl = stuffed("", body, big, want);
	CHECK_INT(pe.datalen, wl);
	CHECK(pe.datalen == wl && memcmp(pe.data, want, wl) == 0);
	CHECK_INT(R.rr[0][0].code, 250);
	close(m.fd);
	peer_free(&pe);

	TEST_CASE("spool pages not cached: the read goes to the pool");
	{
		char path[] = "postern-sc-cold-XXXXXX";	/* the build folder: a real disk */
		int fd = mkstemp(path);
		CHECK(fd >= 0);
		CHECK(write(fd, "ENVELOPE", 8) == 8);
		CHECK(write(fd, body, big) == (ssize_t)big);
		CHECK(fdatasync(fd) == 0);
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		unlink(path);
		peer_start(&pe, s2, &sa);
		m = message("", 0, rc, 1);
		close(m.fd);
		m.fd = fd;
		m.len = big;
		m.crc = crc32c_update(0, body, big);
		uint64_t before = workpool_drains(wp);
		drive(&p, &m, NULL);
		peer_join(&pe);
		CHECK(pe.ok);
		CHECK(pe.datalen == wl && memcmp(pe.data, want, wl) == 0);
		CHECK_INT(R.rr[0][0].code, 250);
		printf("cold spool read: %llu pool completions\n",
		       (unsigned long long)(workpool_drains(wp) - before));
		close(fd);
		peer_free(&pe);
	}

	TEST_CASE("a CRC mismatch: the connection ends without the end of data");
	const char *const s3[] = {
		"S:220 mx.example.test\r\n", "E:EHLO", ehlo_full, "1:3",
		"S:250 ok\r\n250 ok\r\n354 go\r\n", "D", NULL,
	};
	peer_start(&pe, s3, &sa);
	m = message(body, 300000, rc, 1);
	m.crc ^= 1;
	drive(&p, &m, NULL);
	peer_join(&pe);
	CHECK(!pe.ok);		/* EOF before the end of data */
	CHECK(strstr(pe.fail, "EOF before the end of data") != NULL);
	CHECK(pe.datalen < 300000);	/* the last block was not sent either */
	CHECK_INT(R.send_res[0].cond, COND_QUEUE_SPOOL_CORRUPT);
	CHECK_INT(R.rr[0][0].code, 0);
	CHECK_INT(R.send_res[0].reusable, 0);
	close(m.fd);
	peer_free(&pe);
	free(body);
	free(want);
}

static void
test_tls_auth(const char *logpath)
{
	struct peer pe;
	struct sockaddr_in sa;

	TEST_CASE("STARTTLS when offered (may), EHLO again over TLS");
	const char *const s1[] = {
		"S:220 mx.example.test\r\n", "E:EHLO",
		"S:250-mx.example.test\r\n250 STARTTLS\r\n", "E:STARTTLS\r\n", "S:220 go\r\n", "T",
		"E:EHLO client.example.test\r\n", "S:250 mx.example.test\r\n", "E:QUIT", "Q", NULL,
	};
	peer_start(&pe, s1, &sa);
	struct smtp_client_params p = params(&sa);
	p.tls = SMTP_CLIENT_TLS_MAY;
	p.tls_ctx = cctx_any;
	drive(&p, NULL, NULL);
	peer_join(&pe);
	CHECK(pe.ok);
	CHECK_INT(R.opened, 1);
	CHECK_INT(R.open_res.tls, 1);
	CHECK(R.open_res.tls_version[0] != '\0');
	peer_free(&pe);

	TEST_CASE("tls = verify checks the chain and the name");
	peer_start(&pe, s1, &sa);
	p.tls = SMTP_CLIENT_TLS_VERIFY;
	p.tls_ctx = cctx_verify;
	drive(&p, NULL, NULL);
	peer_join(&pe);
	CHECK(pe.ok);
	CHECK_INT(R.open_res.tls, 1);
	CHECK_INT(R.open_res.tls_verified, 1);
	peer_free(&pe);

	TEST_CASE("tls = verify with a wrong name fails, the next host");
	const char *const s1b[] = {
		"S:220 mx.example.test\r\n", "E:EHLO",
		"S:250-mx.example.test\r\n250 STARTTLS\r\n", "E:STARTTLS\r\n", "S:220 go\r\n", "T",
		"Q", NULL,
	};
	peer_start(&pe, s1b, &sa);
	p.host = "other.example.test";
	drive(&p, NULL, NULL);
	peer_join(&pe);
	CHECK_INT(R.opened, 0);
	CHECK_INT(R.open_res.cond, COND_DELIVERY_TLS_FAILED);
	CHECK_INT(R.open_res.next_host, 1);
	peer_free(&pe);

	TEST_CASE("tls = encrypt and no STARTTLS offered: nothing sent in clear");
	const char *const s2[] = { "S:220 mx.example.test\r\n", "E:EHLO",
				   "S:250 mx.example.test\r\n", "E:QUIT", "Q", NULL };
	peer_start(&pe, s2, &sa);
	p = params(&sa);
	p.tls = SMTP_CLIENT_TLS_ENCRYPT;
	p.tls_ctx = cctx_any;
	drive(&p, NULL, NULL);
	peer_join(&pe);
	CHECK(pe.ok);
	CHECK_INT(R.opened, 0);
	CHECK_INT(R.open_res.cond, COND_DELIVERY_TLS_REQUIRED);
	CHECK_INT(R.open_res.next_host, 1);
	peer_free(&pe);

	TEST_CASE("tls = may and a failed handshake: once more in clear");
	const char *const s2b[] = {
		"S:220 mx.example.test\r\n", "E:EHLO",
		"S:250-mx.example.test\r\n250 STARTTLS\r\n", "E:STARTTLS\r\n",
		"S:220 go\r\n", "S:this is no TLS\r\n", "A",
		"S:220 mx.example.test\r\n", "E:EHLO",
		"S:250-mx.example.test\r\n250 STARTTLS\r\n", "E:QUIT", "Q", NULL,
	};
	peer_start(&pe, s2b, &sa);
	p = params(&sa);
	p.tls = SMTP_CLIENT_TLS_MAY;
	p.tls_ctx = cctx_any;
	drive(&p, NULL, NULL);
	peer_join(&pe);
	CHECK(pe.ok);
	CHECK_INT(R.opened, 1);
	CHECK_INT(R.open_res.cond, COND__COUNT);
	CHECK_INT(R.open_res.tls, 0);
	CHECK(has_event(logpath, "event=DELIVERY-TLS-FAILED"));

	peer_free(&pe);
	TEST_CASE("AUTH PLAIN over TLS");
	const char *const s3[] = {
		"S:220 mx.example.test\r\n", "E:EHLO",
		"S:250-mx.example.test\r\n250 STARTTLS\r\n", "E:STARTTLS\r\n", "S:220 go\r\n", "T",
		"E:EHLO", "S:250-mx.example.test\r\n250 AUTH LOGIN PLAIN\r\n",
		"E:AUTH PLAIN AHVzZXIAcGFzcw==\r\n", "S:235 2.7.0 ok\r\n", "E:QUIT", "Q", NULL,
	};
	peer_start(&pe, s3, &sa);
	p.tls = SMTP_CLIENT_TLS_MAY;
	p.auth_user = "user";
	p.auth_pass = "pass";
	drive(&p, NULL, NULL);
	peer_join(&pe);
	CHECK(pe.ok);
	CHECK_INT(R.opened, 1);
	peer_free(&pe);

	TEST_CASE("AUTH refused by the peer");
	const char *const s3b[] = {
		"S:220 mx.example.test\r\n", "E:EHLO",
		"S:250-mx.example.test\r\n250 STARTTLS\r\n", "E:STARTTLS\r\n", "S:220 go\r\n", "T",
		"E:EHLO", "S:250-mx.example.test\r\n250 AUTH LOGIN\r\n",
		"E:AUTH LOGIN\r\n", "S:334 VXNlcm5hbWU6\r\n", "E:dXNlcg==\r\n",
		"S:334 UGFzc3dvcmQ6\r\n", "E:cGFzcw==\r\n", "S:535 5.7.8 bad\r\n", "E:QUIT", "Q", NULL,
	};
	peer_start(&pe, s3b, &sa);
	drive(&p, NULL, NULL);
	peer_join(&pe);
	CHECK(pe.ok);
	CHECK_INT(R.opened, 0);
	CHECK_INT(R.open_res.cond, COND_DELIVERY_AUTH_FAILED);
	CHECK_INT(R.open_res.reply.code, 535);
	peer_free(&pe);

	TEST_CASE("AUTH without TLS: refused, no credentials sent");
	const char *const s4[] = { "S:220 mx.example.test\r\n", "E:EHLO",
				   "S:250-mx.example.test\r\n250 AUTH PLAIN\r\n", "E:QUIT", "Q",
				   NULL };
	peer_start(&pe, s4, &sa);
	drive(&p, NULL, NULL);
	peer_join(&pe);
	CHECK(pe.ok);
	CHECK_INT(R.opened, 0);
	CHECK_INT(R.open_res.cond, COND_DELIVERY_AUTH_NO_TLS);
	CHECK(strstr((char *)pe.rec, "AUTH") == NULL);
	peer_free(&pe);
}

static void
test_bounds(const char *logpath)
{
	struct peer pe;
	struct sockaddr_in sa;
	struct smtp_client_params p;

	TEST_CASE("an endless reply line ends at its bound");
	const char *const s1[] = { "X", NULL };
	peer_start(&pe, s1, &sa);
	p = params(&sa);
	drive(&p, NULL, NULL);
	peer_join(&pe);
	CHECK_INT(R.opened, 0);
	CHECK_INT(R.open_res.cond, COND_DELIVERY_PROTOCOL_ERROR);
	CHECK_INT(R.open_res.next_host, 1);
	CHECK(has_event(logpath, "event=DELIVERY-PROTOCOL-ERROR"));
	CHECK(has_event(logpath, "err=\"reply line too long\""));
	peer_free(&pe);

	TEST_CASE("an endless multi-line reply ends at its bound");
	const char *const s2[] = { "M", NULL };
	peer_start(&pe, s2, &sa);
	drive(&p, NULL, NULL);
	peer_join(&pe);
	CHECK_INT(R.open_res.cond, COND_DELIVERY_PROTOCOL_ERROR);
	CHECK(has_event(logpath, "err=\"too many reply lines\""));
	peer_free(&pe);

	TEST_CASE("garbage instead of a reply");
	const char *const s2b[] = { "S:HTTP/1.1 400 Bad Request\r\n", "Q", NULL };
	peer_start(&pe, s2b, &sa);
	drive(&p, NULL, NULL);
	peer_join(&pe);
	CHECK_INT(R.open_res.cond, COND_DELIVERY_PROTOCOL_ERROR);
	peer_free(&pe);

	TEST_CASE("a trickled greeting ends at the greeting timeout");
	const char *const s3[] = { "K", NULL };
	peer_start(&pe, s3, &sa);
	p.t.greeting_ms = 1000;
	drive(&p, NULL, NULL);
	peer_join(&pe);
	CHECK_INT(R.opened, 0);
	CHECK_INT(R.open_res.cond, COND_DELIVERY_TIMEOUT);
	CHECK_INT(R.open_res.stage, SMTP_CLIENT_GREETING);
	CHECK(has_event(logpath, "event=DELIVERY-TIMEOUT"));
	peer_free(&pe);

	TEST_CASE("a stall after MAIL ends at the MAIL timeout");
	const char *const s4[] = { "S:220 mx.example.test\r\n", "E:EHLO", ehlo_full, "1:3", "Z",
				   NULL };
	struct smtp_client_rcpt rc[] = { { "a@example.net", NULL, 0 } };
	struct smtp_client_msg m = message("hi\r\n", 4, rc, 1);
	peer_start(&pe, s4, &sa);
	p = params(&sa);
	p.t.mail_ms = 800;
	drive(&p, &m, NULL);
	peer_join(&pe);
	CHECK(pe.ok);
	CHECK_INT(R.nsend, 1);
	CHECK_INT(R.send_res[0].cond, COND_DELIVERY_TIMEOUT);
	CHECK_INT(R.send_res[0].stage, SMTP_CLIENT_MAIL);
	CHECK_INT(R.rr[0][0].code, 0);
	CHECK_INT(R.send_res[0].reusable, 0);
	close(m.fd);
	peer_free(&pe);
}

static void
test_idle(void)
{
	struct peer pe;
	struct sockaddr_in sa;
	struct smtp_client_params p;

	TEST_CASE("idle: the peer closes; the owner hears of it");
	const char *const s1[] = { "S:220 mx.example.test\r\n", "E:EHLO",
				   "S:250 mx.example.test\r\n", "C", NULL };
	peer_start(&pe, s1, &sa);
	p = params(&sa);
	drive_idle(&p, 0);
	peer_join(&pe);
	CHECK(pe.ok);
	CHECK_INT(R.opened, 1);
	CHECK_INT(R.idle_closed, 1);
	peer_free(&pe);

	TEST_CASE("idle: past the idle limit, QUIT and the owner hears of it");
	const char *const s2[] = { "S:220 mx.example.test\r\n", "E:EHLO",
				   "S:250 mx.example.test\r\n", "E:QUIT", "Q", NULL };
	peer_start(&pe, s2, &sa);
	drive_idle(&p, 200);
	peer_join(&pe);
	CHECK(pe.ok);
	CHECK_INT(R.idle_closed, 1);
	peer_free(&pe);
}

/* Postfix's smtp-sink as the peer: the message it dumps is the one sent. */
static void
test_smtp_sink(void)
{
	const char *sink = "/usr/sbin/smtp-sink";
	char dir[] = "/tmp/postern-sink-XXXXXX", tmpl[128];

	TEST_CASE("a real peer: Postfix smtp-sink");
	if (access(sink, X_OK) != 0) {
		printf("SKIP smtp-sink test: %s not installed\n", sink);
		return;
	}
	CHECK(mkdtemp(dir) != NULL);
	CHECK(chmod(dir, 0777) == 0);
	snprintf(tmpl, sizeof(tmpl), "%s/m.", dir);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
	close(fd);
	char addr[64];
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sa.sin_port));
	pid_t pid = fork();
	if (pid == 0) {
		if (geteuid() == 0)
			execl(sink, "smtp-sink", "-u", "nobody", "-d", tmpl, addr, "10", (char *)NULL);
		else
			execl(sink, "smtp-sink", "-d", tmpl, addr, "10", (char *)NULL);
		_exit(127);
	}
	CHECK(pid > 0);
	int up = 0;
	for (int i = 0; i < 100 && !up; i++) {	/* bounded: 5 s */
		fd = socket(AF_INET, SOCK_STREAM, 0);
		up = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		close(fd);
		if (!up)
			usleep(50000);
	}
	CHECK(up);
	static const char body[] = "Subject: t\r\n\r\n.leading dot\r\n..two\r\nend\r\n";
	struct smtp_client_rcpt rc[] = { { "a@example.net", NULL, 0 }, { "b@example.net", NULL, 0 } };
	struct smtp_client_msg m = message(body, sizeof(body) - 1, rc, 2);
	struct smtp_client_params p = params(&sa);
	drive(&p, &m, &m);
	CHECK_INT(R.opened, 1);
	CHECK_INT(R.nsend, 2);
	CHECK_INT(R.rr[0][0].code, 250);
	CHECK_INT(R.rr[0][1].code, 250);
	CHECK_INT(R.rr[1][0].code, 250);
	CHECK_INT(R.open_res.ext.flags & SMTP_EXT_PIPELINING, SMTP_EXT_PIPELINING);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	close(m.fd);
	/* Two dumps, each the message unstuffed. */
	char cmd[256], out[4096] = "";
	snprintf(cmd, sizeof(cmd), "cat %s/m.* 2>/dev/null; rm -rf %s", dir, dir);
	FILE *f = popen(cmd, "r");
	size_t n = f ? fread(out, 1, sizeof(out) - 1, f) : 0;
	if (f)
		pclose(f);
	out[n] = '\0';
	/* Sent "...two" (stuffed), stored "..two" as the spool had it. */
	CHECK(strstr(out, "Subject: t\n\n.leading dot\n..two\nend\n") != NULL);
	char *second = strstr(out, "Subject: t");
	CHECK(second != NULL && strstr(second + 1, "Subject: t\n\n.leading dot\n") != NULL);
	CHECK(strstr(out, "X-Rcpt-Args: <b@example.net>") != NULL);
}

static void
drop(void *owner)
{
	(void)owner;	/* every client ended in its test */
}

int
main(void)
{
	char dir[] = "/tmp/postern-sct-XXXXXX", logpath[160], err[256];

	signal(SIGPIPE, SIG_IGN);
	if (mkdtemp(dir) == NULL)
		return 2;
	snprintf(certfile, sizeof(certfile), "%s/cert.pem", dir);
	snprintf(keyfile, sizeof(keyfile), "%s/key.pem", dir);
	snprintf(logpath, sizeof(logpath), "%s/log", dir);
	if (tls_make_self_signed("mx.example.test", certfile, keyfile, err, sizeof(err)) < 0 ||
	    log_open(logpath, LOG_SEV_DEBUG) < 0) {
		fprintf(stderr, "setup: %s\n", err);
		return 2;
	}
	cctx_verify = tls_client_new(certfile, err, sizeof(err));
	cctx_any = tls_client_new_noverify(err, sizeof(err));
	wp = workpool_new();
	read_cls = smtp_client_class_new(wp);
	if (cctx_verify == NULL || cctx_any == NULL || wp == NULL || read_cls < 0)
		return 2;

	test_parser();
	test_pipelined(logpath);
	test_helo_and_refusals();
	test_limits_and_loops();
	test_chunking_and_big();
	test_tls_auth(logpath);
	test_idle();
	test_bounds(logpath);
	test_smtp_sink();

	net_table_fini(&table, drop);
	workpool_free(&wp);
	tls_client_unref(&cctx_verify);
	tls_client_unref(&cctx_any);
	log_close();
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	return TEST_DONE();
}
