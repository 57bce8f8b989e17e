/*
 * kv.h - key/value pairs that travel with a condition into a reply and a
 * log line. Values are borrowed for the duration of one call.
 */
#ifndef POSTERN_KV_H
#define POSTERN_KV_H

#include <stddef.h>
#include <stdint.h>

enum kv_type { KV_STR, KV_MEM, KV_U64, KV_I64, KV_ADDR };

struct kv {
	const char *key;
	enum kv_type type;
	const char *s;		/* KV_STR (NUL-terminated), KV_MEM, KV_ADDR */
	size_t len;		/* KV_MEM, KV_ADDR */
	uint64_t u;
	int64_t i;
};

#define KV(k, v) ((struct kv){ .key = (k), .type = KV_STR, .s = (v) })
#define KVM(k, p, n) ((struct kv){ .key = (k), .type = KV_MEM, .s = (const char *)(p), .len = (n) })
#define KVU(k, v) ((struct kv){ .key = (k), .type = KV_U64, .u = (uint64_t)(v) })
#define KVI(k, v) ((struct kv){ .key = (k), .type = KV_I64, .i = (int64_t)(v) })
/* An address shown in angle brackets: <a@b>, and <> for the null sender. */
#define KVA(k, p, n) ((struct kv){ .key = (k), .type = KV_ADDR, .s = (const char *)(p), .len = (n) })

#endif
