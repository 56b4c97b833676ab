/* version.h: the one place the xmppd version string lives, with the
 * software's XEP-0115 caps node. server.c (-V, banner), c2s.c (caps in stream
 * features) and disco.c (XEP-0092 version, disco#info for the caps node) all
 * use these, so a release bumps a single line. */
#ifndef XMPPD_VERSION_H
#define XMPPD_VERSION_H

#define XMPPD_VERSION "0.1.0"
/* XEP-0115 §4 'node': a URI naming the software (not the server's domain). */
#define XMPPD_CAPS_NODE "https://xmppd.invalid/caps"

#endif
