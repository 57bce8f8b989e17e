/*
 * access_map.h - the access map (access.file), as smtpf's: lines
 * `KEY ACTION [text]` read into memory at configuration load, and the
 * lookup the "access" check does at each stage.
 *
 * Keys are tags with patterns: Connect:P (client address, network or
 * name), Helo:P, From:P, To:P, and the combinations Connect:P:From:P,
 * Connect:P:To:P, From:P:To:P. A pattern is exact, a CIDR network
 * (Connect: only), a glob (`*`, `?`, `[...]`) or a PCRE2 regex `/.../`.
 * Exact From:/To: patterns are `user@domain`, `user@` (the local part in
 * any domain), `domain` or `@domain` (the domain), `<>` (the null
 * sender). The first matching line of the file wins.
 *
 * Owns: the parsed map (exact single-tag keys in a hash, the rest in a
 * list in file order). No I/O but access_map_load's one read; lookups
 * only compare in memory.
 */
#ifndef POSTERN_ACCESS_MAP_H
#define POSTERN_ACCESS_MAP_H

#include <stddef.h>
#include <sys/socket.h>

#include "compat.h"
#include "diag.h"

#define ACCESS_TEXT_MAX 200		/* custom reply text, octets */
#define ACCESS_LINE_MAX 4096		/* one line of the file */
#define ACCESS_FILE_MAX (64u << 20)	/* the whole file */
#define ACCESS_ENTRIES_MAX 1000000u

enum access_action { ACCESS_OK, ACCESS_REJECT, ACCESS_TEMPFAIL, ACCESS_DISCARD };

enum access_tag {
	ACCESS_TAG_CONNECT, ACCESS_TAG_HELO, ACCESS_TAG_FROM, ACCESS_TAG_TO,
	ACCESS_TAG_CONNECT_FROM, ACCESS_TAG_CONNECT_TO, ACCESS_TAG_FROM_TO,
	ACCESS_TAG__COUNT
};
#define ACCESS_MASK(tag) (1u << (tag))

struct access_entry;
struct access_map;

/* What a lookup compares against; NULL fields are unknown (a name before
 * the PTR is known, no sender yet) and match no pattern. */
struct access_subject {
	const char *client;			/* the address as text */
	const struct sockaddr *peer;
	const char *name;			/* the client's verified name */
	const char *helo;
	const char *from;			/* "" for <> */
	const char *rcpt;
};

/* Parses text (len octets, NUL not needed) read from path: every bad line
 * is a diagnostic "path:line: ..." in diags. Returns the map, or NULL
 * when any line was bad. */
struct access_map *access_map_parse(const char *path, const char *text, size_t len,
				    struct diag *diags) WARN_UNUSED;
/* Reads path (option: the option naming it) and parses it. */
struct access_map *access_map_load(const char *path, const char *option,
				   struct diag *diags) WARN_UNUSED;
void access_map_free(struct access_map **mapp);
size_t access_map_count(const struct access_map *map);

/* The first entry (in file order) of a tag in tags (ACCESS_MASK bits)
 * that matches s, or NULL. */
const struct access_entry *access_map_find(const struct access_map *map, unsigned tags,
					   const struct access_subject *s);

/* 1 when an entry of a tag in tags has a Connect: pattern that may match
 * the client's name (anything but a CIDR network or an address): a
 * lookup for those tags needs the name. */
int access_map_needs_name(const struct access_map *map, unsigned tags);

enum access_action access_entry_action(const struct access_entry *e);
/* The custom reply text, "" if none. */
const char *access_entry_text(const struct access_entry *e);
/* The key as written (cut to 100 octets). */
const char *access_entry_key(const struct access_entry *e);
unsigned access_entry_line(const struct access_entry *e);

#endif
