/* caps_ver.c: the XEP-0115 §5.1 verification string of a disco#info answer
 * and its base64 SHA-1 (the 'ver' a client puts in its presence <c/>).
 * Owns: nothing but the computation (a pure function, unit-tested against
 * the XEP's §5.2 and §5.3 examples).
 * Must not: keep state, do I/O or know sessions (caps.c does). */
#include "pep.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "sasl.h"
#include "tls.h"
#include "xml.h"

#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_XDATA "jabber:x:data"

/* Every string in the lists below ends in '<' and starts with its sort key
 * (a feature, "category/type/lang/name", a field's var, a FORM_TYPE), which
 * §5.1 sorts as is: '<' counts as the end, so "shim" sorts before "shim#x". */
static int cmp_key(const void *a, const void *b)
{
    const unsigned char *x = *(unsigned char *const *)a, *y = *(unsigned char *const *)b;
    for (;; x++, y++) {
        int cx = *x == '<' ? 0 : *x, cy = *y == '<' ? 0 : *y;
        if (cx != cy) {
            return cx - cy;
        }
        if (!cx) {
            return strcmp((const char *)x, (const char *)y); /* same key: the rest */
        }
    }
}

/* §5.4 / §8.4: '<' ends each string hashed, so a value holding one lets a
 * forger split or merge strings ("X<Y" hashes like "X" and "Y") and get its
 * own features accepted under an honest client's ver. Such an answer is
 * ill-formed: no ver is computed for it. */
static int has_lt(const char *v)
{
    return v && strchr(v, '<') != NULL;
}

/* Even without '<', the string hashed does not say where identities end and
 * features begin, nor features and forms: an identity 'http:', '',
 * xml:lang 'jabber.org', name 'protocol/nick+notify' hashes exactly like the
 * feature http://jabber.org/protocol/nick+notify, a FORM_TYPE like the last
 * features. Only <feature/>s say what a client wants +notify for (caps.c),
 * so an identity field or form string ending in "+notify" makes the answer
 * unusable for a cache: it could be a feature in disguise. */
static int hides_notify(const char *v)
{
    size_t n = v ? strlen(v) : 0, sl = sizeof("+notify") - 1;
    return n >= sl && strcmp(v + n - sl, "+notify") == 0;
}

static int suspect(const char *v)
{
    return has_lt(v) || hides_notify(v);
}

/* A growable list of strings, sorted and joined at the end. */
struct strs {
    char **v;
    size_t n, cap;
};

static int strs_add(struct strs *l, struct buf *b)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, cap * sizeof(char *));
        if (!v) {
            return -1;
        }
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(buf_ptr(b)))) {
        return -1;
    }
    l->n++;
    buf_clear(b);
    return 0;
}

/* "s<" (s NULL: "<") onto l. */
static int strs_put(struct strs *l, struct buf *b, const char *s)
{
    return buf_printf(b, "%s<", s ? s : "") | strs_add(l, b);
}

/* §5.4 step 3.3/3.4: two identical identities or features make the answer
 * ill-formed. After strs_join (sorted), so equal strings are neighbours. */
static int strs_dup(const struct strs *l)
{
    for (size_t i = 1; i < l->n; i++) {
        if (strcmp(l->v[i - 1], l->v[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static void strs_free(struct strs *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i]);
    }
    free(l->v);
}

/* Sort l and append each string (they already end in '<') to out. */
static int strs_join(struct strs *l, struct buf *out)
{
    if (l->n) {
        qsort(l->v, l->n, sizeof(char *), cmp_key);
    }
    for (size_t i = 0; i < l->n; i++) {
        if (buf_puts(out, l->v[i]) < 0) {
            return -1;
        }
    }
    return 0;
}

/* §5.4 step 3.3.4: "var<" then each value, sorted, with "<"; FORM_TYPE's
 * value alone goes first (into form_type). */
static int form_string(const struct xml_node *x, struct buf *out)
{
    struct strs fields = {0}, values = {0};
    struct buf b, form_type;
    int rc = 0;
    buf_init(&b, 0);
    buf_init(&form_type, 0);
    for (struct xml_node *f = xml_child(x, "field", NS_XDATA); f && rc == 0; f = xml_next(f)) {
        const char *var = xml_attr(f, "var");
        if (!var || strcmp(xml_name(f), "field") != 0) {
            continue;
        }
        rc |= suspect(var) ? -1 : 0;
        for (struct xml_node *v = xml_child(f, "value", NS_XDATA); v && rc == 0; v = xml_next(v)) {
            rc |= suspect(xml_text(v)) ? -1 : 0;
            rc |= strs_put(&values, &b, xml_text(v));
        }
        if (strcmp(var, "FORM_TYPE") == 0) {
            rc |= strs_join(&values, &form_type);
        } else {
            rc |= buf_printf(&b, "%s<", var) | strs_join(&values, &b) | strs_add(&fields, &b);
        }
        strs_free(&values);
        memset(&values, 0, sizeof(values));
    }
    rc |= buf_puts(out, buf_ptr(&form_type)) | strs_join(&fields, out);
    strs_free(&fields);
    buf_free(&b);
    buf_free(&form_type);
    return rc ? -1 : 0;
}

int caps_ver(const struct xml_node *q, char *out, size_t outsz)
{
    struct strs l[3] = {{0}}; /* identities, features, forms: the order S has them in */
    struct buf b, s;
    int rc = 0;
    buf_init(&b, 0);
    buf_init(&s, 0);
    for (struct xml_node *c = xml_first_child(q); c && rc == 0; c = xml_next(c)) {
        const char *name = xml_name(c), *ns = xml_ns(c);
        int disco = strcmp(ns, NS_DISCO_INFO) == 0;
        if (disco && strcmp(name, "identity") == 0) {
            /* "category/type/lang/name<" */
            const char *f[] = {xml_attr(c, "category"), xml_attr(c, "type"),
                               xml_attr_ns(c, "lang", XML_NS_XML), xml_attr(c, "name")};
            for (int i = 0; i < 4; i++) {
                rc |= suspect(f[i]) ? -1 : 0;
                rc |= buf_printf(&b, i < 3 ? "%s/" : "%s<", f[i] ? f[i] : "");
            }
            rc |= strs_add(&l[0], &b);
        } else if (disco && strcmp(name, "feature") == 0) {
            const char *var = xml_attr(c, "var");
            rc |= has_lt(var) ? -1 : 0;
            rc |= strs_put(&l[1], &b, var);
        } else if (strcmp(name, "x") == 0 && strcmp(ns, NS_XDATA) == 0) {
            rc |= form_string(c, &b) | strs_add(&l[2], &b);
        }
    }
    for (int i = 0; i < 3; i++) {
        rc |= strs_join(&l[i], &s);
    }
    rc |= strs_dup(&l[0]) || strs_dup(&l[1]) ? -1 : 0;
    unsigned char md[20];
    if (rc == 0 && (tls_hash(TLS_SHA1, buf_ptr(&s), buf_len(&s), md) < 0 ||
                    sasl_b64_encode(md, sizeof(md), out, outsz) < 0)) {
        rc = -1;
    }
    for (int i = 0; i < 3; i++) {
        strs_free(&l[i]);
    }
    buf_free(&b);
    buf_free(&s);
    return rc ? -1 : 0;
}
