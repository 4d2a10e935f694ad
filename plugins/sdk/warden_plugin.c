/*
 * warden_plugin.c: canonical-ABI glue and helpers for Warden detector plugins written in C.
 * See warden_plugin.h for the plugin author's side.
 *
 * The core module exports, as `wasm-tools component new` expects for a world-level export
 * `evaluate: func(input: input) -> verdict` (Component Model canonical ABI, lift direction):
 *
 *   memory                      wasi-libc's linear memory
 *   cabi_realloc(ptr, old_size, align, new_size) -> ptr
 *                               the host allocates the input strings with it
 *   evaluate(phase, role, text_ptr, text_len, model_ptr, model_len,
 *            tenant_ptr, tenant_len, config_ptr, config_len) -> retptr
 *                               the record `input` flattens to 10 i32 (enum -> i32,
 *                               string -> ptr, len), within MAX_FLAT_PARAMS = 16; the result
 *                               `verdict` flattens to 3 values (discriminant + joined payload
 *                               ptr, len) > MAX_FLAT_RESULTS = 1, so it is returned in memory
 *                               and the function returns a pointer to it
 *   cabi_post_evaluate(retptr)  called by the host after it has copied the result out; frees
 *                               the reason or span list
 *
 * Result layout in memory (variant of 4 cases: discriminant u8; payload aligned to the largest
 * case alignment, 4 for string and list; size 12, align 4):
 *
 *   offset 0  u8   discriminant: 0 allow, 1 flag, 2 block, 3 redact
 *   offset 4  u32  flag/block: pointer to UTF-8 reason; redact: pointer to span array
 *   offset 8  u32  flag/block: byte length of reason;   redact: number of spans
 *
 * A span is {u32 start at offset 0; u32 end at offset 4}: size 8, align 4.
 */
#include "warden_plugin.h"

#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(void *) == 4, "build for wasm32");
_Static_assert(sizeof(size_t) == 4, "build for wasm32");
_Static_assert(sizeof(warden_span_t) == 8, "span is 8 bytes");
_Static_assert(_Alignof(warden_span_t) == 4, "span is aligned to 4");
_Static_assert(offsetof(warden_span_t, end) == 4, "span.end at offset 4");

/* ---- Memory --------------------------------------------------------------------------------- */

static void *xrealloc(void *ptr, size_t size) {
    void *p = realloc(ptr, size ? size : 1);
    if (p == NULL) __builtin_trap(); /* out of memory: the call fails as a detector error */
    return p;
}

__attribute__((export_name("cabi_realloc")))
void *cabi_realloc(void *ptr, size_t old_size, size_t align, size_t new_size) {
    /* wasi-libc's malloc returns 16-byte aligned blocks, more than the canonical ABI ever
     * asks for (8). */
    if (new_size == 0) {
        if (ptr != NULL && old_size != 0) free(ptr);
        return (void *)align; /* a non-null, aligned pointer to zero bytes */
    }
    return xrealloc(old_size != 0 ? ptr : NULL, new_size);
}

/* ---- Export glue ---------------------------------------------------------------------------- */

/* The return area: 12 bytes, aligned to 4. */
static _Alignas(4) uint8_t ret_area[12];
/* The verdict whose memory the return area points at, until cabi_post_evaluate. */
static warden_verdict_t pending;

static void verdict_clear(warden_verdict_t *v) {
    free(v->reason);
    free(v->spans);
    memset(v, 0, sizeof *v);
}

static void store_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

__attribute__((export_name("evaluate")))
uint8_t *warden_export_evaluate(int32_t phase, int32_t role,
                                uint8_t *text_ptr, size_t text_len,
                                uint8_t *model_ptr, size_t model_len,
                                uint8_t *tenant_ptr, size_t tenant_len,
                                uint8_t *config_ptr, size_t config_len) {
    /* A host that skipped post-return would leak otherwise. */
    verdict_clear(&pending);

    warden_input_t in;
    in.phase = (warden_phase_t)phase;
    in.role = (warden_role_t)role;
    in.text = (warden_str_t){(const char *)text_ptr, text_len};
    in.model = (warden_str_t){(const char *)model_ptr, model_len};
    in.tenant = (warden_str_t){(const char *)tenant_ptr, tenant_len};
    in.config = (warden_str_t){(const char *)config_ptr, config_len};

    warden_evaluate(&in, &pending);

    /* The arguments were allocated through cabi_realloc and are owned by the callee. Empty
     * strings may carry a pointer that malloc never returned, so only non-empty ones are freed. */
    if (text_len) free(text_ptr);
    if (model_len) free(model_ptr);
    if (tenant_len) free(tenant_ptr);
    if (config_len) free(config_ptr);

    memset(ret_area, 0, sizeof ret_area);
    ret_area[0] = (uint8_t)pending.kind;
    switch (pending.kind) {
    case WARDEN_FLAG:
    case WARDEN_BLOCK:
        store_u32(ret_area + 4, (uint32_t)(uintptr_t)pending.reason);
        store_u32(ret_area + 8, (uint32_t)pending.reason_len);
        break;
    case WARDEN_REDACT:
        store_u32(ret_area + 4, (uint32_t)(uintptr_t)pending.spans);
        store_u32(ret_area + 8, (uint32_t)pending.n_spans);
        break;
    case WARDEN_ALLOW:
    default:
        ret_area[0] = WARDEN_ALLOW;
        break;
    }
    return ret_area;
}

__attribute__((export_name("cabi_post_evaluate")))
void warden_export_post_evaluate(uint8_t *retptr) {
    (void)retptr;
    verdict_clear(&pending);
}

/* ---- Verdict helpers ------------------------------------------------------------------------ */

void warden_allow(warden_verdict_t *out) { verdict_clear(out); }

static void set_reason(warden_verdict_t *out, warden_verdict_kind_t kind, warden_str_t r) {
    verdict_clear(out);
    out->kind = kind;
    out->reason = xrealloc(NULL, r.len + 1);
    if (r.len) memcpy(out->reason, r.ptr, r.len);
    out->reason[r.len] = '\0';
    out->reason_len = r.len;
}

void warden_flag(warden_verdict_t *out, const char *reason) {
    set_reason(out, WARDEN_FLAG, warden_cstr(reason));
}
void warden_block(warden_verdict_t *out, const char *reason) {
    set_reason(out, WARDEN_BLOCK, warden_cstr(reason));
}
void warden_flag_str(warden_verdict_t *out, warden_str_t reason) {
    set_reason(out, WARDEN_FLAG, reason);
}
void warden_block_str(warden_verdict_t *out, warden_str_t reason) {
    set_reason(out, WARDEN_BLOCK, reason);
}

void warden_reason_append_str(warden_verdict_t *out, warden_str_t s) {
    if (out->kind != WARDEN_FLAG && out->kind != WARDEN_BLOCK) return;
    if (s.len == 0) return;
    out->reason = xrealloc(out->reason, out->reason_len + s.len + 1);
    memcpy(out->reason + out->reason_len, s.ptr, s.len);
    out->reason_len += s.len;
    out->reason[out->reason_len] = '\0';
}
void warden_reason_append(warden_verdict_t *out, const char *s) {
    warden_reason_append_str(out, warden_cstr(s));
}

void warden_redact_add(warden_verdict_t *out, uint32_t start, uint32_t end) {
    if (out->kind != WARDEN_REDACT) {
        verdict_clear(out);
        out->kind = WARDEN_REDACT;
    }
    if (out->n_spans == out->cap_spans) {
        size_t cap = out->cap_spans ? out->cap_spans * 2 : 4;
        if (cap > SIZE_MAX / sizeof(warden_span_t)) __builtin_trap();
        out->spans = xrealloc(out->spans, cap * sizeof(warden_span_t));
        out->cap_spans = cap;
    }
    out->spans[out->n_spans].start = start;
    out->spans[out->n_spans].end = end;
    out->n_spans++;
}

/* ---- String helpers ------------------------------------------------------------------------- */

warden_str_t warden_cstr(const char *s) {
    warden_str_t r = {s ? s : "", s ? strlen(s) : 0};
    return r;
}

warden_str_t warden_substr(warden_str_t s, size_t start, size_t end) {
    if (end > s.len) end = s.len;
    if (start > end) start = end;
    warden_str_t r = {s.ptr + start, end - start};
    return r;
}

char warden_ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }

int warden_is_ascii_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int warden_is_ascii_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

int warden_str_eq(warden_str_t a, warden_str_t b) {
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

int warden_str_eq_ci(warden_str_t a, warden_str_t b) {
    if (a.len != b.len) return 0;
    for (size_t i = 0; i < a.len; i++)
        if (warden_ascii_lower(a.ptr[i]) != warden_ascii_lower(b.ptr[i])) return 0;
    return 1;
}

int warden_str_starts_with_ci_at(warden_str_t s, size_t at, warden_str_t prefix) {
    if (at > s.len || s.len - at < prefix.len) return 0;
    for (size_t i = 0; i < prefix.len; i++)
        if (warden_ascii_lower(s.ptr[at + i]) != warden_ascii_lower(prefix.ptr[i])) return 0;
    return 1;
}

size_t warden_str_find_ci(warden_str_t hay, warden_str_t needle, size_t from) {
    if (needle.len == 0 || from > hay.len || hay.len - from < needle.len) return WARDEN_NOT_FOUND;
    char first = warden_ascii_lower(needle.ptr[0]);
    for (size_t i = from; i + needle.len <= hay.len; i++) {
        if (warden_ascii_lower(hay.ptr[i]) != first) continue;
        if (warden_str_starts_with_ci_at(hay, i, needle)) return i;
    }
    return WARDEN_NOT_FOUND;
}

int warden_is_char_boundary(warden_str_t s, size_t i) {
    if (i == 0 || i == s.len) return 1;
    if (i > s.len) return 0;
    return ((unsigned char)s.ptr[i] & 0xC0) != 0x80;
}

/* ---- JSON config scanner -------------------------------------------------------------------- */

#define JSON_MAX_DEPTH 64

typedef struct {
    const char *s;
    size_t n;
    size_t i;
} json_cursor;

static void json_ws(json_cursor *c) {
    while (c->i < c->n) {
        char ch = c->s[c->i];
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r') break;
        c->i++;
    }
}

static int hex_val(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static int read_hex4(const char *p, size_t avail, uint32_t *out) {
    if (avail < 4) return 0;
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hex_val(p[k]);
        if (h < 0) return 0;
        v = (v << 4) | (uint32_t)h;
    }
    *out = v;
    return 1;
}

/* Scans a string at c->i (which must be '"'). On success sets *body_start and *body_end to the raw
 * bytes between the quotes and moves past the closing quote. */
static int json_scan_string(json_cursor *c, size_t *body_start, size_t *body_end) {
    if (c->i >= c->n || c->s[c->i] != '"') return 0;
    size_t i = c->i + 1;
    size_t start = i;
    while (i < c->n) {
        unsigned char ch = (unsigned char)c->s[i];
        if (ch == '"') {
            *body_start = start;
            *body_end = i;
            c->i = i + 1;
            return 1;
        }
        if (ch < 0x20) return 0;
        if (ch == '\\') {
            if (i + 1 >= c->n) return 0;
            char e = c->s[i + 1];
            if (e == 'u') {
                uint32_t v;
                if (!read_hex4(c->s + i + 2, c->n - (i + 2), &v)) return 0;
                i += 6;
            } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' ||
                       e == 'r' || e == 't') {
                i += 2;
            } else {
                return 0;
            }
            continue;
        }
        i++;
    }
    return 0;
}

static size_t utf8_put(char *dst, uint32_t cp) {
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (char)(0xC0 | (cp >> 6));
        dst[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (char)(0xE0 | (cp >> 12));
        dst[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        dst[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    dst[0] = (char)(0xF0 | (cp >> 18));
    dst[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    dst[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    dst[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes an already-validated string body into dst (which has room for end - start + 1 bytes:
 * a decoded string is never longer than its escaped form). Returns the decoded length and
 * NUL-terminates. */
static size_t json_decode(const char *s, size_t start, size_t end, char *dst) {
    size_t o = 0;
    size_t i = start;
    while (i < end) {
        char ch = s[i];
        if (ch != '\\') {
            dst[o++] = ch;
            i++;
            continue;
        }
        char e = s[i + 1];
        i += 2;
        switch (e) {
        case 'b': dst[o++] = '\b'; break;
        case 'f': dst[o++] = '\f'; break;
        case 'n': dst[o++] = '\n'; break;
        case 'r': dst[o++] = '\r'; break;
        case 't': dst[o++] = '\t'; break;
        case 'u': {
            uint32_t cp;
            read_hex4(s + i, end - i, &cp);
            i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (i + 6 <= end && s[i] == '\\' && s[i + 1] == 'u' &&
                    read_hex4(s + i + 2, end - (i + 2), &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                } else {
                    cp = 0xFFFD;
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                cp = 0xFFFD;
            }
            o += utf8_put(dst + o, cp);
            break;
        }
        default: dst[o++] = e; break; /* " \ / */
        }
    }
    dst[o] = '\0';
    return o;
}

static int json_scan_value(json_cursor *c, int depth);

static int json_scan_number(json_cursor *c) {
    size_t i = c->i;
    if (i < c->n && c->s[i] == '-') i++;
    if (i >= c->n) return 0;
    if (c->s[i] == '0') {
        i++;
    } else if (c->s[i] >= '1' && c->s[i] <= '9') {
        while (i < c->n && c->s[i] >= '0' && c->s[i] <= '9') i++;
    } else {
        return 0;
    }
    if (i < c->n && c->s[i] == '.') {
        i++;
        if (i >= c->n || c->s[i] < '0' || c->s[i] > '9') return 0;
        while (i < c->n && c->s[i] >= '0' && c->s[i] <= '9') i++;
    }
    if (i < c->n && (c->s[i] == 'e' || c->s[i] == 'E')) {
        i++;
        if (i < c->n && (c->s[i] == '+' || c->s[i] == '-')) i++;
        if (i >= c->n || c->s[i] < '0' || c->s[i] > '9') return 0;
        while (i < c->n && c->s[i] >= '0' && c->s[i] <= '9') i++;
    }
    c->i = i;
    return 1;
}

static int json_scan_literal(json_cursor *c, const char *lit) {
    size_t len = strlen(lit);
    if (c->n - c->i < len || memcmp(c->s + c->i, lit, len) != 0) return 0;
    c->i += len;
    return 1;
}

static int json_scan_array(json_cursor *c, int depth) {
    c->i++; /* [ */
    json_ws(c);
    if (c->i < c->n && c->s[c->i] == ']') {
        c->i++;
        return 1;
    }
    for (;;) {
        if (!json_scan_value(c, depth + 1)) return 0;
        json_ws(c);
        if (c->i >= c->n) return 0;
        if (c->s[c->i] == ',') {
            c->i++;
            continue;
        }
        if (c->s[c->i] == ']') {
            c->i++;
            return 1;
        }
        return 0;
    }
}

static int json_scan_object(json_cursor *c, int depth) {
    c->i++; /* { */
    json_ws(c);
    if (c->i < c->n && c->s[c->i] == '}') {
        c->i++;
        return 1;
    }
    for (;;) {
        size_t ks, ke;
        json_ws(c);
        if (!json_scan_string(c, &ks, &ke)) return 0;
        json_ws(c);
        if (c->i >= c->n || c->s[c->i] != ':') return 0;
        c->i++;
        if (!json_scan_value(c, depth + 1)) return 0;
        json_ws(c);
        if (c->i >= c->n) return 0;
        if (c->s[c->i] == ',') {
            c->i++;
            continue;
        }
        if (c->s[c->i] == '}') {
            c->i++;
            return 1;
        }
        return 0;
    }
}

static int json_scan_value(json_cursor *c, int depth) {
    if (depth > JSON_MAX_DEPTH) return 0;
    json_ws(c);
    if (c->i >= c->n) return 0;
    size_t a, b;
    switch (c->s[c->i]) {
    case '"': return json_scan_string(c, &a, &b);
    case '{': return json_scan_object(c, depth);
    case '[': return json_scan_array(c, depth);
    case 't': return json_scan_literal(c, "true");
    case 'f': return json_scan_literal(c, "false");
    case 'n': return json_scan_literal(c, "null");
    default: return json_scan_number(c);
    }
}

/* Compares a raw (escaped) key body with `key`, decoding only when it holds escapes. */
static int json_key_equals(const char *s, size_t ks, size_t ke, const char *key) {
    size_t klen = strlen(key);
    if (memchr(s + ks, '\\', ke - ks) == NULL)
        return ke - ks == klen && memcmp(s + ks, key, klen) == 0;
    char *tmp = xrealloc(NULL, ke - ks + 1);
    size_t n = json_decode(s, ks, ke, tmp);
    int eq = n == klen && memcmp(tmp, key, klen) == 0;
    free(tmp);
    return eq;
}

/* Validates `json` as one object and finds the value of the last top-level `key`.
 * On WARDEN_JSON_OK, *vstart and *vend delimit the value's raw text. */
static int json_find(warden_str_t json, const char *key, size_t *vstart, size_t *vend) {
    json_cursor c = {json.ptr, json.len, 0};
    if (json.ptr == NULL && json.len != 0) return WARDEN_JSON_MALFORMED;
    json_ws(&c);
    if (c.i >= c.n || c.s[c.i] != '{') return WARDEN_JSON_MALFORMED;
    int found = 0;
    c.i++;
    json_ws(&c);
    if (c.i < c.n && c.s[c.i] == '}') {
        c.i++;
    } else {
        for (;;) {
            size_t ks, ke;
            json_ws(&c);
            if (!json_scan_string(&c, &ks, &ke)) return WARDEN_JSON_MALFORMED;
            json_ws(&c);
            if (c.i >= c.n || c.s[c.i] != ':') return WARDEN_JSON_MALFORMED;
            c.i++;
            json_ws(&c);
            size_t vs = c.i;
            if (!json_scan_value(&c, 1)) return WARDEN_JSON_MALFORMED;
            if (json_key_equals(c.s, ks, ke, key)) {
                found = 1;
                *vstart = vs;
                *vend = c.i;
            }
            json_ws(&c);
            if (c.i >= c.n) return WARDEN_JSON_MALFORMED;
            if (c.s[c.i] == ',') {
                c.i++;
                continue;
            }
            if (c.s[c.i] == '}') {
                c.i++;
                break;
            }
            return WARDEN_JSON_MALFORMED;
        }
    }
    json_ws(&c);
    if (c.i != c.n) return WARDEN_JSON_MALFORMED; /* trailing garbage */
    return found ? WARDEN_JSON_OK : WARDEN_JSON_MISSING;
}

int warden_json_get_string(warden_str_t json, const char *key, char **out, size_t *out_len) {
    size_t vs, ve;
    int st = json_find(json, key, &vs, &ve);
    if (st != WARDEN_JSON_OK) return st;
    if (json.ptr[vs] != '"') return WARDEN_JSON_WRONG_TYPE;
    /* The body is vs+1 .. ve-1 and already validated. */
    char *buf = xrealloc(NULL, ve - vs);
    size_t n = json_decode(json.ptr, vs + 1, ve - 1, buf);
    *out = buf;
    if (out_len) *out_len = n;
    return WARDEN_JSON_OK;
}

int warden_json_string_array(warden_str_t json, const char *key,
                             void (*fn)(warden_str_t item, void *ctx), void *ctx) {
    size_t vs, ve;
    int st = json_find(json, key, &vs, &ve);
    if (st != WARDEN_JSON_OK) return st;
    if (json.ptr[vs] != '[') return WARDEN_JSON_WRONG_TYPE;

    /* Pass 1: every element must be a string. Pass 2: call fn. */
    for (int pass = 0; pass < 2; pass++) {
        json_cursor c = {json.ptr, ve, vs + 1};
        json_ws(&c);
        if (c.i < c.n && c.s[c.i] == ']') return WARDEN_JSON_OK;
        for (;;) {
            size_t bs, be;
            json_ws(&c);
            if (c.i >= c.n || c.s[c.i] != '"') return WARDEN_JSON_WRONG_TYPE;
            if (!json_scan_string(&c, &bs, &be)) return WARDEN_JSON_MALFORMED;
            if (pass == 1) {
                if (memchr(c.s + bs, '\\', be - bs) == NULL) {
                    warden_str_t item = {c.s + bs, be - bs};
                    fn(item, ctx);
                } else {
                    char *tmp = xrealloc(NULL, be - bs + 1);
                    size_t n = json_decode(c.s, bs, be, tmp);
                    warden_str_t item = {tmp, n};
                    fn(item, ctx);
                    free(tmp);
                }
            }
            json_ws(&c);
            if (c.i >= c.n) return WARDEN_JSON_MALFORMED;
            if (c.s[c.i] == ',') {
                c.i++;
                continue;
            }
            if (c.s[c.i] == ']') break;
            return WARDEN_JSON_MALFORMED;
        }
    }
    return WARDEN_JSON_OK;
}

int warden_json_get_u32(warden_str_t json, const char *key, uint32_t *out) {
    size_t vs, ve;
    int st = json_find(json, key, &vs, &ve);
    if (st != WARDEN_JSON_OK) return st;
    uint64_t v = 0;
    if (vs >= ve || json.ptr[vs] < '0' || json.ptr[vs] > '9') return WARDEN_JSON_WRONG_TYPE;
    for (size_t i = vs; i < ve; i++) {
        char ch = json.ptr[i];
        if (ch < '0' || ch > '9') return WARDEN_JSON_WRONG_TYPE;
        v = v * 10 + (uint64_t)(ch - '0');
        if (v > 0xFFFFFFFFu) return WARDEN_JSON_WRONG_TYPE;
    }
    *out = (uint32_t)v;
    return WARDEN_JSON_OK;
}
