/*
 * faulty: a TEST FIXTURE, not a detector. It misbehaves on purpose, as its config says, so that
 * tests can check how Warden handles a plugin that traps, hangs, exhausts its memory, or
 * returns a verdict the host must reject.
 *
 * Config: {"fault": "<name>"}
 *   "trap"              traps at once (__builtin_trap, the wasm `unreachable` instruction)
 *   "loop"              never returns (only the host's time limit ends it)
 *   "oom"               allocates and touches 1 MiB blocks until malloc fails, then traps
 *   "bad-span"          redacts the span {0, text.len + 1}: its end is past the end of the text
 *   "bad-span-reversed" redacts the span {1, 0}: start after end
 *   "bad-span-mid-char" redacts from inside the first multi-byte character to the end of the
 *                       text (not on a UTF-8 boundary); allows if the text is all ASCII
 *   "bad-utf8-reason"   flags with a reason that is not valid UTF-8 (the host's lifting of the
 *                       string fails)
 *   "long-reason"       flags with a 100 KB reason (the host cuts it)
 *   "many-spans"        redacts 20,000 spans (more than the host accepts)
 *   "none", missing, unknown, or a malformed config: allow
 */
#include "warden_plugin.h"

#include <stdlib.h>
#include <string.h>

static volatile uint32_t spin;

static void fault_loop(void) {
    for (;;) spin++; /* a side effect on every turn, so the loop cannot be optimised away */
}

/* Keeps every block reachable so that the allocations are not optimised away. */
static void *volatile oom_head;

static void fault_oom(void) {
    const size_t block = 1u << 20;
    for (;;) {
        char *p = malloc(block);
        if (p == NULL) __builtin_trap();
        memset(p, 0xA5, block); /* touch every page */
        *(void **)p = oom_head;
        oom_head = p;
    }
}

void warden_evaluate(const warden_input_t *in, warden_verdict_t *out) {
    char *fault = NULL;
    if (warden_json_get_string(in->config, "fault", &fault, NULL) != WARDEN_JSON_OK) return;

    if (strcmp(fault, "trap") == 0) {
        __builtin_trap();
    } else if (strcmp(fault, "loop") == 0) {
        fault_loop();
    } else if (strcmp(fault, "oom") == 0) {
        fault_oom();
    } else if (strcmp(fault, "bad-span") == 0) {
        warden_redact_add(out, 0, (uint32_t)in->text.len + 1);
    } else if (strcmp(fault, "bad-span-reversed") == 0) {
        warden_redact_add(out, 1, 0);
    } else if (strcmp(fault, "bad-span-mid-char") == 0) {
        for (size_t i = 0; i < in->text.len; i++) {
            if ((unsigned char)in->text.ptr[i] >= 0xC0) {
                warden_redact_add(out, (uint32_t)i + 1, (uint32_t)in->text.len);
                break;
            }
        }
    } else if (strcmp(fault, "bad-utf8-reason") == 0) {
        /* 0xC3 starts a two-byte sequence that 0x28 does not continue; 0xFF never occurs. */
        static const char bad[] = {'b', 'a', 'd', ' ', (char)0xC3, (char)0x28, (char)0xFF};
        warden_str_t r = {bad, sizeof bad};
        warden_flag_str(out, r);
    } else if (strcmp(fault, "long-reason") == 0) {
        /* 100 KB of reason: the host keeps only the start of it. */
        static char longr[100 * 1024];
        memset(longr, 'x', sizeof longr);
        warden_str_t r = {longr, sizeof longr};
        warden_flag_str(out, r);
    } else if (strcmp(fault, "many-spans") == 0) {
        /* 20,000 one-byte spans (all over the first byte): more than the host accepts. */
        if (in->text.len > 0)
            for (int i = 0; i < 20000; i++) warden_redact_add(out, 0, 1);
    }
    free(fault);
}
