/*
 * net_tls_ticket.c - session-ticket keys and OpenSSL's ticket callback
 * (net_tls_ticket.h).
 *
 * Owns the process-wide ring of ticket keys under one mutex (held for a
 * copy, never across OpenSSL calls). Tickets are AES-256-CBC with an
 * HMAC-SHA256, as OpenSSL's own default ticket format; the callback only
 * supplies the keys.
 */
#include "net_tls_ticket.h"

#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "compat.h"

#define TICKET_AES_LEN 32
#define TICKET_HMAC_LEN 32
#define TICKET_ROTATION_DEFAULT 3600

struct ticket_key {
	unsigned char name[TLS_TICKET_NAME_LEN];
	unsigned char aes[TICKET_AES_LEN];
	unsigned char hmac[TICKET_HMAC_LEN];
	time_t created;
	int used;
};

static pthread_mutex_t ticket_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ticket_key ticket_keys[TLS_TICKET_KEYS];	/* [0] encrypts */
static unsigned ticket_rotation = TICKET_ROTATION_DEFAULT;

void
tls_ticket_set_rotation(unsigned seconds)
{
	if (seconds > 0)
		__atomic_store_n(&ticket_rotation, seconds, __ATOMIC_RELAXED);
}

unsigned
tls_ticket_rotation(void)
{
	return __atomic_load_n(&ticket_rotation, __ATOMIC_RELAXED);
}

void
tls_ticket_reset(void)
{
	pthread_mutex_lock(&ticket_lock);
	OPENSSL_cleanse(ticket_keys, sizeof(ticket_keys));
	pthread_mutex_unlock(&ticket_lock);
}

/* Under ticket_lock: puts a fresh key in front when the current one is
 * missing or due. */
static int
ticket_rotate_locked(time_t now)
{
	unsigned period = tls_ticket_rotation();
	struct ticket_key k = { .created = now, .used = 1 };

	if (ticket_keys[0].used && now - ticket_keys[0].created < (time_t)period &&
	    now >= ticket_keys[0].created)
		return 0;
	if (RAND_bytes(k.name, sizeof(k.name)) != 1 || RAND_bytes(k.aes, sizeof(k.aes)) != 1 ||
	    RAND_bytes(k.hmac, sizeof(k.hmac)) != 1)
		return -1;
	memmove(&ticket_keys[1], &ticket_keys[0],
		sizeof(ticket_keys[0]) * (TLS_TICKET_KEYS - 1));
	ticket_keys[0] = k;
	OPENSSL_cleanse(&k, sizeof(k));
	return 0;
}

static int
ticket_copy_current(time_t now, struct ticket_key *out)
{
	pthread_mutex_lock(&ticket_lock);
	int r = ticket_rotate_locked(now);
	if (r == 0)
		*out = ticket_keys[0];
	pthread_mutex_unlock(&ticket_lock);
	return r;
}

/* 0 current, 1 older but accepted, -1 unknown or expired; copies the key. */
static int
ticket_copy_named(const unsigned char *name, time_t now, struct ticket_key *out)
{
	time_t life = (time_t)tls_ticket_rotation() * TLS_TICKET_KEYS;
	int r = -1;

	pthread_mutex_lock(&ticket_lock);
	for (size_t i = 0; i < TLS_TICKET_KEYS; i++) {
		const struct ticket_key *k = &ticket_keys[i];
		if (!k->used || memcmp(k->name, name, TLS_TICKET_NAME_LEN) != 0)
			continue;
		if (now - k->created >= life || now < k->created)
			break;
		*out = *k;
		/* The key in front is renewed only when it is also due. */
		r = i == 0 && now - k->created < (time_t)tls_ticket_rotation() ? 0 : 1;
		break;
	}
	pthread_mutex_unlock(&ticket_lock);
	return r;
}

int
tls_ticket_current(time_t now, unsigned char name[TLS_TICKET_NAME_LEN])
{
	struct ticket_key k;

	if (ticket_copy_current(now, &k) < 0)
		return -1;
	memcpy(name, k.name, TLS_TICKET_NAME_LEN);
	OPENSSL_cleanse(&k, sizeof(k));
	return 0;
}

int
tls_ticket_lookup(const unsigned char name[TLS_TICKET_NAME_LEN], time_t now)
{
	struct ticket_key k;
	int r = ticket_copy_named(name, now, &k);

	OPENSSL_cleanse(&k, sizeof(k));
	return r;
}

static int
ticket_hmac_init(EVP_MAC_CTX *hctx, unsigned char *key)
{
	char digest[] = "SHA256";
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key, TICKET_HMAC_LEN),
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
		OSSL_PARAM_construct_end(),
	};

	return EVP_MAC_CTX_set_params(hctx, params) == 1 ? 0 : -1;
}

/* OpenSSL's callback: enc=1 fills a new ticket's key name, IV and keys;
 * enc=0 finds the key of a ticket presented (0: unknown, full handshake;
 * 1: resume; 2: resume and issue a ticket under the current key). */
static int
ticket_cb(SSL *ssl, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
	  EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	struct ticket_key k;
	time_t now = time(NULL);
	int r;

	(void)ssl;
	if (enc) {
		if (ticket_copy_current(now, &k) < 0 ||
		    RAND_bytes(iv, EVP_CIPHER_iv_length(EVP_aes_256_cbc())) != 1)
			return -1;	/* no ticket this time */
		memcpy(key_name, k.name, TLS_TICKET_NAME_LEN);
		r = ticket_hmac_init(hctx, k.hmac) == 0 &&
		    EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) == 1 ? 1 : -1;
	} else {
		int age = ticket_copy_named(key_name, now, &k);
		if (age < 0)
			return 0;
		r = ticket_hmac_init(hctx, k.hmac) == 0 &&
		    EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k.aes, iv) == 1
			? (age == 0 ? 1 : 2) : -1;
	}
	OPENSSL_cleanse(&k, sizeof(k));
	return r;
}

int
tls_ticket_setup(SSL_CTX *ctx)
{
	static const unsigned char sid_ctx[] = "postern";

	/* A ticket outlives its key's time in front by the periods after. */
	SSL_CTX_set_timeout(ctx, (long)tls_ticket_rotation() * (TLS_TICKET_KEYS - 1));
	if (SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1) != 1)
		return -1;
	return SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb) == 1 ? 0 : -1;
}
