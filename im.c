/* im.c: wires the IM modules to the router. One table row per iq payload
 * namespace (jabberd2's module table, flattened); the hooks router.c calls
 * forward to the module that owns the concern. */
#include "im.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "hooks.h"
#include "roster.h"
#include "router.h"
#include "server.h"
#include "xml.h"

static const struct {
    const char *ns;
    im_iq_fn fn;
} iq_table[] = {
    {"jabber:iq:roster", roster_iq},
    {"http://jabber.org/protocol/disco#info", disco_info_iq},
    {"http://jabber.org/protocol/disco#items", disco_items_iq},
    {"jabber:iq:version", version_iq},
    {"urn:xmpp:time", time_iq},
    {"jabber:iq:last", last_iq},
    {"urn:xmpp:ping", ping_iq},
};

int im_iq(struct session *s, struct xml_node *iq, struct xml_node *payload, const char *to_bare)
{
    const char *ns = xml_ns(payload);
    for (size_t i = 0; i < sizeof(iq_table) / sizeof(iq_table[0]); i++) {
        if (strcmp(iq_table[i].ns, ns) == 0) {
            return iq_table[i].fn(s, iq, payload, to_bare);
        }
    }
    hook_iq_fn fn = hook_find_iq(ns);
    return fn ? fn(s, iq, payload, to_bare) : -1;
}

struct xml_node *im_parse_stored(const char *data, size_t len, const char *name, const char *ns)
{
    struct xml_limits lim = {len + 1, g_config->max_xml_depth, g_config->max_xml_attrs,
                             g_config->max_xml_name};
    return xml_parse_one(data, len, &lim, name, ns);
}

void im_iq_error(struct session *s, const struct xml_node *iq, const char *from, const char *type,
                 const char *cond, const char *app_ns, const char *app, const char *feature)
{
    struct xml_node *e = xml_node_new("iq", NS_CLIENT);
    struct xml_node *err = e ? xml_add_child(e, "error", NS_CLIENT) : NULL;
    struct xml_node *a = NULL;
    const char *id = xml_attr(iq, "id");
    if (err && xml_set_attr(e, "type", "error") == 0 && xml_set_attr(e, "id", id ? id : "") == 0 &&
        (!from || xml_set_attr(e, "from", from) == 0) && xml_set_attr(e, "to", s->jid) == 0 &&
        xml_set_attr(err, "type", type) == 0 && xml_add_child(err, cond, NS_STANZAS) &&
        (!app || (a = xml_add_child(err, app, app_ns))) &&
        (!feature || !a || xml_set_attr(a, "feature", feature) == 0)) {
        router_send(s, e);
    }
    xml_free(e);
}

void im_bare_of(const struct session *s, char *out, size_t outsz)
{
    snprintf(out, outsz, "%.*s", (int)s->bare_len, s->jid);
}

int im_is_own(const struct session *s, const char *bare)
{
    return bare && strncmp(s->jid, bare, s->bare_len) == 0 && bare[s->bare_len] == '\0';
}

int im_is_get(const struct xml_node *iq)
{
    const char *type = xml_attr(iq, "type");
    return type && strcmp(type, "get") == 0;
}

/* ---- XEP-0004 data forms ---- */

int im_text_child(struct xml_node *n, const char *name, const char *ns, const char *text)
{
    struct xml_node *c = xml_add_child(n, name, ns);
    return c ? xml_add_text(c, text, strlen(text)) : -1;
}

struct xml_node *im_form_new(const char *type, const char *title, const char *instructions,
                             const char *form_type)
{
    struct xml_node *x = xml_node_new("x", IM_NS_DATA);
    if (!x || xml_set_attr(x, "type", type) < 0 ||
        (title && im_text_child(x, "title", IM_NS_DATA, title) < 0) ||
        (instructions && im_text_child(x, "instructions", IM_NS_DATA, instructions) < 0) ||
        (form_type && !im_field_add(x, "FORM_TYPE", "hidden", NULL, 0, form_type))) {
        xml_free(x);
        return NULL;
    }
    return x;
}

int im_value_add(struct xml_node *field, const char *value)
{
    return im_text_child(field, "value", IM_NS_DATA, value);
}

struct xml_node *im_field_add(struct xml_node *x, const char *var, const char *type,
                              const char *label, int required, const char *value)
{
    struct xml_node *f = xml_add_child(x, "field", IM_NS_DATA);
    if (!f || xml_set_attr(f, "var", var) < 0 || (type && xml_set_attr(f, "type", type) < 0) ||
        (label && xml_set_attr(f, "label", label) < 0) ||
        (required && !xml_add_child(f, "required", IM_NS_DATA)) ||
        (value && im_value_add(f, value) < 0)) {
        return NULL; /* what was added stays in x, which the caller frees */
    }
    return f;
}

void im_presence(struct session *s, struct xml_node *p)
{
    hook_run(HOOK_PRESENCE_OUT, s, p, NULL);
    presence_outbound(s, p);
}

void im_presence_inbound(struct xml_node *p)
{
    presence_inbound(p);
}

void im_session_end(struct session *s)
{
    hook_run(HOOK_SESSION_END, s, NULL, NULL);
    presence_session_end(s);
}

void im_session_free(struct session *s)
{
    presence_session_free(s);
    hook_run(HOOK_SESSION_FREE, s, NULL, NULL);
}

int im_blocked(const char *bare, const char *jid)
{
    return jid && hook_run_blocked(bare, jid);
}

int im_offline_store(const char *bare, const struct xml_node *m)
{
    return offline_store(bare, m);
}

/* A few deferred last-activity writes per second keep a mass logout from
 * stalling the loop; shutdown writes the rest. */
#define LAST_FLUSH_PER_TICK 16

void im_tick(void)
{
    last_activity_flush(LAST_FLUSH_PER_TICK);
    account_tick();
    hook_run(HOOK_TICK, NULL, NULL, NULL);
}

void im_before_output(void)
{
    offline_sync();
    hook_run(HOOK_BEFORE_OUTPUT, NULL, NULL, NULL);
}

void im_turn_end(void)
{
    offline_sync();
    roster_turn_end();
    hook_run(HOOK_TURN_END, NULL, NULL, NULL);
}

void im_shutdown(void)
{
    offline_sync();
    last_activity_flush(-1);
    hook_run(HOOK_SHUTDOWN, NULL, NULL, NULL);
}

/* ---- XEP-0082 date-times (mam.c, pie.c) ---- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* XEP-0082 DateTime "CCYY-MM-DDThh:mm:ss[.sss]TZD" into microseconds since
 * the epoch (times before it are 0). -1 when it is not one. */
int im_time_parse(const char *s, uint64_t *us)
{
    int y, mo, d, h, mi, se, frac = 0, fdig = 0;
    if (strlen(s) < 20 || digits(s, 4, &y) < 0 || s[4] != '-' || digits(s + 5, 2, &mo) < 0 ||
        s[7] != '-' || digits(s + 8, 2, &d) < 0 || s[10] != 'T' || digits(s + 11, 2, &h) < 0 ||
        s[13] != ':' || digits(s + 14, 2, &mi) < 0 || s[16] != ':' || digits(s + 17, 2, &se) < 0 ||
        mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) {
        return -1;
    }
    const char *p = s + 19;
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++, fdig++) {
            if (fdig < 6) {
                frac = frac * 10 + (*p - '0');
            }
        }
        if (fdig == 0) {
            return -1;
        }
        for (int k = fdig; k < 6; k++) {
            frac *= 10;
        }
    }
    int64_t off = 0;
    if (*p == 'Z' && p[1] == '\0') {
        off = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh, om;
        if (digits(p + 1, 2, &oh) < 0 || digits(p + 4, 2, &om) < 0 || oh > 23 || om > 59) {
            return -1;
        }
        off = (*p == '+' ? 1 : -1) * (int64_t)(oh * 3600 + om * 60);
    } else {
        return -1;
    }
    int64_t secs =
        days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se - off;
    *us = secs < 0 ? 0 : (uint64_t)secs * 1000000ULL + (uint64_t)frac;
    return 0;
}

/* XEP-0082 DateTime of an id (microseconds, UTC). */
void im_time_format(uint64_t us, char *out, size_t outsz)
{
    time_t secs = (time_t)(us / 1000000ULL);
    struct tm tm;
    char base[32];
    if (!gmtime_r(&secs, &tm) || strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        snprintf(out, outsz, "1970-01-01T00:00:00Z");
        return;
    }
    snprintf(out, outsz, "%s.%06uZ", base, (unsigned)(us % 1000000ULL));
}
