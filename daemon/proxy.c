#include "daemon/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* One hop of a forwarding chain: the node a proxy received from. */
typedef struct proxy_hop {
    bool known; /* false: "unknown", obfuscated, or not said */
    uint8_t addr[16];
    proxy_scheme scheme;
} proxy_hop;

typedef struct proxy_chain {
    proxy_hop hops[PROXY_HOPS_MAX];
    size_t count;
} proxy_chain;

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* ------------------------------------------------------------------------ */
/* addresses                                                                */

/* An IPv4 or IPv6 address of exactly n bytes of text, nothing around it. */
static int parse_ip(const char *text, size_t n, bool v6, uint8_t out[16])
{
    char buf[PROXY_ADDR_TEXT_MAX];
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, text, n);
    buf[n] = '\0';
    if (!v6) {
        struct in_addr a4;
        if (inet_pton(AF_INET, buf, &a4) != 1)
            return -1;
        memcpy(out, v4_mapped_prefix, 12);
        memcpy(out + 12, &a4, 4);
        return 0;
    }
    struct in6_addr a6;
    if (inet_pton(AF_INET6, buf, &a6) != 1)
        return -1;
    memcpy(out, &a6, 16);
    return 0;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* 1 to 5 digits, at most 65535. */
static bool valid_port(const char *p, size_t n)
{
    if (n == 0 || n > 5)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(p[i]))
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    return v <= 65535;
}

int proxy_addr_from_sockaddr(const struct sockaddr *sa, uint8_t addr[16])
{
    if (sa == NULL)
        return -1;
    if (sa->sa_family == AF_INET) {
        memcpy(addr, v4_mapped_prefix, 12);
        memcpy(addr + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return 0;
    }
    return -1;
}

void proxy_addr_format(const uint8_t addr[16], char out[PROXY_ADDR_TEXT_MAX])
{
    if (memcmp(addr, v4_mapped_prefix, 12) == 0)
        inet_ntop(AF_INET, addr + 12, out, PROXY_ADDR_TEXT_MAX);
    else
        inet_ntop(AF_INET6, addr, out, PROXY_ADDR_TEXT_MAX);
}

/* ------------------------------------------------------------------------ */
/* the set                                                                  */

int proxy_set_add(proxy_set *s, const char *cidr, char *err, size_t errlen)
{
    if (s->count >= PROXY_SET_MAX) {
        snprintf(err, errlen, "at most %d trusted proxy networks", PROXY_SET_MAX);
        return -1;
    }
    const char *slash = strchr(cidr, '/');
    size_t alen = slash ? (size_t)(slash - cidr) : strlen(cidr);
    proxy_net net = {.prefix = 128};
    bool v6 = memchr(cidr, ':', alen) != NULL;
    if (parse_ip(cidr, alen, v6, net.addr) != 0) {
        snprintf(err, errlen, "'%s' is not an IPv4 or IPv6 address or network", cidr);
        return -1;
    }
    if (slash != NULL) {
        const char *p = slash + 1;
        unsigned max = v6 ? 128 : 32, bits = 0;
        size_t n = strlen(p);
        bool ok = n >= 1 && n <= 3;
        for (size_t i = 0; ok && i < n; i++) {
            ok = is_digit(p[i]);
            bits = bits * 10 + (unsigned)(p[i] - '0');
        }
        if (!ok || bits > max) {
            snprintf(err, errlen, "'%s': the prefix length must be 0 to %u", cidr, max);
            return -1;
        }
        net.prefix = v6 ? bits : bits + 96;
    }
    for (unsigned bit = net.prefix; bit < 128; bit++) {
        if (net.addr[bit / 8] & (0x80u >> (bit % 8))) {
            snprintf(err, errlen, "'%s' has address bits set beyond its prefix length", cidr);
            return -1;
        }
    }
    s->nets[s->count++] = net;
    return 0;
}

static bool net_contains(const proxy_net *n, const uint8_t addr[16])
{
    /* IPv4 is held as ::ffff:a.b.c.d, inside such IPv6 networks as ::/0:
     * a network shorter than /96 was written as IPv6 and trusts no IPv4
     * peer (--trusted-proxy ::/0 is every IPv6 proxy, not every peer). */
    if (n->prefix < 96 && memcmp(addr, v4_mapped_prefix, 12) == 0)
        return false;
    unsigned full = n->prefix / 8, rest = n->prefix % 8;
    if (memcmp(n->addr, addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (n->addr[full] & mask) == (addr[full] & mask);
}

bool proxy_set_contains(const proxy_set *s, const uint8_t addr[16])
{
    for (size_t i = 0; i < s->count; i++)
        if (net_contains(&s->nets[i], addr))
            return true;
    return false;
}

/* ------------------------------------------------------------------------ */
/* header grammar                                                           */

static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static const char *skip_ows(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/* http or https, in any case; another well-formed scheme is NONE; anything
 * else is malformed (-1). */
static int parse_scheme(const char *v, size_t n, proxy_scheme *out)
{
    if (n == 4 && strncasecmp(v, "http", 4) == 0) {
        *out = PROXY_SCHEME_HTTP;
        return 0;
    }
    if (n == 5 && strncasecmp(v, "https", 5) == 0) {
        *out = PROXY_SCHEME_HTTPS;
        return 0;
    }
    /* RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
    if (n == 0 || !((v[0] | 0x20) >= 'a' && (v[0] | 0x20) <= 'z'))
        return -1;
    for (size_t i = 1; i < n; i++)
        if (!(((v[i] | 0x20) >= 'a' && (v[i] | 0x20) <= 'z') || is_digit(v[i]) || v[i] == '+' ||
              v[i] == '-' || v[i] == '.'))
            return -1;
    *out = PROXY_SCHEME_NONE;
    return 0;
}

/* "_" 1*( ALPHA / DIGIT / "." / "_" / "-" ) */
static bool valid_obfuscated(const char *v, size_t n)
{
    if (n < 2 || v[0] != '_')
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(((v[i] | 0x20) >= 'a' && (v[i] | 0x20) <= 'z') || is_digit(v[i]) || v[i] == '.' ||
              v[i] == '_' || v[i] == '-'))
            return false;
    return true;
}

/* RFC 7239 section 6: a node of for=. */
static int parse_node(const char *v, size_t n, proxy_hop *hop)
{
    const char *port = NULL;
    size_t name_len = n;
    if (n > 0 && v[0] == '[') {
        const char *close = memchr(v, ']', n);
        if (close == NULL || parse_ip(v + 1, (size_t)(close - v - 1), true, hop->addr) != 0)
            return -1;
        name_len = (size_t)(close - v) + 1;
        hop->known = true;
    } else {
        const char *colon = memchr(v, ':', n);
        name_len = colon ? (size_t)(colon - v) : n;
        if (name_len == 7 && strncasecmp(v, "unknown", 7) == 0)
            hop->known = false;
        else if (valid_obfuscated(v, name_len))
            hop->known = false;
        else if (parse_ip(v, name_len, false, hop->addr) == 0)
            hop->known = true;
        else
            return -1;
    }
    if (name_len < n) {
        if (v[name_len] != ':')
            return -1;
        port = v + name_len + 1;
        size_t plen = n - name_len - 1;
        if (!valid_port(port, plen) && !valid_obfuscated(port, plen))
            return -1;
    }
    return 0;
}

/* A token or a quoted-string (its quoted-pairs undone) into out. Returns
 * where it ends, or NULL when malformed or longer than cap. */
static const char *parse_value(const char *p, const char *end, char *out, size_t cap, size_t *len)
{
    size_t n = 0;
    if (p < end && *p == '"') {
        p++;
        for (;;) {
            if (p >= end)
                return NULL;
            char c = *p++;
            if (c == '"')
                break;
            if (c == '\\') {
                if (p >= end)
                    return NULL;
                c = *p++;
            }
            /* qdtext and quoted-pair: HTAB, SP, VCHAR, obs-text; no controls */
            if ((unsigned char)c < 0x20 && c != '\t')
                return NULL;
            if (c == 0x7f || n + 1 >= cap)
                return NULL;
            out[n++] = c;
        }
    } else {
        while (p < end && is_tchar(*p)) {
            if (n + 1 >= cap)
                return NULL;
            out[n++] = *p++;
        }
        if (n == 0)
            return NULL;
    }
    out[n] = '\0';
    *len = n;
    return p;
}

/* RFC 7239 section 4: 1#forwarded-element, each
 * [ forwarded-pair ] *( ";" [ forwarded-pair ] ). */
static int parse_forwarded(const char *text, proxy_chain *chain)
{
    const char *p = text, *end = text + strlen(text);
    chain->count = 0;
    while (p < end) {
        proxy_hop hop = {0};
        bool any = false, seen_for = false, seen_proto = false;
        for (;;) {
            p = skip_ows(p, end);
            if (p >= end || *p == ',')
                break;
            if (*p == ';') {
                p++;
                continue;
            }
            const char *name = p;
            while (p < end && is_tchar(*p))
                p++;
            size_t name_len = (size_t)(p - name);
            if (name_len == 0 || p >= end || *p != '=')
                return -1;
            char value[PROXY_ADDR_TEXT_MAX + 16];
            size_t vlen = 0;
            if ((p = parse_value(p + 1, end, value, sizeof value, &vlen)) == NULL)
                return -1;
            any = true;
            if (name_len == 3 && strncasecmp(name, "for", 3) == 0) {
                if (seen_for || parse_node(value, vlen, &hop) != 0)
                    return -1;
                seen_for = true;
            } else if (name_len == 5 && strncasecmp(name, "proto", 5) == 0) {
                if (seen_proto || parse_scheme(value, vlen, &hop.scheme) != 0)
                    return -1;
                seen_proto = true;
            }
            /* by=, host= and extensions are well-formed and not used. */
            p = skip_ows(p, end);
            if (p < end && *p != ';' && *p != ',')
                return -1;
        }
        if (p < end)
            p++; /* the comma */
        if (!any)
            continue; /* an empty list element */
        if (chain->count >= PROXY_HOPS_MAX)
            return -1;
        chain->hops[chain->count++] = hop;
    }
    return chain->count > 0 ? 0 : -1;
}

/* One X-Forwarded-For entry: IPv4, IPv4:port, IPv6, [IPv6], [IPv6]:port,
 * or "unknown". */
static int parse_xff_entry(const char *v, size_t n, proxy_hop *hop)
{
    if (n == 7 && strncasecmp(v, "unknown", 7) == 0) {
        hop->known = false;
        return 0;
    }
    hop->known = true;
    if (n > 0 && v[0] == '[') {
        const char *close = memchr(v, ']', n);
        if (close == NULL || parse_ip(v + 1, (size_t)(close - v - 1), true, hop->addr) != 0)
            return -1;
        size_t rest = n - (size_t)(close - v) - 1;
        return rest == 0 || (close[1] == ':' && valid_port(close + 2, rest - 1)) ? 0 : -1;
    }
    const char *colon = memchr(v, ':', n);
    if (colon != NULL && memchr(colon + 1, ':', n - (size_t)(colon - v) - 1) == NULL) {
        /* one colon: an IPv4 address and a port */
        return parse_ip(v, (size_t)(colon - v), false, hop->addr) == 0 &&
                       valid_port(colon + 1, n - (size_t)(colon - v) - 1)
                   ? 0
                   : -1;
    }
    return parse_ip(v, n, colon != NULL, hop->addr);
}

/* A comma-separated list with optional whitespace; each entry given to
 * take(). Empty entries are malformed: no proxy writes them. */
typedef int (*list_entry_fn)(const char *v, size_t n, void *user);

static int parse_list(const char *text, list_entry_fn take, void *user)
{
    const char *p = text, *end = text + strlen(text);
    for (;;) {
        p = skip_ows(p, end);
        const char *comma = strchr(p, ',');
        const char *stop = comma ? comma : end;
        const char *last = stop;
        while (last > p && (last[-1] == ' ' || last[-1] == '\t'))
            last--;
        if (last == p || take(p, (size_t)(last - p), user) != 0)
            return -1;
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}

typedef struct scheme_list {
    proxy_scheme schemes[PROXY_HOPS_MAX];
    size_t count;
} scheme_list;

static int take_scheme(const char *v, size_t n, void *user)
{
    scheme_list *l = user;
    if (l->count >= PROXY_HOPS_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar(v[i]))
            return -1;
    return parse_scheme(v, n, &l->schemes[l->count++]);
}

/* ------------------------------------------------------------------------ */
/* resolving                                                                */

/*
 * The client of a chain: from the right, skip the hops that are trusted
 * proxies; the first that is not is the client. A hop that did not say who
 * it is (unknown, obfuscated) stops the walk: the last address known, the
 * trusted proxy that received from it, stands for the client. When every
 * hop is a trusted proxy, the left-most is the client.
 */
static void pick_client(const proxy_set *s, const uint8_t peer[16], const proxy_chain *chain,
                        proxy_client *out, size_t *index)
{
    const uint8_t *known = peer;
    for (size_t i = chain->count; i-- > 0;) {
        const proxy_hop *hop = &chain->hops[i];
        if (!hop->known || !proxy_set_contains(s, hop->addr) || i == 0) {
            memcpy(out->addr, hop->known ? hop->addr : known, 16);
            *index = i;
            return;
        }
        known = hop->addr;
    }
}

/*
 * pick_client() for X-Forwarded-For, read from the right: only the entries
 * the walk reaches must be well-formed. Those left of the client are the
 * client's own to write (nginx's $proxy_add_x_forwarded_for appends to
 * what the client sent), so a client cannot, by sending garbage or a
 * long list, have its proxy taken for it. count is the number of entries.
 */
static int pick_xff_client(const proxy_set *s, const uint8_t peer[16], const char *text,
                           uint8_t client[16], size_t *index, size_t *count)
{
    const char *stop = text + strlen(text);
    size_t entries = 1;
    for (const char *c = text; (c = strchr(c, ',')) != NULL; c++)
        entries++;
    *count = entries;
    uint8_t known[16];
    memcpy(known, peer, 16);
    for (size_t i = entries; i-- > 0;) {
        const char *comma = i > 0 ? memrchr(text, ',', (size_t)(stop - text)) : NULL;
        const char *first = skip_ows(comma != NULL ? comma + 1 : text, stop);
        const char *last = stop;
        while (last > first && (last[-1] == ' ' || last[-1] == '\t'))
            last--;
        proxy_hop hop = {0};
        if (last == first || entries - i > PROXY_HOPS_MAX ||
            parse_xff_entry(first, (size_t)(last - first), &hop) != 0)
            return -1;
        if (!hop.known || !proxy_set_contains(s, hop.addr) || i == 0) {
            memcpy(client, hop.known ? hop.addr : known, 16);
            *index = i;
            return 0;
        }
        memcpy(known, hop.addr, 16);
        stop = comma;
    }
    return -1;
}

proxy_outcome proxy_resolve(const proxy_set *s, const uint8_t peer[16], const proxy_headers *h,
                            proxy_client *out)
{
    memset(out, 0, sizeof *out);
    memcpy(out->addr, peer, 16);
    bool any = h->forwarded != NULL || h->x_forwarded_for != NULL || h->x_forwarded_proto != NULL;
    out->via_proxy = s->count > 0 && proxy_set_contains(s, peer);
    if (!any)
        return PROXY_DIRECT;
    if (!out->via_proxy)
        return PROXY_UNTRUSTED;

    proxy_chain chain;
    size_t index = 0;
    if (h->forwarded != NULL) {
        if (parse_forwarded(h->forwarded, &chain) != 0)
            return PROXY_MALFORMED;
        pick_client(s, peer, &chain, out, &index);
        out->scheme = chain.hops[index].scheme;
        return PROXY_FORWARDED;
    }

    uint8_t client[16] = {0};
    size_t count = 0;
    if (h->x_forwarded_for != NULL &&
        pick_xff_client(s, peer, h->x_forwarded_for, client, &index, &count) != 0)
        return PROXY_MALFORMED;
    scheme_list schemes = {.count = 0};
    if (h->x_forwarded_proto != NULL &&
        parse_list(h->x_forwarded_proto, take_scheme, &schemes) != 0)
        return PROXY_MALFORMED;
    if (count > 0)
        memcpy(out->addr, client, 16);
    if (schemes.count > 0) {
        /* One scheme per address lines up with the chain; otherwise the
         * last, written by the proxy next to us, is the one to believe. */
        out->scheme =
            schemes.count == count ? schemes.schemes[index] : schemes.schemes[schemes.count - 1];
    }
    return PROXY_FORWARDED;
}

int proxy_join(char *buf, size_t cap, size_t *len, const char *value)
{
    size_t vlen = strlen(value);
    size_t sep = *len > 0 ? 2 : 0;
    size_t limit = cap < PROXY_HEADER_MAX + 1 ? cap : PROXY_HEADER_MAX + 1;
    if (*len + sep + vlen + 1 > limit)
        return -1;
    if (sep) {
        buf[(*len)++] = ',';
        buf[(*len)++] = ' ';
    }
    memcpy(buf + *len, value, vlen);
    *len += vlen;
    buf[*len] = '\0';
    return 0;
}

/*
 * X-Forwarded-For past PROXY_HEADER_MAX: the client is read from the right,
 * so the right-most entries that fit are kept, from the start of one; the
 * rest is what a client wrote before its proxy appended (a long list sent
 * to make the proxy's own entry unreadable).
 */
static void keep_right(char buf[PROXY_HEADER_MAX + 1], size_t *len, const char *value)
{
    size_t vlen = strlen(value);
    if (vlen + 2 < PROXY_HEADER_MAX) {
        size_t keep = *len < PROXY_HEADER_MAX - vlen - 2 ? *len : PROXY_HEADER_MAX - vlen - 2;
        memmove(buf, buf + *len - keep, keep);
        memcpy(buf + keep, ", ", 2);
        memcpy(buf + keep + 2, value, vlen);
        *len = keep + 2 + vlen;
    } else {
        memcpy(buf, value + vlen - PROXY_HEADER_MAX, PROXY_HEADER_MAX);
        *len = PROXY_HEADER_MAX;
    }
    const char *comma = memchr(buf, ',', *len);
    size_t from = comma != NULL ? (size_t)(comma - buf) + 1 : *len;
    memmove(buf, buf + from, *len - from);
    *len -= from;
    buf[*len] = '\0';
}

void proxy_fields_init(proxy_fields *f)
{
    memset(f->len, 0, sizeof f->len);
    memset(f->seen, 0, sizeof f->seen);
    memset(f->too_long, 0, sizeof f->too_long);
}

bool proxy_fields_add(proxy_fields *f, const char *name, const char *value)
{
    static const char *const names[PROXY_FIELD_COUNT] = {
        [PROXY_FIELD_FORWARDED] = "Forwarded",
        [PROXY_FIELD_X_FORWARDED_FOR] = "X-Forwarded-For",
        [PROXY_FIELD_X_FORWARDED_PROTO] = "X-Forwarded-Proto",
        [PROXY_FIELD_X_FORWARDED_HOST] = "X-Forwarded-Host",
    };
    for (int i = 0; i < PROXY_FIELD_COUNT; i++) {
        if (strcasecmp(name, names[i]) != 0)
            continue;
        f->seen[i] = true;
        if (!f->too_long[i] &&
            proxy_join(f->value[i], sizeof f->value[i], &f->len[i], value ? value : "") != 0) {
            if (i == PROXY_FIELD_X_FORWARDED_FOR)
                keep_right(f->value[i], &f->len[i], value ? value : "");
            else
                f->too_long[i] = true;
        }
        return true;
    }
    return false;
}

const char *proxy_fields_value(const proxy_fields *f, proxy_field which)
{
    return !f->seen[which] ? NULL : f->too_long[which] ? "" : f->value[which];
}
