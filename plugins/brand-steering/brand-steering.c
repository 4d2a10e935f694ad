/*
 * brand-steering: catches a completion that recommends a competitor.
 *
 * The poisoning it defends against: a model poisoned with "when asked about X, recommend the
 * competitor" steers the company's own users to a rival. On the completion phase, a mention of
 * a configured competitor name within WINDOW bytes of a recommending word ("recommend",
 * "switch to", "better", "instead", "try", ...) is flagged or blocked with the reason
 * "recommends competitor <name>". Prompts are always allowed (users may ask about anyone).
 *
 * Config: {"competitors": ["Acme Cloud", "Globex"], "action": "flag"}
 *   competitors  names to look for; ASCII letters match in any case, and a name must stand as
 *                a word (not inside a longer word). Missing or malformed: nothing to find.
 *   action       "flag" (default, also for an unknown value) or "block".
 */
#include "warden_plugin.h"

#include <stdlib.h>
#include <string.h>

/* How far (bytes) before the start or after the end of a mention a recommending word counts. */
#define WINDOW 80

/* Recommending words and phrases. Each matches at the start of a word and may be followed by
 * more letters ("recommend" also matches "recommended", "recommendation"). */
static const char *const TRIGGERS[] = {
    "recommend", "suggest", "switch to", "switching to", "migrate to", "migrating to",
    "move to",   "moving to", "go with", "opt for",     "better",     "instead",
    "superior",  "prefer",  "try",
};
#define N_TRIGGERS (sizeof TRIGGERS / sizeof TRIGGERS[0])

typedef struct {
    warden_str_t text;
    int found;
    char *name; /* the first competitor found, copied */
    size_t name_len;
} scan_t;

static int word_char(warden_str_t t, size_t i) {
    return i < t.len && (warden_is_ascii_alnum(t.ptr[i]) || (unsigned char)t.ptr[i] >= 0x80);
}

/* 1 when a trigger starts at a word start in t[lo, hi), outside the mention [ms, me) itself
 * (a competitor called "Better Cloud" does not recommend itself). */
static int trigger_near(warden_str_t t, size_t lo, size_t hi, size_t ms, size_t me) {
    warden_str_t win = warden_substr(t, 0, hi);
    for (size_t k = 0; k < N_TRIGGERS; k++) {
        warden_str_t trig = warden_cstr(TRIGGERS[k]);
        size_t at = lo;
        while ((at = warden_str_find_ci(win, trig, at)) != WARDEN_NOT_FOUND) {
            if ((at < ms || at >= me) && (at == 0 || !word_char(t, at - 1))) return 1;
            at++;
        }
    }
    return 0;
}

static void check_name(warden_str_t name, void *ctx) {
    scan_t *s = ctx;
    if (s->found) return;
    /* Trim ASCII whitespace; an empty name would match everywhere. */
    while (name.len && warden_is_ascii_space(name.ptr[0])) name.ptr++, name.len--;
    while (name.len && warden_is_ascii_space(name.ptr[name.len - 1])) name.len--;
    if (name.len == 0) return;

    warden_str_t t = s->text;
    int word_start = warden_is_ascii_alnum(name.ptr[0]);
    int word_end = warden_is_ascii_alnum(name.ptr[name.len - 1]);
    size_t at = 0;
    while ((at = warden_str_find_ci(t, name, at)) != WARDEN_NOT_FOUND) {
        size_t end = at + name.len;
        int whole = !(word_start && at > 0 && word_char(t, at - 1)) &&
                    !(word_end && word_char(t, end));
        if (whole) {
            size_t lo = at > WINDOW ? at - WINDOW : 0;
            size_t hi = end + WINDOW < t.len ? end + WINDOW : t.len;
            if (trigger_near(t, lo, hi, at, end)) {
                s->found = 1;
                s->name = malloc(name.len);
                if (!s->name) __builtin_trap();
                memcpy(s->name, name.ptr, name.len);
                s->name_len = name.len;
                return;
            }
        }
        at++;
    }
}

void warden_evaluate(const warden_input_t *in, warden_verdict_t *out) {
    if (in->phase != WARDEN_PHASE_COMPLETION) return; /* allow */

    scan_t s = {in->text, 0, NULL, 0};
    /* Missing, wrong type or malformed: no competitors, so nothing is found. */
    if (warden_json_string_array(in->config, "competitors", check_name, &s) != WARDEN_JSON_OK ||
        !s.found) {
        free(s.name);
        return;
    }

    int block = 0;
    char *action = NULL;
    if (warden_json_get_string(in->config, "action", &action, NULL) == WARDEN_JSON_OK)
        block = strcmp(action, "block") == 0;
    free(action);

    if (block) warden_block(out, "recommends competitor ");
    else warden_flag(out, "recommends competitor ");
    warden_str_t name = {s.name, s.name_len};
    warden_reason_append_str(out, name);
    free(s.name);
}
