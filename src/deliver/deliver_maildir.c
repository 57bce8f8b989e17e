/*
 * deliver_maildir.c - one message copy into one Maildir (see
 * deliver_maildir.h).
 *
 * Owns the Maildir file protocol: tmp/ written and fsynced, link() into
 * new/, new/ fsynced, tmp/ unlinked. Folders are created 0700 on first
 * use and their parents fsynced, so a new mailbox survives a crash as well
 * as the file in it. Logs nothing: deliver.c reports the result.
 *
 * Invariant: a file appears in new/ only complete and flushed; a failure
 * leaves no file in tmp/ behind.
 */
#include "deliver_maildir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "buf.h"

#define MAILDIR_MAX_HEADER 8192

/* ---- names ------------------------------------------------------------ */

static int
part_ok(const char *p, size_t n)
{
	if (n == 0 || (n == 1 && p[0] == '.') ||
	    (n == 2 && p[0] == '.' && p[1] == '.'))
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '/' || c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

static void
lower_ascii(char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] >= 'A' && p[i] <= 'Z')
			p[i] = (char)(p[i] - 'A' + 'a');
}

char *
deliver_maildir_dir(const char *mail_root, const char *local, size_t local_len,
		    const char *domain, size_t domain_len)
{
	size_t root_len = strlen(mail_root), off;
	char *out;

	if (!part_ok(local, local_len) || !part_ok(domain, domain_len) ||
	    root_len == 0)
		return NULL;
	while (root_len > 1 && mail_root[root_len - 1] == '/')
		root_len--;
	out = xmalloc(root_len + domain_len + local_len + 3);
	memcpy(out, mail_root, root_len);
	off = root_len;
	out[off++] = '/';
	memcpy(out + off, domain, domain_len);
	lower_ascii(out + off, domain_len);
	off += domain_len;
	out[off++] = '/';
	memcpy(out + off, local, local_len);
	lower_ascii(out + off, local_len);
	off += local_len;
	out[off] = '\0';
	return out;
}

char *
deliver_maildir_host(const char *hostname)
{
	struct buf b;
	char *out;

	buf_init(&b, 4 * strlen(hostname) + 1);
	for (const char *p = hostname; *p != '\0'; p++) {
		int rc;

		if (*p == '/')
			rc = buf_append_str(&b, "\\057");
		else if (*p == ':')
			rc = buf_append_str(&b, "\\072");
		else
			rc = buf_append_byte(&b, (uint8_t)*p);
		if (rc < 0)
			PANIC("maildir host name buffer");
	}
	out = xstrdup(buf_cstr(&b));
	buf_fini(&b);
	return out;
}

/* "<received_at>.Q<qid>R<idx>." - what every copy of this recipient's
 * file name starts with, whatever host wrote it or flags it got. */
static char *
maildir_prefix(const struct spool_msg *msg, size_t idx)
{
	return xasprintf("%" PRId64 ".Q%sR%zu.", msg->received_at, msg->qid,
			 idx);
}

/* ---- folders ---------------------------------------------------------- */

static int
fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc, err;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	err = errno;
	close(fd);
	errno = err;
	return rc;
}

/* mkdir of path; on creation, fsync its parent. 0 also if it existed. */
static int
mkdir_durable(char *path)
{
	char *slash;
	int rc;

	if (mkdir(path, 0700) < 0)
		return errno == EEXIST ? 0 : -1;
	slash = strrchr(path, '/');
	if (slash == NULL)
		return fsync_dir(".");
	if (slash == path)
		return fsync_dir("/");
	*slash = '\0';
	rc = fsync_dir(path);
	*slash = '/';
	return rc;
}

/* mkdir -p maildir, then tmp/, new/, cur/. */
static int
maildir_create(const char *maildir, struct deliver_maildir_result *res)
{
	char *p = xstrdup(maildir);
	static const char *const subs[] = { "tmp", "new", "cur" };

	for (char *s = p + 1; ; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;

			*s = '\0';
			if (mkdir_durable(p) < 0)
				goto fail;
			*s = c;
			if (c == '\0')
				break;
		}
	}
	for (size_t i = 0; i < ARRAY_LEN(subs); i++) {
		free(p);
		p = xasprintf("%s/%s", maildir, subs[i]);
		if (mkdir_durable(p) < 0)
			goto fail;
	}
	free(p);
	return 0;
fail:
	res->err = errno;
	res->op = "mkdir";
	free(res->path);
	res->path = p;
	return -1;
}

/* 1 if cur/ holds a file starting with prefix (its path in *found). */
static int
maildir_in_cur(const char *maildir, const char *prefix, char **found,
	       struct deliver_maildir_result *res)
{
	char *cur = xasprintf("%s/cur", maildir);
	size_t plen = strlen(prefix);
	DIR *d = opendir(cur);
	struct dirent *de;
	int rc = 0;

	if (d == NULL) {
		if (errno == ENOENT) {
			free(cur);
			return 0;
		}
		res->err = errno;
		res->op = "opendir";
		free(res->path);
		res->path = cur;
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, prefix, plen) == 0) {
			*found = xasprintf("%s/%s", cur, de->d_name);
			rc = 1;
			break;
		}
	}
	closedir(d);
	free(cur);
	return rc;
}

/* ---- the write -------------------------------------------------------- */

static int
write_all(int fd, struct iovec *iov, int iovcnt)
{
	while (iovcnt > 0) {
		ssize_t w = writev(fd, iov, iovcnt);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		while (iovcnt > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

static void
set_fail(struct deliver_maildir_result *res, const char *op, int err,
	 const char *path)
{
	res->op = op;
	res->err = err;
	free(res->path);
	res->path = xstrdup(path);
}

/* Return-Path and Delivered-To (RFC 9228: addr-spec, no brackets). */
static int
maildir_header(const struct spool_msg *msg, size_t idx, struct buf *hdr)
{
	const char *from = msg->from != NULL ? msg->from : "";
	const char *rcpt = msg->rcpts[idx].addr;

	/* A CR or LF would forge header fields; SMTP never accepts one. */
	if (strpbrk(from, "\r\n") != NULL || strpbrk(rcpt, "\r\n") != NULL)
		return -1;
	if (buf_appendf(hdr, "Return-Path: <%s>\r\nDelivered-To: %s\r\n", from,
			rcpt) < 0)
		return -1;
	return 0;
}

int
deliver_maildir_write(const char *maildir, const char *hostname,
		      const struct spool_msg *msg, size_t idx,
		      struct deliver_maildir_result *res)
{
	struct buf hdr;
	char *host = NULL, *prefix = NULL, *name = NULL;
	char *tmp = NULL, *newp = NULL, *found = NULL;
	struct iovec iov[1];
	int fd = -1, rc = -1, created = 0, retried_stale = 0;
	const char *op;

	memset(res, 0, sizeof(*res));
	buf_init(&hdr, MAILDIR_MAX_HEADER);
	if (maildir_header(msg, idx, &hdr) < 0) {
		set_fail(res, "header", EINVAL, maildir);
		goto out;
	}
	res->size = hdr.len + spool_msg_size(msg);
	host = deliver_maildir_host(hostname);
	prefix = maildir_prefix(msg, idx);
	name = xasprintf("%s%s,S=%" PRIu64, prefix, host, res->size);
	tmp = xasprintf("%s/tmp/%s", maildir, name);
	newp = xasprintf("%s/new/%s", maildir, name);

	if (msg->recovered) {
		struct stat st;

		/* Delivered before the crash: in new/, or moved to cur/. A copy
		 * in new/ of the wrong size is one whose data the crash lost
		 * before its flush (never counted done): written again. */
		if (stat(newp, &st) == 0 && (uint64_t)st.st_size != res->size &&
		    unlink(newp) < 0 && errno != ENOENT) {
			set_fail(res, "unlink", errno, newp);
			goto out;
		}
		if (stat(newp, &st) == 0) {
			res->existed = 1;
			res->path = newp;
			newp = NULL;
			rc = 0;
			goto out;
		}
		switch (maildir_in_cur(maildir, prefix, &found, res)) {
		case 1:
			res->existed = 1;
			res->path = found;
			rc = 0;
			goto out;
		case -1:
			goto out;
		}
	}

	for (;;) {
		fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
		if (fd >= 0)
			break;
		if (errno == ENOENT && !created) {
			created = 1;
			if (maildir_create(maildir, res) < 0)
				goto out;
			continue;
		}
		if (errno == EEXIST && !retried_stale) {
			/* Left by a crash mid-write: never linked, redo it. */
			retried_stale = 1;
			if (unlink(tmp) == 0 || errno == ENOENT)
				continue;
			set_fail(res, "unlink", errno, tmp);
			goto out;
		}
		set_fail(res, "open", errno, tmp);
		goto out;
	}
	/* Our fields, then the message streamed from the spool file. */
	iov[0] = (struct iovec){ hdr.data, hdr.len };
	op = "write";
	if (write_all(fd, iov, 1) < 0 || spool_msg_copy(msg, fd, &op) < 0)
		goto fail_tmp;
	/* No flush here: the caller makes a whole batch of deliveries
	 * durable with one syncfs before it counts any of them done. */
	op = "close";
	rc = close(fd);
	fd = -1;
	if (rc < 0) {
		rc = -1;
		goto fail_tmp;
	}
	rc = -1;

	op = "link";
	for (;;) {
		if (link(tmp, newp) == 0)
			break;
		if (errno == EEXIST) {
			struct stat st;

			/* A torn copy (lost data before a flush): replaced. */
			if (!retried_stale && stat(newp, &st) == 0 &&
			    (uint64_t)st.st_size != res->size) {
				retried_stale = 1;
				if (unlink(newp) == 0 || errno == ENOENT)
					continue;
			}
			res->existed = 1;	/* a repeat after a crash */
			break;
		}
		if (errno == ENOENT && !created) {	/* new/ missing */
			created = 1;
			if (maildir_create(maildir, res) < 0) {
				(void)unlink(tmp);
				goto out;
			}
			continue;
		}
		goto fail_tmp;
	}
	if (unlink(tmp) < 0 && errno != ENOENT) {
		/* Delivered; a tmp/ leftover is harmless (Maildir readers
		 * ignore tmp/), so this is not a failure. */
	}
	res->path = newp;
	newp = NULL;
	rc = 0;
	goto out;

fail_tmp:
	set_fail(res, op, errno, op[0] == 'l' ? newp : tmp);
	if (fd >= 0)
		close(fd);
	(void)unlink(tmp);
out:
	buf_fini(&hdr);
	free(host);
	free(prefix);
	free(name);
	free(tmp);
	free(newp);
	return rc;
}

uint64_t
deliver_maildir_size(const struct spool_msg *msg, size_t idx)
{
	struct buf hdr;
	uint64_t size = 0;

	buf_init(&hdr, MAILDIR_MAX_HEADER);
	if (maildir_header(msg, idx, &hdr) == 0)
		size = hdr.len + spool_msg_size(msg);
	buf_fini(&hdr);
	return size;
}

int
deliver_maildir_find(const char *maildir, const char *hostname,
		     const struct spool_msg *msg, size_t idx,
		     struct deliver_maildir_result *res)
{
	char *host, *prefix, *newp, *found = NULL;
	struct stat st;
	int rc;

	memset(res, 0, sizeof(*res));
	res->size = deliver_maildir_size(msg, idx);
	host = deliver_maildir_host(hostname);
	prefix = maildir_prefix(msg, idx);
	newp = xasprintf("%s/new/%s%s,S=%" PRIu64, maildir, prefix, host,
			 res->size);
	if (stat(newp, &st) == 0 && (uint64_t)st.st_size == res->size) {
		res->existed = 1;
		res->path = newp;
		newp = NULL;
		rc = 1;
	} else {
		rc = maildir_in_cur(maildir, prefix, &found, res);
		if (rc == 1) {
			res->existed = 1;
			res->path = found;
		}
	}
	free(host);
	free(prefix);
	free(newp);
	return rc;
}

void
deliver_maildir_result_fini(struct deliver_maildir_result *res)
{
	free(res->path);
	res->path = NULL;
}
