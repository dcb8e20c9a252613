/* Fast deterministic test data for the large-file end-to-end tests
 * (test_memory_cap.sh, test_partial_overwrite.sh). Compiled by the test itself:
 *   cc -O2 -o datagen datagen.c -lcrypto
 *
 * Every 4 KiB block is unique (its content depends on SEED and the block number), so
 * nothing deduplicates, and block N's bytes do not depend on what came before: any byte
 * range can be regenerated on its own.
 *   sparse: 16-byte header (seed, block number, big-endian) + 64 pseudo-random bytes +
 *           zeros. Compresses ~50:1, so 10 GiB written cost the storage nodes only a few
 *           hundred MB of disk.
 *   random: 4096 pseudo-random bytes (incompressible; content-defined chunk cuts fall
 *           where they would in real data).
 *
 * usage:
 *   datagen write MODE SIZE SEED FILE   writes SIZE bytes into FILE (created/truncated), with
 *                                       1 MiB write() calls; prints the data's SHA-256
 *   datagen check MODE SIZE SEED FILE   reads FILE (1 MiB reads), prints the SHA-256 of what
 *                                       it read; exit 1, naming the first bad offset, if the
 *                                       size or any byte differs from what `write` produces
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { kBlock = 4096, kBuffer = 1 << 20 };

static uint64_t splitmix(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static void put_be64(unsigned char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = (unsigned char)(v >> (56 - 8 * i));
}

/* Fills one 4 KiB block. For `sparse`, bytes 80.. must already be zero. */
static void fill_block(unsigned char* b, int sparse, uint64_t seed, uint64_t block) {
  uint64_t state = seed * 0xD1B54A32D192ED03ull ^ block;
  if (sparse) {
    put_be64(b, seed);
    put_be64(b + 8, block);
    for (int i = 16; i < 80; i += 8) {
      uint64_t v = splitmix(&state);
      memcpy(b + i, &v, 8);
    }
  } else {
    for (int i = 0; i < kBlock; i += 8) {
      uint64_t v = splitmix(&state);
      memcpy(b + i, &v, 8);
    }
  }
}

/* Fills buf with the `len` bytes at `offset` (offset is a multiple of kBuffer). */
static void fill(unsigned char* buf, size_t len, int sparse, uint64_t seed, uint64_t offset) {
  if (sparse) memset(buf, 0, len + kBlock);
  for (size_t at = 0; at < len; at += kBlock) fill_block(buf + at, sparse, seed, (offset + at) / kBlock);
}

/* check: the current run of differing blocks, reported when it ends (first 20 runs). */
static uint64_t run_start, run_bytes, bad_bytes;
static int run_zero, runs_reported;
static void report_run(const char* path) {
  if (run_bytes == 0) return;
  if (runs_reported++ < 20) {
    fprintf(stderr, "datagen: %s differs in [%llu, %llu) (%llu bytes%s)\n", path, (unsigned long long)run_start,
            (unsigned long long)(run_start + run_bytes), (unsigned long long)run_bytes,
            run_zero ? ", read as zeros" : "");
  }
  run_bytes = 0;
}

static void hex(const unsigned char* d, unsigned n, char* out) {
  for (unsigned i = 0; i < n; ++i) sprintf(out + 2 * i, "%02x", d[i]);
}

int main(int argc, char** argv) {
  if (argc != 6 || (strcmp(argv[1], "write") && strcmp(argv[1], "check")) ||
      (strcmp(argv[2], "sparse") && strcmp(argv[2], "random"))) {
    fprintf(stderr, "usage: %s write|check sparse|random SIZE SEED FILE\n", argv[0]);
    return 2;
  }
  int writing = strcmp(argv[1], "write") == 0;
  int sparse = strcmp(argv[2], "sparse") == 0;
  uint64_t size = strtoull(argv[3], NULL, 10);
  uint64_t seed = strtoull(argv[4], NULL, 10);
  const char* path = argv[5];
  int fd = writing ? open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644) : open(path, O_RDONLY);
  if (fd < 0) {
    fprintf(stderr, "datagen: open %s: %s\n", path, strerror(errno));
    return 1;
  }
  /* One extra block so that fill() may write a whole last block. */
  unsigned char* expect = malloc(kBuffer + kBlock);
  unsigned char* got = malloc(kBuffer);
  EVP_MD_CTX* sha = EVP_MD_CTX_new();
  EVP_DigestInit_ex(sha, EVP_sha256(), NULL);
  int status = 0;
  uint64_t done = 0;
  while (done < size || !writing) {
    size_t len = size - done < kBuffer ? (size_t)(size - done) : kBuffer;
    if (done < size) fill(expect, len, sparse, seed, done);
    if (writing) {
      for (size_t at = 0; at < len;) {
        ssize_t n = write(fd, expect + at, len - at);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          fprintf(stderr, "datagen: write %s at %llu: %s\n", path, (unsigned long long)(done + at),
                  n < 0 ? strerror(errno) : "wrote nothing");
          return 1;
        }
        at += (size_t)n;
      }
      EVP_DigestUpdate(sha, expect, len);
      done += len;
      continue;
    }
    /* check: read a full buffer (or to EOF) */
    size_t have = 0;
    while (have < kBuffer) {
      ssize_t n = read(fd, got + have, kBuffer - have);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        fprintf(stderr, "datagen: read %s at %llu: %s\n", path, (unsigned long long)(done + have),
                strerror(errno));
        return 1;
      }
      if (n == 0) break;
      have += (size_t)n;
    }
    if (have == 0) break;
    EVP_DigestUpdate(sha, got, have);
    if (status == 0) {
      if (done + have > size) {
        fprintf(stderr, "datagen: %s is longer than %llu bytes\n", path, (unsigned long long)size);
        status = 1;
      } else {
        size_t cmp = have < len ? have : len;
        if (memcmp(got, expect, cmp) != 0) {
          /* Report every differing 4 KiB block, runs of them coalesced, and whether
           * what was read there is all zeros (a hole where data should be). */
          for (size_t at = 0; at < cmp; at += kBlock) {
            size_t n = cmp - at < kBlock ? cmp - at : kBlock;
            int bad = memcmp(got + at, expect + at, n) != 0;
            int zero = 1;
            for (size_t i = 0; bad && i < n; ++i) zero &= got[at + i] == 0;
            uint64_t offset = done + at;
            if (bad && run_bytes > 0 && run_start + run_bytes == offset && run_zero == zero) {
              run_bytes += n;
            } else if (bad) {
              report_run(path);
              run_start = offset, run_bytes = n, run_zero = zero;
            }
            bad_bytes += bad ? n : 0;
          }
        }
      }
    }
    done += have;
  }
  report_run(path);
  if (bad_bytes > 0) {
    fprintf(stderr, "datagen: %s: %llu bytes in blocks that differ\n", path, (unsigned long long)bad_bytes);
    status = 1;
  }
  if (!writing && status == 0 && done != size) {
    fprintf(stderr, "datagen: %s has %llu bytes, expected %llu\n", path, (unsigned long long)done,
            (unsigned long long)size);
    status = 1;
  }
  if (writing && close(fd) != 0) {
    fprintf(stderr, "datagen: close %s: %s\n", path, strerror(errno));
    return 1;
  }
  unsigned char digest[32];
  unsigned n = 0;
  EVP_DigestFinal_ex(sha, digest, &n);
  char text[65];
  hex(digest, n, text);
  printf("%s\n", text);
  return status;
}
