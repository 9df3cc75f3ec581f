/*
 * rc_evidence: the client's side of the evidence log (docs/evidence.md):
 * proofs that come with receipts, evidence bundles checked offline, and
 * audits of a server's log through its checkpoint and tiles.
 *
 * A proof is checked in full with what it carries (the event names the
 * delivery and the receipt, the inclusion proof leads to its checkpoint's
 * tree head) and, given the log's verifier key, its checkpoint's signature.
 * Errors go to the client's message, for a person.
 */
#ifndef RECEIPT_LIB_RC_EVIDENCE_H
#define RECEIPT_LIB_RC_EVIDENCE_H

#include "lib/rc_client.h"

#include <jansson.h>

#define RC_EVIDENCE_PROOF_MAX  (16 * 1024)   /* bytes of a proof's JSON */
#define RC_EVIDENCE_BUNDLE_MAX (1024 * 1024) /* bytes of a bundle */

/*
 * Checks proof (the "proof" object of a confirmation's answer) of receipt
 * (its compact JWS) for delivery: the event's text is canonical JSON that
 * names the delivery and the receipt by its SHA-256, and its commitment is
 * leaf "index" of the checkpoint's tree. With log_key (a verifier key text;
 * NULL: none), the checkpoint must be signed by it and name its log.
 */
receipt_result rc_evidence_check_proof(receipt_client *c, const json_t *proof, const char *receipt,
                                       const char *delivery, const char *log_key);

/* Bytes of a log's URL that the name of its pin file shows. */
#define RC_EVIDENCE_PIN_READABLE 64
/* ... and that names of pin files before the hash showed. */
#define RC_EVIDENCE_PIN_LEGACY_READABLE 200

/*
 * The name of the file that pins the log at base (its URL, ".../_receipt/
 * log", as given but for trailing slashes): a readable part (the URL
 * without its scheme, each byte but letters, digits, '.' and '-' made '_',
 * at most RC_EVIDENCE_PIN_READABLE bytes), '-', the SHA-256 of base in
 * lower-case hex, ".json". The hash makes it one name per URL: URLs that
 * the readable part confuses (x_y and x/y, h:8443 and h_8443) differ.
 * 0, or -1 when cap is too small.
 */
int rc_evidence_pin_name(const char *base, char *out, size_t cap);

/*
 * The name older versions gave that file: the readable part alone (up to
 * RC_EVIDENCE_PIN_LEGACY_READABLE bytes) and ".json", shared by every URL
 * that maps to it. 0, or -1 when cap is too small.
 */
int rc_evidence_pin_legacy_name(const char *base, char *out, size_t cap);

#endif
