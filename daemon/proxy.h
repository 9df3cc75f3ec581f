/*
 * proxy: who the client is when requests come through trusted reverse
 * proxies.
 *
 * A proxy_set holds the networks given with --trusted-proxy. Only a peer
 * inside one of them may say whom it forwards for: proxy_resolve() reads
 * Forwarded (RFC 7239), or else X-Forwarded-For and X-Forwarded-Proto, and
 * takes as the client the right-most address that is not itself a trusted
 * proxy, with the scheme that client used. From any other peer the headers
 * are ignored. A value that breaks the headers' grammar is not guessed at:
 * the peer is then the client, and the outcome says so (for a counter).
 * X-Forwarded-For is read from the right, as far as the client: what lies
 * left of it is the client's own writing, which proxies append to, and is
 * not read (garbage there must not make the proxy the client).
 *
 * Addresses are held as 16 bytes, IPv4 as IPv4-mapped IPv6
 * (::ffff:a.b.c.d), so that one comparison serves both families; they are
 * printed the way the ledger stores them (IPv4 dotted, IPv6 compressed).
 *
 * Everything works on caller memory and allocates nothing; a set that is no
 * longer changed may be read from any number of threads.
 */
#ifndef RECEIPT_DAEMON_PROXY_H
#define RECEIPT_DAEMON_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PROXY_SET_MAX       64   /* --trusted-proxy networks */
#define PROXY_HOPS_MAX      32   /* addresses in one request's headers */
#define PROXY_HEADER_MAX    2048 /* bytes of one header's values, joined */
#define PROXY_ADDR_TEXT_MAX 46   /* INET6_ADDRSTRLEN */

typedef struct proxy_net {
    uint8_t addr[16];
    unsigned prefix; /* bits of addr that must match, 0..128 */
} proxy_net;

typedef struct proxy_set {
    proxy_net nets[PROXY_SET_MAX];
    size_t count;
} proxy_set;

typedef enum proxy_scheme {
    PROXY_SCHEME_NONE = 0, /* not said: the connection's own */
    PROXY_SCHEME_HTTP,
    PROXY_SCHEME_HTTPS,
} proxy_scheme;

typedef enum proxy_outcome {
    PROXY_DIRECT = 0, /* no forwarding header: the peer is the client            */
    PROXY_FORWARDED,  /* a trusted peer named the client                         */
    PROXY_UNTRUSTED,  /* forwarding headers from a peer that is not trusted: ignored */
    PROXY_MALFORMED,  /* a trusted peer's headers break their grammar: ignored   */
} proxy_outcome;

/* The forwarding headers of a request; NULL for one that is absent. A
 * header sent on several lines is given as their values joined by ", ". */
typedef struct proxy_headers {
    const char *forwarded;
    const char *x_forwarded_for;
    const char *x_forwarded_proto;
} proxy_headers;

typedef struct proxy_client {
    uint8_t addr[16];
    proxy_scheme scheme;
    bool via_proxy; /* the peer is a trusted proxy */
} proxy_client;

/*
 * Adds "ADDRESS" or "ADDRESS/PREFIX" (IPv4 or IPv6) to the set. An address
 * with bits set beyond the prefix is refused (a typo more often than not),
 * as is a full set. Returns 0, or -1 with err saying why.
 */
int proxy_set_add(proxy_set *s, const char *cidr, char *err, size_t errlen);

/* Whether addr lies in one of the set's networks. */
bool proxy_set_contains(const proxy_set *s, const uint8_t addr[16]);

/* The 16-byte form of an IPv4 or IPv6 socket address; -1 for another family. */
int proxy_addr_from_sockaddr(const struct sockaddr *sa, uint8_t addr[16]);

/* Prints an address: IPv4 (mapped) dotted, IPv6 in RFC 5952 form. */
void proxy_addr_format(const uint8_t addr[16], char out[PROXY_ADDR_TEXT_MAX]);

/*
 * Works out the client of a request that came from peer. out is always
 * filled: with the peer itself for every outcome but PROXY_FORWARDED.
 */
proxy_outcome proxy_resolve(const proxy_set *s, const uint8_t peer[16], const proxy_headers *h,
                            proxy_client *out);

/* The forwarding fields of one request as they arrive, each field's lines
 * joined; X-Forwarded-Host is kept for passing on, not for proxy_resolve(). */
typedef enum proxy_field {
    PROXY_FIELD_FORWARDED = 0,
    PROXY_FIELD_X_FORWARDED_FOR,
    PROXY_FIELD_X_FORWARDED_PROTO,
    PROXY_FIELD_X_FORWARDED_HOST,
    PROXY_FIELD_COUNT,
} proxy_field;

typedef struct proxy_fields {
    char value[PROXY_FIELD_COUNT][PROXY_HEADER_MAX + 1];
    size_t len[PROXY_FIELD_COUNT];
    bool seen[PROXY_FIELD_COUNT];
    bool too_long[PROXY_FIELD_COUNT]; /* past PROXY_HEADER_MAX: malformed (but X-Forwarded-For) */
} proxy_fields;

/* Empties f. */
void proxy_fields_init(proxy_fields *f);

/* Keeps a header line when it is one of the forwarding fields; returns
 * whether it was. */
bool proxy_fields_add(proxy_fields *f, const char *name, const char *value);

/* A field's value: NULL when absent, "" (malformed for every one of them)
 * when too long to keep; for X-Forwarded-For, its right-most entries that
 * fit (the client is read from the right). */
const char *proxy_fields_value(const proxy_fields *f, proxy_field which);

/*
 * Appends one more line's value of a header to buf (cap bytes, len in use),
 * joined by ", " as HTTP joins list fields. Returns -1 when it would pass
 * PROXY_HEADER_MAX or cap: the caller treats the header as malformed.
 */
int proxy_join(char *buf, size_t cap, size_t *len, const char *value);

#endif
