/* The line screen: tell, without decoding it, that a JSON line is an audit event no rule can match.
 *
 * The rule index (kubehawk.rules.index) gives each event a plan from a few head fields, its slots;
 * two thirds of a cluster's events get an empty plan. This module reads a line once, in C,
 * validating it as JSON and checking the top-level fields' types as the typed head decode
 * (kubehawk.event._CheckedHead) does, and builds a key from the raw JSON text of the slots. Equal
 * raw text means equal values, so the engine's verdict "empty plan" for one line holds for every
 * line with the same key: such lines are counted and skipped, never decoded. For a line that does
 * meet rules the key keeps the number of its plan instead, which the engine takes back (recall)
 * rather than reading the slots and asking the index again.
 *
 * A line the screen is not certain about (an escape in a key, a duplicate field, a number with
 * an exponent, a surrogate escape, deep nesting, anything it does not validate) gets no key and
 * goes the usual way, where msgspec decodes it and errors are reported: the screen may be
 * stricter than the decoder, never more lenient.
 *
 * Python API (see kubehawk/rules/linescreen.py, which builds the schema from the head type):
 *   Screen(fields, slots, required, max_known=50000, seed=0)
 *     fields: [(name: bytes, type: int, literals: tuple[bytes, ...] | None)]
 *     slots: [(field index, sub key: bytes | None, mode: int)]
 *     required: tuple of field indices, one of which must hold a non-null value
 *   screen.key(line) -> bytes | None
 *   screen.skip(line) -> bool    the key is known to meet no rule (else remember the line and its key)
 *   screen.learn(line, value=-1)  the line last screened, not known: keep its key with -1 (no rule can
 *                                 match) or the number of its plan in the engine's list
 *   screen.recall(line) -> int    the line last screened had a known key with a plan number: that number
 *   screen.forget()               forget every key (the engine's plan list was emptied)
 *   screen.known(), screen.skipped() -> int   keys remembered, lines skipped
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* object() serves both the generic value walk and the mapping fields: inlined into each, it costs
 * them what a copy of its loop would not */
#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

enum { T_STR = 0, T_LIT = 1, T_DICT = 2, T_STRDICT = 3, T_STRLIST = 4, T_RAW = 5 };
enum { M_VALUE = 0, M_PRESENT = 1, M_BODY = 2 };

#define MAX_FIELDS 32
#define MAX_SLOTS 64
#define MAX_LITS 16
#define MAX_NAME 64  /* field names are shorter */
#define MAX_SAME_LEN 8  /* fields with names of one length */
#define MAX_DEPTH 64
#define MAX_KEY_SLOTS 4  /* slots reading one key of a mapping (its value, its presence) */
#define MAX_KNOWN 50000

typedef struct {
    const char *name;
    Py_ssize_t len;
    int type;
    int nlits;
    const char *lits[MAX_LITS];
    Py_ssize_t litlens[MAX_LITS];
    int nkeys;      /* distinct keys inside this field (a mapping) that slots read */
    const char *keys[MAX_SLOTS];
    Py_ssize_t keylens[MAX_SLOTS];
    int nkeyslots[MAX_SLOTS];  /* the slots reading each key (a value and a presence slot may share one) */
    int keyslots[MAX_SLOTS][MAX_KEY_SLOTS];
} Field;

typedef struct {
    int field;
    const char *sub;  /* NULL: the field itself */
    Py_ssize_t sublen;
    int mode;
} Slot;

typedef struct {
    uint64_t hash;
    Py_ssize_t len;
    unsigned char *data;  /* NULL: a free slot */
    Py_ssize_t value;  /* -1: no rule can match (skip the line); n >= 0: the engine's plan number n */
} Entry;

typedef struct {
    PyObject_HEAD
    int ready;  /* __init__ succeeded: the tables below are whole */
    PyObject *keep;  /* the Python objects the names point into */
    int nfields;
    Field fields[MAX_FIELDS];
    int nslots;
    Slot slots[MAX_SLOTS];
    int nrequired;
    int required[MAX_FIELDS];
    signed char by_len[MAX_NAME][MAX_SAME_LEN];  /* name length -> the fields of that length (-1: no more) */
    Entry *table;  /* the keys with an empty plan (open addressing, at most half full) */
    size_t cap, count;
    Py_ssize_t max_known;  /* the table is emptied when it holds this many: memory stays flat */
    uint64_t seed;
    Py_ssize_t skipped;  /* lines skipped so far */
    unsigned char *buf;  /* the key being built */
    Py_ssize_t bufcap;
    PyObject *last_line;  /* the line last screened and not known, and its key */
    unsigned char *last;
    Py_ssize_t lastlen, lastcap;
    uint64_t lasthash;
    Py_ssize_t last_value;  /* what the table holds for it (UNKNOWN: not there) */
} Screen;

#define UNKNOWN (-2)

/* Where each field's and slot's value lies in the line being read (start NULL: absent). */
typedef struct {
    const unsigned char *fs[MAX_FIELDS], *fe[MAX_FIELDS];
    const unsigned char *ss[MAX_SLOTS], *se[MAX_SLOTS];
} Found;

#define FAIL NULL

static inline const unsigned char *ws(const unsigned char *p, const unsigned char *end) {
    /* one comparison for the common case: a compact line has no whitespace */
    while (p < end && *p <= ' ' && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    return p;
}

static inline int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* One UTF-8 sequence starting at p (*p >= 0x80): its end, or FAIL if not well-formed. */
static const unsigned char *utf8(const unsigned char *p, const unsigned char *end) {
    unsigned char c = *p;
    int n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) n = 1;
    else if (c == 0xE0) { n = 2; lo = 0xA0; }
    else if (c >= 0xE1 && c <= 0xEC) n = 2;
    else if (c == 0xED) { n = 2; hi = 0x9F; }  /* no surrogates */
    else if (c >= 0xEE && c <= 0xEF) n = 2;
    else if (c == 0xF0) { n = 3; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) n = 3;
    else if (c == 0xF4) { n = 3; hi = 0x8F; }
    else return FAIL;
    if (end - p <= n) return FAIL;
    if (p[1] < lo || p[1] > hi) return FAIL;
    for (int i = 2; i <= n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return FAIL;
    return p + n + 1;
}

/* The first byte from p on that ends a plain run of a string: '"', a backslash, a control character or a
 * byte of a multi-byte UTF-8 sequence (end if none). Sixteen bytes at a time where SSE2 is there (every
 * x86-64): signed, a byte >= 0x80 is below 0x20 too, so one comparison catches both. */
static inline const unsigned char *plain_run(const unsigned char *p, const unsigned char *end) {
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                                   _mm_cmplt_epi8(v, space));
        int mask = _mm_movemask_epi8(hit);
        if (mask) return p + __builtin_ctz(mask);
        p += 16;
    }
#endif
    while (p < end && *p != '"' && *p != '\\' && *p >= 0x20 && *p < 0x80) p++;
    return p;
}

/* A string at p (*p == '"'): the position after it, or FAIL. *escaped tells whether it had a backslash. */
static const unsigned char *string(const unsigned char *p, const unsigned char *end, int *escaped) {
    p++;
    *escaped = 0;
    while (p < end) {
        p = plain_run(p, end);
        if (p >= end) break;
        unsigned char c = *p;
        if (c == '"') return p + 1;
        if (c == '\\') {
            *escaped = 1;
            if (end - p < 2) return FAIL;
            switch (p[1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                p += 2;
                break;
            case 'u': {
                if (end - p < 6) return FAIL;
                int v = 0;
                for (int i = 2; i < 6; i++) {
                    int h = hexval(p[i]);
                    if (h < 0) return FAIL;
                    v = v * 16 + h;
                }
                if (v >= 0xD800 && v <= 0xDFFF) return FAIL;  /* surrogates: left to the decoder */
                p += 6;
                break;
            }
            default:
                return FAIL;
            }
        } else if (c < 0x20) {
            return FAIL;
        } else if (c >= 0x80) {
            p = utf8(p, end);
            if (p == FAIL) return FAIL;
        } else {
            p++;
        }
    }
    return FAIL;
}

/* A number: the grammar of JSON, at most 18 digits and no exponent (else left to the decoder). */
static const unsigned char *number(const unsigned char *p, const unsigned char *end) {
    int digits = 0;
    if (p < end && *p == '-') p++;
    if (p >= end) return FAIL;
    if (*p == '0') {
        p++;
        digits++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') { p++; digits++; }
    } else {
        return FAIL;
    }
    if (p < end && *p == '.') {
        p++;
        const unsigned char *f = p;
        while (p < end && *p >= '0' && *p <= '9') { p++; digits++; }
        if (p == f) return FAIL;
    }
    if (p < end && (*p == 'e' || *p == 'E')) return FAIL;
    if (digits > 18) return FAIL;
    return p;
}

static const unsigned char *value(const unsigned char *p, const unsigned char *end, int depth);

/* A member's key and its colon at p: the position of the value (whitespace skipped), or FAIL.
 * [*ks, *ke) is the key's raw text; *esc tells whether it has an escape. */
static inline const unsigned char *member_key(const unsigned char *p, const unsigned char *end,
                                              const unsigned char **ks, const unsigned char **ke, int *esc) {
    if (p >= end || *p != '"') return FAIL;
    *ks = p + 1;
    p = string(p, end, esc);
    if (p == FAIL) return FAIL;
    *ke = p - 1;
    p = ws(p, end);
    if (p >= end || *p != ':') return FAIL;
    return ws(p + 1, end);
}

/* After a member or an element: 1 when ``close`` ends the container, 0 when a comma says more come
 * (*pp moves past either, and past whitespace), -1 for anything else. */
static inline int next_item(const unsigned char **pp, const unsigned char *end, unsigned char close) {
    const unsigned char *p = ws(*pp, end);
    if (p >= end) return -1;
    if (*p == close) {
        *pp = p + 1;
        return 1;
    }
    if (*p != ',') return -1;
    *pp = ws(p + 1, end);
    return 0;
}

static const unsigned char *literal(const unsigned char *p, const unsigned char *end, const char *word, Py_ssize_t n) {
    if (end - p < n || memcmp(p, word, n) != 0) return FAIL;
    return p + n;
}

/* An object at p, or null where ``f`` (a mapping-typed field) admits one: the position after it, or
 * FAIL. ``depth``: how deep it is nested. For a field, the keys some slot reads are recorded in
 * ``found`` (an escaped or repeated one fails); with ``strings``, every value must be a string
 * (dict[str, str]). Any other object (``f`` NULL) is only validated. */
static ALWAYS_INLINE const unsigned char *object(const Field *f, const unsigned char *p, const unsigned char *end,
                                                 Found *found, int strings, int depth) {
    int esc;
    if (f != NULL && p < end && *p == 'n') return literal(p, end, "null", 4);
    if (p >= end || *p != '{' || depth >= MAX_DEPTH) return FAIL;
    p = ws(p + 1, end);
    if (p < end && *p == '}') return p + 1;
    for (;;) {
        const unsigned char *ks, *ke;
        p = member_key(p, end, &ks, &ke, &esc);
        if (p == FAIL) return FAIL;
        int wanted = -1;
        if (f != NULL && f->nkeys) {
            if (esc) return FAIL;  /* it could spell a key we read */
            Py_ssize_t kl = ke - ks;
            for (int i = 0; i < f->nkeys; i++) {
                if (f->keylens[i] == kl && f->keys[i][0] == (char)ks[0] && memcmp(f->keys[i], ks, kl) == 0) {
                    if (found->ss[f->keyslots[i][0]] != NULL) return FAIL;  /* repeated: the last would win */
                    wanted = i;
                    break;
                }
            }
        }
        const unsigned char *vs = p;
        if (strings) {
            if (p >= end || *p != '"') return FAIL;
            p = string(p, end, &esc);
        } else {
            p = value(p, end, depth + 1);
        }
        if (p == FAIL) return FAIL;
        if (wanted >= 0) {
            for (int i = 0; i < f->nkeyslots[wanted]; i++) {
                found->ss[f->keyslots[wanted][i]] = vs;
                found->se[f->keyslots[wanted][i]] = p;
            }
        }
        int done = next_item(&p, end, '}');
        if (done) return done > 0 ? p : FAIL;
    }
}

/* Any JSON value at p (whitespace skipped before it): the position after it, or FAIL. */
static const unsigned char *value(const unsigned char *p, const unsigned char *end, int depth) {
    int esc;
    if (p >= end) return FAIL;
    switch (*p) {
    case '"':
        return string(p, end, &esc);
    case '{':
        return object(NULL, p, end, NULL, 0, depth);
    case '[':
        if (depth >= MAX_DEPTH) return FAIL;
        p = ws(p + 1, end);
        if (p < end && *p == ']') return p + 1;
        for (;;) {
            p = value(p, end, depth + 1);
            if (p == FAIL) return FAIL;
            int done = next_item(&p, end, ']');
            if (done) return done > 0 ? p : FAIL;
        }
    case 't':
        return literal(p, end, "true", 4);
    case 'f':
        return literal(p, end, "false", 5);
    case 'n':
        return literal(p, end, "null", 4);
    default:
        return number(p, end);
    }
}

static inline int is_null(const unsigned char *s, const unsigned char *e) {
    return e - s == 4 && memcmp(s, "null", 4) == 0;
}

/* A field's value, checked against its type; FAIL when the typed decode would reject it (or we cannot tell). */
static const unsigned char *field_value(Field *f, const unsigned char *p, const unsigned char *end,
                                        Found *found) {
    int esc;
    if (p >= end) return FAIL;
    if (f->type == T_RAW) return value(p, end, 0);
    if (*p == 'n') return literal(p, end, "null", 4);  /* every other type admits null */
    switch (f->type) {
    case T_STR:
        return *p == '"' ? string(p, end, &esc) : FAIL;
    case T_LIT: {
        if (*p != '"') return FAIL;
        const unsigned char *q = string(p, end, &esc);
        if (q == FAIL || esc) return FAIL;
        Py_ssize_t n = (q - p) - 2;
        for (int i = 0; i < f->nlits; i++)
            if (f->litlens[i] == n && f->lits[i][0] == (char)p[1] && memcmp(f->lits[i], p + 1, n) == 0) return q;
        return FAIL;
    }
    case T_DICT:
        return object(f, p, end, found, 0, 0);
    case T_STRDICT:
        return object(f, p, end, found, 1, 0);
    case T_STRLIST:
        if (*p != '[') return FAIL;
        p = ws(p + 1, end);
        if (p < end && *p == ']') return p + 1;
        for (;;) {
            if (p >= end || *p != '"') return FAIL;
            p = string(p, end, &esc);
            if (p == FAIL) return FAIL;
            int done = next_item(&p, end, ']');
            if (done) return done > 0 ? p : FAIL;
        }
    }
    return FAIL;
}

/* Read the line: 1 when it is a plain audit event the screen is sure of (found filled in), else 0. */
static int read_line(Screen *self, const unsigned char *p, const unsigned char *end, Found *found) {
    int esc;
    /* only the entries in use: a line is read in about a microsecond */
    memset(found->fs, 0, sizeof(found->fs[0]) * self->nfields);
    memset(found->ss, 0, sizeof(found->ss[0]) * self->nslots);
    p = ws(p, end);
    if (p >= end || *p != '{') return 0;
    p = ws(p + 1, end);
    if (p < end && *p == '}') {
        p++;
    } else {
        for (;;) {
            const unsigned char *ks, *ke;
            p = member_key(p, end, &ks, &ke, &esc);
            if (p == FAIL) return 0;
            Py_ssize_t klen = ke - ks;
            int fi = -1;
            if (esc) return 0;  /* it could spell a field name */
            if (klen < MAX_NAME) {  /* the fields of this length, a few at most */
                const signed char *c = self->by_len[klen];
                for (int k = 0; k < MAX_SAME_LEN && c[k] >= 0; k++) {
                    Field *f = &self->fields[c[k]];
                    if (f->name[0] == (char)ks[0] && memcmp(f->name, ks, klen) == 0) {
                        fi = c[k];
                        break;
                    }
                }
            }
            const unsigned char *vs = p;
            if (fi >= 0) {
                if (found->fs[fi] != NULL) return 0;  /* repeated: the last would win */
                p = field_value(&self->fields[fi], p, end, found);
                if (p == FAIL) return 0;
                found->fs[fi] = vs;
                found->fe[fi] = p;
            } else {
                p = value(p, end, 0);
                if (p == FAIL) return 0;
            }
            int done = next_item(&p, end, '}');
            if (done < 0) return 0;
            if (done) break;
        }
    }
    if (ws(p, end) != end) return 0;  /* only whitespace may follow */
    for (int i = 0; i < self->nrequired; i++) {
        int fi = self->required[i];
        if (found->fs[fi] != NULL && !is_null(found->fs[fi], found->fe[fi])) return 1;
    }
    return 0;  /* not an audit Event by the reader's test: the usual way names it */
}

/* The key of a line read by read_line, built in self->buf: per slot, a presence byte or a length and the raw
 * text. Its length; -1 when the screen cannot say, -2 with an exception set. */
static Py_ssize_t make_key(Screen *self, const unsigned char *data, Py_ssize_t len) {
    Found found;
    if (!read_line(self, data, data + len, &found)) return -1;
    const unsigned char *vs[MAX_SLOTS], *ve[MAX_SLOTS];
    Py_ssize_t size = 0;
    for (int i = 0; i < self->nslots; i++) {
        Slot *s = &self->slots[i];
        const unsigned char *a = NULL, *b = NULL;
        if (s->sub == NULL) {
            a = found.fs[s->field];
            b = found.fe[s->field];
        } else if (found.fs[s->field] != NULL) {
            a = found.ss[i];
            b = found.se[i];
        }
        vs[i] = a;
        ve[i] = b;
        if (s->mode == M_VALUE) {
            if (a != NULL && b - a > 0xFFFFFFFF) return -1;  /* its length would not fit the key */
            size += a == NULL ? 1 : 5 + (b - a);
        } else {
            if (s->mode == M_PRESENT && a != NULL && *a == '[') return -1;  /* a list of nulls is absent */
            size += 1;
        }
    }
    if (size > self->bufcap) {
        unsigned char *buf = PyMem_Realloc(self->buf, size * 2);
        if (buf == NULL) {
            PyErr_NoMemory();
            return -2;
        }
        self->buf = buf;
        self->bufcap = size * 2;
    }
    unsigned char *o = self->buf;
    for (int i = 0; i < self->nslots; i++) {
        const unsigned char *a = vs[i], *b = ve[i];
        if (self->slots[i].mode == M_VALUE) {
            if (a == NULL) {
                *o++ = 0;
            } else {
                Py_ssize_t n = b - a;
                *o++ = 1;
                *o++ = (unsigned char)(n >> 24);
                *o++ = (unsigned char)(n >> 16);
                *o++ = (unsigned char)(n >> 8);
                *o++ = (unsigned char)n;
                memcpy(o, a, n);
                o += n;
            }
        } else {
            *o++ = (a != NULL && !is_null(a, b)) ? 1 : 0;
        }
    }
    return size;
}

/* --- the keys known to meet no rule: an open-addressing table of copies, compared in full ----------- */

#ifdef __SIZEOF_INT128__
static inline uint64_t mix(uint64_t a, uint64_t b) {
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}
#else
static inline uint64_t mix(uint64_t a, uint64_t b) {
    uint64_t x = (a ^ (b >> 29)) * 0xbf58476d1ce4e5b9ull;
    return x ^ (x >> 31) ^ b;
}
#endif

/* A seeded hash (the seed is random per screen: crafted lines cannot aim at one slot). Equal hashes are
 * only a hint; a hit is a full comparison. */
static uint64_t hash_key(const unsigned char *p, size_t n, uint64_t seed) {
    uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ull);
    while (n >= 16) {
        uint64_t a, b;
        memcpy(&a, p, 8);
        memcpy(&b, p + 8, 8);
        h = mix(a ^ 0xa0761d6478bd642full ^ h, b ^ 0xe7037ed1a0b428dbull);
        p += 16;
        n -= 16;
    }
    uint64_t a = 0, b = 0;
    if (n >= 8) {
        memcpy(&a, p, 8);
        memcpy(&b, p + n - 8, 8);
    } else {
        memcpy(&a, p, n);
    }
    return mix(h ^ a ^ 0x8ebc6af09c88c6e3ull, b ^ 0x589965cc75374cc3ull ^ n);
}

static Entry *table_find(Screen *self, const unsigned char *key, Py_ssize_t n, uint64_t h) {
    size_t mask = self->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        Entry *e = &self->table[i];
        if (e->data == NULL) return NULL;
        if (e->hash == h && e->len == n && memcmp(e->data, key, n) == 0) return e;
    }
}

static void table_clear(Screen *self) {
    for (size_t i = 0; i < self->cap; i++) {
        PyMem_Free(self->table[i].data);
        self->table[i].data = NULL;
    }
    self->count = 0;
}

static void table_put(Entry *table, size_t cap, Entry e) {
    size_t mask = cap - 1;
    size_t i = e.hash & mask;
    while (table[i].data != NULL) i = (i + 1) & mask;
    table[i] = e;
}

/* Remember a key (its copy is the table's): emptied at max_known, doubled at half full. 0, or -1 with an
 * exception set. */
static int table_add(Screen *self, const unsigned char *key, Py_ssize_t n, uint64_t h, Py_ssize_t value) {
    if (self->count >= (size_t)self->max_known) table_clear(self);
    if ((self->count + 1) * 2 > self->cap) {
        size_t cap = self->cap * 2;
        Entry *grown = PyMem_Calloc(cap, sizeof(Entry));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (size_t i = 0; i < self->cap; i++)
            if (self->table[i].data != NULL) table_put(grown, cap, self->table[i]);
        PyMem_Free(self->table);
        self->table = grown;
        self->cap = cap;
    }
    unsigned char *copy = PyMem_Malloc(n ? n : 1);
    if (copy == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(copy, key, n);
    Entry e = {h, n, copy, value};
    table_put(self->table, self->cap, e);
    self->count++;
    return 0;
}

static PyObject *line_bytes(Screen *self, PyObject *arg, const unsigned char **data, Py_ssize_t *len) {
    if (!self->ready) {
        PyErr_SetString(PyExc_ValueError, "the screen was not initialised");
        return NULL;
    }
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "a line must be bytes");
        return NULL;
    }
    *data = (const unsigned char *)PyBytes_AS_STRING(arg);
    *len = PyBytes_GET_SIZE(arg);
    return arg;
}

static PyObject *Screen_key(Screen *self, PyObject *arg) {
    const unsigned char *data;
    Py_ssize_t len;
    if (line_bytes(self, arg, &data, &len) == NULL) return NULL;
    Py_ssize_t n = make_key(self, data, len);
    if (n == -2) return NULL;
    if (n < 0) Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)self->buf, n);
}

static PyObject *Screen_skip(Screen *self, PyObject *arg) {
    const unsigned char *data;
    Py_ssize_t len;
    if (line_bytes(self, arg, &data, &len) == NULL) return NULL;
    Py_CLEAR(self->last_line);
    Py_ssize_t n = make_key(self, data, len);
    if (n == -2) return NULL;
    if (n < 0) Py_RETURN_FALSE;
    uint64_t h = hash_key(self->buf, (size_t)n, self->seed);
    Entry *e = table_find(self, self->buf, n, h);
    if (e != NULL) {
        if (e->value < 0) {
            self->skipped++;
            Py_RETURN_TRUE;
        }
        Py_INCREF(arg);  /* decoded as usual; recall() gives the engine its plan */
        self->last_line = arg;
        self->last_value = e->value;
        Py_RETURN_FALSE;
    }
    /* the line goes the usual way; learn() keeps this key with what the engine found */
    unsigned char *last = self->last;
    if (n > self->lastcap) {
        last = PyMem_Realloc(self->last, n * 2);
        if (last == NULL) return PyErr_NoMemory();
        self->last = last;
        self->lastcap = n * 2;
    }
    memcpy(last, self->buf, n);
    self->lastlen = n;
    self->lasthash = h;
    Py_INCREF(arg);
    self->last_line = arg;
    self->last_value = UNKNOWN;
    Py_RETURN_FALSE;
}

static PyObject *Screen_learn(Screen *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "learn(line, value=-1)");
        return NULL;
    }
    Py_ssize_t value = -1;
    if (nargs == 2) {
        value = PyLong_AsSsize_t(args[1]);
        if (value == -1 && PyErr_Occurred()) return NULL;
        if (value < -1) {
            PyErr_SetString(PyExc_ValueError, "value must be -1 (no rule) or a plan number");
            return NULL;
        }
    }
    if (args[0] == self->last_line && self->last_value == UNKNOWN) {
        if (table_add(self, self->last, self->lastlen, self->lasthash, value) < 0) return NULL;
        self->last_value = value;
    }
    Py_RETURN_NONE;
}

static PyObject *Screen_recall(Screen *self, PyObject *arg) {
    return PyLong_FromSsize_t(arg == self->last_line && self->last_value >= 0 ? self->last_value : -1);
}

static PyObject *Screen_forget(Screen *self, PyObject *Py_UNUSED(ignored)) {
    table_clear(self);
    Py_CLEAR(self->last_line);
    Py_RETURN_NONE;
}

static PyObject *Screen_len(Screen *self, PyObject *Py_UNUSED(ignored)) {
    return PyLong_FromSize_t(self->count);
}

static PyObject *Screen_skipped(Screen *self, PyObject *Py_UNUSED(ignored)) {
    return PyLong_FromSsize_t(self->skipped);
}

static int Screen_init(Screen *self, PyObject *args, PyObject *kwds) {
    PyObject *fields, *slots, *required;
    static char *kwlist[] = {"fields", "slots", "required", "max_known", "seed", NULL};
    self->ready = 0;
    unsigned long long seed = 0;
    self->max_known = MAX_KNOWN;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!O!|nK", kwlist, &PyList_Type, &fields, &PyList_Type, &slots,
                                     &PyTuple_Type, &required, &self->max_known, &seed))
        return -1;
    self->seed = seed;
    if (self->max_known < 1) {
        PyErr_SetString(PyExc_ValueError, "max_known must be positive");
        return -1;
    }
    Py_XSETREF(self->keep, PyTuple_Pack(3, fields, slots, required));
    if (self->keep == NULL) return -1;
    Py_ssize_t nf = PyList_GET_SIZE(fields), ns = PyList_GET_SIZE(slots), nr = PyTuple_GET_SIZE(required);
    if (nf > MAX_FIELDS || ns > MAX_SLOTS || nr > MAX_FIELDS) {
        PyErr_SetString(PyExc_ValueError, "too many fields or slots for the line screen");
        return -1;
    }
    self->nfields = (int)nf;
    memset(self->by_len, -1, sizeof(self->by_len));
    for (Py_ssize_t i = 0; i < nf; i++) {
        Field *f = &self->fields[i];
        PyObject *lits = NULL;
        char *name;
        Py_ssize_t len;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(fields, i), "y#iO", &name, &len, &f->type, &lits)) return -1;
        f->name = name;
        f->len = len;
        int k = 0;
        while (len < MAX_NAME && k < MAX_SAME_LEN && self->by_len[len][k] >= 0) k++;
        if (len == 0 || len >= MAX_NAME || k == MAX_SAME_LEN) {
            PyErr_SetString(PyExc_ValueError, "field names must be 1-63 bytes, at most 8 of one length");
            return -1;
        }
        self->by_len[len][k] = (signed char)i;
        f->nkeys = 0;
        f->nlits = 0;
        if (f->type < T_STR || f->type > T_RAW) {
            PyErr_SetString(PyExc_ValueError, "unknown field type");
            return -1;
        }
        if (f->type == T_LIT) {
            if (!PyTuple_Check(lits) || PyTuple_GET_SIZE(lits) > MAX_LITS) {
                PyErr_SetString(PyExc_ValueError, "literals must be a tuple of bytes");
                return -1;
            }
            f->nlits = (int)PyTuple_GET_SIZE(lits);
            for (int j = 0; j < f->nlits; j++) {
                PyObject *l = PyTuple_GET_ITEM(lits, j);
                if (!PyBytes_Check(l)) {
                    PyErr_SetString(PyExc_ValueError, "literals must be a tuple of bytes");
                    return -1;
                }
                f->lits[j] = PyBytes_AS_STRING(l);
                f->litlens[j] = PyBytes_GET_SIZE(l);
            }
        }
    }
    self->nslots = (int)ns;
    for (Py_ssize_t i = 0; i < ns; i++) {
        Slot *s = &self->slots[i];
        PyObject *sub;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(slots, i), "iOi", &s->field, &sub, &s->mode)) return -1;
        if (s->field < 0 || s->field >= nf || s->mode < M_VALUE || s->mode > M_BODY) {
            PyErr_SetString(PyExc_ValueError, "bad slot");
            return -1;
        }
        if (sub == Py_None) {
            s->sub = NULL;
            s->sublen = 0;
        } else {
            Field *f = &self->fields[s->field];
            if (!PyBytes_Check(sub) || (f->type != T_DICT && f->type != T_STRDICT)) {
                PyErr_SetString(PyExc_ValueError, "a sub key reads a mapping field, as bytes");
                return -1;
            }
            s->sub = PyBytes_AS_STRING(sub);
            s->sublen = PyBytes_GET_SIZE(sub);
            int k = 0;
            while (k < f->nkeys && !(f->keylens[k] == s->sublen && memcmp(f->keys[k], s->sub, s->sublen) == 0)) k++;
            if (k == f->nkeys) {
                f->keys[k] = s->sub;
                f->keylens[k] = s->sublen;
                f->nkeyslots[k] = 0;
                f->nkeys++;
            }
            if (f->nkeyslots[k] == MAX_KEY_SLOTS) {
                PyErr_SetString(PyExc_ValueError, "too many slots on one key");
                return -1;
            }
            f->keyslots[k][f->nkeyslots[k]++] = (int)i;
        }
    }
    self->nrequired = (int)nr;
    for (Py_ssize_t i = 0; i < nr; i++) {
        long v = PyLong_AsLong(PyTuple_GET_ITEM(required, i));
        if (v < 0 || v >= nf) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "bad required field");
            return -1;
        }
        self->required[i] = (int)v;
    }
    if (self->table != NULL) {
        table_clear(self);
    } else {
        self->cap = 1024;
        self->table = PyMem_Calloc(self->cap, sizeof(Entry));
        if (self->table == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    Py_CLEAR(self->last_line);
    self->ready = 1;
    return 0;
}

static void Screen_dealloc(Screen *self) {
    Py_XDECREF(self->keep);
    if (self->table != NULL) {
        table_clear(self);
        PyMem_Free(self->table);
    }
    PyMem_Free(self->buf);
    PyMem_Free(self->last);
    Py_XDECREF(self->last_line);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Screen_methods[] = {
    {"key", (PyCFunction)Screen_key, METH_O, "The key of a line, or None when the screen cannot say."},
    {"skip", (PyCFunction)Screen_skip, METH_O, "True: the line's key is known to meet no rule."},
    {"learn", (PyCFunction)(void (*)(void))Screen_learn, METH_FASTCALL,
     "learn(line, value=-1): what the engine found for the line last screened, kept for its key."},
    {"recall", (PyCFunction)Screen_recall, METH_O, "The plan number kept for this line's key (last screened), or -1."},
    {"forget", (PyCFunction)Screen_forget, METH_NOARGS, "Forget every key."},
    {"known", (PyCFunction)Screen_len, METH_NOARGS, "How many keys are remembered."},
    {"skipped", (PyCFunction)Screen_skipped, METH_NOARGS, "How many lines were skipped."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ScreenType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kubehawk._linescreen.Screen",
    .tp_basicsize = sizeof(Screen),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Keys of JSON audit lines from the raw text of the index's slots.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Screen_init,
    .tp_dealloc = (destructor)Screen_dealloc,
    .tp_methods = Screen_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "kubehawk._linescreen", "The native line screen (see the C source).", -1,
    NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__linescreen(void) {
    if (PyType_Ready(&ScreenType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&ScreenType);
    if (PyModule_AddObject(m, "Screen", (PyObject *)&ScreenType) < 0) {
        Py_DECREF(&ScreenType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
