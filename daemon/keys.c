#include "daemon/keys.h"

#include "daemon/clock.h"
#include "daemon/keystore.h"
#include "daemon/statelock.h"

#include <errno.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KEYS_ERR_MAX  512
#define KEYS_FILE_MAX (64 * 1024)

static const char keys_usage[] =
    "usage: receiptd keys show [--state-dir DIR]\n"
    "       receiptd keys export [--state-dir DIR] > FILE\n"
    "       receiptd keys import [--state-dir DIR] [--replace] FILE|-\n"
    "       receiptd keys rotate [--state-dir DIR] signing|log\n"
    "\n"
    "The server's keys (STATE_DIR/server-keys.json: the encryption and signing\n"
    "keys, the ticket secret, the evidence log's key and the keys that signed\n"
    "before them), which every receiptd node of one site shares.\n"
    "\n"
    "  show      the key IDs, a fingerprint of the ticket secret and the log's\n"
    "            verifier key: equal on every node of a site, and safe to show\n"
    "  rotate    makes a new signing key or log key; the old one stays in the\n"
    "            key history (verify-only, with the time it stopped signing), so\n"
    "            that what it signed stays verifiable. The running server keeps\n"
    "            its keys: restart it, and export and import the new keys on\n"
    "            every other node. A new log key is announced in the log at the\n"
    "            next start, in a checkpoint signed by the old key and the new\n"
    "  export    the key file on standard output; it is secret: move it only to\n"
    "            another node (receiptd keys export | ssh node2 receiptd keys\n"
    "            import -) and do not leave copies\n"
    "  import    checks a key file and installs it as STATE_DIR/server-keys.json\n"
    "            (mode 0600; the directory made with mode 0700); other keys\n"
    "            already there are kept unless --replace, since replacing them\n"
    "            voids every ticket and plug-in data that node gave out\n"
    "\n"
    "  --state-dir DIR   default /var/lib/receiptd\n"
    "\n"
    "Importing keys that a rotation on another node made from the ones there\n"
    "(the same encryption key and ticket secret) needs no --replace.\n"
    "\n"
    "Exit status: 0 done (import: also when the same keys were there), 1 failed,\n"
    "2 a usage error.\n";

static int usage_error(const char *what)
{
    fprintf(stderr, "receiptd keys: %s\nTry 'receiptd keys --help'.\n", what);
    return 2;
}

/* Reads a key file to import: a file, or standard input for "-". */
static char *read_input(const char *name, size_t *len, char *err, size_t errlen)
{
    FILE *in = strcmp(name, "-") == 0 ? stdin : fopen(name, "rb");
    char *text = NULL;
    if (in == NULL) {
        snprintf(err, errlen, "%s: %s", name, strerror(errno));
        return NULL;
    }
    text = malloc(KEYS_FILE_MAX + 1);
    if (text == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    *len = fread(text, 1, KEYS_FILE_MAX + 1, in);
    if (ferror(in)) {
        snprintf(err, errlen, "%s: cannot read it", name);
    } else if (*len > KEYS_FILE_MAX) {
        snprintf(err, errlen, "%s is larger than %d bytes: not a key file", name, KEYS_FILE_MAX);
    } else {
        text[*len] = '\0';
        goto out;
    }
    OPENSSL_cleanse(text, KEYS_FILE_MAX + 1);
    free(text);
    text = NULL;
out:
    if (in != stdin)
        fclose(in);
    return text;
}

static void print_time(const char *label, uint64_t ms)
{
    char when[32] = "unknown";
    if (ms != 0) {
        time_t t = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    printf("%s%s", label, when);
}

static void show(const keystore *ks)
{
    char fingerprint[17];
    keystore_secret_fingerprint(ks, fingerprint);
    printf("encryption key  %s\n", eckey_thumbprint(ks->enc));
    printf("signing key     %s\n", eckey_thumbprint(ks->sig));
    printf("ticket secret   sha256:%s...\n", fingerprint);
    if (ks->log != NULL) {
        char vkey[NOTE_VKEY_MAX];
        note_verifier *v = note_signer_verifier(ks->log);
        if (v != NULL) {
            note_verifier_text(v, vkey);
            printf("log key         %s\n", vkey);
        }
        note_verifier_free(v);
        if (ks->log_previous != NULL) {
            v = note_signer_verifier(ks->log_previous);
            if (v != NULL) {
                note_verifier_text(v, vkey);
                printf("log key before  %s (until the log announces the new one)\n", vkey);
            }
            note_verifier_free(v);
        }
    } else {
        printf("log key         none yet (made when the server first starts)\n");
    }
    for (size_t i = 0; i < ks->old_sig_count; i++) {
        printf("retired signing %s  ", eckey_thumbprint(ks->old_sig[i].key));
        print_time("from ", ks->old_sig[i].since_ms);
        print_time(" to ", ks->old_sig[i].retired_ms);
        putchar('\n');
    }
    for (size_t i = 0; i < ks->old_log_count; i++) {
        char vkey[NOTE_VKEY_MAX];
        note_verifier_text(ks->old_log[i].key, vkey);
        printf("retired log     %s  ", vkey);
        print_time("from ", ks->old_log[i].since_ms);
        print_time(" to ", ks->old_log[i].retired_ms);
        putchar('\n');
    }
}

static int rotate(const char *state_dir, const char *which)
{
    char err[KEYS_ERR_MAX] = "";
    keystore_key key;
    if (strcmp(which, "signing") == 0)
        key = KEYSTORE_SIGNING;
    else if (strcmp(which, "log") == 0)
        key = KEYSTORE_LOG;
    else
        return usage_error("rotate takes signing or log");
    /* A running server would go on signing with the key this retires, and
     * what it signed after the retirement would fail verification. */
    int lock = statelock_acquire(state_dir, err, sizeof err);
    if (lock < 0) {
        fprintf(stderr, "receiptd keys rotate: %s%s\n", err,
                lock == STATELOCK_HELD ? "; stop it first, rotate, then start it" : "");
        return 1;
    }
    keystore *ks = keystore_rotate(state_dir, key, clock_wall_ms(), err, sizeof err);
    close(lock);
    if (ks == NULL) {
        fprintf(stderr, "receiptd keys rotate: %s\n", err);
        return 1;
    }
    printf("receiptd keys: a new %s key in %s/%s; import the keys on every other node of\n"
           "the site while it is stopped too (receiptd keys export | ssh NODE receiptd keys\n"
           "import -), then start them all\n",
           which, state_dir, KEYSTORE_FILE);
    show(ks);
    keystore_free(ks);
    return 0;
}

int keys_main(int argc, char **argv)
{
    static const struct option options[] = {
        {"state-dir", required_argument, NULL, 's'},
        {"replace", no_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *state_dir = "/var/lib/receiptd";
    bool replace = false;
    char err[KEYS_ERR_MAX] = "";
    int opt;

    if (argc < 2)
        return usage_error("name a command: show, export, import or rotate");
    if (strcmp(argv[1], "--help") == 0) {
        fputs(keys_usage, stdout);
        return 0;
    }
    const char *command = argv[1];
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc - 1, argv + 1, "", options, NULL)) != -1) {
        switch (opt) {
        case 's':
            state_dir = optarg;
            break;
        case 'r':
            replace = true;
            break;
        case 'h':
            fputs(keys_usage, stdout);
            return 0;
        default:
            return usage_error("an option needs a value or is unknown");
        }
    }
    int rest = argc - 1 - optind;
    bool import = strcmp(command, "import") == 0;
    bool rotating = strcmp(command, "rotate") == 0;
    if (strcmp(command, "show") != 0 && strcmp(command, "export") != 0 && !import && !rotating)
        return usage_error("unknown command (show, export, import or rotate)");
    if (replace && !import)
        return usage_error("--replace is for import");
    if (rest != (import || rotating ? 1 : 0))
        return usage_error(import     ? "import needs one FILE, or - for standard input"
                           : rotating ? "rotate needs the key: signing or log"
                                      : "unexpected argument");
    if (rotating)
        return rotate(state_dir, argv[1 + optind]);

    if (import) {
        size_t len = 0;
        const char *name = argv[1 + optind];
        char *text = read_input(name, &len, err, sizeof err);
        keystore *ks = text != NULL ? keystore_parse(name, text, len, err, sizeof err) : NULL;
        if (text != NULL) {
            OPENSSL_cleanse(text, KEYS_FILE_MAX + 1);
            free(text);
        }
        /* A running server keeps the keys it loaded: replace them while none runs. */
        int lock = -1;
        if (ks != NULL && access(state_dir, F_OK) == 0) {
            lock = statelock_acquire(state_dir, err, sizeof err);
            if (lock == STATELOCK_HELD)
                snprintf(err + strlen(err), sizeof err - strlen(err),
                         "; stop it first, import, then start it");
            if (lock < 0) {
                keystore_free(ks);
                ks = NULL;
            }
        }
        int rc = ks != NULL ? keystore_install(state_dir, ks, replace, err, sizeof err) : -1;
        if (lock >= 0)
            close(lock);
        if (rc >= 0) {
            printf("receiptd keys: %s %s/%s\n",
                   rc == 1 ? "the same keys are already in" : "installed", state_dir,
                   KEYSTORE_FILE);
            show(ks);
        }
        keystore_free(ks);
        if (rc < 0) {
            fprintf(stderr, "receiptd keys import: %s\n", err);
            return 1;
        }
        return 0;
    }

    keystore *ks = keystore_open(state_dir, false, NULL, err, sizeof err);
    if (ks == NULL) {
        fprintf(stderr, "receiptd keys %s: %s\n", command, err);
        return 1;
    }
    int status = 0;
    if (strcmp(command, "show") == 0) {
        show(ks);
    } else {
        size_t len = 0;
        char *text = keystore_export(ks, &len);
        if (text == NULL || fwrite(text, 1, len, stdout) != len) {
            fprintf(stderr, "receiptd keys export: cannot write the keys\n");
            status = 1;
        }
        if (text != NULL) {
            OPENSSL_cleanse(text, len);
            free(text);
        }
    }
    keystore_free(ks);
    if (fflush(stdout) != 0 && status == 0) {
        fprintf(stderr, "receiptd keys %s: cannot write the output\n", command);
        status = 1;
    }
    return status;
}
