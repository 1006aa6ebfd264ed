// panel1.c: the helpers declared in panel1.h, over the wit-bindgen C
// bindings in gen/.
//
// HTTP failures are typed as the Rust SDK types them:
//   HTTP 400/422 -> invalid-input   401/403 -> auth-failed   404 -> not-found
//   409 -> conflict   408/425/429/5xx -> transient (Retry-After as retry-after-ms)
//   egress denied by the host -> permanent   timeout/reset/refused -> transient
#include <stdlib.h>
#include <string.h>
#include "panel1.h"

// ---- strings ------------------------------------------------------------------

p1_str p1_cstr(const char *s) { return (p1_str){s, strlen(s)}; }

p1_str p1_wit_str(const adapter_string_t *s) { return (p1_str){(const char *)s->ptr, s->len}; }

adapter_string_t p1_wit_copy(p1_str s) {
    adapter_string_t out = {malloc(s.len ? s.len : 1), s.len};
    if (!out.ptr) abort();
    memcpy(out.ptr, s.ptr, s.len);
    return out;
}

bool p1_eq(p1_str a, const char *b) {
    size_t n = strlen(b);
    return a.len == n && memcmp(a.ptr, b, n) == 0;
}

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c; }

bool p1_contains_nocase(p1_str hay, const char *needle) {
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= hay.len; i++) {
        size_t k = 0;
        while (k < n && lower(hay.ptr[i + k]) == lower(needle[k])) k++;
        if (k == n) return true;
    }
    return false;
}

bool p1_parse_int(p1_str s, int64_t *out) {
    size_t i = 0;
    bool neg = s.len > 0 && s.ptr[0] == '-';
    if (neg) i = 1;
    if (i == s.len || s.len - i > 18) return false;
    int64_t v = 0;
    for (; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9') return false;
        v = v * 10 + (s.ptr[i] - '0');
    }
    *out = neg ? -v : v;
    return true;
}

static void reserve(p1_buf *b, size_t more) {
    if (b->len + more + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + more + 1) cap *= 2;
    b->ptr = realloc(b->ptr, cap);
    if (!b->ptr) abort();
    b->cap = cap;
}

void p1_buf_add(p1_buf *b, p1_str s) {
    reserve(b, s.len);
    memcpy(b->ptr + b->len, s.ptr, s.len);
    b->len += s.len;
    b->ptr[b->len] = 0;
}

void p1_buf_cstr(p1_buf *b, const char *s) { p1_buf_add(b, p1_cstr(s)); }

void p1_buf_int(p1_buf *b, int64_t v) {
    char digits[24];
    size_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do digits[sizeof digits - ++n] = (char)('0' + u % 10);
    while ((u /= 10) && n < 20);
    if (v < 0) digits[sizeof digits - ++n] = '-';
    p1_buf_add(b, (p1_str){digits + sizeof digits - n, n});
}

void p1_buf_urlencode(p1_buf *b, p1_str s) {
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
            c == '_' || c == '~') {
            p1_buf_add(b, (p1_str){&s.ptr[i], 1});
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            p1_buf_add(b, (p1_str){e, 3});
        }
    }
}

p1_str p1_buf_str(const p1_buf *b) { return (p1_str){b->ptr ? b->ptr : "", b->len}; }

adapter_string_t p1_buf_take(p1_buf *b) {
    adapter_string_t s = p1_wit_copy(p1_buf_str(b));
    p1_buf_free(b);
    return s;
}

void p1_buf_free(p1_buf *b) {
    free(b->ptr);
    *b = (p1_buf){0};
}

// ---- typed errors -------------------------------------------------------------

bool p1_fail(p1_error *err, uint8_t tag, p1_str message) {
    err->tag = tag;
    // Every case but transient carries just a string, at the same place.
    err->val.permanent = p1_wit_copy(message);
    return false;
}

bool p1_fail_transient(p1_error *err, p1_str message, int64_t retry_after_ms) {
    err->tag = PANEL1_PROVISIONING_TYPES_ADAPTER_ERROR_TRANSIENT;
    err->val.transient.message = p1_wit_copy(message);
    err->val.transient.retry_after_ms.is_some = retry_after_ms >= 0;
    err->val.transient.retry_after_ms.val = retry_after_ms >= 0 ? (uint64_t)retry_after_ms : 0;
    return false;
}

// ---- host capabilities --------------------------------------------------------

static adapter_string_t borrowed(const char *s) { return (adapter_string_t){(uint8_t *)s, strlen(s)}; }

bool p1_config(const char *key, p1_buf *out) {
    adapter_string_t k = borrowed(key), v;
    if (!panel1_provisioning_config_get(&k, &v)) return false;
    bool some = v.len > 0;
    if (some) p1_buf_add(out, p1_wit_str(&v));
    adapter_string_free(&v);
    return some;
}

bool p1_placeholder(const char *name, p1_buf *out, p1_error *err) {
    adapter_string_t n = borrowed(name), text;
    panel1_provisioning_secrets_secret_error_t e;
    if (panel1_provisioning_secrets_placeholder(&n, &text, &e)) {
        p1_buf_add(out, p1_wit_str(&text));
        adapter_string_free(&text);
        return true;
    }
    p1_buf m = {0};
    p1_buf_cstr(&m, "secret `");
    p1_buf_cstr(&m, name);
    p1_buf_cstr(&m, e.tag == PANEL1_PROVISIONING_SECRETS_SECRET_ERROR_NOT_FOUND ? "` is not bound: " : "` is denied: ");
    p1_buf_add(&m, p1_wit_str(&e.val.not_found));  // both cases carry a string
    bool r = p1_fail(err, P1_INVALID_INPUT, p1_buf_str(&m));
    p1_buf_free(&m);
    return r;
}

void p1_log(p1_level level, const char *message, const char *key, p1_str value) {
    adapter_string_t msg = borrowed(message);
    adapter_tuple2_string_string_t field = {borrowed(key ? key : ""), {(uint8_t *)value.ptr, value.len}};
    adapter_list_tuple2_string_string_t fields = {&field, key ? 1 : 0};
    panel1_provisioning_log_write(level, &msg, &fields);
}

// ---- the call's deadline ------------------------------------------------------

p1_deadline p1_deadline_start(const panel1_provisioning_types_call_context_t *ctx) {
    return (p1_deadline){wasi_clocks_monotonic_clock_now(), ctx->deadline_ms};
}

int64_t p1_deadline_timeout(const p1_deadline *d, int64_t configured_ms) {
    if (d->budget_ms == 0) return configured_ms;
    uint64_t elapsed = (wasi_clocks_monotonic_clock_now() - d->start_ns) / 1000000u;
    int64_t left = elapsed >= d->budget_ms ? 0 : (int64_t)(d->budget_ms - elapsed);
    int64_t margin = left / 10 < 250 ? 250 : left / 10 > 2000 ? 2000 : left / 10;
    int64_t usable = left - margin;
    if (usable < 100) return -1;
    return usable < configured_ms ? usable : configured_ms;
}

// ---- HTTP -------------------------------------------------------------------

// wasi:http error-code names, by tag (wit/deps/http/http.wit).
static const char *const CODES[] = {
    "DNS-timeout", "DNS-error", "destination-not-found", "destination-unavailable", "destination-IP-prohibited",
    "destination-IP-unroutable", "connection-refused", "connection-terminated", "connection-timeout",
    "connection-read-timeout", "connection-write-timeout", "connection-limit-reached", "TLS-protocol-error",
    "TLS-certificate-error", "TLS-alert-received", "HTTP-request-denied", "HTTP-request-length-required",
    "HTTP-request-body-size", "HTTP-request-method-invalid", "HTTP-request-URI-invalid",
    "HTTP-request-URI-too-long", "HTTP-request-header-section-size", "HTTP-request-header-size",
    "HTTP-request-trailer-section-size", "HTTP-request-trailer-size", "HTTP-response-incomplete",
    "HTTP-response-header-section-size", "HTTP-response-header-size", "HTTP-response-body-size",
    "HTTP-response-trailer-section-size", "HTTP-response-trailer-size", "HTTP-response-transfer-coding",
    "HTTP-response-content-coding", "HTTP-response-timeout", "HTTP-upgrade-failed", "HTTP-protocol-error",
    "loop-detected", "configuration-error", "internal-error"};

static bool http_fail(p1_http_error *herr, wasi_http_types_error_code_t *code) {
    uint8_t t = code->tag;
    herr->code = t < sizeof CODES / sizeof CODES[0] ? CODES[t] : "unknown";
    switch (t) {
    case WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_DENIED:
    case WASI_HTTP_TYPES_ERROR_CODE_DESTINATION_IP_PROHIBITED: herr->kind = P1_HTTP_DENIED; break;
    case WASI_HTTP_TYPES_ERROR_CODE_DNS_TIMEOUT:
    case WASI_HTTP_TYPES_ERROR_CODE_DNS_ERROR:
    case WASI_HTTP_TYPES_ERROR_CODE_DESTINATION_NOT_FOUND:
    case WASI_HTTP_TYPES_ERROR_CODE_DESTINATION_UNAVAILABLE:
    case WASI_HTTP_TYPES_ERROR_CODE_DESTINATION_IP_UNROUTABLE:
    case WASI_HTTP_TYPES_ERROR_CODE_CONNECTION_REFUSED:
    case WASI_HTTP_TYPES_ERROR_CODE_CONNECTION_TERMINATED:
    case WASI_HTTP_TYPES_ERROR_CODE_CONNECTION_TIMEOUT:
    case WASI_HTTP_TYPES_ERROR_CODE_CONNECTION_READ_TIMEOUT:
    case WASI_HTTP_TYPES_ERROR_CODE_CONNECTION_WRITE_TIMEOUT:
    case WASI_HTTP_TYPES_ERROR_CODE_CONNECTION_LIMIT_REACHED:
    case WASI_HTTP_TYPES_ERROR_CODE_HTTP_RESPONSE_INCOMPLETE:
    case WASI_HTTP_TYPES_ERROR_CODE_HTTP_RESPONSE_TIMEOUT: herr->kind = P1_HTTP_NETWORK; break;
    default: herr->kind = P1_HTTP_OTHER; break;
    }
    wasi_http_types_error_code_free(code);
    return false;
}

static bool fail_kind(p1_http_error *herr, p1_http_kind kind, const char *what) {
    herr->kind = kind;
    herr->code = what;
    return false;
}

// "https://host:port/path?query" -> scheme, authority, path-with-query.
static bool split_url(p1_str url, wasi_http_types_scheme_t *scheme, p1_str *authority, p1_str *path) {
    size_t skip;
    if (url.len > 8 && memcmp(url.ptr, "https://", 8) == 0) scheme->tag = WASI_HTTP_TYPES_SCHEME_HTTPS, skip = 8;
    else if (url.len > 7 && memcmp(url.ptr, "http://", 7) == 0) scheme->tag = WASI_HTTP_TYPES_SCHEME_HTTP, skip = 7;
    else return false;
    size_t end = skip;
    while (end < url.len && url.ptr[end] != '/' && url.ptr[end] != '?' && url.ptr[end] != '#') end++;
    if (end == skip) return false;
    *authority = (p1_str){url.ptr + skip, end - skip};
    *path = end < url.len ? (p1_str){url.ptr + end, url.len - end} : P1_LIT("/");
    return true;
}

static const char *const METHODS[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"};

static adapter_string_t wit(p1_str s) { return (adapter_string_t){(uint8_t *)s.ptr, s.len}; }

// Retry-After in seconds (the HTTP-date form is not used by the APIs here).
static int64_t retry_after(wasi_http_types_borrow_fields_t headers) {
    adapter_string_t name = borrowed("retry-after");
    wasi_http_types_list_field_value_t values;
    wasi_http_types_method_fields_get(headers, &name, &values);
    int64_t ms = -1, secs;
    if (values.len > 0) {
        p1_str v = {(const char *)values.ptr[0].ptr, values.ptr[0].len};
        while (v.len && v.ptr[0] == ' ') v.ptr++, v.len--;
        while (v.len && v.ptr[v.len - 1] == ' ') v.len--;
        if (p1_parse_int(v, &secs) && secs >= 0) ms = secs * 1000;
    }
    wasi_http_types_list_field_value_free(&values);
    return ms;
}

bool p1_request(const char *method, p1_str url, const p1_header *headers, size_t n_headers, p1_str body,
                int64_t timeout_ms, p1_response *resp, p1_http_error *herr) {
    wasi_http_types_scheme_t scheme;
    p1_str authority, path;
    if (!split_url(url, &scheme, &authority, &path)) return fail_kind(herr, P1_HTTP_INVALID_URL, "not an http(s) URL");

    wasi_http_types_tuple2_field_name_field_value_t entries[16];
    if (n_headers > 16) return fail_kind(herr, P1_HTTP_OTHER, "more than 16 headers");
    for (size_t i = 0; i < n_headers; i++) {
        entries[i].f0 = borrowed(headers[i].name);
        entries[i].f1 = (wasi_http_types_field_value_t){(uint8_t *)headers[i].value.ptr, headers[i].value.len};
    }
    wasi_http_types_list_tuple2_field_name_field_value_t list = {entries, n_headers};
    wasi_http_types_own_fields_t fields;
    wasi_http_types_header_error_t header_error;
    if (!wasi_http_types_static_fields_from_list(&list, &fields, &header_error))
        return fail_kind(herr, P1_HTTP_OTHER, "a header name or value was refused");

    wasi_http_types_own_outgoing_request_t req = wasi_http_types_constructor_outgoing_request(fields);
    wasi_http_types_borrow_outgoing_request_t r = wasi_http_types_borrow_outgoing_request(req);
    wasi_http_types_method_t m = {.tag = WASI_HTTP_TYPES_METHOD_OTHER};
    for (uint8_t i = 0; i < sizeof METHODS / sizeof METHODS[0]; i++)
        if (strlen(method) == strlen(METHODS[i]) && memcmp(method, METHODS[i], strlen(method)) == 0) m.tag = i;
    if (m.tag == WASI_HTTP_TYPES_METHOD_OTHER) m.val.other = borrowed(method);
    adapter_string_t a = wit(authority), p = wit(path);
    wasi_http_types_own_outgoing_body_t out_body;
    if (!wasi_http_types_method_outgoing_request_set_method(r, &m) ||
        !wasi_http_types_method_outgoing_request_set_scheme(r, &scheme) ||
        !wasi_http_types_method_outgoing_request_set_authority(r, &a) ||
        !wasi_http_types_method_outgoing_request_set_path_with_query(r, &p) ||
        !wasi_http_types_method_outgoing_request_body(r, &out_body)) {
        wasi_http_types_outgoing_request_drop_own(req);
        return fail_kind(herr, P1_HTTP_INVALID_URL, "the host refused the method or URL");
    }

    wasi_http_types_own_request_options_t options = {0}, *maybe_options = NULL;
    if (timeout_ms > 0) {
        options = wasi_http_types_constructor_request_options();
        wasi_http_types_borrow_request_options_t o = wasi_http_types_borrow_request_options(options);
        wasi_http_types_duration_t ns = (uint64_t)timeout_ms * 1000000u;
        // A host that does not support one of them keeps its default.
        (void)wasi_http_types_method_request_options_set_connect_timeout(o, &ns);
        (void)wasi_http_types_method_request_options_set_first_byte_timeout(o, &ns);
        (void)wasi_http_types_method_request_options_set_between_bytes_timeout(o, &ns);
        maybe_options = &options;
    }
    wasi_http_types_own_future_incoming_response_t future;
    wasi_http_types_error_code_t code;
    if (!wasi_http_outgoing_handler_handle(req, maybe_options, &future, &code)) {
        wasi_http_types_outgoing_body_drop_own(out_body);
        return http_fail(herr, &code);
    }
    // The body is written after `handle`: the host reads it as it goes out.
    if (body.len > 0) {
        wasi_http_types_own_output_stream_t stream;
        if (wasi_http_types_method_outgoing_body_write(wasi_http_types_borrow_outgoing_body(out_body), &stream)) {
            wasi_io_streams_borrow_output_stream_t s = wasi_io_streams_borrow_output_stream(stream);
            // blocking-write-and-flush takes at most 4096 bytes at a time.
            for (size_t off = 0; off < body.len; off += 4096) {
                size_t n = body.len - off < 4096 ? body.len - off : 4096;
                adapter_list_u8_t chunk = {(uint8_t *)body.ptr + off, n};
                wasi_io_streams_stream_error_t se;
                if (!wasi_io_streams_method_output_stream_blocking_write_and_flush(s, &chunk, &se)) {
                    wasi_io_streams_stream_error_free(&se);
                    break;  // the response (or its error) says why
                }
            }
            wasi_io_streams_output_stream_drop_own(stream);
        }
    }
    if (!wasi_http_types_static_outgoing_body_finish(out_body, NULL, &code)) wasi_http_types_error_code_free(&code);

    wasi_http_types_borrow_future_incoming_response_t f = wasi_http_types_borrow_future_incoming_response(future);
    wasi_io_poll_own_pollable_t ready = wasi_http_types_method_future_incoming_response_subscribe(f);
    wasi_io_poll_method_pollable_block(wasi_io_poll_borrow_pollable(ready));
    wasi_io_poll_pollable_drop_own(ready);
    wasi_http_types_result_result_own_incoming_response_error_code_void_t got;
    bool some = wasi_http_types_method_future_incoming_response_get(f, &got);
    wasi_http_types_future_incoming_response_drop_own(future);
    if (!some || got.is_err) return fail_kind(herr, P1_HTTP_OTHER, "no response");
    if (got.val.ok.is_err) return http_fail(herr, &got.val.ok.val.err);
    wasi_http_types_own_incoming_response_t response = got.val.ok.val.ok;
    wasi_http_types_borrow_incoming_response_t rb = wasi_http_types_borrow_incoming_response(response);

    resp->status = wasi_http_types_method_incoming_response_status(rb);
    resp->body = (p1_buf){0};
    wasi_http_types_own_headers_t hs = wasi_http_types_method_incoming_response_headers(rb);
    resp->retry_after_ms = retry_after(wasi_http_types_borrow_fields(hs));
    wasi_http_types_fields_drop_own(hs);

    bool ok = true;
    wasi_http_types_own_incoming_body_t in_body;
    wasi_http_types_own_input_stream_t in;
    if (wasi_http_types_method_incoming_response_consume(rb, &in_body)) {
        if (wasi_http_types_method_incoming_body_stream(wasi_http_types_borrow_incoming_body(in_body), &in)) {
            wasi_io_streams_borrow_input_stream_t s = wasi_io_streams_borrow_input_stream(in);
            for (;;) {
                adapter_list_u8_t chunk;
                wasi_io_streams_stream_error_t se;
                if (!wasi_io_streams_method_input_stream_blocking_read(s, 65536, &chunk, &se)) {
                    if (se.tag != WASI_IO_STREAMS_STREAM_ERROR_CLOSED) {
                        wasi_io_streams_stream_error_free(&se);
                        ok = fail_kind(herr, P1_HTTP_NETWORK, "reading the body failed");
                    }
                    break;
                }
                p1_buf_add(&resp->body, (p1_str){(const char *)chunk.ptr, chunk.len});
                adapter_list_u8_free(&chunk);
            }
            wasi_io_streams_input_stream_drop_own(in);
        }
        wasi_http_types_incoming_body_drop_own(in_body);
    }
    wasi_http_types_incoming_response_drop_own(response);
    if (!ok) p1_buf_free(&resp->body);
    return ok;
}

bool p1_status_error(const p1_response *resp, p1_str at, p1_error *err) {
    p1_buf m = {0};
    if (at.len) p1_buf_add(&m, at), p1_buf_cstr(&m, ": ");
    p1_buf_cstr(&m, "HTTP ");
    p1_buf_int(&m, resp->status);
    p1_buf_cstr(&m, ": ");
    p1_str body = p1_buf_str(&resp->body);
    p1_buf_add(&m, (p1_str){body.ptr, body.len < 200 ? body.len : 200});
    uint16_t s = resp->status;
    bool r;
    if (s == 400 || s == 422) r = p1_fail(err, P1_INVALID_INPUT, p1_buf_str(&m));
    else if (s == 401 || s == 403) r = p1_fail(err, P1_AUTH_FAILED, p1_buf_str(&m));
    else if (s == 404) r = p1_fail(err, P1_NOT_FOUND, p1_buf_str(&m));
    else if (s == 409) r = p1_fail(err, P1_CONFLICT, p1_buf_str(&m));
    else if (s == 408 || s == 425 || s == 429 || (s >= 500 && s <= 599))
        r = p1_fail_transient(err, p1_buf_str(&m), resp->retry_after_ms);
    else r = p1_fail(err, P1_PERMANENT, p1_buf_str(&m));
    p1_buf_free(&m);
    return r;
}

bool p1_transport_error(p1_str at, const p1_http_error *e, p1_str hint, p1_error *err) {
    p1_buf m = {0};
    p1_buf_add(&m, at);
    bool r;
    if (e->kind == P1_HTTP_NETWORK) {
        p1_buf_cstr(&m, ": network error: ");
        p1_buf_cstr(&m, e->code);
        r = p1_fail_transient(err, p1_buf_str(&m), -1);
    } else {
        p1_buf_cstr(&m, e->kind == P1_HTTP_DENIED ? ": request denied by the host: " : ": ");
        p1_buf_cstr(&m, e->code);
        if (e->kind == P1_HTTP_DENIED) p1_buf_cstr(&m, "; "), p1_buf_add(&m, hint);
        r = p1_fail(err, P1_PERMANENT, p1_buf_str(&m));
    }
    p1_buf_free(&m);
    return r;
}

// ---- operations not implemented -----------------------------------------------
// Weak definitions: an operation adapter.c defines replaces its default here,
// the others answer `unsupported`.

#define UNSUPPORTED(op, wit_name, req_t, ret_t)                                       \
    __attribute__((weak)) bool exports_panel1_provisioning_adapter_##op(              \
        exports_panel1_provisioning_adapter_##req_t *req,                             \
        exports_panel1_provisioning_adapter_##ret_t *ret, p1_error *err) {            \
        (void)req;                                                                    \
        (void)ret;                                                                    \
        return p1_fail(err, P1_UNSUPPORTED, P1_LIT(wit_name " is not implemented"));  \
    }

UNSUPPORTED(test_connection, "test-connection", test_request_t, connection_info_t)
UNSUPPORTED(provision, "provision", provision_request_t, service_status_t)
UNSUPPORTED(suspend, "suspend", service_request_t, service_status_t)
UNSUPPORTED(unsuspend, "unsuspend", service_request_t, service_status_t)
UNSUPPORTED(terminate, "terminate", service_request_t, service_status_t)
UNSUPPORTED(status, "status", service_request_t, service_status_t)
UNSUPPORTED(change_package, "change-package", change_package_request_t, service_status_t)
UNSUPPORTED(change_password, "change-password", change_password_request_t, service_status_t)
UNSUPPORTED(list_services, "list-services", list_request_t, service_page_t)
UNSUPPORTED(usage, "usage", service_request_t, usage_report_t)
UNSUPPORTED(login_url, "login-url", service_request_t, login_link_t)
