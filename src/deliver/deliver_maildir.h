/*
 * deliver_maildir.h - writing one message copy into one Maildir.
 *
 * Internal to deliver/: deliver.c decides who is local and logs; this
 * module only knows folders and files. File name, for recipient index R:
 *   <received_at>.Q<qid>R<R>.<hostname>,S=<size>
 * so a delivery repeated after a crash finds its earlier copy (in new/ by
 * name, or in cur/ by the prefix up to the hostname) and writes no second.
 * That is the Maildir name "time.unique.host" (cr.yp.to/proto/maildir.html):
 * the queue ID is unique in the spool (microseconds and a counter) and R
 * tells recipients apart; ",S=" is the Maildir++ size Dovecot reads.
 */
#ifndef POSTERN_DELIVER_MAILDIR_H
#define POSTERN_DELIVER_MAILDIR_H

#include <stddef.h>
#include <stdint.h>

#include "compat.h"
#include "spool.h"

struct deliver_maildir_result {
	char *path;	/* owned: the file delivered (or found), or what failed */
	uint64_t size;	/* the file's size: headers + data */
	const char *op;	/* on failure: mkdir, open, write, fsync, close,
			 * link, unlink, opendir, path, header */
	int err;	/* on failure: errno */
	int existed;	/* the copy was already there (repeat after a crash) */
};

/* "<mail_root>/<domain>/<local>" with both parts ASCII lower-cased, or
 * NULL if either part cannot name a folder (empty, ".", "..", '/', or
 * control bytes). Malloc'ed. */
char *deliver_maildir_dir(const char *mail_root, const char *local,
			  size_t local_len, const char *domain,
			  size_t domain_len);

/* The host name as written in Maildir names: '/' -> "\057", ':' -> "\072"
 * (and nothing else unusual). Malloc'ed. */
char *deliver_maildir_host(const char *hostname);

/* Delivers recipient idx of msg into the Maildir folder maildir (created
 * with tmp/, new/, cur/ on first use): writes tmp/<name>, links it into
 * new/, unlinks tmp/<name>. Nothing is flushed: the caller makes the copy
 * durable (syncfs of the folder's filesystem, deliver.c) before it counts
 * it done; a copy in new/ whose size is not the one its name says (its
 * data lost in a crash before that flush) is replaced. 0 when the copy is
 * in place (res->existed if it was already), -1 with res->op/err/path set.
 * The caller frees res->path with deliver_maildir_result_fini(). */
int deliver_maildir_write(const char *maildir, const char *hostname,
			  const struct spool_msg *msg, size_t idx,
			  struct deliver_maildir_result *res) WARN_UNUSED;
void deliver_maildir_result_fini(struct deliver_maildir_result *res);

/* The size the copy of recipient idx has (or will have) on disk: the
 * Return-Path and Delivered-To fields plus the data; 0 if the fields
 * cannot be made (CR or LF in an address). */
uint64_t deliver_maildir_size(const struct spool_msg *msg, size_t idx);

/* Looks for an earlier copy of recipient idx (a repeat after a crash or a
 * retry): in new/ by its exact name, in cur/ by the name's prefix. 1 found
 * (res->path, res->size, res->existed set), 0 not there, -1 cur/ cannot
 * be read (res->op/err/path set). */
int deliver_maildir_find(const char *maildir, const char *hostname,
			 const struct spool_msg *msg, size_t idx,
			 struct deliver_maildir_result *res) WARN_UNUSED;

#endif
