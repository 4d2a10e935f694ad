/*
 * link-guard: keeps links to hosts outside an allowlist out of the text.
 *
 * The poisoning it defends against: a poisoned model (or a poisoned retrieved document) steers
 * the user to a malicious link. Every http(s) URL whose host is not an allowed host, or a
 * subdomain of one, is redacted (default), flagged, or makes the text blocked.
 *
 * Config: {"allowed_hosts": ["example.com", "docs.python.org"], "on_match": "redact"}
 *   allowed_hosts  hosts whose links may pass; "example.com" also allows "www.example.com".
 *                  Missing, not an array of strings, or a malformed config: empty allowlist.
 *   on_match       "redact" (default, also for an unknown value), "block" or "flag".
 * See README.md for how URLs are found.
 */
#include "warden_plugin.h"

#include <stdlib.h>
#include <string.h>

/* ---- The allowlist -------------------------------------------------------------------------- */

typedef struct {
    char **hosts; /* lower-cased, leading "*." / "." and trailing "." removed */
    size_t *lens;
    size_t n, cap;
} allowlist_t;

static void allow_add(warden_str_t item, void *ctx) {
    allowlist_t *a = ctx;
    /* Trim surrounding ASCII whitespace, a leading "*." or ".", and a trailing "." */
    size_t s = 0, e = item.len;
    while (s < e && warden_is_ascii_space(item.ptr[s])) s++;
    while (e > s && warden_is_ascii_space(item.ptr[e - 1])) e--;
    if (e - s >= 2 && item.ptr[s] == '*' && item.ptr[s + 1] == '.') s += 2;
    while (s < e && item.ptr[s] == '.') s++;
    while (e > s && item.ptr[e - 1] == '.') e--;
    if (s == e) return; /* an empty entry would allow nothing sensible */
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        char **h = realloc(a->hosts, cap * sizeof *h);
        if (!h) __builtin_trap();
        a->hosts = h;
        size_t *l = realloc(a->lens, cap * sizeof *l);
        if (!l) __builtin_trap();
        a->lens = l;
        a->cap = cap;
    }
    char *copy = malloc(e - s);
    if (!copy) __builtin_trap();
    for (size_t i = s; i < e; i++) copy[i - s] = warden_ascii_lower(item.ptr[i]);
    a->hosts[a->n] = copy;
    a->lens[a->n] = e - s;
    a->n++;
}

static void allow_free(allowlist_t *a) {
    for (size_t i = 0; i < a->n; i++) free(a->hosts[i]);
    free(a->hosts);
    free(a->lens);
}

/* host is allowed when it equals an entry or ends with "." + entry (case-insensitive). */
static int host_allowed(const allowlist_t *a, warden_str_t host) {
    /* "example.com." is the same host as "example.com". */
    while (host.len && host.ptr[host.len - 1] == '.') host.len--;
    if (host.len == 0) return 0;
    for (size_t k = 0; k < a->n; k++) {
        size_t el = a->lens[k];
        if (host.len < el) continue;
        size_t off = host.len - el;
        if (off > 0 && host.ptr[off - 1] != '.') continue;
        warden_str_t tail = {host.ptr + off, el};
        warden_str_t entry = {a->hosts[k], el};
        if (warden_str_eq_ci(tail, entry)) return 1;
    }
    return 0;
}

/* ---- Finding URLs --------------------------------------------------------------------------- */
/*
 * The host is taken the way a browser would, so that no text can look allowed here and lead
 * elsewhere there:
 *   - the authority runs to the first '/', '\', '?', '#', ASCII space or control (browsers read
 *     '\' as '/' in http(s) URLs);
 *   - the host follows the LAST '@' in it ("https://good.example@evil.example" goes to
 *     evil.example) and ends at ':' (port);
 *   - only trailing punctuation is trimmed from it ("(see https://good.example)."), never
 *     anything in the middle: "https://good.example).evil.example" is not allowed.
 * Anything else odd (non-ASCII, percent-escapes, IP literals) simply fails to match the
 * allowlist, so it errs towards removing a link, never towards letting one through.
 */

/* Decodes the UTF-8 character ending at t[end-1]; returns its length (0 if malformed). */
static size_t last_char(warden_str_t t, size_t start, size_t end, uint32_t *cp) {
    size_t k = end;
    while (k > start && end - k < 4 && ((unsigned char)t.ptr[k - 1] & 0xC0) == 0x80) k--;
    if (k == start && ((unsigned char)t.ptr[k] & 0xC0) == 0x80) return 0;
    if (k > start) k--;
    const unsigned char *p = (const unsigned char *)t.ptr + k;
    size_t n = end - k;
    if (n == 1 && p[0] < 0x80) *cp = p[0];
    else if (n == 2 && (p[0] & 0xE0) == 0xC0) *cp = ((uint32_t)(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
    else if (n == 3 && (p[0] & 0xF0) == 0xE0)
        *cp = ((uint32_t)(p[0] & 0x0F) << 12) | ((uint32_t)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    else if (n == 4 && (p[0] & 0xF8) == 0xF0)
        *cp = ((uint32_t)(p[0] & 0x07) << 18) | ((uint32_t)(p[1] & 0x3F) << 12) |
              ((uint32_t)(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
    else return 0;
    return n;
}

/* Punctuation that ends a sentence or closes a bracket or quote, and so is not taken as the
 * end of a link. The non-ASCII ones are CJK and fullwidth forms. */
static int trailing_punct(uint32_t cp) {
    if (cp < 0x80) return cp != 0 && strchr(".,;:!?*_~)]}>\"'`", (int)cp) != NULL;
    switch (cp) {
    case 0x2019: case 0x201D:                         /* ’ ” */
    case 0x3001: case 0x3002: case 0x300D: case 0x300F: /* 、 。 」 』 */
    case 0xFF01: case 0xFF09: case 0xFF0C: case 0xFF0E: /* ！ ） ， ． */
    case 0xFF1A: case 0xFF1B: case 0xFF1F: case 0xFF3D: /* ： ； ？ ］ */
    case 0xFF61:                                       /* ｡ */
        return 1;
    default:
        return 0;
    }
}

/* Moves `end` back over trailing punctuation, not below `start`. */
static size_t trim_trailing(warden_str_t t, size_t start, size_t end) {
    while (end > start) {
        uint32_t cp;
        size_t n = last_char(t, start, end, &cp);
        if (n == 0 || !trailing_punct(cp)) break;
        end -= n;
    }
    return end;
}

static int ascii_space_or_control(unsigned char c) { return c <= 0x20 || c == 0x7F; }

/* Length of the character at t[i] if it ends the visible link (0 if it does not): ASCII space
 * and controls, characters never left unescaped in a URL, Unicode spaces, and general and CJK
 * punctuation (so that a link in running CJK text does not swallow the rest of the sentence).
 * This only decides how much text a redaction covers; it never shortens the host. */
static size_t link_stop(warden_str_t t, size_t i) {
    unsigned char c = (unsigned char)t.ptr[i];
    if (c < 0x80) {
        if (ascii_space_or_control(c)) return 1;
        return strchr("<>\"'`{}|^", c) != NULL ? 1 : 0;
    }
    const unsigned char *p = (const unsigned char *)t.ptr + i;
    size_t left = t.len - i;
    if (left >= 2 && p[0] == 0xC2 && p[1] == 0xA0) return 2;                  /* U+00A0 */
    if (left >= 3 && p[0] == 0xE2 && (p[1] == 0x80 || p[1] == 0x81)) return 3; /* U+2000..207F */
    if (left >= 3 && p[0] == 0xE3 && p[1] == 0x80) return 3;                  /* U+3000..303F */
    if (left >= 3 && p[0] == 0xEF && p[1] == 0xBC && (p[2] <= 0x8F || (p[2] >= 0x9A && p[2] <= 0xA0)))
        return 3; /* fullwidth punctuation U+FF00..FF0F, U+FF1A..FF20 */
    return 0;
}

typedef struct {
    size_t start, end; /* the link's byte span in the text */
    warden_str_t host; /* a view into the text */
} url_t;

/* Matches "http:" or "https:" (any case) at i followed by at least one '/' or '\'. Returns the
 * offset just after the slashes, or 0. */
static size_t match_scheme(warden_str_t t, size_t i) {
    static const warden_str_t http = {"http:", 5}, https = {"https:", 6};
    size_t j;
    if (warden_str_starts_with_ci_at(t, i, https)) j = i + 6;
    else if (warden_str_starts_with_ci_at(t, i, http)) j = i + 5;
    else return 0;
    size_t k = j;
    while (k < t.len && (t.ptr[k] == '/' || t.ptr[k] == '\\')) k++;
    return k > j ? k : 0;
}

static int next_url(warden_str_t t, size_t from, url_t *u) {
    for (size_t i = from; i < t.len; i++) {
        char c = t.ptr[i];
        if (c != 'h' && c != 'H') continue;
        size_t a = match_scheme(t, i);
        if (a == 0) continue;

        /* Authority [a, ae). */
        size_t ae = a;
        while (ae < t.len) {
            unsigned char ch = (unsigned char)t.ptr[ae];
            if (ch == '/' || ch == '\\' || ch == '?' || ch == '#' || ascii_space_or_control(ch))
                break;
            ae++;
        }
        /* Host [hs, he). */
        size_t hs = a;
        for (size_t k = a; k < ae; k++)
            if (t.ptr[k] == '@') hs = k + 1;
        size_t he = hs;
        while (he < ae && t.ptr[he] != ':') he++;
        he = trim_trailing(t, hs, he);
        if (ae == a || (he == hs && hs == a)) continue; /* "https://" and nothing: no link */

        /* The visible link: up to a link_stop character or a ')' or ']' with no opening
         * partner in the link (Markdown "[text](https://...)"), less trailing punctuation,
         * and never shorter than through the host. */
        size_t e = a;
        int paren = 0, bracket = 0;
        while (e < t.len && link_stop(t, e) == 0) {
            char ch = t.ptr[e];
            if (ch == '(') paren++;
            else if (ch == ')') { if (paren == 0) break; paren--; }
            else if (ch == '[') bracket++;
            else if (ch == ']') { if (bracket == 0) break; bracket--; }
            e++;
        }
        e = trim_trailing(t, a, e);
        if (e < he) e = he;

        u->start = i;
        u->end = e;
        u->host = warden_substr(t, hs, he);
        return 1;
    }
    return 0;
}

/* ---- The detector --------------------------------------------------------------------------- */

enum on_match { ON_REDACT, ON_BLOCK, ON_FLAG };

void warden_evaluate(const warden_input_t *in, warden_verdict_t *out) {
    allowlist_t allow = {0};
    /* Any status but OK (missing, wrong type, malformed config) leaves the allowlist empty. */
    if (warden_json_string_array(in->config, "allowed_hosts", allow_add, &allow) !=
        WARDEN_JSON_OK) {
        allow_free(&allow);
        memset(&allow, 0, sizeof allow);
    }

    enum on_match mode = ON_REDACT;
    char *m = NULL;
    if (warden_json_get_string(in->config, "on_match", &m, NULL) == WARDEN_JSON_OK) {
        if (strcmp(m, "block") == 0) mode = ON_BLOCK;
        else if (strcmp(m, "flag") == 0) mode = ON_FLAG;
    }
    free(m);

    url_t u;
    size_t pos = 0;
    while (next_url(in->text, pos, &u)) {
        pos = u.end > u.start ? u.end : u.start + 1;
        if (host_allowed(&allow, u.host)) continue;
        if (mode == ON_REDACT) {
            warden_redact_add(out, (uint32_t)u.start, (uint32_t)u.end);
            continue;
        }
        /* Block or flag on the first disallowed link. The reason goes into Warden's records,
         * which never hold the text itself, so it does not quote the host. */
        if (mode == ON_BLOCK) warden_block(out, "link to a host not on the allowlist");
        else warden_flag(out, "link to a host not on the allowlist");
        break;
    }
    allow_free(&allow);
}
