#include "daemon/keys.h"

#include "daemon/keystore.h"

#include <errno.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEYS_ERR_MAX  512
#define KEYS_FILE_MAX (16 * 1024)

static const char keys_usage[] =
    "usage: receiptd keys show [--state-dir DIR]\n"
    "       receiptd keys export [--state-dir DIR] > FILE\n"
    "       receiptd keys import [--state-dir DIR] [--replace] FILE|-\n"
    "\n"
    "The server's keys (STATE_DIR/server-keys.json: the encryption and signing\n"
    "keys and the ticket secret), which every receiptd node of one site shares.\n"
    "\n"
    "  show      the key IDs and a fingerprint of the ticket secret: equal on\n"
    "            every node of a site, and safe to show\n"
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

static void show(const keystore *ks)
{
    char fingerprint[17];
    keystore_secret_fingerprint(ks, fingerprint);
    printf("encryption key  %s\n", eckey_thumbprint(ks->enc));
    printf("signing key     %s\n", eckey_thumbprint(ks->sig));
    printf("ticket secret   sha256:%s...\n", fingerprint);
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
        return usage_error("name a command: show, export or import");
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
    if (strcmp(command, "show") != 0 && strcmp(command, "export") != 0 && !import)
        return usage_error("unknown command (show, export or import)");
    if (replace && !import)
        return usage_error("--replace is for import");
    if (rest != (import ? 1 : 0))
        return usage_error(import ? "import needs one FILE, or - for standard input"
                                  : "unexpected argument");

    if (import) {
        size_t len = 0;
        const char *name = argv[1 + optind];
        char *text = read_input(name, &len, err, sizeof err);
        keystore *ks = text != NULL ? keystore_parse(name, text, len, err, sizeof err) : NULL;
        if (text != NULL) {
            OPENSSL_cleanse(text, KEYS_FILE_MAX + 1);
            free(text);
        }
        int rc = ks != NULL ? keystore_install(state_dir, ks, replace, err, sizeof err) : -1;
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
