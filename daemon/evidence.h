/*
 * evidence: the evidence log's proofs as JSON, and evidence bundles
 * (docs/evidence.md, docs/protocol.md).
 *
 * A proof (the "proof" member of a confirmation's answer) is a leaf and its
 * inclusion proof in a signed checkpoint:
 *
 *     {"index": N, "leaf": {"salt": "<base64url>", "event": "<canonical
 *      JSON text>"}, "hashes": ["<base64>", ...], "checkpoint": "<note>"}
 *
 * An evidence bundle is one JSON document about one delivery that a third
 * party checks offline (receipt verify --bundle): every event of the
 * delivery with its salt, inclusion proofs of each in the newest checkpoint,
 * that checkpoint, for each event also the checkpoint of the batch that
 * appended it with a consistency proof to the newest (so that a proof given
 * out then, such as the receipt's, is tied to this one), the receipt, and
 * the public keys of the site with the time each was in use, and the log's
 * key changes, proved as the events are (so that a verifier who holds one
 * log key reaches the others).
 *
 * Reads go through the ledger handle given, on the caller's thread.
 */
#ifndef RECEIPT_DAEMON_EVIDENCE_H
#define RECEIPT_DAEMON_EVIDENCE_H

#include "common/compiler.h"
#include "daemon/jbuf.h"
#include "daemon/keystore.h"
#include "daemon/ledger.h"

#include <stdbool.h>
#include <stddef.h>

#define EVIDENCE_VERSION    1
#define EVIDENCE_BUNDLE_MAX (1024 * 1024) /* bytes of a bundle */
#define EVIDENCE_EVENTS_MAX 64            /* leaves of one delivery in a bundle */
#define EVIDENCE_ERR_MAX    512

/* Writes the proof object of p (present) as a JSON value into b. */
void evidence_proof_json(jbuf *b, const ledger_proof *p);

/*
 * The bundle of delivery id into b (growing, up to EVIDENCE_BUNDLE_MAX).
 * Returns 1 written, 0 when the ledger has no such delivery (or the log no
 * event of it), or -1 with err set.
 */
WARN_UNUSED_RESULT int evidence_bundle(ledger *lg, const keystore *ks, const char *id, jbuf *b,
                                       char *err, size_t errlen);

/*
 * `receiptd evidence DELIVERY_ID`: the bundle on standard output. main()
 * hands it argv when the first argument is "evidence". Returns the exit
 * status: 0, 1 failed, 2 usage, 4 no such delivery.
 */
int evidence_main(int argc, char **argv);

#endif
