// A small JSON reader: enough to pick values out of a provider's answer by
// path, without a libc. Not a validator: malformed input gives "not found".
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "panel1.h"

typedef struct {
    const char *p, *end;
} cursor;

static void ws(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

// Skips a string (c->p at the opening quote).
static bool skip_string(cursor *c) {
    for (c->p++; c->p < c->end; c->p++) {
        if (*c->p == '\\') c->p++;
        else if (*c->p == '"') {
            c->p++;
            return true;
        }
    }
    return false;
}

// Skips one value of any kind; depth bounds nesting so hostile input cannot
// exhaust the stack.
static bool skip_value(cursor *c, int depth) {
    ws(c);
    if (c->p >= c->end || depth > 64) return false;
    char open = *c->p;
    if (open == '"') return skip_string(c);
    if (open == '{' || open == '[') {
        char close = open == '{' ? '}' : ']';
        c->p++;
        ws(c);
        if (c->p < c->end && *c->p == close) {
            c->p++;
            return true;
        }
        for (;;) {
            if (open == '{') {
                ws(c);
                if (c->p >= c->end || *c->p != '"' || !skip_string(c)) return false;
                ws(c);
                if (c->p >= c->end || *c->p != ':') return false;
                c->p++;
            }
            if (!skip_value(c, depth + 1)) return false;
            ws(c);
            if (c->p >= c->end) return false;
            if (*c->p == ',') {
                c->p++;
                continue;
            }
            if (*c->p == close) {
                c->p++;
                return true;
            }
            return false;
        }
    }
    // number, true, false, null
    const char *start = c->p;
    while (c->p < c->end && *c->p != ',' && *c->p != '}' && *c->p != ']' && *c->p != ' ' &&
           *c->p != '\n' && *c->p != '\r' && *c->p != '\t')
        c->p++;
    return c->p > start;
}

// The next path segment of "a.b.0.c": [*seg, *seg + *n).
static bool segment(const char **path, const char **seg, size_t *n) {
    if (!**path) return false;
    *seg = *path;
    while (**path && **path != '.') (*path)++;
    *n = (size_t)(*path - *seg);
    if (**path == '.') (*path)++;
    return true;
}

// Is the raw string at c->p (a quote) exactly [key, key + n)? Keys with
// escapes never match, which is fine for the ASCII keys of an API.
static bool key_is(const cursor *c, const char *key, size_t n) {
    const char *k = c->p + 1;
    return (size_t)(c->end - k) > n && memcmp(k, key, n) == 0 && k[n] == '"';
}

bool p1_json_find(p1_str json, const char *path, p1_str *out) {
    cursor c = {json.ptr, json.ptr + json.len};
    const char *seg;
    size_t n;
    while (segment(&path, &seg, &n)) {
        ws(&c);
        if (c.p >= c.end) return false;
        if (*c.p == '{') {
            c.p++;
            bool found = false;
            for (;;) {
                ws(&c);
                if (c.p >= c.end || *c.p != '"') return false;
                bool match = key_is(&c, seg, n);
                if (!skip_string(&c)) return false;
                ws(&c);
                if (c.p >= c.end || *c.p != ':') return false;
                c.p++;
                if (match) {
                    found = true;
                    break;
                }
                if (!skip_value(&c, 0)) return false;
                ws(&c);
                if (c.p >= c.end || *c.p != ',') return false;
                c.p++;
            }
            if (!found) return false;
        } else if (*c.p == '[') {
            size_t index = 0;
            for (size_t i = 0; i < n; i++) {
                if (seg[i] < '0' || seg[i] > '9') return false;
                index = index * 10 + (size_t)(seg[i] - '0');
            }
            c.p++;
            for (size_t i = 0; i < index; i++) {
                if (!skip_value(&c, 0)) return false;
                ws(&c);
                if (c.p >= c.end || *c.p != ',') return false;
                c.p++;
            }
            ws(&c);
            if (c.p < c.end && *c.p == ']') return false;
        } else {
            return false;
        }
    }
    ws(&c);
    const char *start = c.p;
    if (!skip_value(&c, 0)) return false;
    out->ptr = start;
    out->len = (size_t)(c.p - start);
    return true;
}

bool p1_json_int(p1_str json, const char *path, int64_t *out) {
    p1_str v;
    if (!p1_json_find(json, path, &v)) return false;
    // WHM and others send some numbers as strings: "1".
    if (v.len >= 2 && v.ptr[0] == '"') {
        v.ptr++;
        v.len -= 2;
    }
    return p1_parse_int(v, out);
}

static void put_utf8(p1_buf *b, uint32_t cp) {
    char u[4];
    size_t n;
    if (cp < 0x80) u[0] = (char)cp, n = 1;
    else if (cp < 0x800) u[0] = (char)(0xC0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    else u[0] = (char)(0xE0 | cp >> 12), u[1] = (char)(0x80 | ((cp >> 6) & 0x3F)),
        u[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
    p1_buf_add(b, (p1_str){u, n});
}

static int hexval(char h) {
    if (h >= '0' && h <= '9') return h - '0';
    if (h >= 'a' && h <= 'f') return h - 'a' + 10;
    if (h >= 'A' && h <= 'F') return h - 'A' + 10;
    return -1;
}

bool p1_json_string(p1_str json, const char *path, p1_buf *out) {
    p1_str v;
    if (!p1_json_find(json, path, &v) || v.len < 2 || v.ptr[0] != '"') return false;
    for (size_t i = 1; i + 1 < v.len; i++) {
        char ch = v.ptr[i];
        if (ch != '\\') {
            p1_buf_add(out, (p1_str){&v.ptr[i], 1});
            continue;
        }
        if (++i + 1 >= v.len) return false;
        switch (v.ptr[i]) {
        case 'n': p1_buf_cstr(out, "\n"); break;
        case 't': p1_buf_cstr(out, "\t"); break;
        case 'r': p1_buf_cstr(out, "\r"); break;
        case 'b': p1_buf_cstr(out, "\b"); break;
        case 'f': p1_buf_cstr(out, "\f"); break;
        case 'u': {
            uint32_t cp = 0;
            for (int k = 1; k <= 4; k++) {
                int h = i + (size_t)k < v.len ? hexval(v.ptr[i + (size_t)k]) : -1;
                if (h < 0) return false;
                cp = cp << 4 | (uint32_t)h;
            }
            i += 4;
            // A surrogate half stands for U+FFFD: good enough for messages.
            put_utf8(out, cp >= 0xD800 && cp <= 0xDFFF ? 0xFFFD : cp);
            break;
        }
        default: p1_buf_add(out, (p1_str){&v.ptr[i], 1}); break;  // \" \\ \/
        }
    }
    return true;
}
