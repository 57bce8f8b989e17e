/*
 * pop3_maildrop.c - a Maildir seen as a POP3 maildrop: the login scan and
 * the UPDATE state (see pop3_private.h). Runs on worker threads only.
 *
 * Owns the mapping from Maildir files to POP3 messages: messages are the
 * regular files of new/ and cur/ (tmp/ and dot files are not), numbered
 * in the order of their base names (up to ':'), which start with the
 * delivery time, so the numbering is stable; a message's size is what
 * RETR sends without the stuffing, counted by reading the file (or taken
 * from a ",W=" field in the name, as Dovecot writes it). Logs nothing: the
 * session reports.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pop3_private.h"

void
pop3_maildrop_fini(struct pop3_maildrop *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].name);
	free(d->v);
	free(d->dir);
	memset(d, 0, sizeof(*d));
}

char *
pop3_msg_path(const struct pop3_maildrop *d, const struct pop3_msg *m)
{
	return xasprintf("%s/%s/%s", d->dir, m->in_cur ? "cur" : "new", m->name);
}

static size_t
base_len(const char *name)
{
	const char *c = strchr(name, ':');

	return c ? (size_t)(c - name) : strlen(name);
}

/* ",W=<n>" before the ':' (Dovecot's size with CRLF line ends). */
static int
virtual_size(const char *name, uint64_t *out)
{
	size_t n = base_len(name);
	const char *w = NULL;

	for (size_t i = 0; i + 3 <= n; i++)
		if (memcmp(name + i, ",W=", 3) == 0)
			w = name + i + 3;
	if (w == NULL)
		return -1;
	size_t k = 0;
	while (w + k < name + n && w[k] >= '0' && w[k] <= '9')
		k++;
	if (k == 0)
		return -1;
	return slice_to_u64((struct slice){ (const uint8_t *)w, k }, UINT64_MAX / 4, out);
}

/* The size as the client sees it: read the whole file once. */
static int
count_size(int dfd, const char *name, uint64_t *out)
{
	static __thread uint8_t chunk[POP3_CHUNK];
	struct pop3_enc enc;
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0)
		return -1;
	pop3_enc_init(&enc, 0, 0);
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		if (n == 0)
			break;
		if (pop3_enc_feed(&enc, chunk, (size_t)n, NULL) < 0)
			PANIC("counting cannot fail");
	}
	close(fd);
	if (pop3_enc_finish(&enc, NULL) < 0)
		PANIC("counting cannot fail");
	*out = enc.size;
	return 0;
}

static int
msg_cmp(const void *a, const void *b)
{
	const struct pop3_msg *x = a, *y = b;
	size_t lx = base_len(x->name), ly = base_len(y->name);
	int c = memcmp(x->name, y->name, lx < ly ? lx : ly);

	if (c != 0)
		return c;
	if (lx != ly)
		return lx < ly ? -1 : 1;
	return (int)x->in_cur - (int)y->in_cur;
}

static int
scan_folder(struct pop3_maildrop *d, const char *sub, int in_cur, size_t max, int *err_out,
	    char **path_out)
{
	char *path = xasprintf("%s/%s", d->dir, sub);
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir;
	struct dirent *de;
	size_t cap = d->n;

	if (dfd < 0) {
		if (errno == ENOENT) {	/* nothing delivered yet */
			free(path);
			return 0;
		}
		goto fail;
	}
	dir = fdopendir(dfd);
	if (dir == NULL) {
		close(dfd);
		goto fail;
	}
	errno = 0;
	while ((de = readdir(dir)) != NULL) {
		struct stat st;
		uint64_t size;

		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;	/* vanished, or not a message */
		if (virtual_size(de->d_name, &size) < 0 && count_size(dfd, de->d_name, &size) < 0) {
			if (errno == ENOENT)
				continue;
			int e = errno;
			closedir(dir);
			errno = e;
			free(path);
			path = xasprintf("%s/%s/%s", d->dir, sub, de->d_name);
			goto fail;
		}
		if (d->n >= max) {
			closedir(dir);
			errno = EFBIG;
			goto fail;
		}
		if (d->n == cap) {
			cap = cap ? cap * 2 : 64;
			d->v = xrealloc(d->v, cap * sizeof(*d->v));
		}
		struct pop3_msg *m = &d->v[d->n++];
		memset(m, 0, sizeof(*m));
		m->name = xstrdup(de->d_name);
		m->size = size;
		m->in_cur = (uint8_t)in_cur;
		pop3_uid_of(m->name, base_len(m->name), m->uid);
		errno = 0;
	}
	if (errno != 0) {
		int e = errno;
		closedir(dir);
		errno = e;
		goto fail;
	}
	closedir(dir);
	free(path);
	return 0;
fail:
	*err_out = errno;
	*path_out = path;
	return -1;
}

int
pop3_maildrop_scan(const char *dir, size_t max, struct pop3_maildrop *d, int *err_out,
		   char **path_out)
{
	memset(d, 0, sizeof(*d));
	d->dir = xstrdup(dir);
	if (scan_folder(d, "new", 0, max, err_out, path_out) < 0 ||
	    scan_folder(d, "cur", 1, max, err_out, path_out) < 0) {
		pop3_maildrop_fini(d);
		return -1;
	}
	if (d->n > 1)
		qsort(d->v, d->n, sizeof(*d->v), msg_cmp);
	/* One message per base name: a copy in both folders (a crash
	 * between two steps of another program) is offered once. */
	size_t w = 0;
	for (size_t i = 0; i < d->n; i++) {
		if (w > 0 && strcmp(d->v[w - 1].uid, d->v[i].uid) == 0) {
			free(d->v[i].name);
			continue;
		}
		d->v[w++] = d->v[i];
	}
	d->n = w;
	return 0;
}

/* ---- UPDATE ---------------------------------------------------------- */

/* The cur/ name of a retrieved message: flags with S added, in ASCII
 * order (Maildir spec). NULL when it already has S. */
static char *
seen_name(const struct pop3_msg *m)
{
	size_t bl = base_len(m->name);
	const char *info = m->name + bl;	/* "" or ":2,FLAGS" or other */
	char flags[64];
	size_t nf = 0;

	if (info[0] == '\0' || strncmp(info, ":2,", 3) != 0)
		return xasprintf("%.*s:2,S", (int)bl, m->name);
	for (const char *f = info + 3; *f; f++) {
		if (*f == 'S')
			return NULL;
		if (nf + 2 >= sizeof(flags))
			return NULL;	/* odd name: leave it */
		flags[nf++] = *f;
	}
	/* insert S in order */
	size_t at = 0;
	while (at < nf && (unsigned char)flags[at] < 'S')
		at++;
	memmove(flags + at + 1, flags + at, nf - at);
	flags[at] = 'S';
	flags[++nf] = '\0';
	return xasprintf("%.*s:2,%s", (int)bl, m->name, flags);
}

static void
note_fail(size_t *failed, int *err_out, char **path_out, const char *dir, const char *sub,
	  const char *name, int e)
{
	if (*failed == 0) {
		*err_out = e;
		*path_out = xasprintf("%s/%s/%s", dir, sub, name);
	}
	(*failed)++;
}

size_t
pop3_maildrop_update(const struct pop3_maildrop *d, size_t *dele_out, size_t *seen_out,
		     int *err_out, char **path_out)
{
	char *np = xasprintf("%s/new", d->dir), *cp = xasprintf("%s/cur", d->dir);
	int nfd = open(np, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int cfd = open(cp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	size_t failed = 0;
	int new_changed = 0, cur_changed = 0;

	*dele_out = *seen_out = 0;
	if (cfd < 0 && errno == ENOENT) {
		/* Maildir readers must cope with a missing cur/: make it. */
		if (mkdir(cp, 0700) == 0 || errno == EEXIST)
			cfd = open(cp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	for (size_t i = 0; i < d->n; i++) {
		const struct pop3_msg *m = &d->v[i];
		int dfd = m->in_cur ? cfd : nfd;
		const char *sub = m->in_cur ? "cur" : "new";

		if (!m->deleted && !m->retrieved)
			continue;
		if (dfd < 0) {
			note_fail(&failed, err_out, path_out, d->dir, sub, m->name, errno ? errno : EBADF);
			continue;
		}
		if (m->deleted) {
			if (unlinkat(dfd, m->name, 0) < 0 && errno != ENOENT) {
				note_fail(&failed, err_out, path_out, d->dir, sub, m->name, errno);
				continue;
			}
			(*dele_out)++;
			if (m->in_cur)
				cur_changed = 1;
			else
				new_changed = 1;
			continue;
		}
		char *to = seen_name(m);
		if (to == NULL)
			continue;
		if (cfd < 0 || renameat(dfd, m->name, cfd, to) < 0) {
			int e = cfd < 0 ? ENOENT : errno;
			if (e != ENOENT)
				note_fail(&failed, err_out, path_out, d->dir, sub, m->name, e);
			free(to);
			continue;
		}
		free(to);
		(*seen_out)++;
		cur_changed = 1;
		if (!m->in_cur)
			new_changed = 1;
	}
	/* The reply says the update is done: make it durable first. */
	if (new_changed && nfd >= 0 && fsync(nfd) < 0)
		note_fail(&failed, err_out, path_out, d->dir, "new", "", errno);
	if (cur_changed && cfd >= 0 && fsync(cfd) < 0)
		note_fail(&failed, err_out, path_out, d->dir, "cur", "", errno);
	if (nfd >= 0)
		close(nfd);
	if (cfd >= 0)
		close(cfd);
	free(np);
	free(cp);
	return failed;
}
