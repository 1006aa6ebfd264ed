// panel1.h: the Panel1 helpers for a C adapter (wit-bindgen's C bindings,
// no libc). adapter.c uses these; the generated gen/adapter.h has the rest.
//
// Conventions: an operation returns true with *ret filled, or false with
// *err filled (p1_fail and friends return false for you). Every string put
// into *ret or *err must be heap memory (p1_wit_copy, p1_buf_take): the
// bindings free it after the host has read it.
#ifndef PANEL1_H
#define PANEL1_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "adapter.h"

// ---- strings ------------------------------------------------------------------

/** A byte range, not NUL-terminated, not owned. */
typedef struct {
    const char *ptr;
    size_t len;
} p1_str;

#define P1_LIT(s) ((p1_str){(s), sizeof(s) - 1})
p1_str p1_cstr(const char *s);
/** A WIT string (or option<string> value) as a p1_str. */
p1_str p1_wit_str(const adapter_string_t *s);
/** A heap copy of `s`, as a WIT string for a result or an error. */
adapter_string_t p1_wit_copy(p1_str s);
bool p1_eq(p1_str a, const char *b);
/** Does `hay` contain `needle`, ignoring ASCII case? */
bool p1_contains_nocase(p1_str hay, const char *needle);
/** A decimal integer, optionally signed, nothing else. */
bool p1_parse_int(p1_str s, int64_t *out);

/** A growable string; always NUL-terminated once something was added. */
typedef struct {
    char *ptr;
    size_t len, cap;
} p1_buf;

void p1_buf_add(p1_buf *b, p1_str s);
void p1_buf_cstr(p1_buf *b, const char *s);
void p1_buf_int(p1_buf *b, int64_t v);
/** Percent-encodes everything but A-Z a-z 0-9 - . _ ~ (for a query). */
void p1_buf_urlencode(p1_buf *b, p1_str s);
p1_str p1_buf_str(const p1_buf *b);
/** The contents as a WIT string; the buffer is left empty. */
adapter_string_t p1_buf_take(p1_buf *b);
void p1_buf_free(p1_buf *b);

// ---- typed errors (variant adapter-error) -------------------------------------

typedef panel1_provisioning_types_adapter_error_t p1_error;
#define P1_INVALID_INPUT PANEL1_PROVISIONING_TYPES_ADAPTER_ERROR_INVALID_INPUT
#define P1_AUTH_FAILED PANEL1_PROVISIONING_TYPES_ADAPTER_ERROR_AUTH_FAILED
#define P1_NOT_FOUND PANEL1_PROVISIONING_TYPES_ADAPTER_ERROR_NOT_FOUND
#define P1_CONFLICT PANEL1_PROVISIONING_TYPES_ADAPTER_ERROR_CONFLICT
#define P1_PERMANENT PANEL1_PROVISIONING_TYPES_ADAPTER_ERROR_PERMANENT
#define P1_UNSUPPORTED PANEL1_PROVISIONING_TYPES_ADAPTER_ERROR_UNSUPPORTED

/** Fills *err with `tag` (any but transient) and `message`; returns false. */
bool p1_fail(p1_error *err, uint8_t tag, p1_str message);
/** A `transient` error; `retry_after_ms` < 0 for none. Returns false. */
bool p1_fail_transient(p1_error *err, p1_str message, int64_t retry_after_ms);

// ---- host capabilities --------------------------------------------------------

/** A server setting into *out; false when unset or empty. */
bool p1_config(const char *key, p1_buf *out);
/** The placeholder text for secret `name` (the host puts the value in at
 *  send time); false with an invalid-input *err when it is not bound. */
bool p1_placeholder(const char *name, p1_buf *out, p1_error *err);
typedef panel1_provisioning_log_level_t p1_level;
#define P1_INFO PANEL1_PROVISIONING_LOG_LEVEL_INFO
#define P1_WARN PANEL1_PROVISIONING_LOG_LEVEL_WARN
#define P1_ERROR PANEL1_PROVISIONING_LOG_LEVEL_ERROR
/** One structured log line with one field (key NULL for none). */
void p1_log(p1_level level, const char *message, const char *key, p1_str value);

// ---- the call's deadline ------------------------------------------------------

typedef struct {
    uint64_t start_ns;
    uint64_t budget_ms;  // 0: no deadline given
} p1_deadline;

p1_deadline p1_deadline_start(const panel1_provisioning_types_call_context_t *ctx);
/** The next request's timeout: `configured_ms`, ended a margin before the
 *  deadline (a tenth, 250 ms to 2 s); -1 when too little is left. */
int64_t p1_deadline_timeout(const p1_deadline *d, int64_t configured_ms);

// ---- HTTP ---------------------------------------------------------------------

typedef struct {
    const char *name;  // lowercase
    p1_str value;
} p1_header;

typedef struct {
    uint16_t status;
    p1_buf body;
    int64_t retry_after_ms;  // from Retry-After in seconds; -1 when absent
} p1_response;

/** Why a request got no answer. */
typedef enum { P1_HTTP_DENIED, P1_HTTP_NETWORK, P1_HTTP_INVALID_URL, P1_HTTP_OTHER } p1_http_kind;
typedef struct {
    p1_http_kind kind;
    const char *code;  // the wasi:http error-code, e.g. "HTTP-request-denied"
} p1_http_error;

/** Sends a request through wasi:http/outgoing-handler and reads the whole
 *  answer. timeout_ms (> 0) bounds connect, first byte and between bytes.
 *  False with *herr when no answer came. */
bool p1_request(const char *method, p1_str url, const p1_header *headers, size_t n_headers, p1_str body,
                int64_t timeout_ms, p1_response *resp, p1_http_error *herr);
/** The typed error for a non-2xx answer: 400/422 invalid-input, 401/403
 *  auth-failed, 404 not-found, 409 conflict, 408/425/429/5xx transient
 *  (with Retry-After), others permanent. Returns false. */
bool p1_status_error(const p1_response *resp, p1_str at, p1_error *err);
/** The typed error for no answer: a host denial is permanent (with `hint`,
 *  what to fix), a timeout or reset transient. Returns false. */
bool p1_transport_error(p1_str at, const p1_http_error *e, p1_str hint, p1_error *err);

// ---- JSON (json.c) ------------------------------------------------------------

/** The raw value at `path` ("data.acct.0.suspended"; numbers index arrays). */
bool p1_json_find(p1_str json, const char *path, p1_str *out);
/** An integer at `path` (a JSON number or a string of digits). */
bool p1_json_int(p1_str json, const char *path, int64_t *out);
/** A string at `path`, unescaped, appended to *out. */
bool p1_json_string(p1_str json, const char *path, p1_buf *out);

#endif
