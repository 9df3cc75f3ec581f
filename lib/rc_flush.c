/*
 * rc_flush: receipt_flush(), sending what the spool holds (rc_spool.h
 * for the files and the schedule, rc_confirm.h for the sending).
 */
#include "common/durable.h"
#include "lib/rc_client.h"
#include "lib/rc_confirm.h"
#include "lib/rc_delivery.h"
#include "lib/rc_spool.h"
#include "lib/rc_url.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <unistd.h>

#define RC_FLUSH_LOCK_NAME ".lock"

typedef struct rc_flush_tally {
    size_t answered;
    size_t waiting;
    size_t rejected;
    size_t failed;
    receipt_result first_error;
} rc_flush_tally;

/* A delivery for the caller's callback, from what the entry remembers. */
static receipt_delivery *rc_flush_delivery(const rc_spool_entry *e)
{
    receipt_delivery *d = rc_delivery_new();
    if (d == NULL)
        return NULL;
    memcpy(d->id, e->delivery, sizeof(d->id));
    memcpy(d->client_id, e->client_id, sizeof(d->client_id));
    memcpy(d->sha256, e->sha256, sizeof(d->sha256));
    d->size = e->size;
    memcpy(d->expected_sha256, e->expected_sha256, sizeof(d->expected_sha256));
    d->expected_size = e->expected_size;
    d->intact = e->intact;
    d->status = RECEIPT_STATUS_SPOOLED;
    if ((e->url && (d->url = strdup(e->url)) == NULL) ||
        (e->content_path && (d->content_path = strdup(e->content_path)) == NULL) ||
        (e->file && (d->file = strdup(e->file)) == NULL) ||
        (d->confirm_url = strdup(e->confirm_url)) == NULL) {
        receipt_delivery_free(d);
        return NULL;
    }
    return d;
}

static void rc_flush_report(receipt_flush_fn fn, void *user, const receipt_delivery *d,
                            receipt_result r, const char *message)
{
    if (fn != NULL && d != NULL)
        fn(d, r, message ? message : "", user);
}

static void rc_flush_note_error(rc_flush_tally *t, receipt_result r)
{
    t->failed++;
    if (t->first_error == RECEIPT_OK)
        t->first_error = r;
}

/* Sends one entry and records the outcome in the spool. */
static void rc_flush_one(receipt_client *c, rc_spool_entry *e, receipt_flush_fn fn, void *user,
                         rc_flush_tally *t)
{
    char why[RC_ERRMSG_MAX];
    char err[RC_ERRMSG_MAX];
    char origin[RC_ORIGIN_MAX];
    rc_confirm_answer a = {.retry_after_s = -1};
    receipt_delivery *d = rc_flush_delivery(e);
    if (d == NULL) {
        rc_flush_note_error(t, rc_fail(c, RECEIPT_ERR_NOMEM, "out of memory"));
        return;
    }
    snprintf(why, sizeof(why), "the confirm URL %s has no usable origin", e->confirm_url);
    if (rc_url_confirm_allowed(e->confirm_url, (c->flags & RECEIPT_ALLOW_INSECURE_CONFIRM) != 0,
                               why, sizeof(why)) != RC_URL_OK ||
        rc_url_origin(e->confirm_url, origin) != 0) {
        /* Kept: allowing insecure confirmation later sends it. */
        rc_flush_note_error(t, RECEIPT_ERR_POLICY);
        rc_flush_report(fn, user, d, RECEIPT_ERR_POLICY, why);
        goto out;
    }
    receipt_result r = rc_confirm_send(c, e->confirm_url, e->client_key, e->body, e->delivery,
                                       e->client_id, e->jwks, origin, &a);
    snprintf(why, sizeof(why), "%s", r == RECEIPT_OK ? "" : c->errmsg);
    if (r == RECEIPT_OK) {
        d->status = a.status;
        d->receipt = a.receipt;
        a.receipt = NULL;
        d->proof = a.proof;
        a.proof = NULL;
        if (rc_confirm_save_receipt(c, d) != RECEIPT_OK) {
            /* The receipt is still handed to the caller: the spool entry
             * goes, since sending again would only bring the same one. */
            rc_log(c, RECEIPT_LOG_WARN, "%s", c->errmsg);
            snprintf(why, sizeof(why), "%s", c->errmsg);
        }
        if (rc_spool_remove(c->spool_dir, e->name, err, sizeof(err)) != 0)
            rc_log(c, RECEIPT_LOG_WARN, "%s", err);
        t->answered++;
        rc_log(c, RECEIPT_LOG_INFO, "delivery %s %s", d->id, receipt_status_name(d->status));
        rc_flush_report(fn, user, d, RECEIPT_OK, why);
    } else if (a.retryable) {
        uint64_t rnd = 0;
        if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
            rnd = rc_now_ms() * 6364136223846793005ull;
        rc_spool_entry_failed(e, rc_now_ms(), rnd, a.retry_after_s, why);
        if (rc_spool_write(c->spool_dir, e, err, sizeof(err)) != 0)
            rc_log(c, RECEIPT_LOG_WARN, "cannot update the spool entry of %s: %s", e->delivery,
                   err);
        t->waiting++;
        rc_flush_report(fn, user, d, RECEIPT_SPOOLED, why);
    } else if (r == RECEIPT_ERR_REJECTED) {
        if (rc_spool_remove(c->spool_dir, e->name, err, sizeof(err)) != 0)
            rc_log(c, RECEIPT_LOG_WARN, "%s", err);
        d->status = RECEIPT_STATUS_REJECTED;
        t->rejected++;
        rc_log(c, RECEIPT_LOG_WARN, "%s", why);
        rc_flush_report(fn, user, d, r, why);
    } else {
        /* An answer that cannot be used (a receipt that does not verify)
         * would come back the same: set aside, not retried, not lost. */
        rc_spool_quarantine(c->spool_dir, e->name);
        rc_flush_note_error(t, r);
        rc_log(c, RECEIPT_LOG_WARN, "%s (spool entry %s set aside)", why, e->name);
        rc_flush_report(fn, user, d, r, why);
    }
out:
    rc_confirm_answer_clear(&a);
    receipt_delivery_free(d);
}

/* One flush at a time per spool: two would send the same confirmations
 * twice (harmless, confirming is idempotent, but wasteful). */
static int rc_flush_lock(receipt_client *c)
{
    char path[DURABLE_PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", c->spool_dir, RC_FLUSH_LOCK_NAME) >=
        (int)sizeof(path))
        return -1;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        return -2;
    }
    return fd;
}

RECEIPT_API receipt_result receipt_flush(receipt_client *c, unsigned flags, receipt_flush_fn fn,
                                         void *user)
{
    if (c == NULL)
        return RECEIPT_ERR_ARGUMENT;
    c->errmsg[0] = '\0';
    if (c->spool_dir == NULL)
        return rc_fail(c, RECEIPT_ERR_ARGUMENT, "the client has no spool directory");
    char err[RC_ERRMSG_MAX];
    char **names = NULL;
    size_t count = 0;
    rc_flush_tally t = {0};
    int lock = rc_flush_lock(c);
    if (lock == -2)
        return rc_fail(c, RECEIPT_SPOOLED, "another flush of %s is running", c->spool_dir);
    if (lock < 0)
        return rc_fail(c, RECEIPT_ERR_IO, "cannot lock the spool %s: %s", c->spool_dir,
                       strerror(errno));
    uint64_t now = rc_now_ms();
    size_t swept = rc_spool_sweep(c->spool_dir, now, RC_SPOOL_TEMP_MAX_AGE_MS);
    if (swept > 0)
        rc_log(c, RECEIPT_LOG_INFO, "removed %zu unfinished spool file(s)", swept);
    if (rc_spool_list(c->spool_dir, &names, &count, err, sizeof(err)) != 0) {
        close(lock);
        return rc_fail(c, RECEIPT_ERR_IO, "%s", err);
    }
    for (size_t i = 0; i < count; i++) {
        rc_spool_entry e;
        int rc = rc_spool_read(c->spool_dir, names[i], &e, err, sizeof(err));
        if (rc == -2) {
            rc_log(c, RECEIPT_LOG_WARN, "%s; set aside as %s%s", err, names[i],
                   RC_SPOOL_BAD_SUFFIX);
            rc_spool_quarantine(c->spool_dir, names[i]);
            rc_flush_note_error(&t, RECEIPT_ERR_IO);
            continue;
        }
        if (rc != 0) {
            if (errno == ENOENT)
                continue; /* sent meanwhile by another process */
            rc_log(c, RECEIPT_LOG_WARN, "%s", err);
            rc_flush_note_error(&t, RECEIPT_ERR_IO);
            continue;
        }
        if (c->key != NULL && strcmp(e.client_id, c->client_id) != 0) {
            rc_spool_entry_clear(&e);
            continue;
        }
        if ((flags & RECEIPT_FLUSH_ALL) == 0 && !rc_spool_due(&e, rc_now_ms())) {
            t.waiting++;
            rc_spool_entry_clear(&e);
            continue;
        }
        rc_flush_one(c, &e, fn, user, &t);
        rc_spool_entry_clear(&e);
    }
    rc_spool_list_free(names, count);
    close(lock);

    receipt_result r = RECEIPT_OK;
    if (t.rejected > 0)
        r = RECEIPT_ERR_REJECTED;
    else if (t.failed > 0)
        r = t.first_error;
    else if (t.waiting > 0)
        r = RECEIPT_SPOOLED;
    rc_fail(c, r, "%zu answered, %zu still spooled, %zu rejected, %zu failed", t.answered,
            t.waiting, t.rejected, t.failed);
    return r;
}

RECEIPT_API receipt_result receipt_spool_count(receipt_client *c, size_t *count)
{
    if (count != NULL)
        *count = 0;
    if (c == NULL || count == NULL)
        return RECEIPT_ERR_ARGUMENT;
    c->errmsg[0] = '\0';
    if (c->spool_dir == NULL)
        return RECEIPT_OK;
    char err[RC_ERRMSG_MAX];
    char **names = NULL;
    if (rc_spool_list(c->spool_dir, &names, count, err, sizeof(err)) != 0)
        return rc_fail(c, RECEIPT_ERR_IO, "%s", err);
    rc_spool_list_free(names, *count);
    return RECEIPT_OK;
}
