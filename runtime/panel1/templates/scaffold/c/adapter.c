// {{name}}: a Panel1 provisioning adapter in C (wit-bindgen, no libc).
//
// A small but real starter for WHM API 1 (cPanel's server API), the provider
// `panel1 sim whm` simulates. Every call is
//   GET https://{host}:{port}/json-api/<function>?api.version=1&...
// with `Authorization: whm <user>:<whm-token>`; the token is a secret
// placeholder the host fills in, so its value never enters this component.
//
// WIT -> C (gen/adapter.h): an export is
//   bool exports_panel1_provisioning_adapter_<op>(req_t *req, ret_t *ret, p1_error *err)
// returning true with *ret, or false with *err (p1_fail). Strings are
// adapter_string_t {ptr, len} (not NUL-terminated), option<T> is
// {is_some, val}, enums are the PANEL1_PROVISIONING_TYPES_* constants.
// Operations not defined here answer `unsupported` (panel1.c).
//
// Change the provider: replace `whm_open`/`whm_call` and the operations
// below; keep p1_status_error/p1_transport_error and the deadline timeout.
#include <stdlib.h>
#include <string.h>
#include "panel1.h"

#define TOKEN "whm-token"
#define ACTIVE PANEL1_PROVISIONING_TYPES_REMOTE_STATE_ACTIVE
#define SUSPENDED PANEL1_PROVISIONING_TYPES_REMOTE_STATE_SUSPENDED
#define TERMINATED PANEL1_PROVISIONING_TYPES_REMOTE_STATE_TERMINATED
#define NO_ACCOUNT 0xFF  // whm_account: WHM has no such account

typedef exports_panel1_provisioning_adapter_service_status_t status_t;
typedef panel1_provisioning_types_remote_state_t state_t;

static const char SCHEMA[] =
    "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"type\":\"object\",\"required\":[\"host\"],"
    "\"properties\":{"
    "\"host\":{\"type\":\"string\",\"minLength\":1,\"description\":\"WHM host name or IP, without scheme or port\"},"
    "\"port\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":65535,\"default\":2087},"
    "\"whm_user\":{\"type\":\"string\",\"minLength\":1,\"default\":\"root\"},"
    "\"request_timeout_ms\":{\"type\":\"integer\",\"minimum\":100,\"default\":30000,"
    "\"description\":\"Timeout of one WHM call (kept below the call's deadline)\"}},"
    "\"additionalProperties\":false}";

void exports_panel1_provisioning_adapter_info(exports_panel1_provisioning_adapter_adapter_info_t *ret) {
    static const panel1_provisioning_types_operation_t ops[] = {
        PANEL1_PROVISIONING_TYPES_OPERATION_TEST_CONNECTION, PANEL1_PROVISIONING_TYPES_OPERATION_PROVISION,
        PANEL1_PROVISIONING_TYPES_OPERATION_SUSPEND,         PANEL1_PROVISIONING_TYPES_OPERATION_UNSUSPEND,
        PANEL1_PROVISIONING_TYPES_OPERATION_TERMINATE,       PANEL1_PROVISIONING_TYPES_OPERATION_STATUS,
    };
    // Everything returned is freed by the bindings afterwards: heap copies.
    ret->name = p1_wit_copy(P1_LIT("{{name}}"));
    ret->version = p1_wit_copy(P1_LIT("0.1.0"));
    ret->description = p1_wit_copy(P1_LIT("{{name}}: WHM API 1 starter adapter"));
    ret->operations.len = sizeof ops / sizeof ops[0];
    ret->operations.ptr = malloc(sizeof ops);
    memcpy(ret->operations.ptr, ops, sizeof ops);
    ret->config_schema = p1_wit_copy(P1_LIT(SCHEMA));
    ret->egress.len = 1;
    ret->egress.ptr = malloc(sizeof(adapter_string_t));
    ret->egress.ptr[0] = p1_wit_copy(P1_LIT("https://{host}:{port}/json-api/"));
    ret->secrets.len = 1;
    ret->secrets.ptr = malloc(sizeof(adapter_string_t));
    ret->secrets.ptr[0] = p1_wit_copy(P1_LIT(TOKEN));
}

/** One server's settings and the call's clock. */
typedef struct {
    p1_buf base;  // https://host:port/json-api/
    p1_buf auth;  // whm user:placeholder
    int64_t timeout_ms;
    p1_deadline deadline;
} whm;

static bool config_int(const char *key, int64_t fallback, int64_t lo, int64_t hi, int64_t *out, p1_error *err) {
    p1_buf v = {0};
    *out = fallback;
    bool ok = !p1_config(key, &v) || (p1_parse_int(p1_buf_str(&v), out) && *out >= lo && *out <= hi);
    p1_buf_free(&v);
    if (ok) return true;
    p1_buf m = {0};
    p1_buf_cstr(&m, "config `");
    p1_buf_cstr(&m, key);
    p1_buf_cstr(&m, "` is not an integer in range");
    return p1_fail(err, P1_INVALID_INPUT, p1_buf_str(&m));
}

static bool whm_open(whm *w, const panel1_provisioning_types_call_context_t *ctx, p1_error *err) {
    *w = (whm){.deadline = p1_deadline_start(ctx)};
    p1_buf host = {0}, user = {0};
    if (!p1_config("host", &host)) return p1_fail(err, P1_INVALID_INPUT, P1_LIT("config `host` is required"));
    for (size_t i = 0; i < host.len; i++) {
        char c = host.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
              c == '_'))
            return p1_fail(err, P1_INVALID_INPUT, P1_LIT("config `host` must be a host name or IP address"));
    }
    int64_t port;
    if (!config_int("port", 2087, 1, 65535, &port, err) ||
        !config_int("request_timeout_ms", 30000, 1, 3600000, &w->timeout_ms, err))
        return false;
    p1_buf_cstr(&w->base, "https://");
    p1_buf_add(&w->base, p1_buf_str(&host));
    p1_buf_cstr(&w->base, ":");
    p1_buf_int(&w->base, port);
    p1_buf_cstr(&w->base, "/json-api/");
    if (!p1_config("whm_user", &user)) p1_buf_cstr(&user, "root");
    p1_buf_cstr(&w->auth, "whm ");
    p1_buf_add(&w->auth, p1_buf_str(&user));
    p1_buf_cstr(&w->auth, ":");
    p1_buf_free(&host);
    p1_buf_free(&user);
    return p1_placeholder(TOKEN, &w->auth, err);
}

/** One WHM API 1 call. True with *ok set (metadata.result 1) and *doc the
 *  answer, or *ok false and *reason WHM's reason; false with *err when the
 *  call itself failed. */
static bool whm_call(whm *w, const char *fn, const char *const *params, bool *ok, p1_response *doc,
                     p1_buf *reason, p1_error *err) {
    p1_buf at = {0}, url = {0};
    p1_buf_cstr(&at, "WHM ");
    p1_buf_cstr(&at, fn);
    int64_t timeout = p1_deadline_timeout(&w->deadline, w->timeout_ms);
    if (timeout < 0) {
        p1_buf_cstr(&at, ": no time left in the call");
        return p1_fail_transient(err, p1_buf_str(&at), -1);
    }
    p1_buf_add(&url, p1_buf_str(&w->base));
    p1_buf_cstr(&url, fn);
    p1_buf_cstr(&url, "?api.version=1");
    for (; params && params[0]; params += 2) {  // NULL-terminated name, value pairs
        p1_buf_cstr(&url, "&");
        p1_buf_cstr(&url, params[0]);
        p1_buf_cstr(&url, "=");
        p1_buf_urlencode(&url, p1_cstr(params[1]));
    }
    p1_header headers[2] = {
        {.name = "authorization", .value = p1_buf_str(&w->auth)},
        {.name = "accept", .value = P1_LIT("application/json")},
    };
    p1_http_error herr;
    if (!p1_request("GET", p1_buf_str(&url), headers, 2, P1_LIT(""), timeout, doc, &herr)) {
        p1_buf hint = {0};
        p1_buf_cstr(&hint, "the egress rules must allow ");
        p1_buf_add(&hint, p1_buf_str(&w->base));
        p1_buf_cstr(&hint, " and `" TOKEN "` must be bound to its host");
        return p1_transport_error(p1_buf_str(&at), &herr, p1_buf_str(&hint), err);
    }
    p1_log(P1_INFO, "whm call", "function", p1_cstr(fn));
    if (doc->status < 200 || doc->status > 299) return p1_status_error(doc, p1_buf_str(&at), err);
    int64_t result;
    p1_str body = p1_buf_str(&doc->body);
    if (!p1_json_int(body, "metadata.result", &result) || (result != 0 && result != 1)) {
        p1_buf_cstr(&at, ": not a WHM API 1 answer");
        return p1_fail(err, P1_PERMANENT, p1_buf_str(&at));
    }
    *ok = result == 1;
    if (!*ok && !p1_json_string(body, "metadata.reason", reason)) p1_buf_cstr(reason, "no reason");
    return true;
}

/** The account's state: ACTIVE, SUSPENDED or NO_ACCOUNT. */
static bool whm_account(whm *w, p1_str user, state_t *state, p1_error *err) {
    p1_buf name = {0}, reason = {0};
    p1_buf_add(&name, user);
    const char *params[] = {"user", name.ptr, NULL};
    p1_response doc;
    bool ok;
    if (!whm_call(w, "accountsummary", params, &ok, &doc, &reason, err)) return false;
    if (ok) {
        int64_t suspended = 0;
        p1_json_int(p1_buf_str(&doc.body), "data.acct.0.suspended", &suspended);
        *state = suspended == 1 ? SUSPENDED : ACTIVE;
        return true;
    }
    if (p1_contains_nocase(p1_buf_str(&reason), "does not exist")) {
        *state = NO_ACCOUNT;
        return true;
    }
    p1_buf m = {0};
    p1_buf_cstr(&m, "WHM accountsummary: ");
    p1_buf_add(&m, p1_buf_str(&reason));
    return p1_fail(err, P1_PERMANENT, p1_buf_str(&m));
}

/** The account a service names: its remote id, else its username. */
static bool user_of(const panel1_provisioning_types_service_spec_t *s, p1_buf *user, p1_error *err) {
    const adapter_option_string_t *id = s->remote_id.is_some ? &s->remote_id : &s->username;
    if (!id->is_some || id->val.len == 0)
        return p1_fail(err, P1_INVALID_INPUT, P1_LIT("the service has neither a remote id nor a username"));
    p1_buf_add(user, p1_wit_str(&id->val));
    return true;
}

static bool status_of(p1_str user, state_t state, status_t *ret) {
    *ret = (status_t){.remote_id = p1_wit_copy(user), .state = state};
    return true;
}

static bool fail_reason(p1_error *err, uint8_t tag, const char *fn, p1_buf *reason) {
    p1_buf m = {0};
    p1_buf_cstr(&m, "WHM ");
    p1_buf_cstr(&m, fn);
    p1_buf_cstr(&m, ": ");
    p1_buf_add(&m, p1_buf_str(reason));
    return p1_fail(err, tag, p1_buf_str(&m));
}

bool exports_panel1_provisioning_adapter_test_connection(exports_panel1_provisioning_adapter_test_request_t *req,
                                                         exports_panel1_provisioning_adapter_connection_info_t *ret,
                                                         p1_error *err) {
    whm w;
    p1_response doc;
    p1_buf reason = {0}, version = {0};
    bool ok;
    if (!whm_open(&w, &req->ctx, err) || !whm_call(&w, "version", NULL, &ok, &doc, &reason, err)) return false;
    if (!ok) return fail_reason(err, P1_PERMANENT, "version", &reason);
    p1_buf_cstr(&version, "WHM ");
    if (!p1_json_string(p1_buf_str(&doc.body), "data.version", &version)) p1_buf_cstr(&version, "?");
    *ret = (exports_panel1_provisioning_adapter_connection_info_t){.server_version = p1_buf_take(&version)};
    return true;
}

bool exports_panel1_provisioning_adapter_provision(exports_panel1_provisioning_adapter_provision_request_t *req,
                                                   status_t *ret, p1_error *err) {
    const panel1_provisioning_types_service_spec_t *s = &req->service;
    if (!s->username.is_some || s->username.val.len == 0)
        return p1_fail(err, P1_INVALID_INPUT, P1_LIT("username is required"));
    p1_str user = p1_wit_str(&s->username.val);
    whm w;
    state_t state;
    // Ensure semantics: a retry (or a lost answer) finds the account the
    // first attempt created.
    if (!whm_open(&w, &req->ctx, err) || !whm_account(&w, user, &state, err)) return false;
    if (state != NO_ACCOUNT) return status_of(user, state, ret);

    p1_buf username = {0}, domain = {0}, plan = {0}, email = {0}, reason = {0};
    const char *params[11];
    size_t n = 0;
    p1_buf_add(&username, user);
    params[n++] = "username", params[n++] = username.ptr;
    if (s->domain.is_some) p1_buf_add(&domain, p1_wit_str(&s->domain.val)), params[n++] = "domain", params[n++] = domain.ptr;
    if (s->plan.is_some) p1_buf_add(&plan, p1_wit_str(&s->plan.val)), params[n++] = "plan", params[n++] = plan.ptr;
    if (s->contact_email.is_some)
        p1_buf_add(&email, p1_wit_str(&s->contact_email.val)), params[n++] = "contactemail", params[n++] = email.ptr;
    params[n] = NULL;
    p1_response doc;
    bool ok;
    if (!whm_call(&w, "createacct", params, &ok, &doc, &reason, err)) return false;
    if (ok) {
        p1_log(P1_INFO, "account created", "username", user);
        return status_of(user, ACTIVE, ret);
    }
    if (p1_contains_nocase(p1_buf_str(&reason), "already exists")) {
        if (!whm_account(&w, user, &state, err)) return false;
        if (state != NO_ACCOUNT) return status_of(user, state, ret);
        return fail_reason(err, P1_CONFLICT, "createacct", &reason);
    }
    return fail_reason(err, P1_INVALID_INPUT, "createacct", &reason);
}

/** suspend/unsuspend as an "ensure": nothing to do when already there. */
static bool ensure(exports_panel1_provisioning_adapter_service_request_t *req, const char *fn, state_t want,
                   status_t *ret, p1_error *err) {
    whm w;
    p1_buf user = {0}, reason = {0}, why = {0};
    state_t state;
    if (!user_of(&req->service, &user, err) || !whm_open(&w, &req->ctx, err) ||
        !whm_account(&w, p1_buf_str(&user), &state, err))
        return false;
    if (state == NO_ACCOUNT) {
        p1_buf m = {0};
        p1_buf_cstr(&m, "WHM has no account `");
        p1_buf_add(&m, p1_buf_str(&user));
        p1_buf_cstr(&m, "`");
        return p1_fail(err, P1_NOT_FOUND, p1_buf_str(&m));
    }
    if (state == want) return status_of(p1_buf_str(&user), want, ret);
    if (req->reason.len) p1_buf_add(&why, p1_wit_str(&req->reason));
    else p1_buf_cstr(&why, "Panel1");
    const char *params[] = {"user", user.ptr, "reason", why.ptr, NULL};
    p1_response doc;
    bool ok;
    if (!whm_call(&w, fn, params, &ok, &doc, &reason, err)) return false;
    if (!ok) return fail_reason(err, P1_PERMANENT, fn, &reason);
    return status_of(p1_buf_str(&user), want, ret);
}

bool exports_panel1_provisioning_adapter_suspend(exports_panel1_provisioning_adapter_service_request_t *req,
                                                 status_t *ret, p1_error *err) {
    return ensure(req, "suspendacct", SUSPENDED, ret, err);
}

bool exports_panel1_provisioning_adapter_unsuspend(exports_panel1_provisioning_adapter_service_request_t *req,
                                                   status_t *ret, p1_error *err) {
    return ensure(req, "unsuspendacct", ACTIVE, ret, err);
}

bool exports_panel1_provisioning_adapter_terminate(exports_panel1_provisioning_adapter_service_request_t *req,
                                                   status_t *ret, p1_error *err) {
    whm w;
    p1_buf user = {0}, reason = {0};
    if (!user_of(&req->service, &user, err) || !whm_open(&w, &req->ctx, err)) return false;
    const char *params[] = {"username", user.ptr, NULL};
    p1_response doc;
    bool ok;
    if (!whm_call(&w, "removeacct", params, &ok, &doc, &reason, err)) return false;
    // Already gone is success: terminate is an "ensure".
    if (ok || p1_contains_nocase(p1_buf_str(&reason), "does not exist"))
        return status_of(p1_buf_str(&user), TERMINATED, ret);
    return fail_reason(err, P1_PERMANENT, "removeacct", &reason);
}

bool exports_panel1_provisioning_adapter_status(exports_panel1_provisioning_adapter_service_request_t *req,
                                                status_t *ret, p1_error *err) {
    whm w;
    p1_buf user = {0};
    state_t state;
    if (!user_of(&req->service, &user, err) || !whm_open(&w, &req->ctx, err) ||
        !whm_account(&w, p1_buf_str(&user), &state, err))
        return false;
    return status_of(p1_buf_str(&user), state == NO_ACCOUNT ? TERMINATED : state, ret);
}
