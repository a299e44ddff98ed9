/* acme: an ACME (RFC 8555) client as one sans-IO state machine.
 *
 * The embedding (sk cert, skd) owns the I/O and calls acme_advance() with
 * what happened (nothing yet / a timer fired, an HTTP response, a transport
 * error, the dns-01 values are served, the certificate key is made, a
 * result was saved) and the monotonic time; the machine answers with the
 * one thing to do next: an HTTP request, a time to wake, "set these dns-01
 * values", "make a certificate key", "save this", or done/failed.
 *
 *   directory -> [newNonce] -> [newAccount] -> newOrder | the saved order
 *   -> every authorization -> SET_CHALLENGES (all values at once: the
 *   embedding sets them in parallel) -> answer every challenge -> poll the
 *   order (the CA validates the authorizations in parallel) -> NEED_KEY ->
 *   finalize -> poll -> download the chain -> SAVE_CERT ->
 *   DELETE_CHALLENGES -> DONE
 *
 * A failure after SET_CHALLENGES was handed out first asks for
 * DELETE_CHALLENGES (of the same values), then reports FAILED.
 *
 * Every POST is a JWS (jwk for newAccount, kid afterwards) with the nonce
 * of the last response; a badNonce answer is retried with the nonce it
 * carries, at most ACME_BAD_NONCE_RETRIES times in a row. Polls honour
 * Retry-After, otherwise back off exponentially with jitter; everything
 * ends at the overall deadline. Problem documents become one-line
 * messages (acme_failure()). */
#ifndef SKD_ACME_H
#define SKD_ACME_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../common/buf.h"
#include "acme_crypto.h"

#define ACME_MAX_NAMES 16
#define ACME_URL_MAX 1024
#define ACME_NONCE_MAX 256
#define ACME_BAD_NONCE_RETRIES 20
#define ACME_TRANSIENT_RETRIES 5  /* transport errors and 5xx, per request */
#define ACME_POLL_MIN_MS 50   /* the first poll's wait; doubles up to the max */
#define ACME_TRANSIENT_MIN_MS 250 /* the same for retries after errors */
#define ACME_POLL_MAX_MS 10000
#define ACME_BODY_MAX (1024 * 1024) /* what a response may hold (a chain) */

typedef enum acme_state {
    ACME_DIRECTORY,      /* GET the directory */
    ACME_NONCE,          /* HEAD newNonce (when no response gave one) */
    ACME_ACCOUNT,        /* POST newAccount */
    ACME_ORDER_RESUME,   /* POST-as-GET the saved order */
    ACME_ORDER_NEW,      /* POST newOrder */
    ACME_AUTHZ,          /* POST-as-GET each authorization */
    ACME_CHALLENGES_SET, /* waiting for the embedding to serve the values */
    ACME_CHALLENGE,      /* POST {} to each challenge */
    ACME_ORDER_POLL,     /* POST-as-GET the order until ready/valid */
    ACME_AUTHZ_ERROR,    /* the order went invalid: find the failed authorization */
    ACME_KEY,            /* waiting for the certificate key */
    ACME_FINALIZE,       /* POST the CSR */
    ACME_CERT,           /* POST-as-GET the certificate chain */
    ACME_CLEANUP,        /* waiting for the embedding to delete the values */
    ACME_DONE,
    ACME_FAILED,
    ACME_REVOKE,         /* POST revokeCert (ACME_OP_REVOKE) */
    ACME_KEY_CHANGE,     /* POST keyChange (ACME_OP_KEY_CHANGE) */
    ACME_RENEWAL_INFO,   /* GET renewalInfo/<id> (ACME_OP_RENEWAL_INFO, RFC 9773) */
} acme_state_t;

/* What a machine does; every operation starts with the directory. */
typedef enum acme_op {
    ACME_OP_ISSUE,        /* the certificate of names (the default) */
    ACME_OP_REVOKE,       /* revoke cert_pem, signed with the account key */
    ACME_OP_KEY_CHANGE,   /* roll the account over to new_account_key: DONE once the CA agreed */
    ACME_OP_RENEWAL_INFO, /* the CA's renewal window of cert_pem: acme_renewal_window() after DONE */
} acme_op_t;

typedef enum acme_input_kind {
    ACME_IN_NONE,          /* start, or the wake time came, or a SAVE_* is done */
    ACME_IN_RESPONSE,      /* the answer to the last REQUEST */
    ACME_IN_TRANSPORT_ERROR, /* the last REQUEST got no answer (message in error) */
    ACME_IN_CHALLENGES_SET, /* ok: every value is served; else error says why */
    ACME_IN_KEY,           /* the certificate key (the machine takes a reference) */
} acme_input_kind_t;

typedef struct acme_response {
    int status;
    const char *replay_nonce; /* header values, NULL when absent */
    const char *location;
    const char *retry_after;
    const char *content_type;
    const char *body;
    size_t body_len;
    time_t wall; /* the wall clock, for a Retry-After date; 0: seconds only */
} acme_response_t;

typedef struct acme_input {
    acme_input_kind_t kind;
    acme_response_t response;  /* ACME_IN_RESPONSE */
    bool ok;                   /* ACME_IN_CHALLENGES_SET */
    const char *error;         /* ACME_IN_TRANSPORT_ERROR, ACME_IN_CHALLENGES_SET */
    EVP_PKEY *key;             /* ACME_IN_KEY */
} acme_input_t;

typedef enum acme_action_kind {
    ACME_ACT_REQUEST,           /* do request, then ACME_IN_RESPONSE / _TRANSPORT_ERROR */
    ACME_ACT_WAIT,              /* call again with ACME_IN_NONE at wake_at */
    ACME_ACT_SET_CHALLENGES,    /* serve challenges[], then ACME_IN_CHALLENGES_SET */
    ACME_ACT_NEED_KEY,          /* make the certificate key (off the loop), then ACME_IN_KEY */
    ACME_ACT_SAVE_ACCOUNT,      /* persist acme_account_url(), then ACME_IN_NONE */
    ACME_ACT_SAVE_ORDER,        /* persist acme_order_url() (or forget it when ""), then ACME_IN_NONE */
    ACME_ACT_SAVE_CERT,         /* write chain and key atomically, then ACME_IN_NONE */
    ACME_ACT_DELETE_CHALLENGES, /* delete challenges[], then ACME_IN_NONE */
    ACME_ACT_DONE,
    ACME_ACT_FAILED,            /* acme_failure() says why */
} acme_action_kind_t;

typedef struct acme_request {
    const char *method;       /* "GET", "HEAD" or "POST" */
    const char *url;
    const char *body;         /* NULL for GET/HEAD */
    size_t body_len;
    const char *content_type; /* "application/jose+json" for POST */
    const char *accept;       /* "application/pem-certificate-chain" for the chain, else NULL */
} acme_request_t;

typedef struct acme_challenge_value {
    char name[256];             /* the identifier, e.g. "host.sk.test" */
    char value[ACME_DNS01_SIZE]; /* the TXT value of _acme-challenge.<name> */
} acme_challenge_value_t;

typedef struct acme_action {
    acme_action_kind_t kind;
    acme_request_t request;                 /* REQUEST */
    uint64_t wake_at;                       /* WAIT, in the caller's ms */
    const acme_challenge_value_t *challenges; /* SET_CHALLENGES, DELETE_CHALLENGES */
    size_t nchallenges;
    const char *chain;                      /* SAVE_CERT: PEM */
    size_t chain_len;
    EVP_PKEY *cert_key;                     /* SAVE_CERT: the key of the chain */
} acme_action_t;

typedef struct acme_config {
    const char *directory_url;
    EVP_PKEY *account_key;       /* P-256; the caller keeps it alive */
    const char *account_url;     /* the saved account (kid), or NULL */
    const char *order_url;       /* the saved order to resume, or NULL */
    EVP_PKEY *cert_key;          /* the saved certificate key of that order, or NULL */
    const char *const *names;    /* the identifiers, without a trailing dot */
    size_t nnames;
    const char *contact;         /* "mailto:..." or NULL */
    uint64_t timeout_ms;         /* the overall deadline from the first advance; 0: 300 s */
    /* Random bits for the jitter (NULL: OpenSSL's RAND_bytes); tests fix them. */
    uint32_t (*random)(void *arg);
    void *random_arg;
    /* Added after the first version; zero values keep its behaviour. */
    acme_op_t op;
    const char *eab_kid;         /* external account binding (RFC 8555 7.3.4) for newAccount, or NULL */
    const char *eab_hmac_key;    /* its MAC key, base64url */
    const char *cert_pem;        /* REVOKE, RENEWAL_INFO: the certificate (PEM, the leaf first); ISSUE:
                                    the one being renewed, or NULL (RFC 9773 "replaces" in newOrder
                                    when the directory offers renewalInfo) */
    size_t cert_pem_len;
    int revoke_reason;           /* REVOKE: an RFC 5280 reason code (0..10) */
    EVP_PKEY *new_account_key;   /* KEY_CHANGE: the P-256 key to switch to; the caller keeps it alive */
} acme_config_t;

/* One client request in flight, and what it is for. */
typedef struct acme_pending {
    char url[ACME_URL_MAX];
    char payload[8192];        /* JSON text, "" for POST-as-GET */
    bool post;
    bool use_jwk;
    const char *accept;
} acme_pending_t;

typedef struct acme_authz {
    char url[ACME_URL_MAX];
    char challenge_url[ACME_URL_MAX];
    bool pending; /* its dns-01 challenge must be answered */
} acme_authz_t;

typedef struct acme {
    acme_state_t state;
    acme_state_t after_nonce; /* where ACME_NONCE returns to */
    acme_config_t cfg;
    char thumbprint[ACME_THUMBPRINT_SIZE];

    char new_nonce_url[ACME_URL_MAX];
    char new_account_url[ACME_URL_MAX];
    char new_order_url[ACME_URL_MAX];
    char account_url[ACME_URL_MAX];
    char order_url[ACME_URL_MAX];
    char finalize_url[ACME_URL_MAX];
    char cert_url[ACME_URL_MAX];
    char nonce[ACME_NONCE_MAX];

    acme_authz_t authz[ACME_MAX_NAMES];
    size_t nauthz, authz_i;
    acme_challenge_value_t values[ACME_MAX_NAMES];
    size_t nvalues;
    EVP_PKEY *cert_key;
    bool resumed;      /* the order came from the configuration */
    bool new_order_done; /* a resumed order that failed gets one new order */

    acme_pending_t req;
    buf_t body;        /* the signed body of the request in flight */
    buf_t chain;
    unsigned bad_nonces, transient, polls;
    uint64_t deadline, wake_at;
    acme_action_kind_t save; /* a SAVE_* to hand out before going on; DONE: none */
    bool started, in_flight;
    bool cleaned; /* no value handed out by SET_CHALLENGES is left to delete */
    char failure[1024];
    char progress[1200]; /* the last step's line, for the embedding's log */
    char revoke_url[ACME_URL_MAX];
    char key_change_url[ACME_URL_MAX];
    char renewal_info_url[ACME_URL_MAX]; /* "" when the CA offers none */
    time_t window_start, window_end;     /* RENEWAL_INFO's answer; 0: none */
    int64_t window_retry_ms;             /* its Retry-After, -1: none */
    bool replaces_sent;  /* the pending newOrder names the certificate it replaces */
    bool replaces_dropped; /* the CA refused that: newOrder without it */
} acme_t;

/* Copies cfg (the strings and keys must outlive the machine). 0 or -1
 * (bad configuration: acme_failure() says why). */
int acme_init(acme_t *m, const acme_config_t *cfg);
/* Frees what the machine holds; its state, failure and renewal window stay readable. */
void acme_free(acme_t *m);
/* The one entry point: feed what happened (in may be NULL for NONE) at
 * now (ms, monotonic), get the next action. Pointers in *out stay valid
 * until the next call. */
void acme_advance(acme_t *m, const acme_input_t *in, uint64_t now, acme_action_t *out);

acme_state_t acme_state(const acme_t *m);
const char *acme_state_name(acme_state_t s);
const char *acme_failure(const acme_t *m);
const char *acme_account_url(const acme_t *m);
const char *acme_order_url(const acme_t *m);
/* After an ACME_OP_RENEWAL_INFO machine is DONE: 0 and the CA's suggested
 * window (wall clock) and how long it asks to wait before asking again
 * (ms, -1: it did not say), or -1 when the CA offers no renewal
 * information. */
int acme_renewal_window(const acme_t *m, time_t *start, time_t *end, int64_t *retry_ms);
/* What to do with a certificate valid from not_before to not_after after
 * an ACME_OP_RENEWAL_INFO machine ended (DONE or FAILED): renew at a
 * uniformly random time in the CA's window (acme_renewal_pick() with the
 * machine's random bits; the time of *plan is kept when the window is the
 * one of *plan), or at two thirds of the lifetime when the CA offers no
 * window or the query failed; ask again after recheck_ms (the answer's
 * Retry-After, clamped; an hour after a failure). *plan: the last plan, or
 * zeroes. */
typedef struct acme_renewal_plan {
    time_t start, end;  /* the CA's window; 0: none */
    time_t at;          /* when to renew (wall clock) */
    int64_t recheck_ms; /* when to ask the CA again, from now */
} acme_renewal_plan_t;
void acme_renewal_plan(acme_t *m, time_t not_before, time_t not_after, time_t now, acme_renewal_plan_t *plan);
/* A line about the last step taken ("order https://... created"), or "". */
const char *acme_progress(const acme_t *m);

/* A problem document (RFC 7807, ACME types) as one line: "rateLimited:
 * too many certificates (...)". Appends to out. */
int acme_problem_message(const char *body, size_t len, buf_t *out);
/* Retry-After (delta-seconds, or an HTTP-date against wall when wall is
 * not 0) in ms; -1 if absent or malformed. */
int64_t acme_retry_after_ms(const char *value, time_t wall);
/* When to renew a certificate valid from not_before to not_after: two
 * thirds into its lifetime (wall clock seconds). */
time_t acme_renew_at(time_t not_before, time_t not_after);
/* RFC 9773 4.2: a uniformly random time in the suggested window [start,
 * end] from r (32 random bits); now when that time is already past. */
time_t acme_renewal_pick(time_t start, time_t end, time_t now, uint32_t r);
/* When to ask for the renewal information again after an answer with
 * Retry-After retry_ms (-1: none): ACME_ARI_RECHECK_S by default, clamped
 * to one minute .. one day (RFC 9773 4.3). In ms. */
#define ACME_ARI_RECHECK_S (6 * 3600)
int64_t acme_renewal_recheck_ms(int64_t retry_ms);
/* An RFC 3339 date-time ("2025-01-02T04:00:00Z", fractions and offsets
 * allowed) as a wall clock time; 0 or -1. */
int acme_rfc3339(const char *s, time_t *out);

#endif
