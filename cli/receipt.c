/*
 * receipt: the command-line client of the receipt protocol.
 *
 * A pure user of include/receipt/receipt.h. Exit codes (also in --help and
 * receipt(1)):
 *   0  confirmed
 *   1  another failure
 *   2  usage
 *   3  content saved, confirmation spooled for a later "receipt flush"
 *   4  the bytes received differ from the content's digest (confirmed as
 *      corrupted; no file left under the final name)
 */
#include <receipt/receipt.h>

#include "cli_json.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EXIT_CONFIRMED     0
#define EXIT_FAILURE_OTHER 1
#define EXIT_USAGE         2
#define EXIT_SPOOLED       3
#define EXIT_CORRUPTED     4
#define EXIT_INCONSISTENT  5
#define EXIT_INTERRUPTED   130

#define CLI_PATH_MAX             4096
#define CLI_FILE_MAX             (64 * 1024) /* receipts and key sets read from files */
#define CLI_PROGRESS_INTERVAL_MS 100
#define CLI_LOG_KEYS_MAX         64 /* --log-key given again: the keys a log has had */

static const char usage_text[] =
    "usage: receipt COMMAND [OPTIONS]\n"
    "\n"
    "Commands:\n"
    "  keygen [--key FILE] [--force]      make a client key (P-256, PEM, mode 0600)\n"
    "  id [--key FILE]                    print the client ID of the key\n"
    "  fetch URL [-o FILE] [--key FILE] [--spool DIR] [--receipts DIR] [--json]\n"
    "        [--quiet] [--insecure-confirm] [--cacert FILE] [--capath DIR]\n"
    "                                     download, verify, confirm, keep the receipt\n"
    "  flush [--key FILE] [--spool DIR] [--receipts DIR] [--json] [--due]\n"
    "        [--insecure-confirm] [--cacert FILE] [--capath DIR]\n"
    "                                     send spooled confirmations\n"
    "  verify RECEIPT_FILE [--jwks URL_OR_FILE] [--cacert FILE] [--capath DIR]\n"
    "         [--proof FILE] [--log-key KEY]... [--online | --log URL]\n"
    "                                     check a receipt (and its proof, kept beside\n"
    "                                     it as DELIVERY.proof.json) and print its payload\n"
    "  verify --bundle FILE [--log-key KEY]...\n"
    "                                     check an evidence bundle offline\n"
    "  audit URL [--logs DIR] [--cacert FILE] [--capath DIR]\n"
    "                                     check that the server's evidence log is\n"
    "                                     consistent with what the last audit saw\n"
    "\n"
    "Options:\n"
    "  --key FILE          client key (default: STATE/client-key.pem; fetch creates it)\n"
    "  --spool DIR         unsent confirmations (default: STATE/spool)\n"
    "  --receipts DIR      receipts, saved as DELIVERY.jws (default: STATE/receipts)\n"
    "  -o, --output FILE   where fetch saves the content ('-': standard output;\n"
    "                      default: the last segment of the URL path)\n"
    "  --json              one JSON object on standard output (flush: one per line)\n"
    "  --due               flush only confirmations whose retry time has come\n"
    "  --insecure-confirm  allow confirming over plain http to a non-loopback host\n"
    "  --jwks URL_OR_FILE  verify with this key set (default: the one the receipt\n"
    "                      names on its server, over https or to loopback)\n"
    "  --cacert FILE       verify https servers with the CA certificates in FILE (PEM)\n"
    "                      instead of the system's (default: $CURL_CA_BUNDLE, else\n"
    "                      $SSL_CERT_FILE and $SSL_CERT_DIR, else the system's CAs)\n"
    "  --capath DIR        the same with a directory of hashed CA certificates\n"
    "  --proof FILE        the receipt's proof (default: the receipt file's name\n"
    "                      with .proof.json for .jws, when that file exists)\n"
    "  --log-key KEY       the evidence log's verifier key (name+id+key): checkpoints\n"
    "                      must be signed by it; again for each older key of the log\n"
    "                      you trust (a proof from before a key rotation is signed\n"
    "                      by the key then)\n"
    "  --online            verify: check the proof against the log of the server the\n"
    "                      receipt names, as it is now (network): its checkpoint\n"
    "                      consistent with the newest, and log keys followed along\n"
    "                      the log's key changes from the ones given\n"
    "  --log URL           the same against the log at URL (a server or a mirror)\n"
    "  --bundle FILE       an evidence bundle (receiptd evidence) to check\n"
    "  --logs DIR          pinned log keys and the checkpoints audits saw\n"
    "                      (default: STATE/logs)\n"
    "  -q, --quiet         no progress bar or summary on standard error\n"
    "  -v, --verbose       log what the library does to standard error\n"
    "  -h, --help          this text\n"
    "  -V, --version       the version\n"
    "\n"
    "STATE is $XDG_STATE_HOME/receipt, or ~/.local/state/receipt.\n"
    "Certificate verification cannot be turned off: a receipt from a server that\n"
    "was not authenticated proves nothing.\n"
    "\n"
    "Exit status:\n"
    "  0  confirmed (flush: every confirmation sent was confirmed, none waits)\n"
    "  1  another failure\n"
    "  2  usage error\n"
    "  3  content saved, but the confirmation was spooled (run: receipt flush)\n"
    "  4  the bytes received differ from the content's digest: the delivery was\n"
    "     confirmed as corrupted and no file is left under the final name\n"
    "  5  audit, verify --bundle or --online: the evidence log is not consistent\n"
    "     with what was seen before (or with itself): it was rewritten or forked\n";

static volatile sig_atomic_t cli_interrupted;

/* Which CAs https servers are verified against, for messages. */
static char cli_ca_source[CLI_PATH_MAX + 64] = "the system's CAs";

typedef struct cli_opts {
    const char *key;
    const char *spool;
    const char *receipts;
    const char *output;
    const char *jwks;
    const char *cacert;
    const char *capath;
    const char *proof;
    char *log_keys; /* the --log-key values, one a line; NULL: none */
    size_t log_key_count;
    const char *bundle;
    const char *logs;
    const char *log_url; /* verify --log URL: the log to check the proof against */
    bool json;
    bool quiet;
    bool verbose;
    bool force;
    bool due;
    bool insecure;
    bool key_given;
    bool online;
} cli_opts;

typedef struct cli_progress {
    bool draw;
    bool drawn;
    uint64_t last_ms;
    uint64_t start_ms;
} cli_progress;

static void cli_on_signal(int sig)
{
    (void)sig;
    cli_interrupted = 1;
}

static uint64_t cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void cli_verr(const char *fmt, va_list ap, const char *tail)
{
    fputs("receipt: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(tail, stderr);
}

static void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void cli_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli_verr(fmt, ap, "\n");
    va_end(ap);
}

static int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli_verr(fmt, ap, "\nTry 'receipt --help'.\n");
    va_end(ap);
    return EXIT_USAGE;
}

/* One more --log-key: the keys given, one a line, as libreceipt takes them. */
static int cli_add_log_key(cli_opts *o, const char *key)
{
    size_t len = strlen(key), have = o->log_keys != NULL ? strlen(o->log_keys) : 0;
    if (len == 0 || strchr(key, '\n') != NULL || o->log_key_count == CLI_LOG_KEYS_MAX ||
        len > CLI_FILE_MAX)
        return -1;
    char *joined = realloc(o->log_keys, have + len + 2);
    if (joined == NULL)
        return -1;
    if (have > 0)
        joined[have++] = '\n';
    memcpy(joined + have, key, len + 1);
    o->log_keys = joined;
    o->log_key_count++;
    return 0;
}

static void cli_log(receipt_log_level level, const char *message, void *user)
{
    static const char *names[] = {"debug", "info", "warning"};
    (void)user;
    fprintf(stderr, "receipt: %s: %s\n", names[level <= RECEIPT_LOG_WARN ? level : 0], message);
}

/* Warnings always reach the user; the rest only with --verbose. */
static void cli_log_warnings(receipt_log_level level, const char *message, void *user)
{
    if (level >= RECEIPT_LOG_WARN)
        cli_log(level, message, user);
}

static void cli_human_bytes(uint64_t n, char *out, size_t outlen)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, outlen, "%llu B", (unsigned long long)n);
    else
        snprintf(out, outlen, "%.1f %s", v, units[u]);
}

static int cli_on_progress(uint64_t received, uint64_t total, void *user)
{
    cli_progress *p = user;
    if (cli_interrupted)
        return 1;
    if (!p->draw || (received == 0 && total == 0))
        return 0;
    uint64_t now = cli_now_ms();
    if (p->start_ms == 0)
        p->start_ms = now;
    bool done = total > 0 && received >= total;
    if (!done && now - p->last_ms < CLI_PROGRESS_INTERVAL_MS)
        return 0;
    p->last_ms = now;
    char got[32], all[32], rate[32];
    cli_human_bytes(received, got, sizeof(got));
    uint64_t elapsed = now - p->start_ms;
    cli_human_bytes(elapsed > 0 ? received * 1000 / elapsed : 0, rate, sizeof(rate));
    if (total > 0) {
        enum { width = 30 };
        unsigned pct = (unsigned)(received * 100 / total);
        unsigned fill = (unsigned)(received * width / total);
        char bar[width + 1];
        for (unsigned i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '-';
        bar[width] = '\0';
        cli_human_bytes(total, all, sizeof(all));
        fprintf(stderr, "\r%3u%% [%s] %s / %s  %s/s\033[K", pct, bar, got, all, rate);
    } else {
        fprintf(stderr, "\r%s  %s/s\033[K", got, rate);
    }
    p->drawn = true;
    return 0;
}

static void cli_progress_end(cli_progress *p)
{
    if (p->drawn)
        fputc('\n', stderr);
    p->drawn = false;
}

/* STATE/name into out; -1 when neither XDG_STATE_HOME nor HOME is usable. */
static int cli_state_path(const char *name, char *out, size_t outlen)
{
    const char *xdg = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    int n;
    /* The XDG spec: a relative XDG_STATE_HOME is invalid and ignored. */
    if (xdg != NULL && xdg[0] == '/')
        n = snprintf(out, outlen, "%s/receipt%s%s", xdg, name[0] ? "/" : "", name);
    else if (home != NULL && home[0] != '\0')
        n = snprintf(out, outlen, "%s/.local/state/receipt%s%s", home, name[0] ? "/" : "", name);
    else
        return -1;
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

/* Fills in defaults for the paths the command uses. */
static int cli_defaults(cli_opts *o, char *key, char *spool, char *receipts)
{
    o->key_given = o->key != NULL;
    if (o->key == NULL) {
        if (cli_state_path("client-key.pem", key, CLI_PATH_MAX) != 0)
            goto nostate;
        o->key = key;
    }
    if (o->spool == NULL) {
        if (cli_state_path("spool", spool, CLI_PATH_MAX) != 0)
            goto nostate;
        o->spool = spool;
    }
    if (o->receipts == NULL) {
        if (cli_state_path("receipts", receipts, CLI_PATH_MAX) != 0)
            goto nostate;
        o->receipts = receipts;
    }
    return 0;
nostate:
    cli_err("neither XDG_STATE_HOME nor HOME is set; name the files with --key, --spool "
            "and --receipts");
    return -1;
}

static int cli_read_file(const char *path, char **out)
{
    *out = NULL;
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        cli_err("cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    char *buf = malloc(CLI_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, CLI_FILE_MAX + 1, f) : 0;
    int bad = buf == NULL || ferror(f) || n > CLI_FILE_MAX;
    if (f != stdin)
        fclose(f);
    if (bad) {
        cli_err("cannot read %s (missing, unreadable or over %d bytes)", path, CLI_FILE_MAX);
        free(buf);
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

/* The status word that --json reports for a delivery. */
static const char *cli_status_word(const receipt_delivery *d)
{
    return receipt_status_name(receipt_delivery_status(d));
}

/* kept: whether the delivery's file is still there to report. */
static void cli_json_delivery(FILE *f, const receipt_delivery *d, const char *status, bool kept,
                              const char *error)
{
    fputs("{\"delivery\":", f);
    cli_json_str(f, receipt_delivery_id(d));
    fputs(",\"status\":", f);
    cli_json_str(f, status);
    fprintf(f, ",\"intact\":%s", receipt_delivery_intact(d) ? "true" : "false");
    fputs(",\"sha256\":", f);
    cli_json_str(f, receipt_delivery_sha256(d));
    fprintf(f, ",\"size\":%llu", (unsigned long long)receipt_delivery_size(d));
    fputs(",\"path\":", f);
    cli_json_str(f, kept ? receipt_delivery_file(d) : NULL);
    fputs(",\"receipt\":", f);
    cli_json_str(f, receipt_delivery_receipt(d));
    fputs(",\"receipt_file\":", f);
    cli_json_str(f, receipt_delivery_receipt_file(d));
    fputs(",\"url\":", f);
    cli_json_str(f, receipt_delivery_url(d));
    fputs(",\"content\":{\"path\":", f);
    cli_json_str(f, receipt_delivery_content_path(d));
    if (receipt_delivery_expected_sha256(d) != NULL && receipt_delivery_expected_sha256(d)[0]) {
        fputs(",\"sha256\":", f);
        cli_json_str(f, receipt_delivery_expected_sha256(d));
        fprintf(f, ",\"size\":%llu", (unsigned long long)receipt_delivery_expected_size(d));
    }
    fputs("}", f);
    if (error != NULL && error[0] != '\0') {
        fputs(",\"error\":", f);
        cli_json_str(f, error);
    }
    fputs("}\n", f);
    fflush(f);
}

static void cli_json_failure(const char *url, const char *error)
{
    fputs("{\"delivery\":null,\"status\":\"failed\",\"url\":", stdout);
    cli_json_str(stdout, url);
    fputs(",\"error\":", stdout);
    cli_json_str(stdout, error);
    fputs("}\n", stdout);
    fflush(stdout);
}

static const char *cli_env(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

/*
 * The CAs to trust: --cacert and --capath, else the variables curl's own
 * command honours, in its order (CURL_CA_BUNDLE, then SSL_CERT_FILE and
 * SSL_CERT_DIR). Debian's libcurl reads none of them itself.
 */
static int cli_set_ca(receipt_client *c, const cli_opts *o)
{
    const char *file = o->cacert, *dir = o->capath;
    const char *from_file = "--cacert", *from_dir = "--capath";
    if (file == NULL && dir == NULL) {
        if ((file = cli_env("CURL_CA_BUNDLE")) != NULL) {
            from_file = "CURL_CA_BUNDLE";
        } else {
            file = cli_env("SSL_CERT_FILE");
            dir = cli_env("SSL_CERT_DIR");
            from_file = "SSL_CERT_FILE";
            from_dir = "SSL_CERT_DIR";
        }
    }
    if (file == NULL && dir == NULL)
        return 0;
    /* One at a time, so that an error names where the bad name came from. */
    if (file != NULL && receipt_client_set_ca(c, file, NULL) != RECEIPT_OK) {
        cli_err("%s (named by %s)", receipt_errmsg(c), from_file);
        return -1;
    }
    if (receipt_client_set_ca(c, file, dir) != RECEIPT_OK) {
        cli_err("%s (named by %s)", receipt_errmsg(c), from_dir);
        return -1;
    }
    if (file != NULL && dir != NULL)
        snprintf(cli_ca_source, sizeof(cli_ca_source), "%s (%s) and %s (%s)", file, from_file, dir,
                 from_dir);
    else
        snprintf(cli_ca_source, sizeof(cli_ca_source), "%s (%s)", file ? file : dir,
                 file ? from_file : from_dir);
    return 0;
}

/* After a TLS failure: which CAs were trusted, and how to name others. */
static void cli_tls_hint(void)
{
    if (strcmp(cli_ca_source, "the system's CAs") == 0)
        cli_err("trusted: the system's CAs; for a server with a private CA, name its "
                "certificate with --cacert FILE");
    else
        cli_err("trusted: only the CAs in %s", cli_ca_source);
}

static receipt_client *cli_client(const cli_opts *o)
{
    receipt_client *c = NULL;
    receipt_result r = receipt_client_new(&c);
    if (r != RECEIPT_OK) {
        cli_err("%s", receipt_strerror(r));
        return NULL;
    }
    receipt_client_set_log(c, o->verbose ? cli_log : cli_log_warnings, NULL);
    receipt_client_set_flags(c, o->insecure ? RECEIPT_ALLOW_INSECURE_CONFIRM : 0);
    if (cli_set_ca(c, o) != 0) {
        receipt_client_free(c);
        return NULL;
    }
    return c;
}

/* Loads the key; the default one is made on first use when create is set. */
static int cli_load_key(receipt_client *c, const cli_opts *o, bool create)
{
    if (create && !o->key_given && access(o->key, F_OK) != 0 && errno == ENOENT) {
        if (receipt_client_generate_key(c) != RECEIPT_OK ||
            receipt_client_save_key(c, o->key, 0) != RECEIPT_OK) {
            cli_err("%s", receipt_errmsg(c));
            return -1;
        }
        if (!o->quiet)
            cli_err("created client key %s (client ID %s)", o->key, receipt_client_id(c));
        return 0;
    }
    if (receipt_client_load_key(c, o->key) != RECEIPT_OK) {
        cli_err("%s", receipt_errmsg(c));
        if (!o->key_given && access(o->key, F_OK) != 0)
            cli_err("make one with: receipt keygen");
        return -1;
    }
    return 0;
}

static int cmd_keygen(cli_opts *o)
{
    char key[CLI_PATH_MAX], spool[CLI_PATH_MAX], receipts[CLI_PATH_MAX];
    if (cli_defaults(o, key, spool, receipts) != 0)
        return EXIT_FAILURE_OTHER;
    receipt_client *c = cli_client(o);
    if (c == NULL)
        return EXIT_FAILURE_OTHER;
    int rc = EXIT_FAILURE_OTHER;
    if (receipt_client_generate_key(c) != RECEIPT_OK) {
        cli_err("%s", receipt_errmsg(c));
        goto out;
    }
    receipt_result r = receipt_client_save_key(c, o->key, o->force ? RECEIPT_SAVE_OVERWRITE : 0);
    if (r == RECEIPT_ERR_EXISTS) {
        cli_err("%s exists; --force replaces it (and its client ID)", o->key);
        goto out;
    }
    if (r != RECEIPT_OK) {
        cli_err("%s", receipt_errmsg(c));
        goto out;
    }
    printf("%s\n", receipt_client_id(c));
    if (!o->quiet)
        cli_err("key saved to %s", o->key);
    rc = EXIT_CONFIRMED;
out:
    receipt_client_free(c);
    return rc;
}

static int cmd_id(cli_opts *o)
{
    char key[CLI_PATH_MAX], spool[CLI_PATH_MAX], receipts[CLI_PATH_MAX];
    if (cli_defaults(o, key, spool, receipts) != 0)
        return EXIT_FAILURE_OTHER;
    receipt_client *c = cli_client(o);
    if (c == NULL)
        return EXIT_FAILURE_OTHER;
    int rc = EXIT_FAILURE_OTHER;
    if (cli_load_key(c, o, false) == 0) {
        printf("%s\n", receipt_client_id(c));
        rc = EXIT_CONFIRMED;
    }
    receipt_client_free(c);
    return rc;
}

static int cli_hex(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/*
 * The default output name: the URL path's last segment, percent-decoded,
 * or index.html. A name that decodes to a path or a control character is
 * refused rather than cleaned up behind the user's back.
 */
static int cli_default_output(const char *url, const char *dir, char *out, size_t outlen)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    p = strchr(p, '/');
    char name[256] = "index.html";
    bool bad = false;
    if (p != NULL) {
        size_t len = strcspn(p, "?#");
        const char *seg = p;
        for (size_t i = 0; i < len; i++)
            if (p[i] == '/')
                seg = p + i + 1;
        size_t seglen = (size_t)(p + len - seg);
        size_t n = 0;
        for (size_t i = 0; i < seglen && n + 1 < sizeof(name); i++) {
            unsigned char ch = (unsigned char)seg[i];
            if (ch == '%' && i + 2 < seglen && cli_hex(seg[i + 1]) >= 0 &&
                cli_hex(seg[i + 2]) >= 0) {
                ch = (unsigned char)(cli_hex(seg[i + 1]) * 16 + cli_hex(seg[i + 2]));
                i += 2;
            }
            if (ch < 0x20 || ch == 0x7f || ch == '/')
                bad = true;
            name[n++] = (char)ch;
        }
        if (n > 0)
            name[n] = '\0';
    }
    if (bad || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
        cli_err("cannot make a file name from %s; name one with -o", url);
        return -1;
    }
    int n = dir ? snprintf(out, outlen, "%s/%s", dir, name) : snprintf(out, outlen, "%s", name);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

static int cli_write_stdout(const void *data, size_t n, void *user)
{
    (void)user;
    return fwrite(data, 1, n, stdout) == n ? 0 : -1;
}

static void cli_fetch_summary(const cli_opts *o, const receipt_delivery *d, const char *error)
{
    if (o->quiet)
        return;
    char size[32];
    cli_human_bytes(receipt_delivery_size(d), size, sizeof(size));
    const char *file = receipt_delivery_file(d);
    const char *rfile = receipt_delivery_receipt_file(d);
    fprintf(stderr, "receipt: %s: delivery %s, %s%s%s\n", cli_status_word(d),
            receipt_delivery_id(d), size, file ? ", saved to " : "", file ? file : "");
    if (rfile != NULL)
        fprintf(stderr, "receipt: receipt saved to %s\n", rfile);
    if (error != NULL && error[0] != '\0')
        fprintf(stderr, "receipt: %s\n", error);
}

static int cmd_fetch(cli_opts *o, const char *url)
{
    char key[CLI_PATH_MAX], spool[CLI_PATH_MAX], receipts[CLI_PATH_MAX];
    char output[CLI_PATH_MAX];
    if (cli_defaults(o, key, spool, receipts) != 0)
        return EXIT_FAILURE_OTHER;
    bool to_stdout = o->output != NULL && strcmp(o->output, "-") == 0;
    if (!to_stdout) {
        struct stat st;
        const char *dir = NULL;
        if (o->output != NULL && stat(o->output, &st) == 0 && S_ISDIR(st.st_mode))
            dir = o->output;
        if (o->output == NULL || dir != NULL) {
            if (cli_default_output(url, dir, output, sizeof(output)) != 0)
                return EXIT_USAGE;
        } else {
            snprintf(output, sizeof(output), "%s", o->output);
        }
    }
    if (to_stdout && o->json)
        return cli_usage_error("--json and -o - both want standard output");

    receipt_client *c = cli_client(o);
    if (c == NULL)
        return EXIT_FAILURE_OTHER;
    receipt_delivery *d = NULL;
    int rc = EXIT_FAILURE_OTHER;
    char error[1024] = "";
    bool tls_failed = false;
    cli_progress progress = {.draw = !o->quiet && isatty(STDERR_FILENO)};
    receipt_client_set_progress(c, cli_on_progress, &progress);

    if (cli_load_key(c, o, true) != 0) {
        /* Already said on standard error. */
        if (o->json)
            cli_json_failure(url, receipt_errmsg(c));
        goto out;
    }
    if (receipt_client_set_spool_dir(c, o->spool) != RECEIPT_OK ||
        receipt_client_set_receipt_dir(c, o->receipts) != RECEIPT_OK) {
        snprintf(error, sizeof(error), "%s", receipt_errmsg(c));
        goto fail;
    }

    receipt_result r = to_stdout ? receipt_fetch(c, url, cli_write_stdout, NULL, &d)
                                 : receipt_fetch_file(c, url, output, &d);
    cli_progress_end(&progress);
    if (to_stdout && fflush(stdout) != 0 && r == RECEIPT_OK) {
        snprintf(error, sizeof(error), "cannot write standard output: %s", strerror(errno));
        goto fail;
    }
    if (cli_interrupted)
        goto interrupted;
    if (d == NULL) {
        snprintf(error, sizeof(error), "%s", receipt_errmsg(c));
        tls_failed = r == RECEIPT_ERR_TLS;
        goto fail;
    }
    if (r == RECEIPT_ERR_DIGEST)
        cli_err("%s", receipt_errmsg(c));

    /* A corrupted delivery is confirmed too: the server records what the
     * client actually got. */
    r = receipt_confirm(c, d);
    if (r != RECEIPT_OK)
        snprintf(error, sizeof(error), "%s", receipt_errmsg(c));
    receipt_status st = receipt_delivery_status(d);
    if (!receipt_delivery_intact(d) || st == RECEIPT_STATUS_CORRUPTED) {
        /* The server found the bytes corrupted although they matched what
         * it stated: keep nothing under the final name either way. */
        if (receipt_delivery_file(d) != NULL)
            unlink(receipt_delivery_file(d));
        rc = EXIT_CORRUPTED;
    } else if (r == RECEIPT_OK) {
        rc = EXIT_CONFIRMED;
    } else if (r == RECEIPT_SPOOLED) {
        rc = EXIT_SPOOLED;
    } else {
        rc = EXIT_FAILURE_OTHER;
    }
    if (o->json) {
        cli_json_delivery(stdout, d, cli_status_word(d), rc != EXIT_CORRUPTED, error);
    } else {
        cli_fetch_summary(o, d,
                          r == RECEIPT_SPOOLED ? "confirmation spooled; send it later "
                                                 "with: receipt flush"
                                               : error);
    }
    if (rc == EXIT_FAILURE_OTHER && o->quiet)
        cli_err("%s", error);
    goto out;

interrupted:
    cli_err("interrupted");
    rc = EXIT_INTERRUPTED;
    goto out;
fail:
    cli_progress_end(&progress);
    if (o->json)
        cli_json_failure(url, error[0] ? error : receipt_errmsg(c));
    cli_err("%s", error[0] ? error : receipt_errmsg(c));
    if (tls_failed)
        cli_tls_hint();
    rc = EXIT_FAILURE_OTHER;
out:
    receipt_delivery_free(d);
    receipt_client_free(c);
    return rc;
}

typedef struct cli_flush_state {
    const cli_opts *o;
    size_t confirmed;
    size_t corrupted;
    size_t waiting;
    size_t failed;
} cli_flush_state;

static void cli_on_flushed(const receipt_delivery *d, receipt_result r, const char *message,
                           void *user)
{
    cli_flush_state *s = user;
    receipt_status st = receipt_delivery_status(d);
    if (r == RECEIPT_OK && st == RECEIPT_STATUS_CORRUPTED)
        s->corrupted++;
    else if (r == RECEIPT_OK)
        s->confirmed++;
    else if (r == RECEIPT_SPOOLED)
        s->waiting++;
    else
        s->failed++;
    const char *word = r == RECEIPT_OK || r == RECEIPT_SPOOLED || st == RECEIPT_STATUS_REJECTED
                           ? receipt_status_name(st)
                           : "failed";
    if (s->o->json) {
        cli_json_delivery(stdout, d, word, true, message);
        return;
    }
    printf("%s %s", word, receipt_delivery_id(d));
    if (receipt_delivery_receipt_file(d) != NULL)
        printf(" receipt %s", receipt_delivery_receipt_file(d));
    if (message[0] != '\0')
        printf(" (%s)", message);
    putchar('\n');
    fflush(stdout);
}

static int cmd_flush(cli_opts *o)
{
    char key[CLI_PATH_MAX], spool[CLI_PATH_MAX], receipts[CLI_PATH_MAX];
    if (cli_defaults(o, key, spool, receipts) != 0)
        return EXIT_FAILURE_OTHER;
    receipt_client *c = cli_client(o);
    if (c == NULL)
        return EXIT_FAILURE_OTHER;
    int rc = EXIT_FAILURE_OTHER;
    /* With --key, only that client's confirmations; without, all of them
     * (the spool holds everything needed to send them). */
    if (o->key_given && cli_load_key(c, o, false) != 0)
        goto out;
    if (receipt_client_set_spool_dir(c, o->spool) != RECEIPT_OK ||
        receipt_client_set_receipt_dir(c, o->receipts) != RECEIPT_OK) {
        cli_err("%s", receipt_errmsg(c));
        goto out;
    }
    cli_flush_state s = {.o = o};
    receipt_result r = receipt_flush(c, o->due ? 0 : RECEIPT_FLUSH_ALL, cli_on_flushed, &s);
    if (r != RECEIPT_OK && r != RECEIPT_SPOOLED && r != RECEIPT_ERR_REJECTED && s.failed == 0)
        cli_err("%s", receipt_errmsg(c));
    if (!o->quiet && !o->json)
        cli_err("%s", receipt_errmsg(c));
    if (s.failed > 0 || (r != RECEIPT_OK && r != RECEIPT_SPOOLED))
        rc = EXIT_FAILURE_OTHER;
    else if (s.corrupted > 0)
        rc = EXIT_CORRUPTED;
    else if (r == RECEIPT_SPOOLED)
        rc = EXIT_SPOOLED;
    else
        rc = EXIT_CONFIRMED;
out:
    receipt_client_free(c);
    return rc;
}

/* A number member of one of the library's compact JSON summaries (0 when
 * absent). */
static long cli_report_number(const char *report, const char *member)
{
    char key[64];
    snprintf(key, sizeof key, "\"%s\":", member);
    const char *at = strstr(report, key);
    return at != NULL ? strtol(at + strlen(key), NULL, 10) : 0;
}

/* The receipt in a file: a compact JWS, or a JSON object (such as the
 * output of "receipt fetch --json") with a "receipt" member. */
static char *cli_extract_receipt(char *text)
{
    char *p = text;
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
        p++;
    if (*p == '{') {
        char *m = strstr(p, "\"receipt\"");
        if (m == NULL)
            return NULL;
        m += strlen("\"receipt\"");
        while (*m == ' ' || *m == ':' || *m == '\n' || *m == '\t' || *m == '\r')
            m++;
        if (*m != '"')
            return NULL;
        p = m + 1;
        char *end = strchr(p, '"');
        if (end == NULL)
            return NULL;
        *end = '\0';
        return p;
    }
    size_t n = strlen(p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == '\t'))
        p[--n] = '\0';
    return p;
}

static int cmd_verify(cli_opts *o, const char *file)
{
    receipt_client *c = cli_client(o);
    if (c == NULL)
        return EXIT_FAILURE_OTHER;
    int rc = EXIT_FAILURE_OTHER;
    char *text = NULL, *jwks = NULL, *payload = NULL, *named = NULL, *proof = NULL;
    char *in_log = NULL;
    bool jwks_fetched = false;
    if (cli_read_file(file, &text) != 0)
        goto out;
    const char *receipt = cli_extract_receipt(text);
    if (receipt == NULL || receipt[0] == '\0') {
        cli_err("%s holds no receipt", file);
        goto out;
    }
    /* Without --jwks, the key set the receipt names on its own server:
     * what is verified then is that this server signed it. */
    const char *source = o->jwks;
    if (source == NULL) {
        if (receipt_jwks_url(c, receipt, &named) != RECEIPT_OK) {
            cli_err("%s: %s (or give --jwks)", file, receipt_errmsg(c));
            goto out;
        }
        source = named;
    }
    if (strncmp(source, "http://", 7) == 0 || strncmp(source, "https://", 8) == 0) {
        receipt_result r = receipt_jwks_fetch(c, source, &jwks);
        if (r != RECEIPT_OK) {
            cli_err("%s", receipt_errmsg(c));
            if (r == RECEIPT_ERR_TLS)
                cli_tls_hint();
            goto out;
        }
        jwks_fetched = true;
    } else if (cli_read_file(source, &jwks) != 0) {
        goto out;
    }
    if (receipt_verify(c, receipt, jwks, &payload) != RECEIPT_OK) {
        cli_err("%s: %s", file, receipt_errmsg(c));
        goto out;
    }
    /* Its proof: the one named, or the one kept beside it. */
    char beside[CLI_PATH_MAX];
    const char *proof_file = o->proof;
    size_t len = strlen(file);
    if (proof_file == NULL && len > 4 && strcmp(file + len - 4, ".jws") == 0 &&
        snprintf(beside, sizeof(beside), "%.*s.proof.json", (int)(len - 4), file) <
            (int)sizeof(beside) &&
        access(beside, F_OK) == 0)
        proof_file = beside;
    if (proof_file == NULL && o->online) {
        cli_err("%s: no proof to check against the log (give --proof FILE, or keep it beside "
                "the receipt as DELIVERY.proof.json)",
                file);
        goto out;
    }
    if (proof_file != NULL) {
        if (cli_read_file(proof_file, &proof) != 0)
            goto out;
        receipt_result pr = o->online ? receipt_verify_proof_in_log(c, receipt, proof, o->log_keys,
                                                                    o->log_url, &in_log)
                                      : receipt_verify_proof(c, receipt, proof, o->log_keys);
        if (pr != RECEIPT_OK) {
            const char *msg = receipt_errmsg(c);
            if (pr == RECEIPT_ERR_INCONSISTENT)
                rc = EXIT_INCONSISTENT;
            cli_err("%s: %s%s", proof_file, msg,
                    strstr(msg, "signed by another key") != NULL
                        ? " (give --log-key once for each key you trust, such as those "
                          "receipt audit pinned; a bundle from receiptd evidence: receipt "
                          "verify --bundle FILE)"
                        : "");
            goto out;
        }
    }
    printf("%s\n", payload);
    if (!o->quiet && !o->json && in_log != NULL)
        cli_err("%s: valid receipt, signed with a key of %s; in the evidence log (its proof "
                "checks, its checkpoint signed by a log key given or one that the log's key "
                "changes link to it (%ld followed), and consistent with the log's newest "
                "checkpoint, of %ld leaves)",
                file, source, cli_report_number(in_log, "keys_followed"),
                cli_report_number(in_log, "size"));
    else if (!o->quiet && !o->json)
        cli_err("%s: valid receipt, signed with a key of %s%s", file, source,
                proof_file == NULL ? ""
                : o->log_key_count > 1
                    ? "; in the evidence log (its proof checks, its checkpoint signed by one of "
                      "the log keys given)"
                : o->log_keys != NULL ? "; in the evidence log (its proof checks, its checkpoint "
                                        "signed by the log key)"
                                      : "; in the evidence log (its proof checks; give --log-key "
                                        "to check its checkpoint's signature)");
    rc = EXIT_CONFIRMED;
out:
    receipt_free(in_log);
    free(proof);
    receipt_free(named);
    receipt_free(payload);
    if (jwks_fetched)
        receipt_free(jwks);
    else
        free(jwks);
    free(text);
    receipt_client_free(c);
    return rc;
}

static int cmd_verify_bundle(cli_opts *o)
{
    receipt_client *c = cli_client(o);
    if (c == NULL)
        return EXIT_FAILURE_OTHER;
    int rc = EXIT_FAILURE_OTHER;
    char *text = NULL, *report = NULL;
    if (cli_read_file(o->bundle, &text) != 0)
        goto out;
    receipt_result r = receipt_verify_bundle(c, text, o->log_keys, &report);
    if (r != RECEIPT_OK) {
        cli_err("%s: %s", o->bundle, receipt_errmsg(c));
        rc = r == RECEIPT_ERR_INCONSISTENT ? EXIT_INCONSISTENT : EXIT_FAILURE_OTHER;
        goto out;
    }
    printf("%s\n", report);
    if (!o->quiet && !o->json)
        cli_err("%s: valid evidence bundle (%s)", o->bundle,
                o->log_key_count > 1  ? "its checkpoints signed by the log keys given, or by keys "
                                        "their changes in the bundle reach"
                : o->log_keys != NULL ? "its checkpoints signed by the log key given, or by keys "
                                        "its changes in the bundle reach"
                                      : "its checkpoints signed by the log keys it names; give "
                                        "--log-key to check them against one you trust");
    rc = EXIT_CONFIRMED;
out:
    receipt_free(report);
    free(text);
    receipt_client_free(c);
    return rc;
}

static int cmd_audit(cli_opts *o, const char *url)
{
    char logs[CLI_PATH_MAX];
    if (o->logs == NULL) {
        if (cli_state_path("logs", logs, sizeof(logs)) != 0) {
            cli_err("no state directory: set HOME or XDG_STATE_HOME, or give --logs DIR");
            return EXIT_FAILURE_OTHER;
        }
        o->logs = logs;
    }
    receipt_client *c = cli_client(o);
    if (c == NULL)
        return EXIT_FAILURE_OTHER;
    int rc = EXIT_FAILURE_OTHER;
    char *report = NULL;
    receipt_result r = receipt_audit(c, url, o->logs, &report);
    if (r != RECEIPT_OK) {
        cli_err("%s", receipt_errmsg(c));
        rc = r == RECEIPT_ERR_INCONSISTENT ? EXIT_INCONSISTENT : EXIT_FAILURE_OTHER;
        goto out;
    }
    printf("%s\n", report);
    if (!o->quiet && !o->json && strstr(report, "\"first_use\":true") != NULL)
        cli_err("%s: first audit of this evidence log: its key is pinned and its checkpoint "
                "kept in %s",
                url, o->logs);
    else if (!o->quiet && !o->json) {
        long count = cli_report_number(report, "key_changes");
        char times[32], changed[200] = "";
        snprintf(times, sizeof times, "%ld times", count);
        if (count > 0)
            snprintf(changed, sizeof changed,
                     "; its key changed %s, each change announced under the key before it, and "
                     "the newest key is pinned",
                     count == 1   ? "once"
                     : count == 2 ? "twice"
                                  : times);
        cli_err("%s: the evidence log is consistent with the checkpoint the last audit saw%s "
                "(the new one kept in %s)",
                url, changed, o->logs);
    }
    rc = EXIT_CONFIRMED;
out:
    receipt_free(report);
    receipt_client_free(c);
    return rc;
}

int main(int argc, char **argv)
{
    enum {
        OPT_KEY = 256,
        OPT_SPOOL,
        OPT_RECEIPTS,
        OPT_JSON,
        OPT_JWKS,
        OPT_FORCE,
        OPT_DUE,
        OPT_INSECURE,
        OPT_CACERT,
        OPT_CAPATH,
        OPT_PROOF,
        OPT_LOG_KEY,
        OPT_BUNDLE,
        OPT_LOGS,
        OPT_ONLINE,
        OPT_LOG
    };
    static const struct option longopts[] = {
        {"key", required_argument, NULL, OPT_KEY},
        {"spool", required_argument, NULL, OPT_SPOOL},
        {"receipts", required_argument, NULL, OPT_RECEIPTS},
        {"output", required_argument, NULL, 'o'},
        {"json", no_argument, NULL, OPT_JSON},
        {"jwks", required_argument, NULL, OPT_JWKS},
        {"force", no_argument, NULL, OPT_FORCE},
        {"due", no_argument, NULL, OPT_DUE},
        {"insecure-confirm", no_argument, NULL, OPT_INSECURE},
        {"cacert", required_argument, NULL, OPT_CACERT},
        {"capath", required_argument, NULL, OPT_CAPATH},
        {"proof", required_argument, NULL, OPT_PROOF},
        {"log-key", required_argument, NULL, OPT_LOG_KEY},
        {"bundle", required_argument, NULL, OPT_BUNDLE},
        {"logs", required_argument, NULL, OPT_LOGS},
        {"online", no_argument, NULL, OPT_ONLINE},
        {"log", required_argument, NULL, OPT_LOG},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    /* Static: what it holds stays reachable until the process ends. */
    static cli_opts o;

    if (argc < 2)
        return cli_usage_error("no command");
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_text, stdout);
        return EXIT_CONFIRMED;
    }
    if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
        printf("receipt %s\n", receipt_version());
        return EXIT_CONFIRMED;
    }

    opterr = 0;
    optind = 1;
    int ch;
    int sub_argc = argc - 1;
    char **sub_argv = argv + 1;
    while ((ch = getopt_long(sub_argc, sub_argv, ":o:qvhV", longopts, NULL)) != -1) {
        switch (ch) {
        case OPT_KEY:
            o.key = optarg;
            break;
        case OPT_SPOOL:
            o.spool = optarg;
            break;
        case OPT_RECEIPTS:
            o.receipts = optarg;
            break;
        case 'o':
            o.output = optarg;
            break;
        case OPT_JSON:
            o.json = true;
            break;
        case OPT_JWKS:
            o.jwks = optarg;
            break;
        case OPT_FORCE:
            o.force = true;
            break;
        case OPT_DUE:
            o.due = true;
            break;
        case OPT_INSECURE:
            o.insecure = true;
            break;
        case OPT_CACERT:
            o.cacert = optarg;
            break;
        case OPT_CAPATH:
            o.capath = optarg;
            break;
        case OPT_PROOF:
            o.proof = optarg;
            break;
        case OPT_LOG_KEY:
            if (cli_add_log_key(&o, optarg) != 0)
                return cli_usage_error("--log-key %s: one verifier key (name+id+key) each, at "
                                       "most %d",
                                       optarg, CLI_LOG_KEYS_MAX);
            break;
        case OPT_BUNDLE:
            o.bundle = optarg;
            break;
        case OPT_LOGS:
            o.logs = optarg;
            break;
        case OPT_ONLINE:
            o.online = true;
            break;
        case OPT_LOG:
            o.log_url = optarg;
            o.online = true;
            break;
        case 'q':
            o.quiet = true;
            break;
        case 'v':
            o.verbose = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return EXIT_CONFIRMED;
        case 'V':
            printf("receipt %s\n", receipt_version());
            return EXIT_CONFIRMED;
        case ':':
            return cli_usage_error("option %s needs a value", sub_argv[optind - 1]);
        default:
            return cli_usage_error("unknown option %s", sub_argv[optind - 1]);
        }
    }
    int npos = sub_argc - optind;
    char **pos = sub_argv + optind;

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = cli_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* A closed pipe on standard output is an error to report, not a kill. */
    signal(SIGPIPE, SIG_IGN);

    if (strcmp(cmd, "keygen") == 0 || strcmp(cmd, "id") == 0 || strcmp(cmd, "flush") == 0) {
        if (npos != 0)
            return cli_usage_error("%s takes no argument", cmd);
        if (strcmp(cmd, "keygen") == 0)
            return cmd_keygen(&o);
        if (strcmp(cmd, "id") == 0)
            return cmd_id(&o);
        return cmd_flush(&o);
    }
    if (strcmp(cmd, "fetch") == 0) {
        if (npos != 1)
            return cli_usage_error("fetch takes one URL");
        return cmd_fetch(&o, pos[0]);
    }
    if (strcmp(cmd, "verify") == 0) {
        if (o.bundle != NULL) {
            if (npos != 0)
                return cli_usage_error("verify --bundle takes no receipt file");
            if (o.online)
                return cli_usage_error("verify --bundle is checked offline: --online and --log "
                                       "are for a receipt's proof");
            return cmd_verify_bundle(&o);
        }
        if (npos != 1)
            return cli_usage_error("verify takes one receipt file");
        if (o.online && o.log_keys == NULL)
            return cli_usage_error("verify --online needs --log-key: the log's key that you "
                                   "trust (the server names it at URL/_receipt/log/key)");
        return cmd_verify(&o, pos[0]);
    }
    if (strcmp(cmd, "audit") == 0) {
        if (npos != 1)
            return cli_usage_error("audit takes one URL");
        return cmd_audit(&o, pos[0]);
    }
    return cli_usage_error("unknown command %s", cmd);
}
