#include "common/rnd.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <string.h>

#define RND_POOL      4096 /* bytes drawn per refill */
#define RND_SLICE_MAX 256  /* larger requests go straight to RAND_bytes() */

static _Thread_local uint8_t pool[RND_POOL];
static _Thread_local size_t available; /* unread bytes at the end of pool */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void forget_in_child(void)
{
    OPENSSL_cleanse(pool, sizeof pool);
    available = 0;
}

static void register_atfork(void)
{
    pthread_atfork(NULL, NULL, forget_in_child);
}

int rnd_bytes(uint8_t *out, size_t n)
{
    if (n > RND_SLICE_MAX)
        return RAND_bytes(out, (int)n) == 1 ? 0 : -1;
    pthread_once(&atfork_once, register_atfork);
    if (available < n) {
        if (RAND_bytes(pool, RND_POOL) != 1)
            return -1;
        available = RND_POOL;
    }
    uint8_t *from = pool + RND_POOL - available;
    memcpy(out, from, n);
    OPENSSL_cleanse(from, n);
    available -= n;
    return 0;
}
