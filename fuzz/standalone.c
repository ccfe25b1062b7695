/* Replay driver for libFuzzer targets in builds without libFuzzer: feeds
 * the target N pseudo-random inputs (fixed seed, so failures reproduce) of
 * sizes 0..4096, plus every file named on the command line after N. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional: a target may offer structured seeds (valid inputs) that the
 * driver mutates, which reaches deeper than pure noise. */
__attribute__((weak)) size_t sbx_fuzz_seed(unsigned index, uint8_t *buf, size_t cap);

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 10000;
    static uint8_t buf[65536];
    for (long i = 0; i < n; i++) {
        size_t len = 0;
        if (sbx_fuzz_seed && (i & 1)) {
            len = sbx_fuzz_seed((unsigned)(i / 2), buf, sizeof buf);
            /* mutate a few bytes of the valid seed */
            unsigned flips = (unsigned)(next() % 8);
            for (unsigned f = 0; f < flips && len; f++)
                buf[next() % len] ^= (uint8_t)(1u << (next() % 8));
            if (len && next() % 4 == 0)
                len = (size_t)(next() % len); /* truncate */
        } else {
            len = (size_t)(next() % 4097);
            for (size_t j = 0; j < len; j++)
                buf[j] = (uint8_t)next();
        }
        /* Copy to an exact-size heap buffer so ASan sees any overread. */
        uint8_t *exact = malloc(len ? len : 1);
        memcpy(exact, buf, len);
        LLVMFuzzerTestOneInput(exact, len);
        free(exact);
    }
    for (int a = 2; a < argc; a++) {
        FILE *f = fopen(argv[a], "rb");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf, f);
        fclose(f);
        uint8_t *exact = malloc(len ? len : 1);
        memcpy(exact, buf, len);
        LLVMFuzzerTestOneInput(exact, len);
        free(exact);
    }
    printf("fuzz replay: %ld inputs, no crash\n", n);
    return 0;
}
