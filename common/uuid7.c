#include "common/uuid7.h"
#include "common/rnd.h"

#include <openssl/rand.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define UUID7_COUNTER_BITS 12
#define UUID7_MS_MASK      ((UINT64_C(1) << 48) - 1)

/*
 * ms << 12 | counter of the last ID handed out, in any thread. Adding one
 * to it when the counter is full carries into the millisecond, which is
 * exactly the RFC 9562 rule of borrowing from the next millisecond, and a
 * clock that steps back never makes an ID sort before an earlier one.
 */
static _Atomic uint64_t uuid7_state;

static int random_tail(uint8_t *buf, size_t n)
{
    if (rnd_bytes(buf, n) == 0)
        return 0;
    /* A last resort when the OpenSSL DRBG cannot be seeded or reseeded. */
    if (getrandom(buf, n, 0) == (ssize_t)n)
        return 0;
    return -1;
}

int uuid7_new_at(uuid7 *out, uint64_t unix_ms)
{
    uint64_t floor = (unix_ms & UUID7_MS_MASK) << UUID7_COUNTER_BITS;
    uint64_t old = atomic_load_explicit(&uuid7_state, memory_order_relaxed);
    uint64_t next;
    uint64_t ms;
    unsigned counter;
    uint8_t *b = out->bytes;

    do {
        next = old >= floor ? old + 1 : floor;
    } while (!atomic_compare_exchange_weak_explicit(&uuid7_state, &old, next, memory_order_relaxed,
                                                    memory_order_relaxed));

    if (random_tail(b + 8, 8) != 0)
        return -1;
    ms = next >> UUID7_COUNTER_BITS & UUID7_MS_MASK;
    counter = (unsigned)(next & ((1u << UUID7_COUNTER_BITS) - 1));
    b[0] = (uint8_t)(ms >> 40);
    b[1] = (uint8_t)(ms >> 32);
    b[2] = (uint8_t)(ms >> 24);
    b[3] = (uint8_t)(ms >> 16);
    b[4] = (uint8_t)(ms >> 8);
    b[5] = (uint8_t)ms;
    b[6] = (uint8_t)(0x70 | counter >> 8);
    b[7] = (uint8_t)counter;
    b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));
    return 0;
}

int uuid7_new(uuid7 *out)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return -1;
    return uuid7_new_at(out, (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}

void uuid7_format(const uuid7 *id, char out[UUID7_STR_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[id->bytes[i] >> 4];
        out[o++] = hex[id->bytes[i] & 15];
    }
    out[o] = '\0';
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int uuid7_parse(const char *text, size_t n, uuid7 *out)
{
    uuid7 id;
    size_t i = 0;

    if (n != UUID7_STR_LEN)
        return -1;
    for (size_t b = 0; b < 16; b++) {
        int hi, lo;

        if (b == 4 || b == 6 || b == 8 || b == 10) {
            if (text[i++] != '-')
                return -1;
        }
        hi = hex_digit(text[i++]);
        lo = hex_digit(text[i++]);
        if (hi < 0 || lo < 0)
            return -1;
        id.bytes[b] = (uint8_t)(hi << 4 | lo);
    }
    if ((id.bytes[6] & 0xf0) != 0x70 || (id.bytes[8] & 0xc0) != 0x80)
        return -1;
    *out = id;
    return 0;
}

uint64_t uuid7_unix_ms(const uuid7 *id)
{
    uint64_t ms = 0;

    for (size_t i = 0; i < 6; i++)
        ms = ms << 8 | id->bytes[i];
    return ms;
}
