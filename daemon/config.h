/*
 * config: receiptd's command line.
 *
 * config_parse() fills a config from argv with the documented defaults,
 * validates every value, and reports the first problem in err. Strings in a
 * config point into argv or into the config itself; nothing is allocated
 * except the extra header list (config_free()).
 */
#ifndef RECEIPT_DAEMON_CONFIG_H
#define RECEIPT_DAEMON_CONFIG_H

#include "daemon/log.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CONFIG_HOSTPORT_MAX      300
#define CONFIG_URL_MAX           512
#define CONFIG_SERVER_ID_MAX     63
#define CONFIG_EXTRA_HEADERS_MAX 32

typedef struct config_header {
    char *name;
    char *value;
} config_header;

typedef struct config {
    const char *root;
    const char *state_dir;
    const char *ledger_url; /* NULL: STATE_DIR/ledger.sqlite */
    const char *access_log; /* NULL: none */
    char listen[CONFIG_HOSTPORT_MAX + 1];
    struct sockaddr_storage listen_addr;
    socklen_t listen_addr_len;
    char admin_listen[CONFIG_HOSTPORT_MAX + 1]; /* "" with --admin-listen off */
    struct sockaddr_storage admin_addr;
    socklen_t admin_addr_len;
    bool admin_explicit; /* given on the command line: failing to bind it is fatal */
    char public_url[CONFIG_URL_MAX + 1]; /* no trailing slash */
    char server_id[CONFIG_SERVER_ID_MAX + 1];
    uint64_t ticket_ttl_s;
    bool inject;
    bool check_only;
    log_level level;
    unsigned threads;
    unsigned max_connections;
    unsigned per_ip_connections; /* 0: no per-address limit */
    unsigned idle_timeout_s;
    size_t connection_memory;
    size_t queue_capacity;
    size_t batch_max;
    size_t cache_bytes;
    unsigned shutdown_grace_s;
    config_header headers[CONFIG_EXTRA_HEADERS_MAX];
    size_t header_count;
} config;

typedef enum config_result {
    CONFIG_OK = 0,
    CONFIG_EXIT_OK, /* --help or --version printed: exit 0 */
    CONFIG_USAGE,   /* err says what is wrong: exit 2      */
} config_result;

config_result config_parse(config *cfg, int argc, char **argv, char *err, size_t errlen);
void config_free(config *cfg);

/* Parses "HOST:PORT", "[V6]:PORT" or ":PORT" into an address. */
int config_parse_hostport(const char *text, struct sockaddr_storage *addr, socklen_t *len,
                          char *err, size_t errlen);

#endif
