/*
 * policy_checks.h - the check modules Postern ships, and the default
 * chains that reproduce its built-in behaviour.
 *
 * Each check is one `const struct policy_check` in its own file of
 * src/policy/; policy_registry.c lists them for the chain builder.
 */
#ifndef POSTERN_POLICY_CHECKS_H
#define POSTERN_POLICY_CHECKS_H

#include "policy.h"

extern const struct policy_check policy_check_tls_required;	/* policy_tls.c */
extern const struct policy_check policy_check_auth_required;	/* policy_auth.c */
extern const struct policy_check policy_check_sender_login;	/* policy_auth.c */
extern const struct policy_check policy_check_antispoof;	/* policy_antispoof.c */
extern const struct policy_check policy_check_size;		/* policy_size.c */
extern const struct policy_check policy_check_free_space;	/* policy_space.c */
extern const struct policy_check policy_check_limits;		/* policy_limits.c */
extern const struct policy_check policy_check_recipient;	/* policy_recipient.c */
extern const struct policy_check policy_check_relay;		/* policy_relay.c */
extern const struct policy_check policy_check_quota;		/* policy_quota.c */
extern const struct policy_check policy_check_content;		/* policy_content.c */
extern const struct policy_check policy_check_dnsbl;		/* policy_dnsl.c */
extern const struct policy_check policy_check_dnswl;		/* policy_dnsl.c */
extern const struct policy_check policy_check_uribl;		/* policy_dnsl.c */
extern const struct policy_check policy_check_access;		/* policy_access.c */
extern const struct policy_check policy_check_helo;		/* policy_client_checks.c */
extern const struct policy_check policy_check_sender_domain;	/* policy_client_checks.c */
extern const struct policy_check policy_check_client_ptr;	/* policy_client_checks.c */

struct access_map;
/* The access map of cfg's generation (policy_config.c); NULL: none. */
const struct access_map *policy_access_map(const struct config *cfg);
extern const struct policy_check policy_check_spf;		/* policy_spf.c */

/* The config_attach_fn step that checks the [spf] actions at load. */
void spf_config_check(struct config *cfg, struct config_load *ld, struct diag *diags);

extern const struct policy_check policy_check_greylist;		/* policy_greylist.c */

/* The config_attach_fn step that checks greylist.key and the windows. */
void greylist_config_check(struct config *cfg, struct config_load *ld, struct diag *diags);
extern const struct policy_check policy_check_duplicates;	/* policy_dupmsg.c */

extern const struct policy_check policy_check_rates;		/* policy_rates.c */

/* The config_attach_fn step that checks rates.on_state_error. */
void rates_config_check(struct config *cfg, struct config_load *ld, struct diag *diags);
/* The config_attach_fn step that checks the [state] options (policy_state.c). */
void state_config_check(struct config *cfg, struct config_load *ld, struct diag *diags);

/* Every check, for policy_chain_new(). */
extern const struct policy_check *const policy_registry[];
extern const size_t policy_registry_len;

#endif
