/*
 * keys: `receiptd keys`, the server's keys for the nodes of one site.
 *
 * Every receiptd node that serves a site shares its keys (the encryption
 * and signing keys, the ticket secret and the evidence log's key), so that
 * a ticket one node sealed opens on another and every receipt and
 * checkpoint verifies against one set of public keys. `export` writes
 * STATE_DIR/server-keys.json to standard output, `import` installs such a
 * file into another node's state directory (validated, mode 0600, written
 * durably, and refusing to replace other keys unless asked), `show` prints
 * what identifies them without revealing them (the log's verifier key
 * among them), to compare nodes, and `rotate` replaces the signing key or
 * the log key, keeping the old one's public half (keystore.h). main() hands
 * it argv when the first argument is "keys".
 */
#ifndef RECEIPT_DAEMON_KEYS_H
#define RECEIPT_DAEMON_KEYS_H

/* Returns the exit status: 0, 1 when it failed, 2 for a usage error. */
int keys_main(int argc, char **argv);

#endif
