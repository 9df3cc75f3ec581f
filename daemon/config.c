#include "daemon/config.h"

#include "daemon/writer.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: receiptd --root DIR [options]\n"
    "       receiptd report [options]      (see receiptd report --help)\n"
    "\n"
    "Serves the files under DIR over HTTP and records every delivery in a ledger.\n"
    "\n"
    "Content and protocol:\n"
    "  --root DIR              directory to serve (required)\n"
    "  --listen HOST:PORT      public listener (default 127.0.0.1:8080)\n"
    "  --admin-listen HOST:PORT  admin listener: dashboard, /metrics and the API\n"
    "                          (default 127.0.0.1:8091; 'off' disables it)\n"
    "  --public-url URL        base URL clients reach this server at; the confirm\n"
    "                          URL in plug-in data is URL/_receipt/confirm\n"
    "                          (default http://LISTEN)\n"
    "  --server-id ID          name of this server in the ledger and in plug-in data\n"
    "                          (default: the host name)\n"
    "  --ticket-ttl SECONDS    how long a delivery may be confirmed (default 604800)\n"
    "  --no-inject             do not embed the agent element into HTML pages\n"
    "  --add-header NAME:VALUE add a header to every content response (repeatable)\n"
    "\n"
    "State:\n"
    "  --state-dir DIR         keys, admin token and the default ledger\n"
    "                          (default /var/lib/receiptd; mode 0700)\n"
    "  --ledger URL            sqlite:PATH (default sqlite:STATE_DIR/ledger.sqlite)\n"
    "\n"
    "Limits:\n"
    "  --threads N             HTTP worker threads (default: number of CPUs)\n"
    "  --max-connections N     open connections at most (default 10000)\n"
    "  --per-ip-connections N  connections per client address (default 0: no limit)\n"
    "  --idle-timeout SECONDS  close a connection idle this long (default 30)\n"
    "  --connection-memory N   bytes per connection for the request line, headers\n"
    "                          and buffers; larger headers get 431 (default 16384)\n"
    "  --queue N               ledger events waiting at most; past it deliveries\n"
    "                          get 503 (default 65536)\n"
    "  --batch N               ledger events per commit at most (default 1024)\n"
    "  --cache-size MIB        memory for small hot files (default 64)\n"
    "  --shutdown-grace SECONDS  time for requests in flight at SIGTERM (default 10)\n"
    "\n"
    "Operations:\n"
    "  --access-log FILE       combined-format access log (reopened on SIGHUP)\n"
    "  --log-level LEVEL       debug, info, warn or error (default info)\n"
    "  --check                 validate the configuration and state, then exit\n"
    "  --help                  this text\n"
    "  --version               the version\n"
    "\n"
    "Exit status: 0 after a clean shutdown (SIGTERM, SIGINT) or a passing --check,\n"
    "1 when the server cannot start, 2 for a usage error.\n";

enum {
    OPT_ROOT = 256,
    OPT_LISTEN,
    OPT_ADMIN_LISTEN,
    OPT_STATE_DIR,
    OPT_LEDGER,
    OPT_PUBLIC_URL,
    OPT_SERVER_ID,
    OPT_TICKET_TTL,
    OPT_NO_INJECT,
    OPT_ADD_HEADER,
    OPT_THREADS,
    OPT_MAX_CONNECTIONS,
    OPT_PER_IP,
    OPT_IDLE_TIMEOUT,
    OPT_CONN_MEMORY,
    OPT_QUEUE,
    OPT_BATCH,
    OPT_CACHE_SIZE,
    OPT_GRACE,
    OPT_ACCESS_LOG,
    OPT_LOG_LEVEL,
    OPT_CHECK,
    OPT_HELP,
    OPT_VERSION,
};

static const struct option long_options[] = {
    {"root", required_argument, NULL, OPT_ROOT},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"admin-listen", required_argument, NULL, OPT_ADMIN_LISTEN},
    {"state-dir", required_argument, NULL, OPT_STATE_DIR},
    {"ledger", required_argument, NULL, OPT_LEDGER},
    {"public-url", required_argument, NULL, OPT_PUBLIC_URL},
    {"server-id", required_argument, NULL, OPT_SERVER_ID},
    {"ticket-ttl", required_argument, NULL, OPT_TICKET_TTL},
    {"no-inject", no_argument, NULL, OPT_NO_INJECT},
    {"add-header", required_argument, NULL, OPT_ADD_HEADER},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
    {"per-ip-connections", required_argument, NULL, OPT_PER_IP},
    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
    {"connection-memory", required_argument, NULL, OPT_CONN_MEMORY},
    {"queue", required_argument, NULL, OPT_QUEUE},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"cache-size", required_argument, NULL, OPT_CACHE_SIZE},
    {"shutdown-grace", required_argument, NULL, OPT_GRACE},
    {"access-log", required_argument, NULL, OPT_ACCESS_LOG},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"check", no_argument, NULL, OPT_CHECK},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

/* Parses a decimal number in [min, max]; returns 0 or -1. */
static int parse_number(const char *text, unsigned long long min, unsigned long long max,
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
    if (parse_number(port_text, 0, 65535, &port) != 0) {
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

static int add_header(config *cfg, const char *arg, char *err, size_t errlen)
{
    const char *colon = strchr(arg, ':');
    if (colon == NULL || colon == arg) {
        snprintf(err, errlen, "--add-header '%s': expected NAME:VALUE", arg);
        return -1;
    }
    for (const char *p = arg; p < colon; p++) {
        /* RFC 9110 token characters */
        if (!isalnum((unsigned char)*p) && strchr("!#$%&'*+-.^_`|~", *p) == NULL) {
            snprintf(err, errlen, "--add-header '%s': invalid header name", arg);
            return -1;
        }
    }
    const char *value = colon + 1;
    while (*value == ' ' || *value == '\t')
        value++;
    for (const char *p = value; *p; p++) {
        if ((unsigned char)*p < 0x20 && *p != '\t') {
            snprintf(err, errlen, "--add-header '%s': control character in the value", arg);
            return -1;
        }
    }
    if (cfg->header_count == CONFIG_EXTRA_HEADERS_MAX) {
        snprintf(err, errlen, "at most %d --add-header options", CONFIG_EXTRA_HEADERS_MAX);
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

static void default_public_url(config *cfg)
{
    char host[NI_MAXHOST] = "127.0.0.1";
    int port = 0;
    const struct sockaddr_storage *ss = &cfg->listen_addr;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        port = ntohs(in->sin_port);
        if (in->sin_addr.s_addr != htonl(INADDR_ANY))
            inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        else if (gethostname(host, sizeof host) != 0)
            strcpy(host, "localhost");
        snprintf(cfg->public_url, sizeof cfg->public_url, "http://%s:%d", host, port);
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        port = ntohs(in6->sin6_port);
        if (!IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr)) {
            inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
            snprintf(cfg->public_url, sizeof cfg->public_url, "http://[%s]:%d", host, port);
        } else {
            if (gethostname(host, sizeof host) != 0)
                strcpy(host, "localhost");
            snprintf(cfg->public_url, sizeof cfg->public_url, "http://%s:%d", host, port);
        }
    }
}

static int check_public_url(const char *url, char *err, size_t errlen)
{
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        snprintf(err, errlen, "--public-url '%s' must start with http:// or https://", url);
        return -1;
    }
    for (const char *p = url; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == '"' || *p == '<' || *p == '>' || *p == '\\' ||
            (unsigned char)*p >= 0x7f) {
            snprintf(err, errlen, "--public-url '%s' has a character a URL cannot have", url);
            return -1;
        }
    }
    return 0;
}

config_result config_parse(config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    const char *listen = "127.0.0.1:8080";
    const char *admin_listen = "127.0.0.1:8091";
    const char *public_url = NULL;
    const char *server_id = NULL;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->state_dir = "/var/lib/receiptd";
    cfg->ticket_ttl_s = 7 * 24 * 3600;
    cfg->inject = true;
    cfg->level = LOG_LEVEL_INFO;
    cfg->threads = ncpu > 0 ? (unsigned)ncpu : 1;
    cfg->max_connections = 10000;
    cfg->idle_timeout_s = 30;
    cfg->connection_memory = 16 * 1024;
    cfg->queue_capacity = 65536;
    cfg->batch_max = 1024;
    cfg->cache_bytes = 64u * 1024 * 1024;
    cfg->shutdown_grace_s = 10;

    optind = 1;
    opterr = 0;
    int opt;
    unsigned long long v;
    while ((opt = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        switch (opt) {
        case OPT_ROOT:
            cfg->root = optarg;
            break;
        case OPT_LISTEN:
            listen = optarg;
            break;
        case OPT_ADMIN_LISTEN:
            admin_listen = optarg;
            cfg->admin_explicit = true;
            break;
        case OPT_STATE_DIR:
            cfg->state_dir = optarg;
            break;
        case OPT_LEDGER:
            cfg->ledger_url = optarg;
            break;
        case OPT_PUBLIC_URL:
            public_url = optarg;
            break;
        case OPT_SERVER_ID:
            server_id = optarg;
            break;
        case OPT_NO_INJECT:
            cfg->inject = false;
            break;
        case OPT_ADD_HEADER:
            if (add_header(cfg, optarg, err, errlen) != 0)
                return CONFIG_USAGE;
            break;
        case OPT_ACCESS_LOG:
            cfg->access_log = optarg;
            break;
        case OPT_LOG_LEVEL:
            if (log_level_parse(optarg, &cfg->level) != 0) {
                snprintf(err, errlen, "--log-level '%s': use debug, info, warn or error", optarg);
                return CONFIG_USAGE;
            }
            break;
        case OPT_CHECK:
            cfg->check_only = true;
            break;
        case OPT_HELP:
            fputs(usage_text, stdout);
            return CONFIG_EXIT_OK;
        case OPT_VERSION:
            printf("receiptd %s\n", RECEIPT_VERSION);
            return CONFIG_EXIT_OK;
#define NUMBER_OPTION(code, name, min, max, field)                                                 \
    case code:                                                                                     \
        if (parse_number(optarg, min, max, &v) != 0) {                                             \
            snprintf(err, errlen, "--%s '%s': expected a whole number from %llu to %llu", name,    \
                     optarg, (unsigned long long)(min), (unsigned long long)(max));                \
            return CONFIG_USAGE;                                                                   \
        }                                                                                          \
        cfg->field = v;                                                                            \
        break;
            NUMBER_OPTION(OPT_TICKET_TTL, "ticket-ttl", 1, 10ull * 365 * 24 * 3600, ticket_ttl_s)
            NUMBER_OPTION(OPT_THREADS, "threads", 1, 256, threads)
            NUMBER_OPTION(OPT_MAX_CONNECTIONS, "max-connections", 1, 1000000, max_connections)
            NUMBER_OPTION(OPT_PER_IP, "per-ip-connections", 0, 1000000, per_ip_connections)
            NUMBER_OPTION(OPT_IDLE_TIMEOUT, "idle-timeout", 1, 86400, idle_timeout_s)
            NUMBER_OPTION(OPT_CONN_MEMORY, "connection-memory", 4096, 1024 * 1024,
                          connection_memory)
            NUMBER_OPTION(OPT_QUEUE, "queue", 16, WRITER_QUEUE_MAX, queue_capacity)
            NUMBER_OPTION(OPT_BATCH, "batch", 1, 65536, batch_max)
            NUMBER_OPTION(OPT_GRACE, "shutdown-grace", 0, 3600, shutdown_grace_s)
#undef NUMBER_OPTION
        case OPT_CACHE_SIZE:
            if (parse_number(optarg, 0, 64 * 1024, &v) != 0) {
                snprintf(err, errlen, "--cache-size '%s': expected MiB from 0 to 65536", optarg);
                return CONFIG_USAGE;
            }
            cfg->cache_bytes = (size_t)v * 1024 * 1024;
            break;
        case '?':
        default:
            if (optopt != 0)
                snprintf(err, errlen, "option '%s' needs a value or is unknown", argv[optind - 1]);
            else
                snprintf(err, errlen, "unknown option '%s'", argv[optind - 1]);
            return CONFIG_USAGE;
        }
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
        return CONFIG_USAGE;
    }
    if (cfg->root == NULL) {
        snprintf(err, errlen, "--root DIR is required");
        return CONFIG_USAGE;
    }
    if (strlen(listen) > CONFIG_HOSTPORT_MAX) {
        snprintf(err, errlen, "--listen is too long");
        return CONFIG_USAGE;
    }
    strcpy(cfg->listen, listen);
    if (config_parse_hostport(listen, &cfg->listen_addr, &cfg->listen_addr_len, err, errlen) != 0)
        return CONFIG_USAGE;

    if (strcmp(admin_listen, "off") != 0) {
        if (strlen(admin_listen) > CONFIG_HOSTPORT_MAX) {
            snprintf(err, errlen, "--admin-listen is too long");
            return CONFIG_USAGE;
        }
        strcpy(cfg->admin_listen, admin_listen);
        if (config_parse_hostport(admin_listen, &cfg->admin_addr, &cfg->admin_addr_len, err,
                                  errlen) != 0)
            return CONFIG_USAGE;
    }

    if (public_url != NULL) {
        size_t n = strlen(public_url);
        while (n > 0 && public_url[n - 1] == '/')
            n--;
        if (n > CONFIG_URL_MAX - 32) {
            snprintf(err, errlen, "--public-url is too long");
            return CONFIG_USAGE;
        }
        memcpy(cfg->public_url, public_url, n);
        cfg->public_url[n] = '\0';
        if (check_public_url(cfg->public_url, err, errlen) != 0)
            return CONFIG_USAGE;
    } else {
        default_public_url(cfg);
    }

    if (server_id == NULL) {
        char host[256];
        if (gethostname(host, sizeof host) != 0)
            strcpy(host, "receiptd");
        host[sizeof host - 1] = '\0';
        /* The ID goes into JSON and headers unescaped: keep the host name
         * to the characters --server-id accepts. */
        for (char *p = host; *p; p++) {
            if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e || *p == '"' || *p == '\\')
                *p = '-';
        }
        snprintf(cfg->server_id, sizeof cfg->server_id, "%s", host[0] ? host : "receiptd");
    } else {
        size_t n = strlen(server_id);
        if (n == 0 || n > CONFIG_SERVER_ID_MAX) {
            snprintf(err, errlen, "--server-id must have 1 to %d characters", CONFIG_SERVER_ID_MAX);
            return CONFIG_USAGE;
        }
        for (const char *p = server_id; *p; p++) {
            if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e || *p == '"' || *p == '\\') {
                snprintf(err, errlen, "--server-id '%s': printable ASCII without spaces",
                         server_id);
                return CONFIG_USAGE;
            }
        }
        memcpy(cfg->server_id, server_id, n + 1);
    }
    return CONFIG_OK;
}

void config_free(config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->header_count; i++) {
        free(cfg->headers[i].name);
        free(cfg->headers[i].value);
    }
    cfg->header_count = 0;
}
