/* Which of a few byte strings occur in a body: one pass, instead of one search per string.
 *
 * The rule compiler asks this of request bodies before it calls the rules that need them (which of
 * "privileged", "hostPID", "path"... a pod spec holds; which credential words a ConfigMap holds),
 * where an RE2 set of literals reads about 4 ns a byte. Here a position is a candidate only when
 * its byte starts some needle (16 positions at a time with SSE2), then when its two bytes start
 * one (a 64 Kbit table), and only then are the needles compared; the pass stops when every needle
 * is found. Semantics are Python's: needle in haystack, or needle in haystack.lower() with fold.
 *
 * Python API: Needles(needles: tuple[bytes, ...], fold: bool = False); needles.search(data) -> list
 * of the positions (in ``needles``) of those found. And written_values(data, key, obj) (below): the
 * values a body writes after a key, as the rule compiler's guards read them.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE  /* memmem */
#include <Python.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define MAX_NEEDLES 64
#define MAX_FIRST 8  /* distinct first bytes the vector filter compares against */

typedef struct {
    PyObject_HEAD
    int n;
    int fold;
    PyObject *keep;  /* the needles, lower-cased when folding */
    const unsigned char *needle[MAX_NEEDLES];
    Py_ssize_t len[MAX_NEEDLES];
    uint64_t starts[256];      /* byte -> the needles (of two bytes or more) that start with it */
    uint64_t singles;          /* needles of one byte */
    uint64_t empty;            /* needles of no bytes: always found */
    uint8_t pairs[8192];       /* bit (b0 | b1 << 8): some needle starts with these two bytes */
    int nfirst;                /* distinct first bytes as the haystack may hold them, or -1 if too many */
    unsigned char first[MAX_FIRST];
} Needles;

static inline unsigned char lower(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

static inline int at(const Needles *self, const unsigned char *p, const unsigned char *end, int j) {
    Py_ssize_t n = self->len[j];
    if (end - p < n) return 0;
    const unsigned char *q = self->needle[j];
    if (!self->fold) return memcmp(p, q, n) == 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (lower(p[i]) != q[i]) return 0;
    return 1;
}

/* A candidate position: the needles not yet found that start here. */
static inline uint64_t check(const Needles *self, const unsigned char *p, const unsigned char *end, uint64_t left) {
    if (end - p < 2) return 0;
    unsigned char b0 = p[0], b1 = p[1];
    if (self->fold) {
        b0 = lower(b0);
        b1 = lower(b1);
    }
    unsigned int pair = b0 | (unsigned int)b1 << 8;
    if (!(self->pairs[pair >> 3] & (1u << (pair & 7)))) return 0;
    uint64_t m = self->starts[b0] & left, hit = 0;
    while (m) {
        int j = __builtin_ctzll(m);
        m &= m - 1;
        if (at(self, p, end, j)) hit |= 1ull << j;
    }
    return hit;
}

static uint64_t find(const Needles *self, const unsigned char *p, const unsigned char *end) {
    uint64_t all = self->n == 64 ? ~0ull : (1ull << self->n) - 1;
    uint64_t found = self->empty;
    for (uint64_t m = self->singles; m; m &= m - 1) {
        int j = __builtin_ctzll(m);
        unsigned char c = self->needle[j][0];
        if (memchr(p, c, end - p) != NULL || (self->fold && c >= 'a' && c <= 'z' && memchr(p, c & ~0x20, end - p)))
            found |= 1ull << j;
    }
    uint64_t multi = all & ~self->singles & ~self->empty;
    if (!(multi & ~found)) return found;
#ifdef __SSE2__
    if (self->nfirst >= 0) {
        __m128i f[MAX_FIRST];
        for (int k = 0; k < self->nfirst; k++) f[k] = _mm_set1_epi8((char)self->first[k]);
        while (end - p >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)p);
            __m128i hit = _mm_setzero_si128();
            for (int k = 0; k < self->nfirst; k++) hit = _mm_or_si128(hit, _mm_cmpeq_epi8(v, f[k]));
            unsigned int mask = (unsigned int)_mm_movemask_epi8(hit);
            while (mask) {
                int i = __builtin_ctz(mask);
                mask &= mask - 1;
                found |= check(self, p + i, end, multi & ~found);
                if (!(multi & ~found)) return found;
            }
            p += 16;
        }
    }
#endif
    for (; p < end; p++) {
        unsigned char c = self->fold ? lower(*p) : *p;
        if (self->starts[c] & ~found) {
            found |= check(self, p, end, multi & ~found);
            if (!(multi & ~found)) return found;
        }
    }
    return found;
}

static PyObject *Needles_search(Needles *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    const unsigned char *p = (const unsigned char *)view.buf;
    uint64_t found = find(self, p, p + view.len);
    PyBuffer_Release(&view);
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    for (; found; found &= found - 1) {
        PyObject *i = PyLong_FromLong(__builtin_ctzll(found));
        if (i == NULL || PyList_Append(out, i) < 0) {
            Py_XDECREF(i);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(i);
    }
    return out;
}

/* --- values written after a key ------------------------------------------------------------------------- */

static const unsigned char *find_bytes(const unsigned char *p, const unsigned char *end, const unsigned char *q,
                                       Py_ssize_t n) {
    if (end - p < n) return NULL;
    return memmem(p, end - p, q, n);
}

/* written_values(data, key, obj): every value written right after '"key":' in the raw JSON ``data``:
 * strings (decoded as UTF-8 with surrogateescape), true, false, ``obj`` for an object; nulls left out.
 * None when the bytes cannot tell: a number, a list or whitespace after the colon, a string that does
 * not end, or '"key"' written anywhere else (as a string value, or followed by whitespace). The caller
 * has already ruled out escapes. The same answers as kubehawk.rules.body._Body._scan's loop. */
static PyObject *written_values(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "written_values(data, key, obj)");
        return NULL;
    }
    if (!PyBytes_Check(args[0]) || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "data and key must be bytes");
        return NULL;
    }
    const unsigned char *raw = (const unsigned char *)PyBytes_AS_STRING(args[0]);
    const unsigned char *end = raw + PyBytes_GET_SIZE(args[0]);
    Py_ssize_t klen = PyBytes_GET_SIZE(args[1]);
    PyObject *obj = args[2];
    /* '"key":' and '"key"' */
    unsigned char small[128];
    unsigned char *q = klen + 3 <= (Py_ssize_t)sizeof(small) ? small : PyMem_Malloc(klen + 3);
    if (q == NULL) return PyErr_NoMemory();
    q[0] = '"';
    memcpy(q + 1, PyBytes_AS_STRING(args[1]), klen);
    q[klen + 1] = '"';
    q[klen + 2] = ':';
    Py_ssize_t qlen = klen + 3, size = qlen;
    PyObject *out = PyList_New(0);
    Py_ssize_t n = 0;
    const unsigned char *i = out ? find_bytes(raw, end, q, qlen) : NULL;
    while (out != NULL && i != NULL) {
        n++;
        const unsigned char *j = i + size;
        PyObject *v = NULL;
        int give_up = 0;
        if (j < end && *j == '"') {
            const unsigned char *k = memchr(j + 1, '"', end - (j + 1));
            if (k == NULL) {
                give_up = 1;
            } else {
                v = PyUnicode_DecodeUTF8((const char *)j + 1, k - (j + 1), "surrogateescape");
                if (v == NULL) Py_CLEAR(out);
                j = k + 1;
            }
        } else if (j < end && *j == 't' && end - j >= 4 && memcmp(j, "true", 4) == 0) {
            v = Py_NewRef(Py_True);
        } else if (j < end && *j == 'f' && end - j >= 5 && memcmp(j, "false", 5) == 0) {
            v = Py_NewRef(Py_False);
        } else if (j < end && *j == '{') {
            v = Py_NewRef(obj);
        } else if (!(j < end && *j == 'n' && end - j >= 4 && memcmp(j, "null", 4) == 0)) {
            give_up = 1;  /* a number, a list, whitespace: not read here */
        }
        if (out == NULL) break;
        if (give_up) {
            Py_CLEAR(out);
            out = Py_NewRef(Py_None);
            break;
        }
        if (v != NULL) {
            int err = PyList_Append(out, v);
            Py_DECREF(v);
            if (err < 0) {
                Py_CLEAR(out);
                break;
            }
        }
        i = find_bytes(j, end, q, qlen);
    }
    if (out != NULL && out != Py_None) {
        /* '"key"' written n times in all (non-overlapping, as bytes.count), else it also appears elsewhere */
        Py_ssize_t count = 0;
        for (const unsigned char *c = find_bytes(raw, end, q, qlen - 1); c != NULL;
             c = find_bytes(c + qlen - 1, end, q, qlen - 1))
            count++;
        if (count != n) Py_SETREF(out, Py_NewRef(Py_None));
    }
    if (q != small) PyMem_Free(q);
    return out;
}

static void add_first(Needles *self, unsigned char c) {
    if (self->nfirst < 0) return;
    for (int k = 0; k < self->nfirst; k++)
        if (self->first[k] == c) return;
    if (self->nfirst == MAX_FIRST) {
        self->nfirst = -1;  /* too many for the vector filter: the byte loop alone */
        return;
    }
    self->first[self->nfirst++] = c;
}

static int Needles_init(Needles *self, PyObject *args, PyObject *kwds) {
    PyObject *needles;
    int fold = 0;
    static char *kwlist[] = {"needles", "fold", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!|p", kwlist, &PyTuple_Type, &needles, &fold)) return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(needles);
    if (n > MAX_NEEDLES) {
        PyErr_SetString(PyExc_ValueError, "at most 64 needles");
        return -1;
    }
    PyObject *keep = PyTuple_New(n);
    if (keep == NULL) return -1;
    for (Py_ssize_t j = 0; j < n; j++) {
        PyObject *b = PyTuple_GET_ITEM(needles, j);
        if (!PyBytes_Check(b)) {
            Py_DECREF(keep);
            PyErr_SetString(PyExc_TypeError, "needles must be bytes");
            return -1;
        }
        PyObject *kept = fold ? PyObject_CallMethod(b, "lower", NULL) : Py_NewRef(b);
        if (kept == NULL || !PyBytes_Check(kept)) {  /* a subclass's lower() may give anything */
            if (kept != NULL) PyErr_SetString(PyExc_TypeError, "needles must be bytes");
            Py_XDECREF(kept);
            Py_DECREF(keep);
            return -1;
        }
        PyTuple_SET_ITEM(keep, j, kept);
    }
    Py_XSETREF(self->keep, keep);
    self->n = (int)n;
    self->fold = fold;
    self->singles = self->empty = 0;
    self->nfirst = 0;
    memset(self->starts, 0, sizeof(self->starts));
    memset(self->pairs, 0, sizeof(self->pairs));
    for (int j = 0; j < self->n; j++) {
        PyObject *b = PyTuple_GET_ITEM(keep, j);
        self->needle[j] = (const unsigned char *)PyBytes_AS_STRING(b);
        self->len[j] = PyBytes_GET_SIZE(b);
        if (self->len[j] == 0) {
            self->empty |= 1ull << j;
        } else if (self->len[j] == 1) {
            self->singles |= 1ull << j;
        } else {
            unsigned char b0 = self->needle[j][0], b1 = self->needle[j][1];
            unsigned int pair = b0 | (unsigned int)b1 << 8;
            self->starts[b0] |= 1ull << j;
            self->pairs[pair >> 3] |= (uint8_t)(1u << (pair & 7));
            add_first(self, b0);
            if (fold && b0 >= 'a' && b0 <= 'z') add_first(self, (unsigned char)(b0 & ~0x20));
        }
    }
    return 0;
}

static void Needles_dealloc(Needles *self) {
    Py_XDECREF(self->keep);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Needles_methods[] = {
    {"search", (PyCFunction)Needles_search, METH_O, "The positions of the needles found in a bytes-like object."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject NeedlesType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kubehawk._needles.Needles",
    .tp_basicsize = sizeof(Needles),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A few byte strings searched for in one pass.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Needles_init,
    .tp_dealloc = (destructor)Needles_dealloc,
    .tp_methods = Needles_methods,
};

static PyMethodDef module_methods[] = {
    {"written_values", (PyCFunction)(void (*)(void))written_values, METH_FASTCALL,
     "written_values(data, key, obj): the values written after '\"key\":' in raw JSON, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "kubehawk._needles", "Searches of raw JSON bodies: several byte strings in one pass, the values after a key.", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__needles(void) {
    if (PyType_Ready(&NeedlesType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&NeedlesType);
    if (PyModule_AddObject(m, "Needles", (PyObject *)&NeedlesType) < 0) {
        Py_DECREF(&NeedlesType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
