/* xml.h: streaming XML for XMPP (RFC 6120 §11 restricted XML).
 * Owns: bytes -> stream events and stanza trees; tree -> escaped bytes; the
 * XML-level limits (stanza size, depth, attributes, name length).
 * Must not: know XMPP semantics beyond the stream root, do I/O, or log: every
 * problem comes back as an enum xml_err that the caller maps to a stream error. */
#ifndef XMPPD_XML_H
#define XMPPD_XML_H

#include <stddef.h>

#include "buf.h"

#define XML_NS_STREAM "http://etherx.jabber.org/streams"
#define XML_NS_XML "http://www.w3.org/XML/1998/namespace"

enum xml_err {
    XML_OK = 0,
    XML_ERR_NOT_WELL_FORMED,  /* syntax, bad UTF-8, bad entity, mismatched tags */
    XML_ERR_RESTRICTED,       /* comment, PI, DTD, entity declaration/reference */
    XML_ERR_BAD_PREFIX,       /* undeclared namespace prefix */
    XML_ERR_LIMIT,            /* a struct xml_limits bound was passed */
    XML_ERR_NOMEM,
    XML_ERR_STOPPED,          /* a callback returned non-zero */
};

struct xml_limits {
    size_t max_stanza;  /* bytes of input making up one top-level child of the root */
    int max_depth;      /* element nesting below the root */
    int max_attrs;      /* attributes per element (namespace declarations included) */
    int max_name;       /* bytes of an element or attribute qualified name */
};

/* An element. Text and child elements are kept in document order.
 * Names are local names; ns is the namespace URI ("" for none).
 * Attributes: name is the local name, ns the attribute's namespace URI
 * ("" for unprefixed attributes, XML_NS_XML for xml:lang). Namespace
 * declarations (xmlns, xmlns:p) are consumed by the parser and are not attributes. */
struct xml_node;

/* Parser callbacks. Each returns 0 to go on, non-zero to stop feeding
 * (xml_parser_feed then returns XML_ERR_STOPPED).
 * stream_open: the root start tag; root is borrowed (valid during the call,
 *   no children). Its name/ns are whatever the peer sent: the caller checks
 *   them (e.g. "stream" in XML_NS_STREAM) and xml_default_ns() gives the
 *   default namespace declared on the root (e.g. "jabber:client").
 * stanza: a complete child of the root; ownership passes to the callee, which
 *   must xml_free() it.
 * stream_close: the root end tag. */
struct xml_callbacks {
    int (*stream_open)(void *ud, const struct xml_node *root);
    int (*stanza)(void *ud, struct xml_node *stanza);
    int (*stream_close)(void *ud);
};

struct xml_parser;

/* limits is copied. Returns NULL when out of memory. */
struct xml_parser *xml_parser_new(const struct xml_limits *limits, const struct xml_callbacks *cb,
                                  void *ud);
void xml_parser_free(struct xml_parser *p);
/* Feed any number of bytes (one at a time works). Returns XML_OK, or the first
 * error; after an error other than XML_ERR_STOPPED the parser stays failed.
 * Whitespace between stanzas is ignored (keepalives); any other text at root level
 * is XML_ERR_NOT_WELL_FORMED. Elements with the xml: prefix are rejected too. */
enum xml_err xml_parser_feed(struct xml_parser *p, const char *data, size_t len);
/* Forget everything and expect a new stream header (stream restart after
 * STARTTLS or SASL). Safe to call from inside a callback: the rest of the
 * bytes of the current feed are then parsed as the start of the new stream. */
void xml_parser_reset(struct xml_parser *p);
/* After XML_ERR_STOPPED: how many bytes of that feed were consumed (up to and
 * including the tag whose callback stopped). Feeding the rest later continues
 * exactly where the parser stopped. */
size_t xml_parser_consumed(const struct xml_parser *p);
/* Bytes held for an incomplete stanza: its tree plus a tag split across feeds (to
 * report memory). The input is bounded by max_stanza; the tree by 16 * max_stanza
 * (XML_ERR_LIMIT past that, which only piles of tiny empty elements reach). */
size_t xml_parser_pending(const struct xml_parser *p);
const char *xml_err_str(enum xml_err e);

/* Tree access. Returned strings are owned by the node; never NULL ("" when absent
 * for xml_ns/xml_text); xml_attr returns NULL when the attribute is absent. */
const char *xml_name(const struct xml_node *n);
const char *xml_ns(const struct xml_node *n);
/* Default namespace in scope on this element (for the stream root). */
const char *xml_default_ns(const struct xml_node *n);
const char *xml_attr(const struct xml_node *n, const char *name);              /* no namespace */
const char *xml_attr_ns(const struct xml_node *n, const char *name, const char *ns);
/* Element children in order: xml_first_child(n) then xml_next(child); NULL at the end. */
struct xml_node *xml_first_child(const struct xml_node *n);
struct xml_node *xml_next(const struct xml_node *child);
/* First child element with this local name and namespace (either may be NULL = any). */
struct xml_node *xml_child(const struct xml_node *n, const char *name, const char *ns);
/* Concatenated character data directly inside n (not of descendants). */
const char *xml_text(const struct xml_node *n);
struct xml_node *xml_parent(const struct xml_node *n);

/* Tree building. All return NULL / -1 when out of memory, or when a name is not an NCName
 * (XML names as in the parser) or a string is not UTF-8 made of XML Chars: a tree built
 * here always serialises to XML that clients parse.
 * xml_node_new: a detached element (ns NULL = ""). xml_add_child: append a new
 * element child (ns NULL = the parent's ns).
 * xml_add_text: append character data (raw, unescaped). xml_set_attr: set or
 * replace an unnamespaced attribute; value NULL removes it; a name "xml:x" sets x in
 * XML_NS_XML (e.g. "xml:lang"). xml_detach: remove
 * a child from its parent (caller then owns it). xml_append: attach a detached
 * node as last child. xml_copy: deep copy. xml_free: free a node and its subtree
 * (must be detached or a root). */
struct xml_node *xml_node_new(const char *name, const char *ns);
struct xml_node *xml_add_child(struct xml_node *parent, const char *name, const char *ns);
int xml_add_text(struct xml_node *n, const char *text, size_t len);
int xml_set_attr(struct xml_node *n, const char *name, const char *value);
void xml_detach(struct xml_node *child);
void xml_append(struct xml_node *parent, struct xml_node *child);
struct xml_node *xml_copy(const struct xml_node *n);
void xml_free(struct xml_node *n);
/* Bytes of memory that n and its subtree take (with an allowance for the
 * allocator's own overhead): a tree of many small elements costs several
 * times its serialised size, so what holds trees is bounded by this. */
size_t xml_footprint(const struct xml_node *n);

/* Parse bytes that must hold exactly one element named name in namespace ns
 * (e.g. a stored vCard), within the given limits (max_stanza is raised to len
 * as needed). Returns the element (the caller frees it) or NULL. */
struct xml_node *xml_parse_one(const char *data, size_t len, const struct xml_limits *limits,
                               const char *name, const char *ns);

/* A copy of st whose elements that are in st's own namespace are in ns
 * instead (a stanza read on a jabber:server or jabber:component:accept stream,
 * handed on as jabber:client): st is written out into scratch and read back.
 * Returns the copy (the caller frees it) or NULL. */
struct xml_node *xml_copy_ns(const struct xml_node *st, const char *ns,
                             const struct xml_limits *limits, struct buf *scratch);

/* Serialize n and its subtree into out with correct escaping. default_ns is the
 * default namespace in scope where n will be written (e.g. "jabber:client" for
 * a stanza on a client stream): an element whose ns equals the inherited default
 * gets no xmlns, otherwise xmlns="..." is written. Attributes in XML_NS_XML are
 * written with the xml: prefix; other namespaced attributes get a declared prefix.
 * Returns 0, or -1 when out reaches its limit (out is then truncated back). */
int xml_serialize(const struct xml_node *n, const char *default_ns, struct buf *out);

#endif
