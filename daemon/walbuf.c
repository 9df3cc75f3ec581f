#include "daemon/walbuf.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* At most this much is held: a larger transaction is written in pieces. */
#define WALBUF_MAX (512 * 1024)

/*
 * The most handed to the default VFS's xWrite at once: SQLite's unix VFS
 * keeps the low 17 bits of a write's length (seekAndWrite(): "cnt &=
 * 0x1ffff"), so a longer write comes out short and is reported as a full
 * disk. A multiple of the page size below 128 KiB.
 */
#define WALBUF_WRITE_MAX (124 * 1024)

/* A WAL frame's header (SQLite's file format, "WAL File Format"): the page
 * number, then the database's size in pages for a commit frame, else 0. */
#define WAL_FRAME_HEADER 24

typedef struct walbuf_file {
    sqlite3_file base;  /* first: SQLite hands this to the methods */
    sqlite3_file *real; /* the default VFS's file, in the same allocation */
    bool wal;
    bool commit_next;   /* the buffered frame header is a commit's: its page ends it */
    unsigned char *buf; /* WAL only; WALBUF_MAX bytes, made at the first write */
    size_t len;
    sqlite3_int64 start; /* the file offset of buf[0] */
} walbuf_file;

static sqlite3_vfs walbuf_vfs;
static sqlite3_vfs *real_vfs;
static pthread_once_t walbuf_once = PTHREAD_ONCE_INIT;
static int walbuf_status = SQLITE_ERROR;

static sqlite3_file *real_of(sqlite3_file *f)
{
    return ((walbuf_file *)f)->real;
}

/* Writes the buffer out; nothing is left buffered, whatever the result. */
static int flush(walbuf_file *f)
{
    int rc = SQLITE_OK;
    for (size_t done = 0; done < f->len && rc == SQLITE_OK;) {
        size_t n = f->len - done < WALBUF_WRITE_MAX ? f->len - done : WALBUF_WRITE_MAX;
        rc = f->real->pMethods->xWrite(f->real, f->buf + done, (int)n,
                                       f->start + (sqlite3_int64)done);
        done += n;
    }
    f->len = 0;
    f->commit_next = false;
    return rc;
}

static int wb_close(sqlite3_file *file)
{
    walbuf_file *f = (walbuf_file *)file;
    int rc = flush(f);
    int rc2 = f->real->pMethods->xClose(f->real);
    free(f->buf);
    f->buf = NULL;
    return rc != SQLITE_OK ? rc : rc2;
}

static int wb_read(sqlite3_file *file, void *out, int n, sqlite3_int64 off)
{
    int rc = flush((walbuf_file *)file);
    if (rc != SQLITE_OK)
        return rc;
    return real_of(file)->pMethods->xRead(real_of(file), out, n, off);
}

static int wb_write(sqlite3_file *file, const void *data, int n, sqlite3_int64 off)
{
    walbuf_file *f = (walbuf_file *)file;
    int rc;
    if (!f->wal || n <= 0)
        return f->real->pMethods->xWrite(f->real, data, n, off);
    if (f->buf == NULL && (f->buf = malloc(WALBUF_MAX)) == NULL)
        return f->real->pMethods->xWrite(f->real, data, n, off); /* unbuffered, then */
    /* Only a run of writes that follow each other is gathered. */
    if (f->len > 0 &&
        (off != f->start + (sqlite3_int64)f->len || (size_t)n > WALBUF_MAX - f->len)) {
        bool commit_next = f->commit_next;
        if ((rc = flush(f)) != SQLITE_OK)
            return rc;
        f->commit_next = commit_next;
    }
    if ((size_t)n > WALBUF_WRITE_MAX) {
        f->commit_next = false;
        return f->real->pMethods->xWrite(f->real, data, n, off);
    }
    if (f->len == 0)
        f->start = off;
    memcpy(f->buf + f->len, data, (size_t)n);
    f->len += (size_t)n;
    if (n == WAL_FRAME_HEADER) {
        const unsigned char *h = data;
        f->commit_next = (h[4] | h[5] | h[6] | h[7]) != 0;
        return SQLITE_OK;
    }
    /* The page of the frame that commits: the transaction's frames go out
     * before SQLite publishes them to readers in the WAL index. */
    if (f->commit_next)
        return flush(f);
    return SQLITE_OK;
}

static int wb_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    int rc = flush((walbuf_file *)file);
    return rc != SQLITE_OK ? rc : real_of(file)->pMethods->xTruncate(real_of(file), size);
}

static int wb_sync(sqlite3_file *file, int flags)
{
    int rc = flush((walbuf_file *)file);
    return rc != SQLITE_OK ? rc : real_of(file)->pMethods->xSync(real_of(file), flags);
}

static int wb_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
    int rc = flush((walbuf_file *)file);
    return rc != SQLITE_OK ? rc : real_of(file)->pMethods->xFileSize(real_of(file), size);
}

static int wb_lock(sqlite3_file *file, int level)
{
    return real_of(file)->pMethods->xLock(real_of(file), level);
}

static int wb_unlock(sqlite3_file *file, int level)
{
    return real_of(file)->pMethods->xUnlock(real_of(file), level);
}

static int wb_check_reserved(sqlite3_file *file, int *out)
{
    return real_of(file)->pMethods->xCheckReservedLock(real_of(file), out);
}

static int wb_file_control(sqlite3_file *file, int op, void *arg)
{
    int rc = flush((walbuf_file *)file);
    if (rc != SQLITE_OK)
        return rc;
    rc = real_of(file)->pMethods->xFileControl(real_of(file), op, arg);
    if (rc == SQLITE_OK && op == SQLITE_FCNTL_VFSNAME && arg != NULL) {
        char **name = arg;
        char *outer = sqlite3_mprintf("%s/%z", walbuf_vfs.zName, *name);
        if (outer != NULL)
            *name = outer;
    }
    return rc;
}

static int wb_sector_size(sqlite3_file *file)
{
    return real_of(file)->pMethods->xSectorSize(real_of(file));
}

static int wb_device_characteristics(sqlite3_file *file)
{
    return real_of(file)->pMethods->xDeviceCharacteristics(real_of(file));
}

static int wb_shm_map(sqlite3_file *file, int page, int size, int extend, void volatile **out)
{
    return real_of(file)->pMethods->xShmMap(real_of(file), page, size, extend, out);
}

static int wb_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
    return real_of(file)->pMethods->xShmLock(real_of(file), offset, n, flags);
}

static void wb_shm_barrier(sqlite3_file *file)
{
    real_of(file)->pMethods->xShmBarrier(real_of(file));
}

static int wb_shm_unmap(sqlite3_file *file, int delete_flag)
{
    return real_of(file)->pMethods->xShmUnmap(real_of(file), delete_flag);
}

/* No memory map from a file whose methods have none (a version below 3). */
static int wb_fetch(sqlite3_file *file, sqlite3_int64 off, int n, void **out)
{
    int rc = flush((walbuf_file *)file);
    *out = NULL;
    if (rc != SQLITE_OK || real_of(file)->pMethods->iVersion < 3)
        return rc;
    return real_of(file)->pMethods->xFetch(real_of(file), off, n, out);
}

static int wb_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p)
{
    if (real_of(file)->pMethods->iVersion < 3)
        return SQLITE_OK;
    return real_of(file)->pMethods->xUnfetch(real_of(file), off, p);
}

/* Version 3, as the default VFS's; the methods a version lacks are not called. */
static const sqlite3_io_methods walbuf_methods = {
    .iVersion = 3,
    .xClose = wb_close,
    .xRead = wb_read,
    .xWrite = wb_write,
    .xTruncate = wb_truncate,
    .xSync = wb_sync,
    .xFileSize = wb_file_size,
    .xLock = wb_lock,
    .xUnlock = wb_unlock,
    .xCheckReservedLock = wb_check_reserved,
    .xFileControl = wb_file_control,
    .xSectorSize = wb_sector_size,
    .xDeviceCharacteristics = wb_device_characteristics,
    .xShmMap = wb_shm_map,
    .xShmLock = wb_shm_lock,
    .xShmBarrier = wb_shm_barrier,
    .xShmUnmap = wb_shm_unmap,
    .xFetch = wb_fetch,
    .xUnfetch = wb_unfetch,
};

static int wb_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
                   int *out_flags)
{
    (void)vfs;
    walbuf_file *f = (walbuf_file *)file;
    memset(f, 0, sizeof *f);
    f->real = (sqlite3_file *)(f + 1);
    int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
    /* SQLite closes a file whose methods are set, even after a failed open. */
    if (f->real->pMethods == NULL)
        return rc;
    if (f->real->pMethods->iVersion < 2) {
        /* No shared memory, so no WAL: SQLite may use it as it is. */
        f->real->pMethods->xClose(f->real);
        return SQLITE_CANTOPEN;
    }
    /* Without powersafe overwrite SQLite pads a commit to the sector and
     * may split a frame's header at a sync point: its WAL goes unbuffered,
     * so that a commit's header is always seen whole. */
    f->wal = (flags & SQLITE_OPEN_WAL) != 0 && (f->real->pMethods->xDeviceCharacteristics(f->real) &
                                                SQLITE_IOCAP_POWERSAFE_OVERWRITE) != 0;
    f->base.pMethods = &walbuf_methods;
    return rc;
}

static void walbuf_setup(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    if (real_vfs == NULL || real_vfs->iVersion < 2)
        return;
    walbuf_vfs = *real_vfs; /* every other method is the default VFS's own */
    walbuf_vfs.zName = WALBUF_VFS;
    walbuf_vfs.pNext = NULL;
    /* The real file follows ours, aligned as sqlite3_file is. */
    walbuf_vfs.szOsFile = (int)sizeof(walbuf_file) + real_vfs->szOsFile;
    walbuf_vfs.xOpen = wb_open;
    walbuf_status = sqlite3_vfs_register(&walbuf_vfs, 0);
}

int walbuf_register(void)
{
    pthread_once(&walbuf_once, walbuf_setup);
    return walbuf_status;
}

int walbuf_flush(sqlite3 *db)
{
    sqlite3_file *journal = NULL;
    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &journal) != SQLITE_OK ||
        journal == NULL || journal->pMethods != &walbuf_methods)
        return SQLITE_OK;
    return flush((walbuf_file *)journal);
}
