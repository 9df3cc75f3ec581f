/*
 * libreceipt: the client side of the receipt protocol (docs/protocol.md).
 *
 * A program makes one receipt_client, gives it a client key (generated,
 * or loaded from a PEM file), and then fetches content: the library sends the
 * key in Receipt-Client-Key, hashes the body while it streams, opens the
 * plug-in data that comes back, checks the bytes against the content's
 * digest, and can then confirm the delivery to the server and keep the
 * signed receipt. A confirmation that cannot be sent now (network error,
 * 429, 5xx) is written to a spool directory and sent later by
 * receipt_flush().
 *
 * Conventions:
 *  - Every function that can fail returns a receipt_result; on failure the
 *    client's message (receipt_errmsg()) says what happened, for a person.
 *  - Handles are opaque. A receipt_client is used by one thread at a time;
 *    different clients may be used from different threads at once.
 *  - Strings returned by accessors are borrowed from the handle and live
 *    until the handle is freed (or, for the client, until the next call that
 *    changes the same property). Strings returned through a char ** are
 *    malloc'd: release them with receipt_free().
 *  - Every *_free() function accepts NULL.
 *  - The library never prints. Progress and log messages go to callbacks.
 */
#ifndef RECEIPT_RECEIPT_H
#define RECEIPT_RECEIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define RECEIPT_API __attribute__((visibility("default")))
#else
#define RECEIPT_API
#endif

typedef enum receipt_result {
    RECEIPT_OK = 0,
    /* Not a failure: the confirmation could not be sent now and waits in the
     * spool directory; receipt_flush() sends it later. */
    RECEIPT_SPOOLED,
    RECEIPT_ERR_ARGUMENT, /* a NULL or malformed argument                        */
    RECEIPT_ERR_NOMEM,
    RECEIPT_ERR_IO,       /* a local file or directory could not be used         */
    RECEIPT_ERR_KEY,      /* key file missing, malformed or readable by others    */
    RECEIPT_ERR_NO_KEY,   /* the operation needs a client key and there is none   */
    RECEIPT_ERR_EXISTS,   /* the file exists and overwriting was not asked for    */
    RECEIPT_ERR_NETWORK,  /* no HTTP answer: DNS, connection refused, timeout     */
    RECEIPT_ERR_HTTP,     /* an HTTP status other than the one expected           */
    RECEIPT_ERR_PROTOCOL, /* the server's answer breaks docs/protocol.md          */
    RECEIPT_ERR_DIGEST,   /* the bytes received differ from the content's digest  */
    RECEIPT_ERR_POLICY,   /* refused by policy, e.g. plain http to a remote host  */
    RECEIPT_ERR_REJECTED, /* the server refused the confirmation for good (4xx)   */
    RECEIPT_ERR_VERIFY,   /* a receipt whose signature or contents do not check   */
    RECEIPT_ERR_ABORTED,  /* a callback asked to stop                             */
    RECEIPT_ERR_INTERNAL,
    /* The TLS connection failed: the server's certificate did not verify
     * (unknown issuer, wrong host name, expired) or the handshake broke.
     * Like RECEIPT_ERR_NETWORK, no HTTP answer came. */
    RECEIPT_ERR_TLS,
    /* Two checkpoints of a log that are not consistent, or tiles that do
     * not make its checkpoint's tree: the log was rewritten or forked. */
    RECEIPT_ERR_INCONSISTENT,
} receipt_result;

/* A static English description of a result code; never NULL. */
RECEIPT_API const char *receipt_strerror(receipt_result r);

/* The library's version, e.g. "0.1.0". */
RECEIPT_API const char *receipt_version(void);

/* Releases a string the library returned through a char **. NULL-safe. */
RECEIPT_API void receipt_free(void *p);

/* ------------------------------------------------------------------------ */
/* The client                                                               */

typedef struct receipt_client receipt_client;

/* A new client with no key and default settings; *out is NULL on failure. */
RECEIPT_API receipt_result receipt_client_new(receipt_client **out);

/* Frees the client, its key (wiped), its caches and its connections. */
RECEIPT_API void receipt_client_free(receipt_client *c);

/*
 * The message of the last failure on this client, for a person; "" when
 * there was none. Borrowed; valid until the next call on the client.
 */
RECEIPT_API const char *receipt_errmsg(const receipt_client *c);

typedef enum receipt_log_level {
    RECEIPT_LOG_DEBUG = 0,
    RECEIPT_LOG_INFO,
    RECEIPT_LOG_WARN,
} receipt_log_level;

/* Receives one message (no trailing newline), borrowed for the call. */
typedef void (*receipt_log_fn)(receipt_log_level level, const char *message, void *user);

/* Where the library's log messages go; NULL (the default) drops them. */
RECEIPT_API void receipt_client_set_log(receipt_client *c, receipt_log_fn fn, void *user);

/*
 * Called often while a fetch runs: bytes of the body so far and its total
 * (0 when the server did not say, and 0 and 0 until the body starts).
 * Returning non-zero stops the transfer (RECEIPT_ERR_ABORTED).
 */
typedef int (*receipt_progress_fn)(uint64_t received, uint64_t total, void *user);

RECEIPT_API void receipt_client_set_progress(receipt_client *c, receipt_progress_fn fn, void *user);

/* Allow confirmations over plain http to hosts that are not loopback. */
#define RECEIPT_ALLOW_INSECURE_CONFIRM 0x1u

RECEIPT_API void receipt_client_set_flags(receipt_client *c, unsigned flags);

/*
 * Network limits, in milliseconds; 0 keeps the default. connect: to open a
 * connection (10 s). stall: a download that moves no byte for this long
 * fails (30 s); a download has no total time limit, so large files work.
 * request: a whole confirmation or key-set request (30 s).
 */
RECEIPT_API void receipt_client_set_timeouts(receipt_client *c, long connect_ms, long stall_ms,
                                             long request_ms);

/*
 * The certificate authorities that https servers are verified against,
 * for a server whose certificate comes from a private CA. ca_file: a PEM
 * file of CA certificates; ca_path: a directory of them named by subject
 * hash (as made by openssl rehash or c_rehash). Either or both, or NULL for
 * neither; when at least one is set, they replace the system's CAs
 * entirely. The file or directory must exist and be readable
 * (RECEIPT_ERR_IO otherwise). The library does not read SSL_CERT_FILE or
 * CURL_CA_BUNDLE: a program that honours them passes them here.
 *
 * There is deliberately no way to turn verification off: evidence sent to
 * a server that was not authenticated proves nothing.
 */
RECEIPT_API receipt_result receipt_client_set_ca(receipt_client *c, const char *ca_file,
                                                 const char *ca_path);

/* receipt_client_set_ca(c, path, NULL). */
RECEIPT_API receipt_result receipt_client_set_ca_file(receipt_client *c, const char *path);

/*
 * The spool directory (created with mode 0700 when missing). Without one,
 * a confirmation that cannot be sent fails with RECEIPT_ERR_NETWORK or
 * RECEIPT_ERR_HTTP instead of being kept. NULL turns spooling off.
 */
RECEIPT_API receipt_result receipt_client_set_spool_dir(receipt_client *c, const char *dir);

/*
 * A directory (created with mode 0700 when missing) where every receipt
 * the client obtains is saved as DIR/<delivery ID>.jws (the compact JWS and
 * a newline). NULL (the default): receipts are only held in memory.
 */
RECEIPT_API receipt_result receipt_client_set_receipt_dir(receipt_client *c, const char *dir);

/* ------------------------------------------------------------------------ */
/* The client key (docs/protocol.md section 3.3)                            */

/* A fresh P-256 key for this client, replacing any it had. */
RECEIPT_API receipt_result receipt_client_generate_key(receipt_client *c);

/*
 * Loads a PEM private key (PKCS#8 or SEC1). Refuses a file that group or
 * others may read or write (RECEIPT_ERR_KEY), as ssh does.
 */
RECEIPT_API receipt_result receipt_client_load_key(receipt_client *c, const char *path);

/* Overwrite an existing key file in receipt_client_save_key(). */
#define RECEIPT_SAVE_OVERWRITE 0x1u

/*
 * Saves the key as PKCS#8 PEM with mode 0600, atomically (temporary file,
 * fsync, rename). Missing parent directories are created with mode 0700.
 * Without RECEIPT_SAVE_OVERWRITE an existing file is left alone
 * (RECEIPT_ERR_EXISTS).
 */
RECEIPT_API receipt_result receipt_client_save_key(receipt_client *c, const char *path,
                                                   unsigned flags);

/* The client ID: RFC 7638 thumbprint of the public key, 43 characters.
 * NULL when the client has no key. Borrowed until the key changes. */
RECEIPT_API const char *receipt_client_id(const receipt_client *c);

/* The Receipt-Client-Key header value (87 characters); NULL without a key. */
RECEIPT_API const char *receipt_client_key_header(const receipt_client *c);

/* ------------------------------------------------------------------------ */
/* Deliveries                                                               */

typedef struct receipt_delivery receipt_delivery;

typedef enum receipt_status {
    RECEIPT_STATUS_RECEIVED = 0, /* fetched; not confirmed (yet)                  */
    RECEIPT_STATUS_CONFIRMED,    /* the server recorded an intact delivery        */
    RECEIPT_STATUS_CORRUPTED,    /* the server recorded that the bytes differed   */
    RECEIPT_STATUS_SPOOLED,      /* the confirmation waits in the spool           */
    RECEIPT_STATUS_REJECTED,     /* the server refused the confirmation for good  */
} receipt_status;

/* "received", "confirmed", "corrupted", "spooled" or "rejected". */
RECEIPT_API const char *receipt_status_name(receipt_status s);

/* Receives the body of a delivery as it streams; non-zero stops it. */
typedef int (*receipt_write_fn)(const void *data, size_t n, void *user);

/*
 * GETs url with the client's key and streams the body to write. On
 * RECEIPT_OK the bytes matched the content's digest and size; on
 * RECEIPT_ERR_DIGEST they did not (the callback has seen them: the caller
 * must discard them). In both cases *out is a new delivery, ready for
 * receipt_confirm(); on every other result *out is NULL.
 */
RECEIPT_API receipt_result receipt_fetch(receipt_client *c, const char *url, receipt_write_fn write,
                                         void *user, receipt_delivery **out);

/*
 * The same into a file: the body is written to a temporary name beside
 * path, and renamed to path only when complete and matching the digest
 * (path is then replaced if it existed). On RECEIPT_ERR_DIGEST the
 * temporary file is removed and nothing is left under path.
 */
RECEIPT_API receipt_result receipt_fetch_file(receipt_client *c, const char *url, const char *path,
                                              receipt_delivery **out);

/*
 * Sends the confirmation of a fetched delivery to the server's confirm URL
 * (docs/protocol.md section 8), with received.sha256 the digest of the bytes
 * actually received. A plain-http confirm URL whose host is not loopback is
 * refused (RECEIPT_ERR_POLICY) unless RECEIPT_ALLOW_INSECURE_CONFIRM is set.
 *
 * RECEIPT_OK: the server answered; the status is CONFIRMED or CORRUPTED and
 * the receipt, verified against the server's key set, is kept (and saved
 * when a receipt directory is set). RECEIPT_SPOOLED: the server could not be
 * reached or answered 429 or 5xx, and the confirmation was spooled.
 * RECEIPT_ERR_REJECTED: any other 4xx; final, not retried.
 */
RECEIPT_API receipt_result receipt_confirm(receipt_client *c, receipt_delivery *d);

/* Accessors; strings are borrowed from the delivery. */
RECEIPT_API const char *receipt_delivery_id(const receipt_delivery *d);
RECEIPT_API receipt_status receipt_delivery_status(const receipt_delivery *d);
/* Whether the bytes received matched the content's digest and size. */
RECEIPT_API bool receipt_delivery_intact(const receipt_delivery *d);
/* The URL fetched; NULL for a delivery read back from the spool. */
RECEIPT_API const char *receipt_delivery_url(const receipt_delivery *d);
/* The content path on the server, as the plug-in data names it. */
RECEIPT_API const char *receipt_delivery_content_path(const receipt_delivery *d);
/* base64url SHA-256 of the bytes received, and their number. */
RECEIPT_API const char *receipt_delivery_sha256(const receipt_delivery *d);
RECEIPT_API uint64_t receipt_delivery_size(const receipt_delivery *d);
/* The content's digest and size as the server stated them. */
RECEIPT_API const char *receipt_delivery_expected_sha256(const receipt_delivery *d);
RECEIPT_API uint64_t receipt_delivery_expected_size(const receipt_delivery *d);
/* The local file holding the content; NULL when none was kept. */
RECEIPT_API const char *receipt_delivery_file(const receipt_delivery *d);
/* The server's confirm URL. */
RECEIPT_API const char *receipt_delivery_confirm_url(const receipt_delivery *d);
/* The receipt (compact JWS) once confirmed; NULL before. */
RECEIPT_API const char *receipt_delivery_receipt(const receipt_delivery *d);
/* Where the receipt was saved; NULL when it was not. */
RECEIPT_API const char *receipt_delivery_receipt_file(const receipt_delivery *d);
/*
 * The proof that the confirmation is in the server's evidence log (the
 * "proof" object of the answer, as JSON text, checked against the receipt),
 * once confirmed by a server that keeps the log; NULL otherwise. It is saved
 * beside the receipt as DELIVERY.proof.json.
 */
RECEIPT_API const char *receipt_delivery_proof(const receipt_delivery *d);

RECEIPT_API void receipt_delivery_free(receipt_delivery *d);

/* ------------------------------------------------------------------------ */
/* The spool                                                                */

/* Send every spooled confirmation now, not only those whose time has come. */
#define RECEIPT_FLUSH_ALL 0x1u

/*
 * Called once per confirmation tried: r is RECEIPT_OK (status CONFIRMED or
 * CORRUPTED), RECEIPT_SPOOLED (still waiting; tried again later), or the
 * error that ended it; message is "" or the reason, for a person. d and
 * message are borrowed for the call.
 */
typedef void (*receipt_flush_fn)(const receipt_delivery *d, receipt_result r, const char *message,
                                 void *user);

/*
 * Sends the spooled confirmations that are due (all with
 * RECEIPT_FLUSH_ALL), oldest first. When the client has a key, only that
 * client's confirmations are sent. An answered confirmation leaves the
 * spool; one that fails again is kept with its next attempt pushed back
 * (exponential backoff from 1 s to 1 h, with jitter, or the server's
 * Retry-After when longer); one refused with another 4xx is removed and
 * reported. Returns RECEIPT_OK when every confirmation tried was answered,
 * RECEIPT_ERR_REJECTED when at least one was refused, RECEIPT_SPOOLED when
 * at least one is still waiting, or the error that stopped the flush.
 */
RECEIPT_API receipt_result receipt_flush(receipt_client *c, unsigned flags, receipt_flush_fn fn,
                                         void *user);

/* How many confirmations are spooled (0 without a spool directory). */
RECEIPT_API receipt_result receipt_spool_count(receipt_client *c, size_t *count);

/* ------------------------------------------------------------------------ */
/* Receipts                                                                 */

/*
 * GETs a JWK Set (e.g. https://server/_receipt/jwks.json); *jwks receives
 * its text (at most 64 KiB).
 */
RECEIPT_API receipt_result receipt_jwks_fetch(receipt_client *c, const char *url, char **jwks);

/*
 * The URL of the JWK Set a receipt names (its payload's server.jwks), read
 * before anything is verified, for receipt_jwks_fetch(). *url (free it
 * with receipt_free()) is https, or plain http to a loopback host, and on
 * the origin of the receipt's own server.url: a receipt can only send its
 * reader to the key set of the server it names, and the caller decides
 * whether that server is one it trusts. RECEIPT_ERR_PROTOCOL when the
 * receipt names no key set, or one that breaks these rules.
 */
RECEIPT_API receipt_result receipt_jwks_url(receipt_client *c, const char *receipt, char **url);

/*
 * Verifies a receipt (compact JWS, ES256) with the "sig" key of the JWK Set
 * jwks whose kid the receipt names, and checks that its payload is a
 * version 1 receipt. On RECEIPT_OK *payload, when payload is not NULL,
 * receives the payload JSON text.
 */
RECEIPT_API receipt_result receipt_verify(receipt_client *c, const char *receipt, const char *jwks,
                                          char **payload);

/* ---- evidence (docs/evidence.md) ---- */

/*
 * Checks the proof (JSON text, as receipt_delivery_proof() gives it) of a
 * receipt: its event is canonical JSON naming the receipt's delivery and
 * the receipt by its SHA-256, and is the leaf of the proof's checkpoint
 * that the inclusion proof says. With log_key (the log's verifier key text,
 * name+id+key, or several separated by newlines: keys of one log that the
 * caller trusts, such as the keys it had before and after a rotation;
 * NULL: none) the checkpoint must also be signed by it, or by one of them.
 * RECEIPT_ERR_VERIFY says what failed (a checkpoint signed by another key
 * of the log names that key's ID); RECEIPT_ERR_ARGUMENT: log_key is not
 * one or more verifier keys of one log.
 */
RECEIPT_API receipt_result receipt_verify_proof(receipt_client *c, const char *receipt,
                                                const char *proof, const char *log_key);

/*
 * Checks a proof as receipt_verify_proof() does, and against the log as it
 * is now (docs/evidence.md, step 4; uses the network): reads the evidence
 * log of the server at url (NULL: the server the receipt names,
 * server.url), its newest checkpoint (its tree made by the tiles) and its
 * key changes (GET keys, each checked: its leaf in the tree, announced in a
 * checkpoint signed by both keys and consistent with the newest; all of
 * them one chain, each replacing the key the one before named). The keys
 * given (log_key: one verifier key, or several of one log separated by
 * newlines; required) and the keys the changes link to them, forwards and
 * backwards, are trusted: the newest checkpoint must be signed by the key
 * the chain ends at (a key that was replaced signs no later tree), one of
 * them, the proof's by one of them, and the proof's must be consistent
 * with the newest. On RECEIPT_OK *report (when not NULL) receives a JSON
 * summary. RECEIPT_ERR_INCONSISTENT: the log was rewritten or forked, a key
 * change it serves does not check or forks the chain, or its newest
 * checkpoint is not signed by the key the chain ends at, reached from the
 * ones given; RECEIPT_ERR_VERIFY: the proof does not check;
 * RECEIPT_ERR_HTTP (and the network errors): the log could not be read,
 * or serves an older checkpoint than the proof's (ask again).
 */
RECEIPT_API receipt_result receipt_verify_proof_in_log(receipt_client *c, const char *receipt,
                                                       const char *proof, const char *log_key,
                                                       const char *url, char **report);

/*
 * Checks an evidence bundle (receiptd evidence) offline: every event's
 * leaf in the bundle's checkpoint, the checkpoint of each event's batch
 * consistent with it, the events of the bundle's delivery in log order,
 * the receipt signed by one of the site's signing keys and named by the
 * confirmation's event. Checkpoints open with log_key when given (one
 * verifier key, or several of one log separated by newlines) and the keys
 * that the bundle's key changes link to it (the bundle's own checkpoint by
 * the key the chain of those changes ends at), else with the log keys the
 * bundle carries. On RECEIPT_OK *report (when report is
 * not NULL) receives a JSON summary. RECEIPT_ERR_INCONSISTENT: two of its
 * checkpoints are not consistent; RECEIPT_ERR_VERIFY: another check failed.
 */
RECEIPT_API receipt_result receipt_verify_bundle(receipt_client *c, const char *bundle,
                                                 const char *log_key, char **report);

/*
 * Audits the evidence log of the server at url (its base URL): fetches its
 * checkpoint, opens it with the log key pinned in dir (the first audit pins
 * the key the server names), rebuilds its tree head from the tiles, and
 * checks that it is consistent with the checkpoint the last audit kept in
 * dir, which it then replaces. A checkpoint signed by a newer log key is
 * followed through the log's key changes, link by link from the pinned key
 * (each announced under both keys, consistent with the checkpoint trusted
 * before it and with the newest, its leaf in the tree), and the newest key
 * reached is pinned. RECEIPT_ERR_INCONSISTENT: the log was rewritten or
 * forked, or its checkpoint is not signed by the pinned key nor by a key a
 * sound chain reaches (the message names the link that failed). On
 * RECEIPT_OK *report (when not NULL) receives a JSON summary.
 *
 * Each log URL has a pin file of its own in dir (a readable part of the
 * URL and the SHA-256 of the whole, so that no two URLs share one), and
 * audits of one log run one after the other: an audit holds a lock on the
 * file beside the pin from reading the pin to replacing it, and one that
 * finds it held waits. A pin kept under the name older versions gave it is
 * taken over only when its key names the log's origin (docs/evidence.md).
 */
RECEIPT_API receipt_result receipt_audit(receipt_client *c, const char *url, const char *dir,
                                         char **report);

#ifdef __cplusplus
}
#endif

#endif
