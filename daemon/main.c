/*
 * receiptd: serves content and records every delivery.
 *
 * main() wires the modules together: config, keys, ticket sealer, content
 * store, ledger writer, HTTP listener, admin listener; then waits for signals on the main
 * thread (every other thread has them blocked): SIGHUP reopens the access
 * log, SIGTERM and SIGINT shut down cleanly (stop accepting, let requests in
 * flight finish, drain the ledger queue, exit 0).
 */
#include "daemon/accesslog.h"
#include "daemon/admin.h"
#include "daemon/admin_token.h"
#include "daemon/config.h"
#include "daemon/content.h"
#include "daemon/http.h"
#include "daemon/keystore.h"
#include "daemon/ledger.h"
#include "daemon/log.h"
#include "daemon/report.h"
#include "daemon/ticket.h"
#include "daemon/writer.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAIN_ERR_MAX    512
#define MAIN_FD_RESERVE 256 /* descriptors beyond connections: files, ledger, logs */

/* Makes room for the configured connections; lowers the limit if it cannot. */
static void fit_fd_limit(config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = (rlim_t)cfg->max_connections + MAIN_FD_RESERVE;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want <= rl.rlim_max ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < want) {
        unsigned fit = rl.rlim_cur > MAIN_FD_RESERVE * 2 ? (unsigned)(rl.rlim_cur - MAIN_FD_RESERVE)
                                                         : (unsigned)(rl.rlim_cur / 2);
        log_warn("open file limit is %llu: --max-connections lowered from %u to %u",
                 (unsigned long long)rl.rlim_cur, cfg->max_connections, fit);
        cfg->max_connections = fit;
    }
}

static int check_root(const char *root, char *err, size_t errlen)
{
    struct stat st;
    if (stat(root, &st) != 0) {
        snprintf(err, errlen, "--root %s: %s", root, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "--root %s is not a directory", root);
        return -1;
    }
    return 0;
}

/* --check: validate everything that start-up would, change nothing. */
static int run_check(const config *cfg)
{
    char err[MAIN_ERR_MAX] = "";
    if (check_root(cfg->root, err, sizeof err) != 0) {
        fprintf(stderr, "receiptd: %s\n", err);
        return 1;
    }
    struct stat st;
    if (stat(cfg->state_dir, &st) != 0) {
        printf("receiptd: state directory %s does not exist yet; it will be created\n",
               cfg->state_dir);
    } else {
        keystore *ks = keystore_open(cfg->state_dir, false, NULL, err, sizeof err);
        if (ks == NULL) {
            fprintf(stderr, "receiptd: %s\n", err);
            return 1;
        }
        keystore_free(ks);
        char token_file[PATH_MAX];
        snprintf(token_file, sizeof token_file, "%s/%s", cfg->state_dir, ADMIN_TOKEN_FILE);
        if (stat(token_file, &st) == 0 && (st.st_mode & 077) != 0) {
            fprintf(stderr, "receiptd: %s grants access to group or others: chmod 600 %s\n",
                    token_file, token_file);
            return 1;
        }
        ledger *lg = ledger_open(cfg->ledger_url, cfg->state_dir, true, err, sizeof err);
        if (lg == NULL) {
            printf("receiptd: ledger not opened read-only (%s); it is created at start\n", err);
        } else {
            printf("receiptd: ledger %s holds %lld deliveries\n", ledger_backend(lg),
                   ledger_count(lg));
            ledger_close(lg);
        }
    }
    printf("receiptd: configuration is valid\n");
    return 0;
}

/*
 * The dashboard link, token included, in the log and on stdout (where
 * `make run` shows it). The host is the one the admin listener is bound to;
 * a wildcard address is shown as loopback, which reaches it from this host.
 */
static void print_admin_link(const config *cfg, const admin_server *admin)
{
    char host[CONFIG_HOSTPORT_MAX + 1];
    const char *colon = cfg->admin_listen.text[0] == '[' ? strchr(cfg->admin_listen.text, ']')
                                                         : strrchr(cfg->admin_listen.text, ':');
    size_t n = colon != NULL ? (size_t)(colon - cfg->admin_listen.text) : 0;
    if (cfg->admin_listen.text[0] == '[')
        n++; /* keep the brackets of an IPv6 literal */
    memcpy(host, cfg->admin_listen.text, n);
    host[n] = '\0';
    if (n == 0 || strcmp(host, "0.0.0.0") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    else if (strcmp(host, "[::]") == 0)
        snprintf(host, sizeof host, "[::1]");
    log_info("admin listener on %s (port %u): dashboard, /metrics and /api/",
             cfg->admin_listen.text, admin_port(admin));
    /* The token opens the whole ledger: logs (a journal, a file) get the
     * place of the token, and only a person at a terminal gets the link
     * that signs in. */
    log_info("dashboard: http://%s:%u/ (its token is in %s/admin-token)", host, admin_port(admin),
             cfg->state_dir);
    if (isatty(STDOUT_FILENO)) {
        printf("receiptd: dashboard http://%s:%u/#token=%s\n", host, admin_port(admin),
               admin_token(admin));
        fflush(stdout);
    }
}

int main(int argc, char **argv)
{
    char err[MAIN_ERR_MAX] = "";
    config cfg;
    int status = 1;
    keystore *keys = NULL;
    ticket_sealer *sealer = NULL;
    content_store *content = NULL;
    ledger *lg = NULL;
    writer *ledger_writer = NULL;
    accesslog *alog = NULL;
    http_server *srv = NULL;
    admin_server *admin = NULL;

    /* A subcommand with options of its own, before the server's parsing. */
    if (argc > 1 && strcmp(argv[1], "report") == 0)
        return report_main(argc - 1, argv + 1);

    config_result cr = config_parse(&cfg, argc, argv, err, sizeof err);
    if (cr != CONFIG_OK) {
        config_free(&cfg);
        if (cr == CONFIG_EXIT_OK)
            return 0;
        fprintf(stderr, "receiptd: %s\nTry 'receiptd --help'.\n", err);
        return 2;
    }
    log_set_level(cfg.level);
    if (cfg.check_only) {
        status = run_check(&cfg);
        config_free(&cfg);
        return status;
    }

    /* Every thread made from here on inherits this mask; only the main
     * thread takes the signals, in sigwait(). */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (check_root(cfg.root, err, sizeof err) != 0)
        goto out;
    fit_fd_limit(&cfg);

    bool created = false;
    keys = keystore_open(cfg.state_dir, true, &created, err, sizeof err);
    if (keys == NULL)
        goto out;
    if (created)
        log_info("made new server keys in %s/%s", cfg.state_dir, KEYSTORE_FILE);

    sealer = ticket_sealer_new(keys->ticket_secret);
    if (sealer == NULL) {
        snprintf(err, sizeof err, "cannot set up ticket sealing");
        goto out;
    }

    content_options copts;
    content_options_default(&copts);
    copts.cache_bytes = cfg.cache_bytes;
    content = content_store_new(cfg.root, &copts, err, sizeof err);
    if (content == NULL)
        goto out;

    lg = ledger_open(cfg.ledger_url, cfg.state_dir, false, err, sizeof err);
    if (lg == NULL)
        goto out;
    const char *backend = ledger_backend(lg);
    ledger_writer = writer_new(lg, cfg.queue_capacity, cfg.batch_max);
    if (ledger_writer == NULL) {
        ledger_close(lg);
        snprintf(err, sizeof err, "cannot set up the ledger writer");
        goto out;
    }
    lg = NULL; /* the writer owns it now */
    if (writer_start(ledger_writer) != 0) {
        snprintf(err, sizeof err, "cannot start the ledger writer thread");
        goto out;
    }

    if (cfg.access_log != NULL) {
        alog = accesslog_open(cfg.access_log, err, sizeof err);
        if (alog == NULL)
            goto out;
    }

    http_services svc = {
        .cfg = &cfg,
        .content = content,
        .sealer = sealer,
        .keys = keys,
        .ledger_writer = ledger_writer,
        .access_log = alog,
    };
    srv = http_server_start(&svc, err, sizeof err);
    if (srv == NULL)
        goto out;

    log_info("receiptd %s serving %s on %s (port %u), %u threads, ledger %s, server id %s",
             RECEIPT_VERSION, cfg.root, cfg.listen.text, http_server_port(srv), cfg.threads,
             backend, cfg.server_id);
    log_info("public URL %s; confirmations go to %s/_receipt/confirm", cfg.public_url,
             cfg.public_url);
    printf("receiptd: serving %s at %s/\n", cfg.root, cfg.public_url);
    fflush(stdout);

    if (cfg.admin_listen.text[0] != '\0') {
        admin_services asvc = {.cfg = &cfg, .ledger_writer = ledger_writer};
        admin = admin_start(&asvc, err, sizeof err);
        if (admin == NULL && cfg.admin_explicit)
            goto out;
        if (admin == NULL) {
            /* The default address may be taken by another receiptd on this
             * host: serve content anyway, without the admin listener. */
            log_warn("%s; no admin listener (set --admin-listen, or 'off')", err);
            err[0] = '\0';
        } else {
            print_admin_link(&cfg, admin);
        }
    }

    for (;;) {
        int sig = 0;
        if (sigwait(&signals, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            if (accesslog_reopen(alog) != 0)
                log_error("cannot reopen the access log: %s", strerror(errno));
            else
                log_info("SIGHUP: access log reopened");
            continue;
        }
        log_info("%s: stopping; finishing requests in flight",
                 sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }

    admin_stop(admin);
    admin = NULL;
    if (!http_server_drain(srv, cfg.shutdown_grace_s * 1000))
        log_warn("requests still in flight after %u s; closing them", cfg.shutdown_grace_s);
    http_server_stop(srv);
    writer_stop(ledger_writer);
    http_server_free(srv);
    srv = NULL;
    writer_stats ws;
    writer_get_stats(ledger_writer, &ws);
    log_info("ledger flushed: %llu events in %llu batches; stopped",
             (unsigned long long)ws.committed, (unsigned long long)ws.batches);
    status = 0;

out:
    if (status != 0 && err[0] != '\0')
        log_error("%s", err);
    admin_stop(admin);
    http_server_stop(srv);
    writer_free(ledger_writer);
    http_server_free(srv);
    ledger_close(lg);
    accesslog_close(alog);
    content_store_free(content);
    ticket_sealer_free(sealer);
    keystore_free(keys);
    config_free(&cfg);
    return status;
}
