/*
 * protocol._trie_accel — the hot path of SumTrie.build (DESIGN §3.4) in C.
 *
 * One function, build(items, error), does what protocol/trie.py does in Python and returns
 * the same packed buffers, so that proofs and everything else stay in Python:
 *
 *   1. ingest: read (key, value_hash, weight[, ref]) items into 76-byte records
 *      key ‖ value_hash ‖ uint64be(weight) ‖ uint32be(arrival index), and refs (int64, arrival
 *      order) — no Python object is kept per leaf;
 *   2. sort the records by key (merge sort of 16-byte entries: 64-bit key prefix, arrival),
 *      keep the first arrival of each key;
 *   3. lay out the sorted records, cumulative weights (uint64, refusing a total above uint64)
 *      and the neighbours' common prefix lengths in bits;
 *   4. one left-to-right pass with a stack hashes the leaves and the inner nodes, writing the
 *      digest of every branching node, lifted through its single-child ancestors, into `top`.
 *
 * The GIL is released while sorting and hashing (the buffers are private until returned).
 * SHA-256 is a small portable implementation, with the x86 SHA extensions used when the CPU
 * has them (checked at import).
 *
 * Returns (count, records: bytearray, refs: bytes | None, cum: bytes, lcp: bytes,
 *          top: bytearray, root_digest: bytes, root_sum: int, root_count: int, root_id: int);
 * refs and cum are native-endian int64 / uint64 arrays. Malformed input raises `error`.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define TRIE_HAVE_SHANI 1
#include <cpuid.h>
#include <immintrin.h>
#endif

#define KEY_SIZE 32
#define RECORD_SIZE 76
#define MAX_ITEMS ((int64_t)1 << 32)
#define KEY_BITS 256

/* -- SHA-256 ---------------------------------------------------------------------------- */

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

static const uint32_t H256[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

static inline uint32_t load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t load_be64(const uint8_t *p) {
    return ((uint64_t)load_be32(p) << 32) | load_be32(p + 4);
}

static inline void store_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void store_be64(uint8_t *p, uint64_t v) {
    store_be32(p, (uint32_t)(v >> 32));
    store_be32(p + 4, (uint32_t)v);
}

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

#define BSIG0(x) (ROTR(x, 2) ^ ROTR(x, 13) ^ ROTR(x, 22))
#define BSIG1(x) (ROTR(x, 6) ^ ROTR(x, 11) ^ ROTR(x, 25))
#define SSIG0(x) (ROTR(x, 7) ^ ROTR(x, 18) ^ ((x) >> 3))
#define SSIG1(x) (ROTR(x, 17) ^ ROTR(x, 19) ^ ((x) >> 10))
#define CH(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))
#define MAJ(x, y, z) (((x) & (y)) | ((z) & ((x) | (y))))
/* One round; the caller rotates the roles of a..h instead of moving the values. */
#define ROUND(a, b, c, d, e, f, g, h, t)                                  \
    do {                                                                  \
        uint32_t t1 = (h) + BSIG1(e) + CH(e, f, g) + K256[t] + w[t];      \
        (d) += t1;                                                        \
        (h) = t1 + BSIG0(a) + MAJ(a, b, c);                               \
    } while (0)

/* Compress `blocks` 64-byte blocks into state (portable). */
static void compress_portable(uint32_t state[8], const uint8_t *data, size_t blocks) {
    uint32_t w[64];
    while (blocks--) {
        uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
        uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
        for (int t = 0; t < 16; t++) w[t] = load_be32(data + 4 * t);
        for (int t = 16; t < 64; t++)
            w[t] = w[t - 16] + SSIG0(w[t - 15]) + w[t - 7] + SSIG1(w[t - 2]);
        for (int t = 0; t < 64; t += 8) {
            ROUND(a, b, c, d, e, f, g, h, t);
            ROUND(h, a, b, c, d, e, f, g, t + 1);
            ROUND(g, h, a, b, c, d, e, f, t + 2);
            ROUND(f, g, h, a, b, c, d, e, t + 3);
            ROUND(e, f, g, h, a, b, c, d, t + 4);
            ROUND(d, e, f, g, h, a, b, c, t + 5);
            ROUND(c, d, e, f, g, h, a, b, t + 6);
            ROUND(b, c, d, e, f, g, h, a, t + 7);
        }
        state[0] += a;
        state[1] += b;
        state[2] += c;
        state[3] += d;
        state[4] += e;
        state[5] += f;
        state[6] += g;
        state[7] += h;
        data += 64;
    }
}

#ifdef TRIE_HAVE_SHANI
/* Compress with the x86 SHA extensions: state kept as ABEF / CDGH in two registers; the
 * message schedule for rounds 4g..4g+3 lives in m[g % 4]. */
__attribute__((target("sha,sse4.1,ssse3"))) static void
compress_shani(uint32_t state[8], const uint8_t *data, size_t blocks) {
    const __m128i mask = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i tmp = _mm_loadu_si128((const __m128i *)&state[0]);
    __m128i st1 = _mm_loadu_si128((const __m128i *)&state[4]);
    tmp = _mm_shuffle_epi32(tmp, 0xB1);          /* CDAB */
    st1 = _mm_shuffle_epi32(st1, 0x1B);          /* EFGH */
    __m128i st0 = _mm_alignr_epi8(tmp, st1, 8);  /* ABEF */
    st1 = _mm_blend_epi16(st1, tmp, 0xF0);       /* CDGH */
    while (blocks--) {
        const __m128i abef = st0, cdgh = st1;
        __m128i m[4];
#pragma GCC unroll 16
        for (int g = 0; g < 16; g++) {
            if (g < 4) {
                m[g] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16 * g)), mask);
            } else {
                __m128i x = _mm_sha256msg1_epu32(m[g & 3], m[(g + 1) & 3]);
                x = _mm_add_epi32(x, _mm_alignr_epi8(m[(g + 3) & 3], m[(g + 2) & 3], 4));
                m[g & 3] = _mm_sha256msg2_epu32(x, m[(g + 3) & 3]);
            }
            __m128i msg = _mm_add_epi32(m[g & 3], _mm_loadu_si128((const __m128i *)&K256[4 * g]));
            st1 = _mm_sha256rnds2_epu32(st1, st0, msg);
            msg = _mm_shuffle_epi32(msg, 0x0E);
            st0 = _mm_sha256rnds2_epu32(st0, st1, msg);
        }
        st0 = _mm_add_epi32(st0, abef);
        st1 = _mm_add_epi32(st1, cdgh);
        data += 64;
    }
    tmp = _mm_shuffle_epi32(st0, 0x1B);          /* FEBA */
    st1 = _mm_shuffle_epi32(st1, 0xB1);          /* DCHG */
    st0 = _mm_blend_epi16(tmp, st1, 0xF0);       /* DCBA */
    st1 = _mm_alignr_epi8(st1, tmp, 8);          /* HGFE */
    _mm_storeu_si128((__m128i *)&state[0], st0);
    _mm_storeu_si128((__m128i *)&state[4], st1);
}

static int cpu_has_shani(void) {
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & (1u << 19)) || !(c & (1u << 9))) return 0; /* SSE4.1, SSSE3 */
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    return (b >> 29) & 1; /* SHA */
}
#endif

typedef void (*compress_fn)(uint32_t state[8], const uint8_t *data, size_t blocks);
static compress_fn compress = compress_portable;

/* sha256 of a message of 56..119 bytes laid out in buf[0..len), padded here (two blocks). */
static void sha256_two_blocks(uint8_t buf[128], size_t len, uint8_t out[32]) {
    uint32_t state[8];
    memcpy(state, H256, sizeof state);
    buf[len] = 0x80;
    memset(buf + len + 1, 0, 120 - len - 1);
    store_be64(buf + 120, (uint64_t)len * 8);
    compress(state, buf, 2);
    for (int i = 0; i < 8; i++) store_be32(out + 4 * i, state[i]);
}

/* leaf = sha256(0x00 ‖ key ‖ value_hash ‖ uint64(weight) ‖ uint64(1)); a record's first 72
 * bytes are the middle of that preimage. */
static void leaf_digest(const uint8_t *record, uint8_t out[32]) {
    uint8_t buf[128];
    buf[0] = 0;
    memcpy(buf + 1, record, 72);
    store_be64(buf + 73, 1);
    sha256_two_blocks(buf, 81, out);
}

/* inner = sha256(0x01 ‖ Ld ‖ uint64(Ls) ‖ uint64(Lc) ‖ Rd ‖ uint64(Rs) ‖ uint64(Rc)); a NULL
 * digest with sum and count 0 is EMPTY. `out` may be `ld` or `rd`. */
static void inner_digest(const uint8_t *ld, uint64_t ls, uint64_t lc, const uint8_t *rd,
                         uint64_t rs, uint64_t rc, uint8_t out[32]) {
    uint8_t buf[128];
    buf[0] = 1;
    if (ld) memcpy(buf + 1, ld, 32); else memset(buf + 1, 0, 32);
    store_be64(buf + 33, ls);
    store_be64(buf + 41, lc);
    if (rd) memcpy(buf + 49, rd, 32); else memset(buf + 49, 0, 32);
    store_be64(buf + 81, rs);
    store_be64(buf + 89, rc);
    sha256_two_blocks(buf, 97, out);
}

static inline int key_bit(const uint8_t *key, int depth) {
    return (key[depth >> 3] >> (7 - (depth & 7))) & 1;
}

/* Wrap a subtree at depth `start` in single-child inner nodes at depths start-1..stop: each
 * has the subtree on the side `key` (any key of the subtree) picks and EMPTY on the other. */
static void lift(uint8_t digest[32], uint64_t total, uint64_t count, int start, int stop,
                 const uint8_t *key) {
    for (int d = start - 1; d >= stop; d--) {
        if (key_bit(key, d))
            inner_digest(NULL, 0, 0, digest, total, count, digest);
        else
            inner_digest(digest, total, count, NULL, 0, 0, digest);
    }
}

/* -- sorting ------------------------------------------------------------------------------ */

typedef struct {
    uint64_t prefix; /* first 8 key bytes, big-endian: integer order is key order */
    uint32_t arrival;
    uint32_t pad;
} entry_t;

static inline int entry_less(const entry_t *a, const entry_t *b, const uint8_t *raw) {
    if (a->prefix != b->prefix) return a->prefix < b->prefix;
    int c = memcmp(raw + (size_t)a->arrival * RECORD_SIZE + 8,
                   raw + (size_t)b->arrival * RECORD_SIZE + 8, KEY_SIZE - 8);
    if (c != 0) return c < 0;
    return a->arrival < b->arrival;
}

/* Sort by (key, arrival): insertion sort of runs of 16, then bottom-up merges. */
static void sort_entries(entry_t *a, entry_t *tmp, size_t n, const uint8_t *raw) {
    const size_t run = 16;
    for (size_t lo = 0; lo < n; lo += run) {
        size_t hi = lo + run < n ? lo + run : n;
        for (size_t i = lo + 1; i < hi; i++) {
            entry_t x = a[i];
            size_t j = i;
            while (j > lo && entry_less(&x, &a[j - 1], raw)) {
                a[j] = a[j - 1];
                j--;
            }
            a[j] = x;
        }
    }
    entry_t *src = a, *dst = tmp;
    for (size_t width = run; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n;
            size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) dst[k++] = entry_less(&src[j], &src[i], raw) ? src[j++] : src[i++];
            while (i < mid) dst[k++] = src[i++];
            while (j < hi) dst[k++] = src[j++];
        }
        entry_t *swap = src;
        src = dst;
        dst = swap;
    }
    if (src != a) memcpy(a, src, n * sizeof *a);
}

/* -- the inner-node pass ------------------------------------------------------------------ */

typedef struct {
    int depth;
    int64_t gap;
    uint8_t digest[32];
    uint64_t sum;
    uint64_t count;
    int64_t id;
} frame_t;

/* Port of SumTrie._build_nodes (n >= 1): see trie.py for the invariants. */
static void build_nodes(const uint8_t *records, size_t n, const uint64_t *cum, const uint8_t *lcp,
                        uint8_t *top, uint8_t root_digest[32], uint64_t *root_sum,
                        uint64_t *root_count, int64_t *root_id) {
    frame_t stack[KEY_BITS + 2];
    int sp = 0;
    stack[0].depth = -2; /* sentinel */
    uint8_t cd[32];
    uint64_t cs = cum[1], cc = 1;
    int64_t cid = ~(int64_t)0;
    leaf_digest(records, cd);
    for (size_t j = 1; j <= n; j++) {
        int split = j < n ? lcp[j - 1] : -1;
        while (stack[sp].depth > split) {
            frame_t *p = &stack[sp--];
            int below = p->depth + 1;
            if (p->id >= 0) {
                if (lcp[p->id] > below)
                    lift(p->digest, p->sum, p->count, lcp[p->id], below,
                         records + (size_t)p->gap * RECORD_SIZE);
                memcpy(top + 32 * (size_t)p->id, p->digest, 32);
            }
            if (cid >= 0) {
                if (lcp[cid] > below)
                    lift(cd, cs, cc, lcp[cid], below, records + (j - 1) * RECORD_SIZE);
                memcpy(top + 32 * (size_t)cid, cd, 32);
            }
            inner_digest(p->digest, p->sum, p->count, cd, cs, cc, cd);
            cs += p->sum;
            cc += p->count;
            cid = p->gap;
        }
        if (split < 0) break;
        frame_t *f = &stack[++sp];
        f->depth = split;
        f->gap = (int64_t)j - 1;
        memcpy(f->digest, cd, 32);
        f->sum = cs;
        f->count = cc;
        f->id = cid;
        leaf_digest(records + j * RECORD_SIZE, cd);
        cs = cum[j + 1] - cum[j];
        cc = 1;
        cid = ~(int64_t)j;
    }
    if (cid >= 0) {
        if (lcp[cid] > 0) lift(cd, cs, cc, lcp[cid], 0, records + (n - 1) * RECORD_SIZE);
        memcpy(top + 32 * (size_t)cid, cd, 32);
    }
    memcpy(root_digest, cd, 32);
    *root_sum = cs;
    *root_count = cc;
    *root_id = cid;
}

/* -- ingest ------------------------------------------------------------------------------- */

typedef struct {
    PyObject *records; /* bytearray of records, in arrival order until sorted in place */
    uint8_t *raw;      /* its buffer */
    int64_t *refs;     /* refs in arrival order (arity 4) */
    size_t n, cap;
    int arity;
} ingest_t;

static void ingest_free(ingest_t *in) {
    Py_CLEAR(in->records);
    PyMem_RawFree(in->refs);
    in->raw = NULL;
    in->refs = NULL;
}

/* Double the capacity (large reallocations move pages, not bytes). */
static int grow(ingest_t *in) {
    size_t cap = in->cap ? in->cap * 2 : 4096;
    if (PyByteArray_Resize(in->records, (Py_ssize_t)(cap * RECORD_SIZE)) < 0) return -1;
    in->raw = (uint8_t *)PyByteArray_AS_STRING(in->records);
    int64_t *refs = PyMem_RawRealloc(in->refs, cap * sizeof(int64_t));
    if (!refs) {
        PyErr_NoMemory();
        return -1;
    }
    in->refs = refs;
    in->cap = cap;
    return 0;
}

/* A key or value hash: bytes or bytearray of 32 bytes. */
static const uint8_t *hash32(PyObject *obj) {
    if (PyBytes_Check(obj) && PyBytes_GET_SIZE(obj) == 32) return (const uint8_t *)PyBytes_AS_STRING(obj);
    if (PyByteArray_Check(obj) && PyByteArray_GET_SIZE(obj) == 32)
        return (const uint8_t *)PyByteArray_AS_STRING(obj);
    return NULL;
}

/* An integer field: its value as an exact int (calling __index__), or NULL with `error` set
 * for a non-integer; other errors pass through. */
static PyObject *index_of(PyObject *obj, PyObject *error, size_t i, const char *what) {
    PyObject *index = PyNumber_Index(obj);
    if (!index && PyErr_ExceptionMatches(PyExc_TypeError)) {
        PyErr_Clear();
        PyErr_Format(error, "leaf %zu: %s must be an integer", i, what);
    }
    return index;
}

/* Append one item; -1 with `error` (or the item's own error) set. The fields are held and the
 * key and value hash copied before any Python code (__index__) can run. */
static int ingest_one(ingest_t *in, PyObject *item, PyObject *error) {
    size_t i = in->n;
    Py_ssize_t size;
    if (PyTuple_Check(item)) {
        size = PyTuple_GET_SIZE(item);
    } else if (PyList_Check(item)) {
        size = PyList_GET_SIZE(item);
    } else {
        PyErr_Format(error, "leaf %zu: an item must be a tuple, got %.80s", i, Py_TYPE(item)->tp_name);
        return -1;
    }
    if ((size != 3 && size != 4) || (in->arity && size != in->arity)) {
        PyErr_Format(error, "leaf %zu: items must all be 3-tuples or 4-tuples", i);
        return -1;
    }
    if ((int64_t)i >= MAX_ITEMS) {
        PyErr_Format(error, "more than %lld leaves", (long long)MAX_ITEMS);
        return -1;
    }
    in->arity = (int)size;
    PyObject *fields[4] = {NULL, NULL, NULL, NULL};
    for (Py_ssize_t k = 0; k < size; k++)
        fields[k] = Py_NewRef(PyTuple_Check(item) ? PyTuple_GET_ITEM(item, k) : PyList_GET_ITEM(item, k));
    PyObject *weight_index = NULL, *ref_index = NULL;
    int rc = -1;
    uint8_t key_hash[64];
    const uint8_t *key = hash32(fields[0]), *value_hash = hash32(fields[1]);
    if (!key || !value_hash) {
        PyErr_Format(error, "leaf %zu: keys and value hashes must be 32 bytes", i);
        goto done;
    }
    memcpy(key_hash, key, 32);
    memcpy(key_hash + 32, value_hash, 32);
    weight_index = index_of(fields[2], error, i, "weight");
    if (!weight_index) goto done;
    if (size == 4 && !(ref_index = index_of(fields[3], error, i, "ref"))) goto done;
    unsigned long long weight = PyLong_AsUnsignedLongLong(weight_index);
    if (weight == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) goto done;
        PyErr_Clear();
        PyErr_Format(error, "leaf %zu: weight must be in [0, 2**64)", i);
        goto done;
    }
    long long ref = 0;
    if (ref_index) {
        ref = PyLong_AsLongLong(ref_index);
        if (ref == -1 && PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_OverflowError)) goto done;
            PyErr_Clear();
            PyErr_Format(error, "leaf %zu: ref must be in [-2**63, 2**63)", i);
            goto done;
        }
    }
    if (in->n == in->cap && grow(in) < 0) goto done;
    uint8_t *rec = in->raw + i * RECORD_SIZE;
    memcpy(rec, key_hash, 64);
    store_be64(rec + 64, (uint64_t)weight);
    store_be32(rec + 72, (uint32_t)i);
    in->refs[i] = ref;
    in->n++;
    rc = 0;
done:
    Py_XDECREF(weight_index);
    Py_XDECREF(ref_index);
    for (int k = 0; k < 4; k++) Py_XDECREF(fields[k]);
    return rc;
}

/* -- build -------------------------------------------------------------------------------- */

static PyObject *accel_build(PyObject *self, PyObject *args) {
    PyObject *items, *error;
    (void)self;
    if (!PyArg_ParseTuple(args, "OO:build", &items, &error)) return NULL;
    if (!PyExceptionClass_Check(error)) {
        PyErr_SetString(PyExc_TypeError, "error must be an exception class");
        return NULL;
    }

    ingest_t in = {0};
    entry_t *entries = NULL, *tmp = NULL;
    PyObject *records = NULL, *refs = NULL, *cum = NULL, *lcp = NULL, *top = NULL, *result = NULL;

    in.records = PyByteArray_FromStringAndSize(NULL, 0);
    if (!in.records) return NULL;
    PyObject *it = PyObject_GetIter(items);
    if (!it) goto fail;
    PyObject *item;
    while ((item = PyIter_Next(it)) != NULL) {
        int rc = ingest_one(&in, item, error);
        Py_DECREF(item);
        if (rc < 0) break;
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) goto fail;

    size_t n = in.n;
    if (in.arity == 4) {
        refs = PyBytes_FromStringAndSize((const char *)in.refs, (Py_ssize_t)(n * sizeof(int64_t)));
        if (!refs) goto fail;
    } else {
        refs = Py_NewRef(Py_None);
    }
    PyMem_RawFree(in.refs);
    in.refs = NULL;

    size_t m = 0;
    if (n) {
        entries = PyMem_RawMalloc(n * sizeof(entry_t));
        tmp = PyMem_RawMalloc(n * sizeof(entry_t));
        if (!entries || !tmp) {
            PyErr_NoMemory();
            goto fail;
        }
        uint8_t *raw = in.raw;
        Py_BEGIN_ALLOW_THREADS;
        /* Sort (key, arrival). */
        for (size_t i = 0; i < n; i++) {
            entries[i].prefix = load_be64(raw + i * RECORD_SIZE);
            entries[i].arrival = (uint32_t)i;
            entries[i].pad = 0;
        }
        sort_entries(entries, tmp, n, raw);
        /* Keep the first arrival of each key at the front, the repeats after it. */
        size_t dropped = 0;
        for (size_t i = 0; i < n; i++) {
            if (m > 0 && entries[i].prefix == entries[m - 1].prefix &&
                memcmp(raw + (size_t)entries[i].arrival * RECORD_SIZE,
                       raw + (size_t)entries[m - 1].arrival * RECORD_SIZE, KEY_SIZE) == 0)
                tmp[dropped++] = entries[i];
            else
                entries[m++] = entries[i];
        }
        memcpy(entries + m, tmp, dropped * sizeof *tmp);
        /* Permute the records in place: position k takes the record that arrived
         * entries[k].arrival-th, following each cycle once (pad marks a filled position). */
        uint8_t saved[RECORD_SIZE];
        for (size_t i = 0; i < n; i++) {
            if (entries[i].pad) continue;
            memcpy(saved, raw + i * RECORD_SIZE, RECORD_SIZE);
            size_t k = i;
            for (;;) {
                size_t from = entries[k].arrival;
                entries[k].pad = 1;
                if (from == i) {
                    memcpy(raw + k * RECORD_SIZE, saved, RECORD_SIZE);
                    break;
                }
                memcpy(raw + k * RECORD_SIZE, raw + from * RECORD_SIZE, RECORD_SIZE);
                k = from;
            }
        }
        Py_END_ALLOW_THREADS;
        PyMem_RawFree(tmp);
        PyMem_RawFree(entries);
        tmp = entries = NULL;
    }
    if (PyByteArray_Resize(in.records, (Py_ssize_t)(m * RECORD_SIZE)) < 0) goto fail;
    records = in.records;
    in.records = NULL;
    in.raw = NULL;
    uint8_t *rec = (uint8_t *)PyByteArray_AS_STRING(records);

    /* Cumulative weights, refusing a total above uint64. */
    cum = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)((m + 1) * sizeof(uint64_t)));
    if (!cum) goto fail;
    uint64_t *c = (uint64_t *)PyBytes_AS_STRING(cum);
    c[0] = 0;
    for (size_t j = 0; j < m; j++) {
        uint64_t w = load_be64(rec + j * RECORD_SIZE + 64);
        if (c[j] > UINT64_MAX - w) {
            PyErr_Format(error, "total weight exceeds uint64 (%llu)", (unsigned long long)UINT64_MAX);
            goto fail;
        }
        c[j + 1] = c[j] + w;
    }

    /* Common prefix lengths of neighbouring keys (distinct, so always < 256). */
    lcp = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(m ? m - 1 : 0));
    if (!lcp) goto fail;
    uint8_t *l = (uint8_t *)PyBytes_AS_STRING(lcp);
    for (size_t j = 0; j + 1 < m; j++) {
        const uint8_t *a = rec + j * RECORD_SIZE, *b = a + RECORD_SIZE;
        int bits = 0;
        for (int w = 0; w < 4; w++) {
            uint64_t x = load_be64(a + 8 * w) ^ load_be64(b + 8 * w);
            if (x) {
                bits += __builtin_clzll(x);
                break;
            }
            bits += 64;
        }
        l[j] = (uint8_t)bits;
    }

    top = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)(m ? 32 * (m - 1) : 0));
    if (!top) goto fail;
    uint8_t root_digest[32] = {0};
    uint64_t root_sum = 0, root_count = 0;
    int64_t root_id = -1;
    if (m) {
        uint8_t *t = (uint8_t *)PyByteArray_AS_STRING(top);
        Py_BEGIN_ALLOW_THREADS;
        build_nodes(rec, m, c, l, t, root_digest, &root_sum, &root_count, &root_id);
        Py_END_ALLOW_THREADS;
    }
    result = Py_BuildValue("(nOOOOOy#KKL)", (Py_ssize_t)m, records, refs, cum, lcp, top,
                           (const char *)root_digest, (Py_ssize_t)32, (unsigned long long)root_sum,
                           (unsigned long long)root_count, (long long)root_id);
fail:
    ingest_free(&in);
    PyMem_RawFree(entries);
    PyMem_RawFree(tmp);
    Py_XDECREF(records);
    Py_XDECREF(refs);
    Py_XDECREF(cum);
    Py_XDECREF(lcp);
    Py_XDECREF(top);
    return result;
}

/* sha256(data) for testing the SHA-256 code paths against hashlib; `portable` forces the
 * portable compression function. */
static PyObject *accel_sha256(PyObject *self, PyObject *args) {
    Py_buffer buf;
    int portable = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*|p:sha256", &buf, &portable)) return NULL;
    compress_fn fn = portable ? compress_portable : compress;
    uint32_t state[8];
    memcpy(state, H256, sizeof state);
    const uint8_t *p = buf.buf;
    size_t len = (size_t)buf.len, full = len / 64;
    fn(state, p, full);
    uint8_t tail[128] = {0};
    size_t rest = len - 64 * full, blocks = rest + 9 <= 64 ? 1 : 2;
    memcpy(tail, p + 64 * full, rest);
    tail[rest] = 0x80;
    store_be64(tail + 64 * blocks - 8, (uint64_t)len * 8);
    fn(state, tail, blocks);
    PyBuffer_Release(&buf);
    uint8_t out[32];
    for (int i = 0; i < 8; i++) store_be32(out + 4 * i, state[i]);
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

static PyMethodDef accel_methods[] = {
    {"build", accel_build, METH_VARARGS,
     "build(items, error) -> (count, records, refs, cum, lcp, top, root_digest, root_sum, "
     "root_count, root_id): the buffers of a SumTrie."},
    {"sha256", accel_sha256, METH_VARARGS,
     "sha256(data, portable=False) -> bytes: the digest, by the accelerator's own SHA-256."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef accel_module = {
    PyModuleDef_HEAD_INIT, "protocol._trie_accel",
    "C accelerator of protocol.trie.SumTrie.build (DESIGN §3.4).", -1, accel_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__trie_accel(void) {
    PyObject *module = PyModule_Create(&accel_module);
    if (!module) return NULL;
    const char *impl = "portable";
#ifdef TRIE_HAVE_SHANI
    if (cpu_has_shani()) {
        compress = compress_shani;
        impl = "x86-sha";
    }
#endif
    if (PyModule_AddStringConstant(module, "SHA256_IMPL", impl) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
