#include "daemon/config.h"

#include "common/durable.h"
#include "daemon/writer.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <libpq-fe.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <strings.h>
#include <unistd.h>

#define CONFIG_HELP_WIDTH  79 /* --help wraps its lines here */
#define CONFIG_HELP_COLUMN 26 /* where the help of an option starts */
#define CONFIG_HELP_LINE   160
#define CONFIG_MAN_WIDTH   76     /* lines of the man page's source */
#define CONFIG_MAN_TEXT    4096   /* an option's text in receiptd(8), at most */
#define NO_BREAK           '\x01' /* a space --help does not wrap at */

typedef struct config_option config_option;

/* Parses value into the option's place in cfg; 0, or -1 with err set. */
typedef int (*config_parser)(config *cfg, const config_option *o, const char *value, char *err,
                             size_t errlen);
/* Sets a default that depends on other options, once they are all set. */
typedef void (*config_deriver)(config *cfg);
/* Empties a repeatable option's list. */
typedef void (*config_clearer)(config *cfg);

/* Flags of an option. */
#define CONFIG_COMMAND_LINE 1u   /* not for a configuration file: help, version, check */
#define CONFIG_REQUIRED     2u   /* must be given */
#define CONFIG_MAY_BE_OFF   4u   /* an address that "off" switches off */
#define CONFIG_REPEATABLE   8u   /* each time adds to a list (max: its length) */
#define CONFIG_SECRET       16u  /* its value may hold a password */
#define CONFIG_TWO_WORDS    32u  /* two words: on the command line, two arguments */
#define CONFIG_NAMES_DIR    64u  /* names a directory that must exist at start */
#define CONFIG_NAMES_FILE   128u /* names a file that must exist at start */

typedef enum config_section {
    SECTION_PROTOCOL,
    SECTION_TLS,
    SECTION_UPSTREAM,
    SECTION_STATE,
    SECTION_LIMITS,
    SECTION_OPERATIONS,
} config_section;

static const char *const section_titles[] = {
    [SECTION_PROTOCOL] = "Content and protocol",
    [SECTION_TLS] = "TLS and reverse proxies",
    [SECTION_UPSTREAM] = "Upstreams (in front of an existing site)",
    [SECTION_STATE] = "State",
    [SECTION_LIMITS] = "Limits",
    [SECTION_OPERATIONS] = "Operations",
};

/*
 * One option. In help and doc, %D stands for the default (value, or shown
 * when the default is worked out at start) and %M for max.
 */
struct config_option {
    const char *name; /* --NAME on the command line; NAME in a configuration file */
    const char *arg;  /* what its value is called; NULL: it takes none */
    config_section section;
    config_parser parse;
    size_t offset, size;                /* its place in struct config */
    unsigned long long min, max, scale; /* numbers: a value is kept times scale (0: 1);
                                           flags: min is what they set; repeatable: max */
    const char *unit;                   /* how an error calls a number: "a whole number", "MiB" */
    const char *value;                  /* the default, parsed as if given; NULL: none */
    config_deriver derive;              /* or a default worked out once the others are set */
    config_clearer clear;               /* repeatable: empties the list */
    const char *shown;                  /* how --help and the man page name a derived default */
    unsigned flags;
    const char *help; /* --help: a phrase, wrapped as it needs */
    const char *doc;  /* receiptd(8): roff text, inline font escapes only */
};

static int parse_string(config *, const config_option *, const char *, char *, size_t);
static int parse_address(config *, const config_option *, const char *, char *, size_t);
static int parse_number(config *, const config_option *, const char *, char *, size_t);
static int parse_flag(config *, const config_option *, const char *, char *, size_t);
static int parse_level(config *, const config_option *, const char *, char *, size_t);
static int parse_header(config *, const config_option *, const char *, char *, size_t);
static int parse_path_rule(config *, const config_option *, const char *, char *, size_t);
static int parse_public_url(config *, const config_option *, const char *, char *, size_t);
static int parse_server_id(config *, const config_option *, const char *, char *, size_t);
static int parse_trusted_proxy(config *, const config_option *, const char *, char *, size_t);
static void clear_headers(config *cfg);
static void clear_path_rules(config *cfg);
static void clear_trusted_proxies(config *cfg);
static int parse_upstream(config *, const config_option *, const char *, char *, size_t);
static int parse_upstream_for(config *, const config_option *, const char *, char *, size_t);
static int parse_upstream_host(config *, const config_option *, const char *, char *, size_t);
static void clear_upstreams_for(config *cfg);
static void derive_threads(config *cfg);
static void derive_public_url(config *cfg);
static void derive_server_id(config *cfg);
static void derive_node_id(config *cfg);

#define AT(member)          .offset = offsetof(config, member), .size = sizeof(((config *)0)->member)
#define NUMBER(lo, hi)      .parse = parse_number, .min = (lo), .max = (hi)
#define SETS(member, value) AT(member), .parse = parse_flag, .min = (value)

/* Every option of receiptd, in the order of --help and the man page. */
static const config_option options[] = {
    {"root", "DIR", SECTION_PROTOCOL, parse_string, AT(root), .flags = CONFIG_NAMES_DIR,
     .help = "directory to serve (required unless an upstream is given)",
     .doc = "Directory to serve (required unless \\fB\\-\\-upstream\\fR or "
            "\\fB\\-\\-upstream\\-for\\fR is given; it then answers what no upstream claims). "
            "Nothing outside it is ever served: paths resolve with openat2(2) and "
            "RESOLVE_BENEATH; dot segments and dotfiles answer 404."},
    {"listen", "HOST:PORT", SECTION_PROTOCOL, parse_address, AT(listen), .value = "127.0.0.1:8080",
     .help = "public listener (default %D)",
     .doc = "Public listener (default %D). \\fIHOST\\fR is an address (0.0.0.0 for every IPv4 "
            "one) or a name (its first address); an IPv6 address, in brackets, takes "
            "IPv6 clients only (\\fB[::]:443\\fR serves no IPv4 client). An address another "
            "process listens on is refused at start (\\fBAddress already in use\\fR), on "
            "every listener: it is never shared with it."},
    {"admin-listen", "HOST:PORT", SECTION_PROTOCOL, parse_address, AT(admin_listen),
     .value = "127.0.0.1:8091", .flags = CONFIG_MAY_BE_OFF,
     .help = "admin listener: dashboard, /metrics and the API (default %D; 'off' disables it)",
     .doc = "Admin listener with the dashboard, /metrics and the JSON API (default %D; \\fBoff\\fR "
            "disables it). Every route but the dashboard page, its assets and /metrics requires "
            "the bearer token in STATE_DIR/admin-token."},
    {"public-url", "URL", SECTION_PROTOCOL, parse_public_url, AT(public_url),
     .derive = derive_public_url, .shown = "http://LISTEN, or https://LISTEN with --tls-cert",
     .help = "base URL clients reach this server at; the confirm URL in plug-in data is "
             "URL/_receipt/confirm (default %D)",
     .doc = "Base URL clients reach this server at; plug-in data names URL/_receipt/confirm "
            "(default %D; the port left out when it is the scheme's own, 80 or 443, and a "
            "wildcard address replaced by the host name)."},
    {"server-id", "ID", SECTION_PROTOCOL, parse_server_id, AT(server_id),
     .derive = derive_server_id, .shown = "the host of the public URL",
     .help = "name of the site in the ledger, plug-in data and receipts: the same on every "
             "node that serves it (default: %D)",
     .doc = "Name of the site in the ledger, plug-in data and receipts (default: %D). Every "
            "receiptd node that serves the site, with one ledger and the same keys, has the "
            "same."},
    {"node-id", "ID", SECTION_PROTOCOL, parse_server_id, AT(node_id), .derive = derive_node_id,
     .shown = "the host name",
     .help = "name of this node of the site, in plug-in data, receipts and the ledger's "
             "record of each step (default: %D)",
     .doc = "Name of this receiptd node of the site (default: %D): plug-in data and receipts "
            "carry it as server.node, and the ledger records the node that issued, bound and "
            "confirmed each delivery. Give each node its own."},
    {"ticket-ttl", "SECONDS", SECTION_PROTOCOL, NUMBER(1, 10ull * 365 * 24 * 3600),
     AT(ticket_ttl_s), .value = "604800",
     .help = "how long a delivery may be confirmed (default %D)",
     .doc = "How long a delivery may be confirmed, in seconds (default %D)."},
    {"no-inject", NULL, SECTION_PROTOCOL, SETS(inject, false),
     .help = "do not embed the agent element into HTML pages",
     .doc = "Do not embed the agent element into HTML pages."},
    {"track", "GLOB", SECTION_PROTOCOL, parse_path_rule, .min = 1, .max = CONFIG_PATH_RULES_MAX,
     .flags = CONFIG_REPEATABLE, .clear = clear_path_rules,
     .help = "make every 200 for content paths matching GLOB a delivery ('*' within a "
             "segment, '**' across; repeatable, the last --track or --untrack that matches wins)",
     .doc = "Make every 200 for a content path that GLOB matches a delivery, whatever the "
            "request's fetch metadata says: a subresource becomes a delivery of kind "
            "\\fBtracked\\fR. In GLOB, \\fB*\\fR matches any characters but "
            "\\fB/\\fR, \\fB**\\fR any characters at all and \\fB?\\fR one "
            "byte but \\fB/\\fR; the path is the canonical content path, such as "
            "/docs/index.html for /docs/. Repeatable; with \\fB\\-\\-untrack\\fR, at most "
            "%M in all, and the last of them that matches a path decides. Example: "
            "\\fB\\-\\-track '/img/charts/**'\\fR."},
    {"untrack", "GLOB", SECTION_PROTOCOL, parse_path_rule, .min = 0, .max = CONFIG_PATH_RULES_MAX,
     .flags = CONFIG_REPEATABLE, .clear = clear_path_rules,
     .help = "serve content paths matching GLOB without deliveries (repeatable)",
     .doc = "Serve content paths that GLOB matches without deliveries, whatever the request "
            "(devices included): no row, no ticket, no Receipt headers. Example: "
            "\\fB\\-\\-untrack '/status/**' \\-\\-track '/status/notice.html'\\fR "
            "tracks one page of an untracked directory."},
    {"track-subresources", NULL, SECTION_PROTOCOL, SETS(track_subresources, true),
     .help = "make every 200 to a GET a delivery, a page's images, styles and scripts too",
     .doc = "Make every 200 to a GET a delivery, a page's images, styles and scripts included "
            "(kind \\fBtracked\\fR), as before receiptd read fetch metadata."},
    {"no-evidence-log", NULL, SECTION_PROTOCOL, SETS(evidence_log, false),
     .help = "keep no evidence log: receipts carry no proof and the deliveries from now on "
             "are not in the log (for measuring what it costs)",
     .doc = "Keep no evidence log (docs/evidence.md): confirmations are answered without a "
            "proof, and the ledger events from now on are not in the log, so that "
            "\\fBreceiptd ledger verify\\fR reports their rows as not logged. For measuring "
            "what the log costs; not for a server whose deliveries must be proved."},
    {"add-header", "NAME:VALUE", SECTION_PROTOCOL, parse_header, .max = CONFIG_EXTRA_HEADERS_MAX,
     .flags = CONFIG_REPEATABLE, .clear = clear_headers,
     .help = "add a header to every content response (repeatable)",
     .doc = "Add a header to every content response, e.g. a Content-Security-Policy "
            "(repeatable, at most %M)."},

    {"tls-cert", "FILE", SECTION_TLS, parse_string, AT(tls_cert), .flags = CONFIG_NAMES_FILE,
     .help = "serve HTTPS with this PEM certificate, its chain after it (with --tls-key)",
     .doc =
         "Serve HTTPS on the public listener with this PEM certificate, followed by the "
         "intermediate certificates of its chain, each after the one it signed (with "
         "\\fB\\-\\-tls\\-key\\fR). TLS 1.2 and 1.3 only, with ECDHE key exchange and AES-GCM or "
         "ChaCha20-Poly1305. TLS 1.3 clients resume sessions with session tickets (a fresh "
         "ECDHE exchange each time), whose keys live in memory only; TLS 1.2 clients get no "
         "tickets. Read again on SIGHUP: new connections get the new pair (and new ticket "
         "keys), open ones keep theirs, and a pair that does not load, or whose certificate "
         "has expired or is not valid yet while the one in use is valid, is logged and the "
         "old one kept. At start-up, and with \\fB\\-\\-check\\fR and "
         "\\fB\\-\\-check\\-config\\fR, a certificate that has expired or is not valid yet "
         "is refused, with its file and validity dates."},
    {"tls-key", "FILE", SECTION_TLS, parse_string, AT(tls_key), .flags = CONFIG_NAMES_FILE,
     .help = "the private key of --tls-cert (PEM, unencrypted, not readable by others)",
     .doc = "The private key of \\fB\\-\\-tls\\-cert\\fR (PEM, unencrypted). Refused when others "
            "may read it or group or others may change it: mode 0600, or 0640 with a group of "
            "the server's user."},
    {"redirect-http", "HOST:PORT", SECTION_TLS, parse_address, AT(redirect_http),
     .flags = CONFIG_MAY_BE_OFF,
     .help = "also listen for plain HTTP here, answering 308 to the https URL (with --tls-cert)",
     .doc = "Also listen for plain HTTP on this address and answer every request with 308 "
            "Permanent Redirect to the same path and query under the public URL (with "
            "\\fB\\-\\-tls\\-cert\\fR and an https public URL); a request target in "
            "absolute form (\\fBhttp://\\fIhost\\fB/\\fIpath\\fR) keeps its path and query. "
            "One thread serves it. \\fB\\-\\-header\\-timeout\\fR holds there, and a client "
            "address holds \\fB\\-\\-per\\-ip\\-connections\\fR connections (64 when that "
            "is 0; trusted proxies exempt)."},
    {"admin-tls-cert", "FILE", SECTION_TLS, parse_string, AT(admin_tls_cert),
     .flags = CONFIG_NAMES_FILE,
     .help = "serve the admin listener over HTTPS with this certificate (with --admin-tls-key)",
     .doc = "Serve the admin listener over HTTPS with this certificate and chain (with "
            "\\fB\\-\\-admin\\-tls\\-key\\fR), read again on SIGHUP like "
            "\\fB\\-\\-tls\\-cert\\fR."},
    {"admin-tls-key", "FILE", SECTION_TLS, parse_string, AT(admin_tls_key),
     .flags = CONFIG_NAMES_FILE, .help = "the private key of --admin-tls-cert",
     .doc = "The private key of \\fB\\-\\-admin\\-tls\\-cert\\fR, under the rules of "
            "\\fB\\-\\-tls\\-key\\fR."},
    {"trusted-proxy", "CIDR", SECTION_TLS, parse_trusted_proxy, .max = PROXY_SET_MAX,
     .flags = CONFIG_REPEATABLE, .clear = clear_trusted_proxies,
     .help = "believe Forwarded and X-Forwarded-For from peers in this network (repeatable)",
     .doc = "A network of reverse proxies (\\fIADDRESS\\fR or \\fIADDRESS\\fB/\\fIPREFIX\\fR, IPv4 "
            "or IPv6; an IPv6 network such as ::/0 holds no IPv4 peer) whose Forwarded "
            "(RFC 7239), or else X-Forwarded-For and "
            "X-Forwarded-Proto, headers are believed (repeatable, at most %M). The client is "
            "the right-most address in them that is not itself a trusted proxy: the ledger, "
            "plug-in data, the admin API and the access log record it. From any other peer "
            "these headers are ignored; a malformed value is ignored (the peer is the client) "
            "and counted in /metrics. Trusted proxies are exempt from "
            "\\fB\\-\\-per\\-ip\\-connections\\fR, which limits the requests in progress per "
            "forwarded address instead."},
    {"upstream", "URL", SECTION_UPSTREAM, parse_upstream,
     .help = "pass requests to the application at URL (http://HOST[:PORT][/PATH], https://... "
             "or unix:/SOCKET) and record what it answers",
     .doc = "Pass every request outside /_receipt/ that no \\fB\\-\\-upstream\\-for\\fR "
            "claims to the HTTP application at \\fIURL\\fR: \\fBhttp://\\fIHOST\\fR[:\\fIPORT\\fR]"
            "[\\fI/PATH\\fR], \\fBhttps://\\fR... (the certificate is verified) or "
            "\\fBunix:\\fI/SOCKET\\fR[:\\fI/PATH\\fR]. A 200 to a GET is a delivery under "
            "the rules of a file's, its content the path with its query; everything else "
            "passes through untracked. With a "
            "\\fIPATH\\fR, it replaces the matched prefix, as with nginx's proxy_pass, "
            "joined to the rest of the path by one / (/x goes to \\fI/PATH\\fR/x)."},
    {"upstream-for", "PREFIX URL", SECTION_UPSTREAM, parse_upstream_for,
     .max = CONFIG_UPSTREAMS_MAX, .flags = CONFIG_REPEATABLE | CONFIG_TWO_WORDS,
     .clear = clear_upstreams_for,
     .help = "pass requests whose path starts with PREFIX to URL; the longest prefix wins "
             "(repeatable)",
     .doc = "Pass requests whose path starts with \\fIPREFIX\\fR (a plain string prefix of the "
            "decoded path: end it with / to claim a directory) to \\fIURL\\fR, as "
            "\\fB\\-\\-upstream\\fR does; the longest matching prefix wins (repeatable, at "
            "most %M). Two arguments on the command line; one line "
            "\\fBupstream\\-for\\fR \\fIPREFIX URL\\fR in a configuration file."},
    {"upstream-host", "HOST", SECTION_UPSTREAM, parse_upstream_host,
     .help = "Host header sent upstream (default: the client's; 'upstream': the upstream URL's)",
     .doc = "The Host header upstreams get (default: the client's, as received); "
            "\\fBupstream\\fR sends each upstream the host and port of its own URL."},
    {"upstream-timeout", "SECONDS", SECTION_UPSTREAM, NUMBER(1, 3600), AT(upstream_timeout_s),
     .value = "60",
     .help = "give up on an upstream that does not connect or send for this long: 504 "
             "(default %D)",
     .doc = "How long an upstream may take to accept the connection, and then to send the next "
            "bytes of its answer, before the request is answered 504 (default %D)."},
    {"upstream-ca", "FILE", SECTION_UPSTREAM, parse_string, AT(upstream_ca),
     .flags = CONFIG_NAMES_FILE,
     .help = "certificate authorities for https upstreams, PEM (default: the system's)",
     .doc = "Certificate authorities, in PEM, that https upstreams' certificates are verified "
            "against (default: the system's). A file that cannot be read or holds no "
            "certificate stops the start."},
    {"proxy-buffer", "KIB", SECTION_UPSTREAM, NUMBER(4, 1024 * 1024), AT(proxy_buffer),
     .scale = 1024, .unit = "KiB", .value = "1024",
     .help = "memory per tracked upstream answer; beyond it, a file in --temp-dir (default %D)",
     .doc = "Memory a tracked upstream answer is read into, in KiB (default %D); a longer one "
            "continues in a file in \\fB\\-\\-temp\\-dir\\fR."},
    {"proxy-max-body", "MIB", SECTION_UPSTREAM, NUMBER(1, 1024 * 1024), AT(proxy_max_body),
     .scale = 1024 * 1024, .unit = "MiB", .value = "1024",
     .help = "largest tracked upstream answer (past it: 502) and request body (413) (default "
             "%D)",
     .doc = "The largest tracked upstream answer, in MiB (default %D): a longer one is answered "
            "502. Request bodies passed to an upstream have the same limit (413)."},
    {"temp-dir", "DIR", SECTION_UPSTREAM, parse_string, AT(temp_dir), .value = "/var/tmp",
     .flags = CONFIG_NAMES_DIR,
     .help = "where tracked upstream answers longer than --proxy-buffer are kept while they "
             "arrive (default %D)",
     .doc = "Where tracked upstream answers longer than \\fB\\-\\-proxy\\-buffer\\fR are "
            "kept while they arrive (default %D); unnamed files (O_TMPFILE) that vanish with the "
            "request. Keep it off the ledger's disk."},

    {"state-dir", "DIR", SECTION_STATE, parse_string, AT(state_dir), .value = "/var/lib/receiptd",
     .help = "keys, admin token and the default ledger (default %D; mode 0700)",
     .doc = "Keys, admin token and the default ledger (default %D). Created with mode 0700 on "
            "first start; receiptd refuses to start when the directory is accessible to others "
            "or server-keys.json to anyone but its owner."},
    {"ledger", "URL", SECTION_STATE, parse_string, AT(ledger_url), .flags = CONFIG_SECRET,
     .shown = "sqlite:STATE_DIR/ledger.sqlite",
     .help = "sqlite:PATH (default %D), or PostgreSQL: postgresql://USER@HOST:PORT/DB or a "
             "libpq key=value string; a password best from PGPASSWORD or ~/.pgpass (never "
             "logged)",
     .doc = "The ledger: a SQLite file, \\fBsqlite:\\fIPATH\\fR, or a PostgreSQL database, "
            "which several receiptd nodes may share, named by a libpq URL "
            "(\\fIpostgresql://USER@HOST:PORT/DB\\fR) or key/value string. Its password "
            "comes from the URL, \\fBPGPASSWORD\\fR or \\fB~/.pgpass\\fR, and is never "
            "logged; a database that cannot be reached at start is waited for. See "
            "docs/operations.md. Default: %D."},

    {"threads", "N", SECTION_LIMITS, NUMBER(1, 256), AT(threads), .derive = derive_threads,
     .shown = "the number of CPUs", .help = "HTTP worker threads (default: %D)",
     .doc = "HTTP worker threads (default: %D)."},
    {"max-connections", "N", SECTION_LIMITS, NUMBER(1, 1000000), AT(max_connections),
     .value = "10000", .help = "open connections at most (default %D)",
     .doc = "Open connections at most (default %D); the open file limit is raised to fit."},
    {"per-ip-connections", "N", SECTION_LIMITS, NUMBER(0, 1000000), AT(per_ip_connections),
     .value = "0",
     .help = "connections per client address (default %D: no limit); behind a trusted proxy, "
             "requests in progress per forwarded address",
     .doc = "Connections per client address (default %D, no limit). Trusted proxies "
            "(\\fB\\-\\-trusted\\-proxy\\fR) are exempt; for the clients behind them, this many "
            "requests in progress per forwarded address, and 429 past it. The "
            "\\fB\\-\\-redirect\\-http\\fR listener takes it too (64 when it is 0)."},
    {"idle-timeout", "SECONDS", SECTION_LIMITS, NUMBER(1, 86400), AT(idle_timeout_s), .value = "30",
     .help = "close a connection idle this long (default %D)",
     .doc = "Close a connection idle this long (default %D)."},
    {"header-timeout", "SECONDS", SECTION_LIMITS, NUMBER(1, 3600), AT(header_timeout_s),
     .value = "10",
     .help = "a request's headers must be complete this long after its start, however "
             "slowly they trickle (default %D)",
     .doc = "A request's headers must be complete within this time (default %D), counted from "
            "the connection's start for its first request and from the request line for a "
            "later one; a client that trickles them is closed, whatever the idle timeout. It "
            "holds on every listener (public, admin, redirect)."},
    {"min-body-rate", "BYTES", SECTION_LIMITS, NUMBER(0, 1000000000), AT(min_body_rate),
     .value = "500",
     .help = "a request body must arrive at this many bytes per second on average, after a "
             "first --header-timeout (default %D; 0: no minimum)",
     .doc = "A request body must arrive at this many bytes per second on average, after a "
            "first \\-\\-header\\-timeout (default %D; 0 for no minimum); a slower one is "
            "closed."},
    {"connection-memory", "BYTES", SECTION_LIMITS, NUMBER(4096, 1024 * 1024), AT(connection_memory),
     .value = "16384",
     .help = "bytes per connection for the request line, headers and buffers; larger headers "
             "get 431 (default %D)",
     .doc = "Memory per connection for the request line, headers and buffers (default %D). "
            "A request whose line and header fields, plus 80 bytes for each field, cookie and "
            "query argument, come within 2 KiB of it (3 bytes more for each byte of a content "
            "path past its first 64) is answered 431, since the answer's own header block needs "
            "that room; each idle connection keeps about this much resident, plus about 1 KB."},
    {"queue", "N", SECTION_LIMITS, NUMBER(16, WRITER_QUEUE_MAX), AT(queue_capacity),
     .value = "4096",
     .help = "ledger events waiting at most; past it deliveries wait, then get 503 (default %D)",
     .doc = "Ledger events waiting at most (default %D). A delivery that finds the queue full "
            "waits up to 250 ms for room, then is answered 503 with Retry-After: a burst costs "
            "latency, and only a ledger that stays behind costs errors. The queue bounds how "
            "long a delivery's row waits to be durable (4,096 events are about 0.1 s of the "
            "writer's work on a small machine). The recovery file reserves room for this many "
            "events plus five batches, at most 1 KB each."},
    {"batch", "N", SECTION_LIMITS, NUMBER(1, WRITER_BATCH_MAX), AT(batch_max), .value = "1024",
     .help = "ledger events per commit at most (default %D)",
     .doc = "Ledger events per commit at most (default %D)."},
    {"cache-size", "MIB", SECTION_LIMITS, NUMBER(0, 64 * 1024), AT(cache_bytes),
     .scale = 1024 * 1024, .unit = "MiB", .value = "64",
     .help = "memory for small hot files (default %D)",
     .doc = "Memory for small hot files, in MiB (default %D)."},
    {"shutdown-grace", "SECONDS", SECTION_LIMITS, NUMBER(0, 3600), AT(shutdown_grace_s),
     .value = "10",
     .help = "at SIGTERM, time for requests in flight and for a failing ledger; then what "
             "it has not taken goes to the recovery file (default %D)",
     .doc = "At SIGTERM, the time requests in flight get to finish and a failing ledger gets "
            "to come back (default %D); ledger events it still has not taken then go to "
            "STATE_DIR/ledger-recovery, which the next start applies."},

    {"access-log", "FILE", SECTION_OPERATIONS, parse_string, AT(access_log),
     .help = "combined-format access log (reopened on SIGHUP)",
     .doc = "Combined-format access log, reopened on SIGHUP."},
    {"log-level", "LEVEL", SECTION_OPERATIONS, parse_level, AT(level), .value = "info",
     .help = "debug, info, warn or error (default %D)",
     .doc = "\\fBdebug\\fR, \\fBinfo\\fR, \\fBwarn\\fR or \\fBerror\\fR (default %D); the log goes "
            "to standard error."},
    {"config", "FILE", SECTION_OPERATIONS, parse_string, AT(config_file),
     .flags = CONFIG_COMMAND_LINE,
     .help = "read options from FILE first, NAME VALUE a line; the command line wins",
     .doc =
         "Read options from \\fIFILE\\fR first: one \\fINAME VALUE\\fR a line, with the names of "
         "the options without their dashes; a flag alone, or \\fINAME\\fB yes\\fR or "
         "\\fINAME\\fB no\\fR; the value is the rest of the line as written, spaces included, "
         "without quotes; a line that starts with \\fB#\\fR is a comment (a \\fB#\\fR after a "
         "value is part of it). An option given on "
         "the command line replaces the file's value (for a repeatable option, the file's "
         "whole list; \\fBtrack\\fR and \\fBuntrack\\fR are one list). An unknown name, a value "
         "given twice or a bad value is an error that "
         "names the file and the line. The file is refused when anyone but its owner may "
         "change it: when it is writable by all, or by a group that holds another user than "
         "its owner (\\fBchmod g\\-w,o\\-w\\fR \\fIFILE\\fR); a group of the owner alone, "
         "as a umask of 002 leaves a user's files, is fine. It is refused when its owner is "
         "neither root nor the user receiptd runs as (\\fBchown root\\fR \\fIFILE\\fR), "
         "and when others may read it while it holds a password. The same checks run under "
         "\\fB\\-\\-check\\fR and \\fB\\-\\-check\\-config\\fR. Changes take effect "
         "at restart."},
    {"check", NULL, SECTION_OPERATIONS, SETS(check_only, true), .flags = CONFIG_COMMAND_LINE,
     .help = "run start-up's checks of the configuration and state, and a full "
             "integrity check of the ledger; change nothing, then exit",
     .doc = "Run the checks of start-up (root, state directory, keys, admin token, ledger "
            "ownership and schema, recovery file and its reservation, the access log opened "
            "for appending, the --temp-dir of upstreams, the certificates) and a full "
            "integrity check of the ledger (its counts recounted from its rows too), and print "
            "start-up's warnings; change nothing but "
            "the access log, which is created if missing, as start-up would; exit 0, 1 when a "
            "check fails, or 2 for a usage error (in the file: FILE:LINE)."},
    {"check-config", NULL, SECTION_OPERATIONS, SETS(check_quick, true),
     .flags = CONFIG_COMMAND_LINE,
     .help = "run --check's checks but the ledger's full integrity check, which reads "
             "all of it (the check before a reload); change nothing, then exit",
     .doc = "Run the checks of \\fB--check\\fR but the full integrity check of the ledger, "
            "which reads every page of it (minutes for a ledger of tens of gigabytes): the "
            "ledger is opened and its schema and ownership checked, as start-up does. The "
            "check that \\fBsystemctl reload\\fR runs before it signals receiptd (the "
            "shipped unit's \\fBExecReload\\fR). Exit status as \\fB--check\\fR."},
    {"help", NULL, SECTION_OPERATIONS, .flags = CONFIG_COMMAND_LINE, .help = "this text",
     .doc = "Print the options."},
    {"version", NULL, SECTION_OPERATIONS, .flags = CONFIG_COMMAND_LINE, .help = "the version",
     .doc = "Print the version."},
};

#define OPTION_COUNT (sizeof options / sizeof options[0])
_Static_assert(OPTION_COUNT <= 64, "config.given has a bit per option");

static const char usage_head[] =
    "usage: receiptd --root DIR [options]\n"
    "       receiptd --upstream URL [--root DIR] [options]\n"
    "       receiptd report [options]      (see receiptd report --help)\n"
    "       receiptd ledger copy|compare|verify  (see receiptd ledger --help)\n"
    "       receiptd evidence DELIVERY_ID  (see receiptd evidence --help)\n"
    "       receiptd keys show|export|import|rotate  (see receiptd keys --help)\n"
    "\n"
    "Serves the files under DIR, or stands in front of the application at URL, over\n"
    "HTTP or HTTPS and records every delivery in a ledger.\n";

static const char usage_tail[] =
    "\n"
    "SIGHUP reads the TLS certificates and keys again and reopens the access log;\n"
    "other changes need a restart (receiptd(8), SIGNALS).\n"
    "\n"
    "Exit status: 0 after a clean shutdown (SIGTERM, SIGINT) or a passing --check,\n"
    "1 when the server cannot start or the ledger failed for good, 2 for a usage\n"
    "error, 3 when ledger events were lost (the log gives the count).\n";

static void *place(config *cfg, const config_option *o)
{
    return (char *)cfg + o->offset;
}

static const config_option *option_named(const char *name)
{
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        if (strcmp(options[i].name, name) == 0)
            return &options[i];
    }
    return NULL;
}

/* ---- the parsers ---------------------------------------------------------- */

static int parse_string(config *cfg, const config_option *o, const char *value, char *err,
                        size_t errlen)
{
    char **slot = place(cfg, o);
    char *copy = strdup(value);
    if (copy == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    free(*slot);
    *slot = copy;
    return 0;
}

/* A decimal number in [min, max]; returns 0 or -1. */
static int number_in(const char *text, unsigned long long min, unsigned long long max,
                     unsigned long long *out)
{
    if (text == NULL || !isdigit((unsigned char)text[0]))
        return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_number(config *cfg, const config_option *o, const char *value, char *err,
                        size_t errlen)
{
    unsigned long long v;
    if (number_in(value, o->min, o->max, &v) != 0) {
        snprintf(err, errlen, "--%s '%s': expected %s from %llu to %llu", o->name, value,
                 o->unit != NULL ? o->unit : "a whole number", o->min, o->max);
        return -1;
    }
    v *= o->scale != 0 ? o->scale : 1;
    if (o->size == sizeof(unsigned)) {
        unsigned narrow = (unsigned)v;
        memcpy(place(cfg, o), &narrow, sizeof narrow);
    } else {
        uint64_t wide = v;
        memcpy(place(cfg, o), &wide, sizeof wide);
    }
    return 0;
}

static int parse_flag(config *cfg, const config_option *o, const char *value, char *err,
                      size_t errlen)
{
    *(bool *)place(cfg, o) = o->min != 0;
    return 0;
}

static int parse_level(config *cfg, const config_option *o, const char *value, char *err,
                       size_t errlen)
{
    if (log_level_parse(value, place(cfg, o)) != 0) {
        snprintf(err, errlen, "--%s '%s': use debug, info, warn or error", o->name, value);
        return -1;
    }
    return 0;
}

int config_parse_hostport(const char *text, struct sockaddr_storage *addr, socklen_t *len,
                          char *err, size_t errlen)
{
    char host[CONFIG_HOSTPORT_MAX + 1];
    const char *port_text;
    size_t n = strlen(text);
    if (n == 0 || n > CONFIG_HOSTPORT_MAX) {
        snprintf(err, errlen, "'%s' is not HOST:PORT", text);
        return -1;
    }
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':') {
            snprintf(err, errlen, "'%s' is not [IPV6]:PORT", text);
            return -1;
        }
        memcpy(host, text + 1, (size_t)(close - text - 1));
        host[close - text - 1] = '\0';
        port_text = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon == NULL) {
            snprintf(err, errlen, "'%s' is not HOST:PORT", text);
            return -1;
        }
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = '\0';
        port_text = colon + 1;
    }
    unsigned long long port;
    if (number_in(port_text, 0, 65535, &port) != 0) {
        snprintf(err, errlen, "'%s': the port must be a number from 0 to 65535", text);
        return -1;
    }

    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host[0] != '\0' ? host : NULL, port_text, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(err, errlen, "cannot resolve '%s': %s", host, gai_strerror(rc));
        return -1;
    }
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int parse_address(config *cfg, const config_option *o, const char *value, char *err,
                         size_t errlen)
{
    config_address *a = place(cfg, o);
    if ((o->flags & CONFIG_MAY_BE_OFF) && strcmp(value, "off") == 0) {
        memset(a, 0, sizeof *a);
        return 0;
    }
    size_t n = strlen(value);
    if (n > CONFIG_HOSTPORT_MAX) {
        snprintf(err, errlen, "--%s is too long", o->name);
        return -1;
    }
    if (config_parse_hostport(value, &a->addr, &a->len, err, errlen) != 0)
        return -1;
    memcpy(a->text, value, n + 1);
    return 0;
}

static int parse_header(config *cfg, const config_option *o, const char *arg, char *err,
                        size_t errlen)
{
    const char *colon = strchr(arg, ':');
    if (colon == NULL || colon == arg) {
        snprintf(err, errlen, "--%s '%s': expected NAME:VALUE", o->name, arg);
        return -1;
    }
    for (const char *p = arg; p < colon; p++) {
        /* RFC 9110 token characters */
        if (!isalnum((unsigned char)*p) && strchr("!#$%&'*+-.^_`|~", *p) == NULL) {
            snprintf(err, errlen, "--%s '%s': invalid header name", o->name, arg);
            return -1;
        }
    }
    const char *value = colon + 1;
    while (*value == ' ' || *value == '\t')
        value++;
    for (const char *p = value; *p; p++) {
        if ((unsigned char)*p < 0x20 && *p != '\t') {
            snprintf(err, errlen, "--%s '%s': control character in the value", o->name, arg);
            return -1;
        }
    }
    if (cfg->header_count == o->max) {
        snprintf(err, errlen, "at most %llu --%s options", o->max, o->name);
        return -1;
    }
    config_header *h = &cfg->headers[cfg->header_count];
    h->name = strndup(arg, (size_t)(colon - arg));
    h->value = strdup(value);
    if (h->name == NULL || h->value == NULL) {
        free(h->name);
        free(h->value);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    cfg->header_count++;
    return 0;
}

/* A --track or --untrack glob: a content path pattern without spaces or
 * control characters. */
static int parse_path_rule(config *cfg, const config_option *o, const char *glob, char *err,
                           size_t errlen)
{
    size_t n = strlen(glob);
    if (n == 0 || n > CONFIG_GLOB_MAX || (glob[0] != '/' && glob[0] != '*')) {
        snprintf(err, errlen, "--%s '%s': expected a path pattern that starts with / or *", o->name,
                 glob);
        return -1;
    }
    for (const char *p = glob; *p; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p == 0x7f) {
            snprintf(err, errlen, "--%s '%s': a space or control character", o->name, glob);
            return -1;
        }
    }
    if (cfg->path_rule_count == o->max) {
        snprintf(err, errlen, "at most %llu --track and --untrack options in all", o->max);
        return -1;
    }
    config_path_rule *r = &cfg->path_rules[cfg->path_rule_count];
    r->glob = strdup(glob);
    if (r->glob == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    r->track = o->min != 0;
    cfg->path_rule_count++;
    return 0;
}

static int parse_public_url(config *cfg, const config_option *o, const char *url, char *err,
                            size_t errlen)
{
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        n--;
    if (n > CONFIG_URL_MAX - 32) {
        snprintf(err, errlen, "--%s is too long", o->name);
        return -1;
    }
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        snprintf(err, errlen, "--%s '%.*s' must start with http:// or https://", o->name, (int)n,
                 url);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c == '"' || c == '<' || c == '>' || c == '\\' || c >= 0x7f) {
            snprintf(err, errlen, "--%s '%.*s' has a character a URL cannot have", o->name, (int)n,
                     url);
            return -1;
        }
    }
    memcpy(cfg->public_url, url, n);
    cfg->public_url[n] = '\0';
    return 0;
}

/* What a server ID may hold: it goes into JSON and headers. */
static bool server_id_char(unsigned char c)
{
    return c >= 0x21 && c <= 0x7e && c != '"' && c != '\\';
}

static int parse_server_id(config *cfg, const config_option *o, const char *id, char *err,
                           size_t errlen)
{
    size_t n = strlen(id);
    if (n == 0 || n > CONFIG_SERVER_ID_MAX) {
        snprintf(err, errlen, "--%s must have 1 to %d characters", o->name, CONFIG_SERVER_ID_MAX);
        return -1;
    }
    for (const char *p = id; *p; p++) {
        if (!server_id_char((unsigned char)*p)) {
            snprintf(err, errlen, "--%s '%s': printable ASCII without spaces", o->name, id);
            return -1;
        }
    }
    memcpy(place(cfg, o), id, n + 1);
    return 0;
}

static int parse_trusted_proxy(config *cfg, const config_option *o, const char *value, char *err,
                               size_t errlen)
{
    char why[CONFIG_ERR_MAX];
    if (proxy_set_add(&cfg->trusted_proxies, value, why, sizeof why) != 0) {
        snprintf(err, errlen, "--%s: %s", o->name, why);
        return -1;
    }
    return 0;
}

/* --track and --untrack are one list: their order decides. */
static void clear_path_rules(config *cfg)
{
    for (size_t i = 0; i < cfg->path_rule_count; i++)
        free(cfg->path_rules[i].glob);
    cfg->path_rule_count = 0;
}

static void clear_headers(config *cfg)
{
    for (size_t i = 0; i < cfg->header_count; i++) {
        free(cfg->headers[i].name);
        free(cfg->headers[i].value);
    }
    cfg->header_count = 0;
}

static void clear_trusted_proxies(config *cfg)
{
    cfg->trusted_proxies.count = 0;
}

/* The --upstream-for list; --upstream's own entry stays. */
static void clear_upstreams_for(config *cfg)
{
    size_t kept = 0;
    for (size_t i = 0; i < cfg->upstream_count; i++) {
        if (cfg->upstreams[i].catch_all)
            cfg->upstreams[kept++] = cfg->upstreams[i];
        else
            free(cfg->upstreams[i].prefix);
    }
    cfg->upstream_count = kept;
}

/* Adds an upstream for prefix; url is parsed here. */
static int add_upstream(config *cfg, const config_option *o, const char *prefix, size_t prefix_len,
                        const char *url, char *err, size_t errlen)
{
    if (cfg->upstream_count == CONFIG_UPSTREAMS_MAX) {
        snprintf(err, errlen, "at most %d upstreams", CONFIG_UPSTREAMS_MAX);
        return -1;
    }
    config_upstream *u = &cfg->upstreams[cfg->upstream_count];
    u->catch_all = false;
    u->prefix = strndup(prefix, prefix_len);
    if (u->prefix == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (!upstream_url_prefix_valid(u->prefix)) {
        snprintf(err, errlen,
                 "--%s '%s': a prefix is a URL path starting with / outside /_receipt/", o->name,
                 u->prefix);
        goto fail;
    }
    for (size_t i = 0; i < cfg->upstream_count; i++) {
        if (strcmp(cfg->upstreams[i].prefix, u->prefix) == 0) {
            snprintf(err, errlen, "--%s: the prefix '%s' has an upstream already", o->name,
                     u->prefix);
            goto fail;
        }
    }
    char why[CONFIG_ERR_MAX];
    if (upstream_url_parse(url, &u->url, why, sizeof why) != 0) {
        snprintf(err, errlen, "--%s '%s': %s", o->name, url, why);
        goto fail;
    }
    cfg->upstream_count++;
    return 0;
fail:
    free(u->prefix);
    u->prefix = NULL;
    return -1;
}

/* --upstream: the prefix "/"; given again (a file's, then the command
 * line's), the later URL replaces the earlier. */
static int parse_upstream(config *cfg, const config_option *o, const char *url, char *err,
                          size_t errlen)
{
    for (size_t i = 0; i < cfg->upstream_count; i++) {
        if (!cfg->upstreams[i].catch_all)
            continue;
        char why[CONFIG_ERR_MAX];
        upstream_url parsed;
        if (upstream_url_parse(url, &parsed, why, sizeof why) != 0) {
            snprintf(err, errlen, "--%s '%s': %s", o->name, url, why);
            return -1;
        }
        cfg->upstreams[i].url = parsed;
        return 0;
    }
    if (add_upstream(cfg, o, "/", 1, url, err, errlen) != 0)
        return -1;
    cfg->upstreams[cfg->upstream_count - 1].catch_all = true;
    return 0;
}

/* "PREFIX URL": one value of two words. */
static int parse_upstream_for(config *cfg, const config_option *o, const char *value, char *err,
                              size_t errlen)
{
    size_t prefix_len = strcspn(value, " \t");
    const char *url = value + prefix_len;
    while (*url == ' ' || *url == '\t')
        url++;
    if (prefix_len == 0 || *url == '\0') {
        snprintf(err, errlen, "--%s needs a PREFIX and a URL", o->name);
        return -1;
    }
    return add_upstream(cfg, o, value, prefix_len, url, err, errlen);
}

static int parse_upstream_host(config *cfg, const config_option *o, const char *value, char *err,
                               size_t errlen)
{
    size_t n = strlen(value);
    if (n == 0 || n > UPSTREAM_HOST_MAX) {
        snprintf(err, errlen, "--%s must have 1 to %d characters", o->name, UPSTREAM_HOST_MAX);
        return -1;
    }
    for (const char *p = value; *p; p++) {
        if (!isalnum((unsigned char)*p) && strchr("-._:[]", *p) == NULL) {
            snprintf(err, errlen, "--%s '%s' is not HOST or HOST:PORT", o->name, value);
            return -1;
        }
    }
    char *copy = strdup(value);
    if (copy == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    free(cfg->upstream_host);
    cfg->upstream_host = copy;
    return 0;
}

/* ---- derived defaults ------------------------------------------------------ */

static void derive_threads(config *cfg)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->threads = ncpu > 0 ? (unsigned)ncpu : 1;
}

/* The host name, or fallback when there is none. */
static void host_name(char *out, size_t cap, const char *fallback)
{
    if (gethostname(out, cap) != 0 || out[0] == '\0')
        snprintf(out, cap, "%s", fallback);
    out[cap - 1] = '\0';
}

/*
 * http://LISTEN (https:// with TLS), with the host name for a wildcard
 * address, and without the port when it is the scheme's own (as browsers
 * and URL parsers write it, and as the evidence log's origin takes it).
 */
static void derive_public_url(config *cfg)
{
    const char *scheme = cfg->tls_cert != NULL ? "https" : "http";
    char host[NI_MAXHOST] = "127.0.0.1";
    bool bracket = false;
    int port = 0;
    const struct sockaddr_storage *ss = &cfg->listen.addr;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        port = ntohs(in->sin_port);
        if (in->sin_addr.s_addr != htonl(INADDR_ANY))
            inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        else
            host_name(host, sizeof host, "localhost");
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        port = ntohs(in6->sin6_port);
        bracket = !IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
        if (bracket)
            inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        else
            host_name(host, sizeof host, "localhost");
    }
    int default_port = cfg->tls_cert != NULL ? 443 : 80;
    char port_text[8] = "";
    if (port != default_port)
        snprintf(port_text, sizeof port_text, ":%d", port);
    snprintf(cfg->public_url, sizeof cfg->public_url, "%s://%s%s%s%s", scheme, bracket ? "[" : "",
             host, bracket ? "]" : "", port_text);
}

/* The host name as an ID: what --node-id defaults to. */
static void host_id(char out[CONFIG_SERVER_ID_MAX + 1])
{
    char host[256];
    host_name(host, sizeof host, "receiptd");
    /* The ID goes into JSON and headers: keep the host name to the
     * characters --server-id accepts. */
    for (char *p = host; *p; p++) {
        if (!server_id_char((unsigned char)*p))
            *p = '-';
    }
    /* A longer name is cut to the most an ID may have. */
    size_t n = strnlen(host, CONFIG_SERVER_ID_MAX);
    memcpy(out, host, n);
    out[n] = '\0';
}

/*
 * The host of the public URL: what a receipt's reader knows the site by,
 * and the same on every node behind one name. Characters a server ID may
 * not hold (none in a valid host) become '-'; a longer host is cut.
 */
static void derive_server_id(config *cfg)
{
    const char *host = strstr(cfg->public_url, "://");
    host = host != NULL ? host + 3 : cfg->public_url;
    size_t n;
    if (*host == '[') {
        host++;
        n = strcspn(host, "]");
    } else {
        n = strcspn(host, ":/?#");
    }
    if (n == 0) {
        snprintf(cfg->server_id, sizeof cfg->server_id, "receiptd");
        return;
    }
    if (n > CONFIG_SERVER_ID_MAX)
        n = CONFIG_SERVER_ID_MAX;
    for (size_t i = 0; i < n; i++)
        cfg->server_id[i] = server_id_char((unsigned char)host[i]) ? host[i] : '-';
    cfg->server_id[n] = '\0';
}

static void derive_node_id(config *cfg)
{
    host_id(cfg->node_id);
}

/* ---- setting -------------------------------------------------------------- */

static int set(config *cfg, const config_option *o, const char *value, char *err, size_t errlen)
{
    if (o->arg != NULL && value == NULL) {
        snprintf(err, errlen, "--%s needs a value", o->name);
        return -1;
    }
    if (o->parse(cfg, o, value, err, errlen) != 0)
        return -1;
    cfg->given |= UINT64_C(1) << (size_t)(o - options);
    return 0;
}

int config_set(config *cfg, const char *name, const char *value, char *err, size_t errlen)
{
    const config_option *o = option_named(name);
    if (o == NULL || o->parse == NULL) {
        snprintf(err, errlen, "unknown option '%s'", name);
        return -1;
    }
    if (o->flags & CONFIG_COMMAND_LINE) {
        snprintf(err, errlen, "'%s' can only be given on the command line", name);
        return -1;
    }
    return set(cfg, o, value, err, errlen);
}

static void config_defaults(config *cfg)
{
    char err[CONFIG_ERR_MAX];
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        /* A flag's setting is what it changes: not given, it is the other. */
        if (options[i].parse == parse_flag)
            *(bool *)place(cfg, &options[i]) = options[i].min == 0;
        /* The table's defaults are this program's own: they parse. */
        if (options[i].value != NULL &&
            options[i].parse(cfg, &options[i], options[i].value, err, sizeof err) != 0)
            abort();
    }
}

/* Options that only make sense together. */
static config_result check_agreement(const config *cfg, char *err, size_t errlen)
{
    if ((cfg->tls_cert == NULL) != (cfg->tls_key == NULL)) {
        snprintf(err, errlen, "--tls-cert and --tls-key go together");
        return CONFIG_USAGE;
    }
    if ((cfg->admin_tls_cert == NULL) != (cfg->admin_tls_key == NULL)) {
        snprintf(err, errlen, "--admin-tls-cert and --admin-tls-key go together");
        return CONFIG_USAGE;
    }
    if (cfg->admin_tls_cert != NULL && cfg->admin_listen.text[0] == '\0') {
        snprintf(err, errlen,
                 "--admin-tls-cert is for the admin listener, which --admin-listen "
                 "off turns off");
        return CONFIG_USAGE;
    }
    if (cfg->redirect_http.text[0] != '\0') {
        if (cfg->tls_cert == NULL) {
            snprintf(err, errlen, "--redirect-http redirects to HTTPS: it needs --tls-cert");
            return CONFIG_USAGE;
        }
        if (strncmp(cfg->public_url, "https://", 8) != 0) {
            snprintf(err, errlen, "--redirect-http needs an https --public-url to redirect to");
            return CONFIG_USAGE;
        }
        if (cfg->redirect_http.len == cfg->listen.len &&
            memcmp(&cfg->redirect_http.addr, &cfg->listen.addr, cfg->listen.len) == 0) {
            snprintf(err, errlen, "--redirect-http and --listen name the same address");
            return CONFIG_USAGE;
        }
    }
    return CONFIG_OK;
}

/* What is left once every option is set: derived defaults, and checks. */
static config_result config_finish(config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const config_option *o = &options[i];
        bool given = (cfg->given >> i) & 1;
        if ((o->flags & CONFIG_REQUIRED) && !given) {
            snprintf(err, errlen, "--%s %s is required", o->name, o->arg);
            return CONFIG_USAGE;
        }
        if (o->derive != NULL && !given)
            o->derive(cfg);
    }
    cfg->admin_explicit = (cfg->given >> (option_named("admin-listen") - options)) & 1;
    if (cfg->root == NULL && cfg->upstream_count == 0) {
        /* The shipped file names none: what to serve has no default. */
        if (cfg->config_file != NULL)
            snprintf(err, errlen,
                     "--root DIR, --upstream URL or --upstream-for PREFIX URL is required: "
                     "%s gives none (a line 'root DIR', say)",
                     cfg->config_file);
        else
            snprintf(err, errlen,
                     "--root DIR, --upstream URL or --upstream-for PREFIX URL is required");
        return CONFIG_USAGE;
    }
    return check_agreement(cfg, err, errlen);
}

/* ---- the configuration file ------------------------------------------------ */

/* A URL with user:password@, or a libpq keyword string with password=.
 * What libpq accepts is read as libpq reads it (a key/value string may have
 * spaces around its '=', "password = x"); a text it cannot read is judged
 * by its look, erring on the side of a password. */
static bool holds_password(const char *value)
{
    if (strncmp(value, "sqlite:", 7) != 0) {
        char *perr = NULL;
        PQconninfoOption *opts = PQconninfoParse(value, &perr);
        PQfreemem(perr);
        if (opts != NULL) {
            bool found = false;
            for (const PQconninfoOption *o = opts; o->keyword != NULL; o++)
                if (strcmp(o->keyword, "password") == 0 && o->val != NULL && o->val[0] != '\0')
                    found = true;
            PQconninfoFree(opts);
            if (found)
                return true;
        }
    }
    const char *scheme_end = strstr(value, "://");
    if (scheme_end != NULL) {
        const char *auth = scheme_end + 3;
        size_t len = strcspn(auth, "/?#");
        const char *at = memrchr(auth, '@', len);
        if (at != NULL && memchr(auth, ':', (size_t)(at - auth)) != NULL)
            return true;
    }
    return strcasestr(value, "password=") != NULL;
}

/* A parser's message names the option as on the command line; a file
 * names it without the dashes. */
static void file_error(char *err, size_t errlen, const char *path, unsigned line, const char *why)
{
    if (strncmp(why, "--", 2) == 0)
        why += 2;
    snprintf(err, errlen, "%s:%u: %s", path, line, why);
}

static int apply_line(config *cfg, const char *path, unsigned line, char *text, mode_t mode,
                      uint64_t *file_given, unsigned *lines, char *err, size_t errlen)
{
    char why[CONFIG_ERR_MAX];
    char *name = text;
    char *value = name + strcspn(name, " \t");
    if (*value != '\0') {
        *value++ = '\0';
        value += strspn(value, " \t");
    }
    if (strncmp(name, "--", 2) == 0) {
        snprintf(why, sizeof why, "option names go without their dashes: '%s', not '%s'", name + 2,
                 name);
        file_error(err, errlen, path, line, why);
        return -1;
    }
    const config_option *o = option_named(name);
    if (o == NULL || o->parse == NULL || (o->flags & CONFIG_COMMAND_LINE)) {
        snprintf(why, sizeof why,
                 o == NULL || o->parse == NULL ? "unknown option '%s'"
                                               : "'%s' can only be given on the command line",
                 name);
        file_error(err, errlen, path, line, why);
        return -1;
    }
    size_t idx = (size_t)(o - options);
    if (!(o->flags & CONFIG_REPEATABLE) && ((*file_given >> idx) & 1)) {
        snprintf(why, sizeof why, "%s is given already, on line %u", name, lines[idx]);
        file_error(err, errlen, path, line, why);
        return -1;
    }
    if (o->arg == NULL) {
        if (strcmp(value, "no") == 0) {
            *file_given |= UINT64_C(1) << idx;
            lines[idx] = line;
            return 0;
        }
        if (value[0] != '\0' && strcmp(value, "yes") != 0) {
            snprintf(why, sizeof why, "%s is a flag: give it alone, or with yes or no", name);
            file_error(err, errlen, path, line, why);
            return -1;
        }
        value = NULL;
    } else if (value[0] == '\0') {
        snprintf(why, sizeof why, "%s needs a value (%s)", name, o->arg);
        file_error(err, errlen, path, line, why);
        return -1;
    }
    if ((o->flags & CONFIG_SECRET) && (mode & S_IROTH) && holds_password(value)) {
        snprintf(why, sizeof why,
                 "%s holds a password, and others may read the file (mode %04o): chmod o-r %s",
                 name, (unsigned)(mode & 07777), path);
        file_error(err, errlen, path, line, why);
        return -1;
    }
    if (set(cfg, o, value, why, sizeof why) != 0) {
        /* Name the option where the parser's message does not. */
        char named[CONFIG_ERR_MAX + 80];
        size_t n = strlen(o->name);
        if (strncmp(why, "--", 2) == 0 && strncmp(why + 2, o->name, n) == 0)
            snprintf(named, sizeof named, "%s", why);
        else
            snprintf(named, sizeof named, "%s: %s", o->name, why);
        file_error(err, errlen, path, line, named);
        return -1;
    }
    *file_given |= UINT64_C(1) << idx;
    lines[idx] = line;
    return 0;
}

/*
 * Whether the group gid lets nobody but owner change a file: the owner is
 * its only member, by the user and group databases (a user's own group,
 * which a umask of 002 leaves group-writable, as Debian's OpenSSH allows
 * for its own files). A group with no member at all is not such a group:
 * it is a set-group-ID program's, or one whose members are not listed.
 */
static bool group_is_owners_alone(uid_t owner, gid_t gid)
{
    const struct passwd *pw = getpwuid(owner);
    const struct group *gr = getgrgid(gid);
    if (pw == NULL || gr == NULL)
        return false;
    char owner_name[256];
    if (snprintf(owner_name, sizeof owner_name, "%s", pw->pw_name) >= (int)sizeof owner_name)
        return false;
    bool members = false;
    for (char *const *m = gr->gr_mem; *m != NULL; m++) {
        if (strcmp(*m, owner_name) != 0)
            return false;
        members = true;
    }
    /* Members by their primary group are in the user database only. */
    setpwent();
    for (const struct passwd *u = getpwent(); u != NULL; u = getpwent()) {
        if (u->pw_gid != gid)
            continue;
        if (u->pw_uid != owner) {
            members = false;
            break;
        }
        members = true;
    }
    endpwent();
    return members;
}

/* A user's or group's name for a message, or its number when it has none. */
static void id_name(char out[64], const char *name, unsigned id)
{
    if (name != NULL)
        snprintf(out, 64, "%s", name);
    else
        snprintf(out, 64, "%u", id);
}

/*
 * A file that others than its owner may change is refused whatever it
 * holds: it decides what the server serves, where its keys are, which
 * upstreams get requests and which proxies are believed. Writable by all,
 * always; by its group, unless the group is its owner's alone. And its
 * owner must be root or the user receiptd runs as (as sshd's StrictModes
 * asks of its files): any other owner may change the mode, and the file,
 * whenever it likes.
 */
static int check_config_mode(const char *path, mode_t mode, char *err, size_t errlen)
{
    unsigned bits = (unsigned)(mode & 07777);
    if (mode & S_IWOTH) {
        snprintf(err, errlen, "--config %s may be changed by others (mode %04o): chmod g-w,o-w %s",
                 path, bits, path);
        return -1;
    }
    /* The mode read with the text, and the owner and group of the same file. */
    struct stat st;
    bool known = stat(path, &st) == 0 && (st.st_mode & 07777) == bits;
    if (!known) {
        snprintf(err, errlen, "--config %s changed while it was read: try again", path);
        return -1;
    }
    if (st.st_uid != 0 && st.st_uid != geteuid()) {
        const struct passwd *pw = getpwuid(st.st_uid);
        char owner[64];
        id_name(owner, pw != NULL ? pw->pw_name : NULL, st.st_uid);
        snprintf(err, errlen,
                 "--config %s is owned by %s, who may change it, not by root or the user "
                 "receiptd runs as: chown root %s",
                 path, owner, path);
        return -1;
    }
    if (!(mode & S_IWGRP))
        return 0;
    if (group_is_owners_alone(st.st_uid, st.st_gid))
        return 0;
    char group[64];
    const struct group *gr = getgrgid(st.st_gid);
    id_name(group, gr != NULL ? gr->gr_name : NULL, st.st_gid);
    snprintf(err, errlen,
             "--config %s may be changed by the group %s (mode %04o), which is not its owner's "
             "alone: chmod g-w,o-w %s",
             path, group, bits, path);
    return -1;
}

/*
 * Sets the options of the file at path; file_given gets a bit for each
 * option it names, once check_config_mode() has passed.
 */
static int read_config_file(config *cfg, const char *path, uint64_t *file_given,
                            unsigned lines[OPTION_COUNT], char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    mode_t mode = 0;
    int rc = -1;
    char why[CONFIG_ERR_MAX];
    if (durable_read(path, CONFIG_FILE_MAX, &buf, &len, &mode, why, sizeof why) != 0) {
        snprintf(err, errlen, "--config: %s", why);
        return -1;
    }
    if (check_config_mode(path, mode, err, errlen) != 0)
        goto out;

    unsigned number = 0;
    char *p = buf;
    /* A byte order mark, as some editors write at the start of UTF-8 text. */
    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
        p += 3;
    while (p < buf + len) {
        char *end = memchr(p, '\n', (size_t)(buf + len - p));
        size_t n = end != NULL ? (size_t)(end - p) : (size_t)(buf + len - p);
        number++;
        char line[CONFIG_LINE_MAX + 1];
        if (n > CONFIG_LINE_MAX) {
            file_error(err, errlen, path, number, "the line is longer than 4096 bytes");
            goto out;
        }
        if (memchr(p, '\0', n) != NULL) {
            file_error(err, errlen, path, number, "a NUL byte: this is not a text file");
            goto out;
        }
        memcpy(line, p, n);
        line[n] = '\0';
        p += n + 1;
        while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r'))
            line[--n] = '\0';
        char *text = line + strspn(line, " \t");
        if (text[0] == '\0' || text[0] == '#')
            continue;
        if (apply_line(cfg, path, number, text, mode, file_given, lines, err, errlen) != 0)
            goto out;
    }
    rc = 0;
out:
    explicit_bzero(buf, len); /* it may hold a password */
    free(buf);
    return rc;
}

/*
 * The directories and files the file names (those of the options in given)
 * exist, and are what they should be: a wrong path is a bad value, and its
 * error names the file and line, as a parser's does. Whether they can be
 * read is left to start-up, which may run as another user than --check.
 */
static int check_file_paths(const config *cfg, const char *path, uint64_t given,
                            const unsigned lines[OPTION_COUNT], char *err, size_t errlen)
{
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const config_option *o = &options[i];
        if (!((given >> i) & 1) || !(o->flags & (CONFIG_NAMES_DIR | CONFIG_NAMES_FILE)))
            continue;
        const char *value = *(char *const *)((const char *)cfg + o->offset);
        if (value == NULL)
            continue;
        struct stat st;
        char why[CONFIG_ERR_MAX];
        bool wants_dir = (o->flags & CONFIG_NAMES_DIR) != 0;
        if (stat(value, &st) != 0)
            snprintf(why, sizeof why, "%s %s: %s", o->name, value, strerror(errno));
        else if (wants_dir && !S_ISDIR(st.st_mode))
            snprintf(why, sizeof why, "%s %s is not a directory", o->name, value);
        else if (!wants_dir && S_ISDIR(st.st_mode))
            snprintf(why, sizeof why, "%s %s is a directory, not a file", o->name, value);
        else
            continue;
        file_error(err, errlen, path, lines[i], why);
        return -1;
    }
    return 0;
}

/* ---- the command line ------------------------------------------------------ */

/* The options whose values go into the same list as o's (bits by index). */
static uint64_t list_options(const config_option *o)
{
    uint64_t bits = 0;
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        if (o->clear != NULL && options[i].clear == o->clear)
            bits |= UINT64_C(1) << i;
    }
    return bits;
}

config_result config_parse(config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    struct option long_options[OPTION_COUNT + 1];
    config_defaults(cfg);
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        long_options[i] = (struct option){options[i].name,
                                          options[i].arg != NULL ? required_argument : no_argument,
                                          NULL, (int)i + 256};
    }
    long_options[OPTION_COUNT] = (struct option){NULL, 0, NULL, 0};
    const size_t config_index = (size_t)(option_named("config") - options);
    opterr = 0;
    int opt;

    /* The file first, so that the command line replaces what it says;
     * --help and --version need no file. */
    const char *file = NULL;
    bool reads_file = true;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "+", long_options, NULL)) != -1) {
        if (opt == 256 + (int)config_index)
            file = optarg;
        else if (opt >= 256 && opt < 256 + (int)OPTION_COUNT &&
                 (strcmp(options[opt - 256].name, "help") == 0 ||
                  strcmp(options[opt - 256].name, "version") == 0))
            reads_file = false;
        else if (opt >= 256 && opt < 256 + (int)OPTION_COUNT &&
                 (options[opt - 256].flags & CONFIG_TWO_WORDS) && optind < argc)
            optind++; /* its second word */
    }
    uint64_t file_given = 0, cleared = 0, command_given = 0;
    unsigned lines[OPTION_COUNT] = {0};
    if (file != NULL && reads_file &&
        read_config_file(cfg, file, &file_given, lines, err, errlen) != 0)
        return CONFIG_USAGE;

    /* "+": arguments are never reordered, so that the second word of a
     * two-word option stays after its first. */
    optind = 0;
    while ((opt = getopt_long(argc, argv, "+", long_options, NULL)) != -1) {
        if (opt < 256 || opt >= 256 + (int)OPTION_COUNT) {
            if (optopt != 0)
                snprintf(err, errlen, "option '%s' needs a value or is unknown", argv[optind - 1]);
            else
                snprintf(err, errlen, "unknown option '%s'", argv[optind - 1]);
            return CONFIG_USAGE;
        }
        size_t idx = (size_t)(opt - 256);
        const config_option *o = &options[idx];
        if (strcmp(o->name, "help") == 0) {
            config_print_help(stdout);
            return CONFIG_EXIT_OK;
        }
        if (strcmp(o->name, "version") == 0) {
            printf("receiptd %s\n", RECEIPT_VERSION);
            return CONFIG_EXIT_OK;
        }
        /* A list given on the command line replaces the file's list. Options
         * that share a list (--track, --untrack) replace it together, once. */
        uint64_t list = list_options(o);
        if ((o->flags & CONFIG_REPEATABLE) && (file_given & list) != 0 && (cleared & list) == 0) {
            o->clear(cfg);
            cleared |= list;
        }
        const char *value = optarg;
        char joined[CONFIG_URL_MAX * 2 + 2];
        if (o->flags & CONFIG_TWO_WORDS) {
            /* "--upstream-for PREFIX URL": the second word is the next
             * argument (getopt stops at the first word that is no option). */
            if (optind >= argc || argv[optind][0] == '-') {
                snprintf(err, errlen, "--%s needs %s", o->name, o->arg);
                return CONFIG_USAGE;
            }
            if ((size_t)snprintf(joined, sizeof joined, "%s %s", optarg, argv[optind]) >=
                sizeof joined) {
                snprintf(err, errlen, "--%s: the value is too long", o->name);
                return CONFIG_USAGE;
            }
            optind++;
            value = joined;
        }
        if (set(cfg, o, value, err, errlen) != 0)
            return CONFIG_USAGE;
        command_given |= UINT64_C(1) << idx;
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
        return CONFIG_USAGE;
    }
    config_result r = config_finish(cfg, err, errlen);
    if (r == CONFIG_OK && file != NULL && reads_file &&
        check_file_paths(cfg, file, file_given & ~command_given, lines, err, errlen) != 0)
        return CONFIG_USAGE;
    return r;
}

/* Whether host (as in a URL; IPv6 in brackets) names this machine. */
static bool host_is_loopback(const char *host, size_t n)
{
    char h[CONFIG_URL_MAX + 1];
    if (n == 0 || n > CONFIG_URL_MAX)
        return false;
    memcpy(h, host, n);
    h[n] = '\0';
    if (strcasecmp(h, "localhost") == 0 || (n > 10 && strcasecmp(h + n - 10, ".localhost") == 0))
        return true;
    if (strcmp(h, "[::1]") == 0)
        return true;
    struct in_addr a4;
    return inet_pton(AF_INET, h, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

static bool address_is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24 == 127;
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

size_t config_warnings(const config *cfg, char out[][CONFIG_WARNING_LEN], size_t max)
{
    size_t n = 0;
    const char *url = cfg->public_url;
    if (n < max && strncmp(url, "http://", 7) == 0) {
        const char *host = url + 7;
        size_t len = host[0] == '[' ? strcspn(host, "]") + 1 : strcspn(host, ":/?#");
        if (!host_is_loopback(host, len))
            snprintf(out[n++], CONFIG_WARNING_LEN,
                     "the public URL %s is plain http on a host that is not loopback: browsers "
                     "run the agent, and send fetch metadata, only on https or localhost, so "
                     "page views there are not confirmed (serve it over https, or set "
                     "--public-url)",
                     url);
    }
    bool given = (cfg->given >> (option_named("public-url") - options)) & 1;
    if (n < max && !given && !address_is_loopback(&cfg->listen.addr))
        snprintf(out[n++], CONFIG_WARNING_LEN,
                 "listening on %s without --public-url: plug-in data and receipts name %s, "
                 "which clients on other hosts may not reach (set --public-url to the URL they "
                 "use)",
                 cfg->listen.text, url);
    return n;
}

void config_free(config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        if (options[i].parse == parse_string) {
            char **slot = place(cfg, &options[i]);
            free(*slot);
            *slot = NULL;
        }
    }
    clear_headers(cfg);
    clear_path_rules(cfg);
    for (size_t i = 0; i < cfg->upstream_count; i++)
        free(cfg->upstreams[i].prefix);
    cfg->upstream_count = 0;
    free(cfg->upstream_host);
    cfg->upstream_host = NULL;
}

/* ---- describing ----------------------------------------------------------- */

/*
 * text with %D and %M of option o filled in. A text the buffer cannot hold
 * is the table's fault, not the user's: it stops the program rather than
 * print a sentence cut short (test_config prints every text).
 */
static void expand(const config_option *o, const char *text, char *out, size_t cap)
{
    const char *shown = o->value != NULL ? o->value : o->shown != NULL ? o->shown : "";
    size_t len = 0;
    out[0] = '\0';
    for (const char *p = text; *p && len + 1 < cap; p++) {
        int n = 0;
        if (p[0] == '%' && p[1] == 'D')
            n = snprintf(out + len, cap - len, "%s", shown);
        else if (p[0] == '%' && p[1] == 'M')
            n = snprintf(out + len, cap - len, "%llu", o->max);
        if (n > 0) {
            len += (size_t)n < cap - len ? (size_t)n : cap - len - 1;
            p++;
            continue;
        }
        out[len++] = *p;
        out[len] = '\0';
    }
    if (len + 1 >= cap) {
        fprintf(stderr, "receiptd: the text of --%s is longer than %zu bytes\n", o->name, cap - 1);
        abort();
    }
}

/*
 * Writes text (which it changes) word by word from column, breaking lines
 * before width and starting each new one with indent spaces. "(default X)"
 * stays on one line.
 */
static void print_wrapped(FILE *f, char *text, int column, int width, int indent)
{
    for (char *d = strstr(text, "(default "); d != NULL; d = strstr(d + 1, "(default "))
        d[sizeof "(default" - 1] = NO_BREAK;
    char *save = NULL;
    bool first = true;
    for (char *word = strtok_r(text, " ", &save); word != NULL; word = strtok_r(NULL, " ", &save)) {
        int n = (int)strlen(word);
        if (!first && column + 1 + n > width) {
            column = fprintf(f, "\n%*s", indent, "") - 1;
        } else if (!first) {
            fputc(' ', f);
            column++;
        }
        for (char *p = word; *p; p++)
            fputc(*p == NO_BREAK ? ' ' : *p, f);
        column += n;
        first = false;
    }
    fputc('\n', f);
}

void config_print_help(FILE *f)
{
    char text[CONFIG_HELP_LINE * 4];
    fputs(usage_head, f);
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const config_option *o = &options[i];
        if (i == 0 || options[i - 1].section != o->section)
            fprintf(f, "\n%s:\n", section_titles[o->section]);
        int column = fprintf(f, "  --%s%s%s", o->name, o->arg != NULL ? " " : "",
                             o->arg != NULL ? o->arg : "");
        /* The help beside the option, two spaces apart at least. */
        if (column > CONFIG_HELP_COLUMN - 2)
            column += fprintf(f, "  ");
        else
            column += fprintf(f, "%*s", CONFIG_HELP_COLUMN - column, "");
        expand(o, o->help, text, sizeof text);
        print_wrapped(f, text, column, CONFIG_HELP_WIDTH, CONFIG_HELP_COLUMN);
    }
    fputs(usage_tail, f);
}

/* An option name in roff: every '-' escaped. */
static void man_name(FILE *f, const char *name)
{
    fputs("\\-\\-", f);
    for (const char *p = name; *p; p++) {
        if (*p == '-')
            fputs("\\-", f);
        else
            fputc(*p, f);
    }
}

void config_print_man(FILE *f)
{
    char text[CONFIG_MAN_TEXT];
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const config_option *o = &options[i];
        if (i == 0 || options[i - 1].section != o->section)
            fprintf(f, ".SS %s\n", section_titles[o->section]);
        fputs(".TP\n", f);
        if (o->arg != NULL) {
            fputs(".BI ", f);
            man_name(f, o->name);
            fprintf(f, " \" %s\"\n", o->arg);
        } else {
            fputs(".B ", f);
            man_name(f, o->name);
            fputc('\n', f);
        }
        expand(o, o->doc, text, sizeof text);
        /* Lines of a readable length in the page's source; roff refills. */
        print_wrapped(f, text, 0, CONFIG_MAN_WIDTH, 0);
    }
}

static const char sample_head[] =
    "# receiptd.conf: the options of receiptd(8), read with --config FILE (the\n"
    "# systemd unit passes this file).\n"
    "#\n"
    "# One option a line: its name without the dashes, then its value; a flag\n"
    "# alone, or NAME yes / NAME no. The value is the rest of the line as\n"
    "# written, spaces included, without quotes. A line that starts with # is a\n"
    "# comment (a # after a value is part of it). An option given on the\n"
    "# command line replaces the value here (for a repeatable option, all of\n"
    "# its values here). Every option is shown below, commented out, at its\n"
    "# default; root (or upstream) has none and must be given before receiptd\n"
    "# starts.\n"
    "#\n"
    "# Changes take effect at restart (systemctl restart receiptd). SIGHUP\n"
    "# (systemctl reload receiptd) reloads the TLS certificates and reopens the\n"
    "# access log. receiptd --config FILE --check validates a file.\n"
    "#\n"
    "# A file that holds a password (in the ledger URL) must not be readable by\n"
    "# others: chmod 0640, owned by root and the group receiptd.\n";

/* text as comment lines of at most width columns. */
static void print_comment(FILE *f, char *text, int width)
{
    for (char *d = strstr(text, "(default"); d != NULL; d = strstr(d + 1, "(default")) {
        char *space = strchr(d, ' ');
        if (space != NULL)
            *space = NO_BREAK;
    }
    char *save = NULL;
    int column = 0;
    for (char *word = strtok_r(text, " ", &save); word != NULL; word = strtok_r(NULL, " ", &save)) {
        int n = (int)strlen(word);
        if (column > 0 && column + 1 + n > width) {
            fputc('\n', f);
            column = 0;
        }
        column += fprintf(f, column == 0 ? "# " : " ");
        for (char *p = word; *p; p++)
            fputc(*p == NO_BREAK ? ' ' : *p, f);
        column += n;
    }
    fputc('\n', f);
}

void config_print_sample(FILE *f)
{
    char text[CONFIG_HELP_LINE * 4];
    fputs(sample_head, f);
    int section = -1;
    for (size_t i = 0; i < OPTION_COUNT; i++) {
        const config_option *o = &options[i];
        if (o->flags & CONFIG_COMMAND_LINE)
            continue;
        if ((int)o->section != section) {
            section = (int)o->section;
            fprintf(f, "\n# ---- %s ----\n", section_titles[o->section]);
        }
        fputc('\n', f);
        expand(o, o->help, text, sizeof text);
        print_comment(f, text, CONFIG_MAN_WIDTH);
        if (o->arg == NULL)
            fprintf(f, "#%s no\n", o->name);
        else
            fprintf(f, "#%s %s\n", o->name, o->value != NULL ? o->value : o->arg);
    }
}
