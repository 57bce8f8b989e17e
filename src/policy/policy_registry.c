/*
 * policy_registry.c - the list of check modules (see policy_checks.h).
 * A new check is one file and one line here.
 */
#include "policy_checks.h"

const struct policy_check *const policy_registry[] = {
	&policy_check_access,
	&policy_check_tls_required,
	&policy_check_auth_required,
	&policy_check_sender_login,
	&policy_check_antispoof,
	&policy_check_size,
	&policy_check_free_space,
	&policy_check_limits,
	&policy_check_recipient,
	&policy_check_relay,
	&policy_check_quota,
	&policy_check_content,
	&policy_check_dnsbl,
	&policy_check_dnswl,
	&policy_check_uribl,
	&policy_check_spf,
	&policy_check_helo,
	&policy_check_sender_domain,
	&policy_check_client_ptr,
	&policy_check_greylist,
	&policy_check_duplicates,
	&policy_check_rates,
};

const size_t policy_registry_len = ARRAY_LEN(policy_registry);
