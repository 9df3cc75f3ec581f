/*
 * receiptd: serves content and records every delivery.
 *
 * main() wires the modules together: config, keys, ticket sealer, content
 * store, ledger writer, TLS certificates, HTTP listener, redirect listener,
 * admin listener; then waits for signals on the main thread (every other
 * thread has them blocked): SIGHUP reloads the TLS certificates (keeping
 * the old pair when a new one fails) and reopens the access log, SIGTERM
 * and SIGINT shut down cleanly (stop accepting, let requests in flight
 * finish, drain the ledger queue, exit 0).
 */
#include "daemon/accesslog.h"
#include "daemon/admin.h"
#include "daemon/admin_token.h"
#include "daemon/clock.h"
#include "daemon/config.h"
#include "daemon/content.h"
#include "daemon/delivery.h"
#include "daemon/evidence.h"
#include "daemon/http.h"
#include "daemon/http_redirect.h"
#include "daemon/keys.h"
#include "daemon/keystore.h"
#include "daemon/ledger.h"
#include "daemon/ledger_copy.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "daemon/readpool.h"
#include "daemon/recovery.h"
#include "daemon/report.h"
#include "daemon/statelock.h"
#include "daemon/ticket.h"
#include "daemon/tlog.h"
#include "daemon/tls.h"
#include "daemon/upkeep.h"
#include "daemon/upstream.h"
#include "daemon/writer.h"

#include <errno.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define MAIN_ERR_MAX           512
#define MAIN_EXIT_LOST         3   /* ledger events neither committed nor saved */
#define MAIN_FD_RESERVE        256 /* descriptors beyond connections: files, ledger, logs */
#define MAIN_LEDGER_WAIT_MAX_S 30  /* longest wait between tries to reach the ledger */
#define MAIN_CERT_WARN_DAYS    14  /* a certificate this close to expiry is warned about */
#define MAIN_LOG_READERS       4   /* reading handles of the public listener's log routes */

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

/* Threads for the upstreams: one for every two HTTP workers. */
static unsigned upstream_threads(const config *cfg)
{
    unsigned n = (cfg->threads + 1) / 2;
    return n < 1 ? 1 : n > UPSTREAM_THREADS_MAX ? UPSTREAM_THREADS_MAX : n;
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

/*
 * What start-up opens, in order. start_state() runs the same checks for a
 * start and for --check (which creates and changes nothing, and adds what is
 * too slow for every start: a full integrity check of the ledger).
 */
typedef struct state {
    keystore *keys;
    ledger *lg;
    tlog *log; /* NULL without the evidence log */
    recovery_file *recovery;
    uint64_t recovered; /* events applied from the recovery file */
    int lock_fd;        /* statelock.h; held until the process exits */
} state;

static void state_close(state *st)
{
    recovery_close(st->recovery);
    ledger_close(st->lg);
    tlog_free(st->log);
    keystore_free(st->keys);
    if (st->lock_fd >= 0)
        close(st->lock_fd);
    memset(st, 0, sizeof *st);
    st->lock_fd = -1;
}

/* Free space for the recovery file's reservation, beyond what it holds now. */
static int check_reservation_room(const config *cfg, size_t events, char *err, size_t errlen)
{
    char file[PATH_MAX];
    struct statvfs vfs;
    struct stat st;
    uint64_t want = recovery_size_for(events);
    snprintf(file, sizeof file, "%s/%s", cfg->state_dir, RECOVERY_FILE);
    uint64_t have = stat(file, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
    if (statvfs(cfg->state_dir, &vfs) != 0)
        return 0; /* start-up will say */
    uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    if (want > have && want - have > avail) {
        snprintf(err, errlen,
                 "the recovery file needs %llu bytes in %s and only %llu are free: free space, "
                 "or lower --queue or --batch",
                 (unsigned long long)want, cfg->state_dir, (unsigned long long)avail);
        return -1;
    }
    return 0;
}

/* What is valid but will not work as expected: one warning a line. */
static void warn_misconfiguration(const config *cfg)
{
    char lines[CONFIG_WARNINGS_MAX][CONFIG_WARNING_LEN];
    size_t n = config_warnings(cfg, lines, CONFIG_WARNINGS_MAX);
    for (size_t i = 0; i < n; i++)
        log_warn("%s", lines[i]);
}

/* The evidence log's key: made at the first start, named by the public URL. */
static int start_log_key(const config *cfg, bool check_only, keystore *keys, char *err,
                         size_t errlen)
{
    char origin[NOTE_NAME_MAX + 1];
    if (tlog_origin(cfg->public_url, origin, sizeof origin) != 0) {
        snprintf(err, errlen,
                 "--public-url %.300s makes no name for the evidence log (a space or a plus sign "
                 "in it, or too long)",
                 cfg->public_url);
        return -1;
    }
    if (check_only) {
        if (keys->log == NULL)
            printf("receiptd: no evidence log key yet; one named %s is made at start\n", origin);
        return 0;
    }
    int made = keystore_add_log_key(keys, cfg->state_dir, origin, clock_wall_ms(), err, errlen);
    if (made < 0)
        return -1;
    if (made == 1)
        log_info("made the evidence log's key %s in %s/%s", origin, cfg->state_dir, KEYSTORE_FILE);
    else if (strcmp(note_signer_name(keys->log), origin) != 0)
        log_warn("the evidence log keeps its origin %s, named when it began; --public-url now "
                 "gives %s",
                 note_signer_name(keys->log), origin);
    return 0;
}

/*
 * The evidence log, checked against the ledger; with catch_up, what it must
 * record before anything new is written (batches of batch events).
 */
static int load_log(state *st, bool catch_up, size_t batch, char *err, size_t errlen)
{
    st->log = tlog_new(st->keys);
    if (st->log == NULL) {
        snprintf(err, errlen, "cannot set up the evidence log");
        return -1;
    }
    char why[TLOG_ERR_MAX];
    if (tlog_load(st->log, st->lg, why, sizeof why) != 0 ||
        (catch_up && tlog_catch_up(st->log, st->lg, batch, why, sizeof why) != 0)) {
        snprintf(err, errlen, "evidence log: %.400s", why);
        return -1;
    }
    char note[LEDGER_NOTE_MAX + 1];
    uint64_t size = tlog_latest(st->log, note, sizeof note);
    if (catch_up)
        log_info("evidence log %s: %llu %s", note_signer_name(st->keys->log),
                 (unsigned long long)size, size == 1 ? "leaf" : "leaves");
    else
        printf("receiptd: evidence log %s holds %llu %s, its newest checkpoint signed\n",
               note_signer_name(st->keys->log), (unsigned long long)size,
               size == 1 ? "leaf" : "leaves");
    return 0;
}

/*
 * The writer's ledger. A database server that cannot be reached yet (down,
 * still starting, the network not up) is tried again, with the wait doubling
 * up to MAIN_LEDGER_WAIT_MAX_S, and said so each time, until SIGTERM or
 * SIGINT (then *stopped). Anything else wrong with the ledger fails at once.
 */
static ledger *open_ledger_waiting(const config *cfg, const sigset_t *signals, bool *stopped,
                                   char *err, size_t errlen)
{
    unsigned wait_s = 1;
    *stopped = false;
    for (;;) {
        bool unreachable = false;
        ledger *lg =
            ledger_open_ex(cfg->ledger_url, cfg->state_dir, false, &unreachable, err, errlen);
        if (lg != NULL || !unreachable)
            return lg;
        log_warn("%s; trying again in %u s", err, wait_s);
        struct timespec ts = {.tv_sec = wait_s};
        int sig = sigtimedwait(signals, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            log_info("%s while waiting for the ledger: stopping",
                     sig == SIGTERM ? "SIGTERM" : "SIGINT");
            *stopped = true;
            return NULL;
        }
        wait_s = wait_s * 2 > MAIN_LEDGER_WAIT_MAX_S ? MAIN_LEDGER_WAIT_MAX_S : wait_s * 2;
    }
}

/* PostgreSQL: this month's partition and the next ones, at every start (the
 * upkeep thread then daily). Without them rows go to the default partition,
 * which works: a warning, not a reason to stop. */
static void prepare_months(ledger *lg)
{
    uint64_t now = clock_wall_ms();
    int made = ledger_prepare(lg, now, now + (uint64_t)LEDGER_MONTHS_AHEAD * 31 * 86400000ull);
    if (made < 0)
        log_warn("ledger: cannot make the partitions of the months ahead (%s); rows go to the "
                 "default partition until they exist",
                 ledger_error(lg));
    else if (made > 0)
        log_info("ledger: made %d monthly partition%s of deliveries", made, made == 1 ? "" : "s");
}

/*
 * signals: those main() waits for, which stop a start that waits for its
 * ledger (*stopped then); NULL with check_only.
 */
static int start_state(const config *cfg, bool check_only, const sigset_t *signals, bool *stopped,
                       state *st, char *err, size_t errlen)
{
    struct stat sb;
    bool created = false;
    size_t recovery_events = writer_held_max(cfg->queue_capacity, cfg->batch_max);

    memset(st, 0, sizeof *st);
    st->lock_fd = -1;
    if (cfg->root != NULL && check_root(cfg->root, err, errlen) != 0)
        return -1;
    warn_misconfiguration(cfg);
    if (check_only && stat(cfg->state_dir, &sb) != 0) {
        printf("receiptd: state directory %s does not exist yet; it will be created\n",
               cfg->state_dir);
        return 0;
    }

    st->keys = keystore_open(cfg->state_dir, !check_only, &created, err, errlen);
    if (st->keys == NULL)
        return -1;
    if (created)
        log_info("made new server keys in %s/%s", cfg->state_dir, KEYSTORE_FILE);
    if (!check_only) {
        st->lock_fd = statelock_acquire(cfg->state_dir, err, errlen);
        if (st->lock_fd < 0)
            return -1;
    }
    if (cfg->evidence_log && start_log_key(cfg, check_only, st->keys, err, errlen) != 0)
        return -1;

    if (cfg->admin_listen.text[0] != '\0') {
        char token[ADMIN_TOKEN_MAX + 1];
        int rc = admin_token_load(cfg->state_dir, !check_only, token, &created, err, errlen);
        OPENSSL_cleanse(token, sizeof token);
        if (rc < 0)
            return -1;
        if (rc == 1)
            printf("receiptd: no admin token yet; one is made at start\n");
        else if (created)
            log_info("made a new admin token in %s/%s", cfg->state_dir, ADMIN_TOKEN_FILE);
    }

    if (check_only) {
        int exists = ledger_exists(cfg->ledger_url, cfg->state_dir, err, errlen);
        if (exists < 0)
            return -1;
        if (exists == 0) {
            printf("receiptd: no ledger yet; it is created at start\n");
        } else {
            st->lg = ledger_open(cfg->ledger_url, cfg->state_dir, true, err, errlen);
            if (st->lg == NULL)
                return -1;
            if (!cfg->check_quick && ledger_verify(st->lg) != 0) {
                snprintf(err, errlen, "ledger: %s; restore it from a backup", ledger_error(st->lg));
                return -1;
            }
            if (cfg->evidence_log && st->keys->log != NULL &&
                load_log(st, false, 0, err, errlen) != 0)
                return -1;
            if (cfg->check_quick)
                printf("receiptd: ledger %s opens (its integrity is checked by --check)\n",
                       ledger_backend(st->lg));
            else
                printf("receiptd: ledger %s is sound and holds %lld deliveries\n",
                       ledger_backend(st->lg), ledger_count(st->lg));
        }
        recovery_summary rs;
        if (recovery_inspect(cfg->state_dir, &rs, err, errlen) != 0)
            return -1;
        if (rs.events > 0)
            printf("receiptd: %llu ledger events wait in %s/%s; start-up applies them\n",
                   (unsigned long long)rs.events, cfg->state_dir, RECOVERY_FILE);
        if (rs.damaged_at != 0)
            printf("receiptd: warning: %s/%s is damaged at byte %llu; start-up applies the "
                   "events before it and keeps the file aside\n",
                   cfg->state_dir, RECOVERY_FILE, (unsigned long long)rs.damaged_at);
        return check_reservation_room(cfg, recovery_events, err, errlen);
    }

    st->lg = open_ledger_waiting(cfg, signals, stopped, err, errlen);
    if (st->lg == NULL)
        return -1;
    log_info("ledger %s at %s", ledger_backend(st->lg), ledger_where(st->lg));
    prepare_months(st->lg);
    if (cfg->evidence_log && load_log(st, true, cfg->batch_max, err, errlen) != 0)
        return -1;
    if (cfg->evidence_log && tlog_previous_announced(st->log) &&
        keystore_forget_previous(st->keys, cfg->state_dir, err, errlen) != 0)
        return -1;
    /* Events saved when the ledger last failed go in before anything new. */
    recovery_summary rs;
    if (recovery_apply(cfg->state_dir, st->lg, cfg->batch_max,
                       st->log != NULL ? tlog_hook(st->log) : NULL, &rs, err, errlen) != 0)
        return -1;
    st->recovered = rs.events;
    if (rs.events > 0)
        log_warn("applied %llu ledger events saved by the last run from %s/%s",
                 (unsigned long long)rs.events, cfg->state_dir, RECOVERY_FILE);
    st->recovery = recovery_open(cfg->state_dir, recovery_events, err, errlen);
    if (st->recovery == NULL)
        return -1;
    return 0;
}

/* Says which certificate a listener has, and warns of one that is not
 * valid now or soon will not be. */
static void describe_certificate(metrics_listener which, tls_creds *t, const char *how)
{
    const char *listener = metrics_listener_name(which);
    tls_cert_info info;
    tls_creds_info(t, &info);
    metrics_set_tls_expiry(which, (int64_t)info.not_after);
    char until[32] = "?";
    struct tm tm;
    if (gmtime_r(&info.not_after, &tm) != NULL)
        strftime(until, sizeof until, "%Y-%m-%d %H:%M:%S UTC", &tm);
    log_info("%s listener: %s certificate %s (serial %s, %u in chain), valid until %s", listener,
             how, info.subject, info.serial, info.chain_length, until);
    time_t now = time(NULL);
    if (info.not_after <= now)
        log_error("%s listener: the certificate in %s expired on %s: clients will refuse it",
                  listener, tls_creds_cert_file(t), until);
    else if (info.not_before > now)
        log_error("%s listener: the certificate in %s is not valid yet: clients will refuse it",
                  listener, tls_creds_cert_file(t));
    else if (info.chain_length == 1 && !info.self_issued)
        /* A public CA's certificate always needs its intermediates, which
         * browsers may fetch and curl, the receipt command and most
         * devices do not; a private CA's issued by its root needs none. */
        log_warn("%s listener: %s holds no certificate of the chain after the server's: "
                 "clients that do not trust its issuer (%s) directly will refuse it (with "
                 "certbot, give fullchain.pem, not cert.pem)",
                 listener, tls_creds_cert_file(t), info.issuer);
    if (info.not_after > now && info.not_before <= now &&
        info.not_after - now < MAIN_CERT_WARN_DAYS * 24 * 3600) {
        /* In hours below two days: "0 days" would read as already expired. */
        long long left = (long long)(info.not_after - now);
        long long count = left < 2 * 86400 ? left / 3600 : left / 86400;
        const char *unit = left < 2 * 86400 ? (count == 1 ? "hour" : "hours") : "days";
        if (count == 0)
            log_warn("%s listener: the certificate in %s expires in less than an hour, on %s",
                     listener, tls_creds_cert_file(t), until);
        else
            log_warn("%s listener: the certificate in %s expires in %lld %s, on %s", listener,
                     tls_creds_cert_file(t), count, unit, until);
    }
}

/* Loads a listener's pair, if it has one; -1 with err on failure. */
static int load_certificate(metrics_listener which, const char *option, const char *cert,
                            const char *key, tls_creds **out, char *err, size_t errlen)
{
    *out = NULL;
    if (cert == NULL)
        return 0;
    char why[MAIN_ERR_MAX - 64];
    *out = tls_creds_load(cert, key, why, sizeof why);
    if (*out == NULL) {
        snprintf(err, errlen, "--%s: %s", option, why);
        return -1;
    }
    describe_certificate(which, *out, "loaded");
    return 0;
}

/* SIGHUP: a new pair for new connections, or the old one kept. */
static void reload_certificate(metrics_listener which, tls_creds *t)
{
    if (t == NULL)
        return;
    const char *listener = metrics_listener_name(which);
    char err[MAIN_ERR_MAX];
    int rc = tls_creds_reload(t, err, sizeof err);
    metrics_count_tls_reload(rc >= 0);
    if (rc < 0) {
        tls_cert_info info;
        tls_creds_info(t, &info);
        log_error("SIGHUP: %s listener: %s; the certificate in use (serial %s) stays", listener,
                  err, info.serial);
    } else if (rc == 0) {
        describe_certificate(which, t, "reloaded");
    } else {
        log_info("SIGHUP: %s listener: certificate and key unchanged", listener);
    }
}

/* --check: validate everything that start-up would, change nothing. */
static int run_check(const config *cfg)
{
    char err[MAIN_ERR_MAX] = "";
    state st;
    int rc = start_state(cfg, true, NULL, NULL, &st, err, sizeof err);
    state_close(&st);
    if (rc == 0 && cfg->access_log != NULL) {
        /* Opened as the start opens it (created if missing), so that a
         * reload's check does not pass what the next start refuses. */
        accesslog *alog = accesslog_open(cfg->access_log, err, sizeof err);
        rc = alog == NULL;
        accesslog_close(alog);
    }
    if (rc == 0)
        rc = upstream_check(cfg, err, sizeof err);
    tls_creds *pairs[2] = {NULL, NULL};
    if (rc == 0)
        rc = load_certificate(METRICS_LISTENER_PUBLIC, "tls-cert", cfg->tls_cert, cfg->tls_key,
                              &pairs[0], err, sizeof err) != 0 ||
             load_certificate(METRICS_LISTENER_ADMIN, "admin-tls-cert", cfg->admin_tls_cert,
                              cfg->admin_tls_key, &pairs[1], err, sizeof err) != 0;
    for (int i = 0; i < 2; i++) {
        if (pairs[i] == NULL)
            continue;
        tls_cert_info info;
        tls_creds_info(pairs[i], &info);
        printf("receiptd: %s certificate %s, serial %s\n", i == 0 ? "public" : "admin",
               info.subject, info.serial);
        tls_creds_free(pairs[i]);
    }
    if (rc != 0) {
        fprintf(stderr, "receiptd: %s\n", err);
        return 1;
    }
    printf("receiptd: configuration is valid\n");
    return 0;
}

/* The ledger failed for good: stop as if told to (main() then exits 1). */
static void on_ledger_fatal(void *arg)
{
    (void)arg;
    kill(getpid(), SIGTERM);
}

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
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
    const char *scheme = cfg->admin_tls_cert != NULL ? "https" : "http";
    log_info("dashboard: %s://%s:%u/ (its token is in %s/admin-token)", scheme, host,
             admin_port(admin), cfg->state_dir);
    if (isatty(STDOUT_FILENO)) {
        printf("receiptd: dashboard %s://%s:%u/#token=%s\n", scheme, host, admin_port(admin),
               admin_token(admin));
        fflush(stdout);
    }
}

int main(int argc, char **argv)
{
    char err[MAIN_ERR_MAX] = "";
    config cfg;
    int status = 1;
    state st = {.lock_fd = -1};
    const keystore *keys = NULL;
    ticket_sealer *sealer = NULL;
    content_store *content = NULL;
    writer *ledger_writer = NULL;
    upkeep *ledger_upkeep = NULL;
    accesslog *alog = NULL;
    http_server *srv = NULL;
    http_redirect *redirect = NULL;
    admin_server *admin = NULL;
    tls_creds *tls = NULL, *admin_tls = NULL;
    readpool *log_readers = NULL;
    upstream_pool *upstreams = NULL;

    /* A subcommand with options of its own, before the server's parsing. */
    if (argc > 1 && strcmp(argv[1], "report") == 0)
        return report_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "ledger") == 0)
        return ledger_copy_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "keys") == 0)
        return keys_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "evidence") == 0)
        return evidence_main(argc - 1, argv + 1);

    config_result cr = config_parse(&cfg, argc, argv, err, sizeof err);
    if (cr != CONFIG_OK) {
        config_free(&cfg);
        if (cr == CONFIG_EXIT_OK)
            return 0;
        fprintf(stderr, "receiptd: %s\nTry 'receiptd --help'.\n", err);
        return 2;
    }
    log_set_level(cfg.level);
    if (cfg.check_only || cfg.check_quick) {
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

    fit_fd_limit(&cfg);
    bool stopped = false;
    if (start_state(&cfg, false, &signals, &stopped, &st, err, sizeof err) != 0) {
        if (stopped)
            status = 0;
        goto out;
    }
    keys = st.keys;

    sealer = ticket_sealer_new(keys->ticket_secret);
    if (sealer == NULL) {
        snprintf(err, sizeof err, "cannot set up ticket sealing");
        goto out;
    }

    if (cfg.root != NULL) {
        content_options copts;
        content_options_default(&copts);
        copts.cache_bytes = cfg.cache_bytes;
        copts.inject_element = cfg.inject ? DELIVERY_ELEMENT : NULL;
        content = content_store_new(cfg.root, &copts, err, sizeof err);
        if (content == NULL)
            goto out;
    }
    upstreams = upstream_pool_new(&cfg, upstream_threads(&cfg), err, sizeof err);
    if (upstreams == NULL)
        goto out;

    const char *backend = ledger_backend(st.lg);
    ledger_writer = writer_new(st.lg, cfg.queue_capacity, cfg.batch_max);
    if (ledger_writer == NULL) {
        snprintf(err, sizeof err, "cannot set up the ledger writer");
        goto out;
    }
    st.lg = NULL; /* the writer owns it now */
    writer_set_recovery(ledger_writer, st.recovery);
    writer_set_log(ledger_writer, st.log);
    writer_set_fatal_handler(ledger_writer, on_ledger_fatal, NULL);
    if (writer_start(ledger_writer) != 0) {
        snprintf(err, sizeof err, "cannot start the ledger writer thread");
        goto out;
    }
    ledger_upkeep = upkeep_start(cfg.ledger_url, cfg.state_dir);
    if (ledger_upkeep == NULL) {
        snprintf(err, sizeof err, "cannot start the ledger upkeep thread");
        goto out;
    }

    if (cfg.access_log != NULL) {
        alog = accesslog_open(cfg.access_log, err, sizeof err);
        if (alog == NULL)
            goto out;
    }
    if (load_certificate(METRICS_LISTENER_PUBLIC, "tls-cert", cfg.tls_cert, cfg.tls_key, &tls, err,
                         sizeof err) != 0 ||
        load_certificate(METRICS_LISTENER_ADMIN, "admin-tls-cert", cfg.admin_tls_cert,
                         cfg.admin_tls_key, &admin_tls, err, sizeof err) != 0)
        goto out;

    if (st.log != NULL) {
        log_readers = readpool_new(cfg.ledger_url, cfg.state_dir, MAIN_LOG_READERS);
        if (log_readers == NULL) {
            snprintf(err, sizeof err, "out of memory");
            goto out;
        }
    }
    http_services svc = {
        .cfg = &cfg,
        .content = content,
        .upstreams = upstreams,
        .sealer = sealer,
        .keys = keys,
        .ledger_writer = ledger_writer,
        .access_log = alog,
        .tls = tls,
        .log = st.log,
        .log_readers = log_readers,
    };
    srv = http_server_start(&svc, err, sizeof err);
    if (srv == NULL)
        goto out;
    if (cfg.redirect_http.text[0] != '\0') {
        redirect = http_redirect_start(&cfg, alog, err, sizeof err);
        if (redirect == NULL)
            goto out;
        log_info("redirect listener on %s (port %u): 308 to %s", cfg.redirect_http.text,
                 http_redirect_port(redirect), cfg.public_url);
    }

    log_info("receiptd %s serving %s on %s (port %u), %u threads, ledger %s, site %s, node %s",
             RECEIPT_VERSION, cfg.root != NULL ? cfg.root : "no directory", cfg.listen.text,
             http_server_port(srv), cfg.threads, backend, cfg.server_id, cfg.node_id);
    for (size_t i = 0; i < cfg.upstream_count; i++)
        log_info("requests under %s go to %s", cfg.upstreams[i].prefix, cfg.upstreams[i].url.text);
    log_info("public URL %s; confirmations go to %s/_receipt/confirm", cfg.public_url,
             cfg.public_url);
    if (cfg.root != NULL)
        printf("receiptd: serving %s at %s/\n", cfg.root, cfg.public_url);
    else
        printf("receiptd: in front of %s%s at %s/\n", cfg.upstreams[0].url.text,
               cfg.upstream_count > 1 ? " and other upstreams" : "", cfg.public_url);
    fflush(stdout);

    if (cfg.admin_listen.text[0] != '\0') {
        admin_services asvc = {.cfg = &cfg,
                               .ledger_writer = ledger_writer,
                               .recovered_at_start = st.recovered,
                               .http = srv,
                               .tls = admin_tls,
                               .keys = st.log != NULL ? keys : NULL,
                               .upstreams = upstreams};
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
            reload_certificate(METRICS_LISTENER_PUBLIC, tls);
            reload_certificate(METRICS_LISTENER_ADMIN, admin_tls);
            if (alog == NULL)
                continue;
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

    /* One grace for the whole shutdown: requests in flight first, then a
     * failing ledger; what it still cannot take then goes to the recovery
     * file. */
    uint64_t grace_ms = (uint64_t)cfg.shutdown_grace_s * 1000;
    uint64_t deadline = monotonic_ms() + grace_ms;
    writer_stats ws;
    writer_get_stats(ledger_writer, &ws);
    if (ws.fatal)
        log_error("stopping: the ledger failed (see above)");
    admin_stop(admin);
    admin = NULL;
    http_redirect_stop(redirect);
    redirect = NULL;
    if (!http_server_drain(srv, (unsigned)grace_ms))
        log_warn("requests still in flight after %u s; closing them", cfg.shutdown_grace_s);
    http_server_stop(srv);
    uint64_t now = monotonic_ms();
    writer_stop(ledger_writer, now < deadline ? (unsigned)(deadline - now) : 0);
    http_server_free(srv);
    srv = NULL;
    writer_get_stats(ledger_writer, &ws);
    if (ws.lost > 0) {
        log_error("stopped: %llu ledger events LOST (neither the ledger nor the recovery file "
                  "took them); %llu committed, %llu saved for the next start",
                  (unsigned long long)ws.lost, (unsigned long long)ws.committed,
                  (unsigned long long)ws.saved);
        status = MAIN_EXIT_LOST;
    } else if (ws.saved > 0 || ws.fatal) {
        log_error("stopped: %llu ledger events committed, %llu saved to %s/%s for the next "
                  "start",
                  (unsigned long long)ws.committed, (unsigned long long)ws.saved, cfg.state_dir,
                  RECOVERY_FILE);
        status = ws.fatal ? 1 : 0;
    } else {
        log_info("ledger flushed: %llu events in %llu batches; stopped",
                 (unsigned long long)ws.committed, (unsigned long long)ws.batches);
        status = 0;
    }

out:
    if (status != 0 && err[0] != '\0')
        log_error("%s", err);
    admin_stop(admin);
    http_redirect_stop(redirect);
    http_server_stop(srv);
    upkeep_stop(ledger_upkeep);
    writer_free(ledger_writer);
    http_server_free(srv);
    /* After the listeners: no handshake can start any more. */
    tls_creds_free(tls);
    tls_creds_free(admin_tls);
    readpool_free(log_readers);
    upstream_pool_free(upstreams);
    accesslog_close(alog);
    content_store_free(content);
    ticket_sealer_free(sealer);
    state_close(&st);
    config_free(&cfg);
    return status;
}
