/*
 * AES-GCM on one keyed context per direction: vinom's optional accelerator
 * for vinom.protocol.crypto.
 *
 * cryptography's AESGCM keeps keyed OpenSSL contexts too, but for every packet
 * it allocates a fresh context, copies the keyed one into it (key schedule and
 * GHASH tables) and frees it afterwards: about half of the 0.55 us a 100-byte
 * packet costs on the reference machine. This type reuses its contexts and
 * gives each packet only its nonce. The same positional calls, the same bytes
 * and the same exception as AESGCM (the tests check both against each other
 * and against the protocol's test vectors); crypto.py falls back to AESGCM
 * wherever this module was not built.
 *
 * Nonces are 12 bytes only (vinom's packets, tokens and cookies use no other
 * length). The GIL is held throughout: a packet takes well under a
 * microsecond, less than releasing and taking it back would.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#define NONCE_SIZE 12
#define TAG_SIZE 16
/* OpenSSL takes int lengths; cryptography caps data at 2**31 - 1 as well. */
#define MAX_DATA (INT_MAX - TAG_SIZE)

static PyObject *invalid_tag; /* cryptography.exceptions.InvalidTag */

typedef struct {
    PyObject_HEAD
    const EVP_CIPHER *cipher;
    EVP_CIPHER_CTX *seal; /* keyed on first use: most objects only ever go one way */
    EVP_CIPHER_CTX *open;
    unsigned char key[32];
    int key_size;
} AesGcmObject;

/* A read-only view of a bytes-like argument, without the buffer protocol for bytes. */
typedef struct {
    const unsigned char *data;
    Py_ssize_t size;
    Py_buffer view;
    int has_view;
} Input;

static int
input_get(PyObject *obj, Input *in, const char *what)
{
    in->has_view = 0;
    if (PyBytes_CheckExact(obj)) {
        in->data = (const unsigned char *)PyBytes_AS_STRING(obj);
        in->size = PyBytes_GET_SIZE(obj);
        return 0;
    }
    if (PyObject_GetBuffer(obj, &in->view, PyBUF_SIMPLE) < 0) {
        PyErr_Format(PyExc_TypeError, "%s must be bytes-like", what);
        return -1;
    }
    in->has_view = 1;
    in->data = (const unsigned char *)in->view.buf;
    in->size = in->view.len;
    return 0;
}

static void
input_release(Input *in)
{
    if (in->has_view) {
        PyBuffer_Release(&in->view);
        in->has_view = 0;
    }
}

static PyObject *
openssl_error(const char *what)
{
    ERR_clear_error();
    PyErr_Format(PyExc_RuntimeError, "OpenSSL failed to %s", what);
    return NULL;
}

static EVP_CIPHER_CTX *
keyed_context(AesGcmObject *self, int encrypting)
{
    EVP_CIPHER_CTX **slot = encrypting ? &self->seal : &self->open;
    if (*slot != NULL) {
        return *slot;
    }
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    if (EVP_CipherInit_ex(ctx, self->cipher, NULL, self->key, NULL, encrypting) != 1) {
        EVP_CIPHER_CTX_free(ctx);
        openssl_error("key a cipher context");
        return NULL;
    }
    *slot = ctx;
    return ctx;
}

static int
parse_args(PyObject *const *args, Py_ssize_t nargs, Input *nonce, Input *data, Input *ad)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError,
                     "takes 3 arguments (nonce, data, associated_data), %zd given", nargs);
        return -1;
    }
    if (input_get(args[0], nonce, "nonce") < 0) {
        return -1;
    }
    if (nonce->size != NONCE_SIZE) {
        input_release(nonce);
        PyErr_SetString(PyExc_ValueError, "Nonce must be 12 bytes");
        return -1;
    }
    if (input_get(args[1], data, "data") < 0) {
        input_release(nonce);
        return -1;
    }
    if (data->size > MAX_DATA) {
        input_release(nonce);
        input_release(data);
        PyErr_SetString(PyExc_OverflowError, "Data or associated data too long");
        return -1;
    }
    if (args[2] == Py_None) {
        ad->has_view = 0;
        ad->data = NULL;
        ad->size = 0;
        return 0;
    }
    if (input_get(args[2], ad, "associated_data") < 0) {
        input_release(nonce);
        input_release(data);
        return -1;
    }
    if (ad->size > INT_MAX) {
        input_release(nonce);
        input_release(data);
        input_release(ad);
        PyErr_SetString(PyExc_OverflowError, "Data or associated data too long");
        return -1;
    }
    return 0;
}

static void
release_args(Input *nonce, Input *data, Input *ad)
{
    input_release(nonce);
    input_release(data);
    input_release(ad);
}

/* Start one packet on the direction's keyed context: the nonce, then the
 * associated data. Called once the output is allocated, so that from here to
 * the tag nothing calls back into Python, which could use this very object. */
static EVP_CIPHER_CTX *
begin_packet(AesGcmObject *self, int encrypting, const Input *nonce, const Input *ad)
{
    int n;
    EVP_CIPHER_CTX *ctx = keyed_context(self, encrypting);
    if (ctx != NULL
        && (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, nonce->data, encrypting) != 1
            || (ad->size > 0
                && EVP_CipherUpdate(ctx, NULL, &n, ad->data, (int)ad->size) != 1))) {
        openssl_error("start a packet");
        ctx = NULL;
    }
    return ctx;
}

static PyObject *
AesGcm_encrypt(AesGcmObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Input nonce, data, ad;
    int n;
    if (parse_args(args, nargs, &nonce, &data, &ad) < 0) {
        return NULL;
    }
    PyObject *result = PyBytes_FromStringAndSize(NULL, data.size + TAG_SIZE);
    if (result == NULL) {
        goto done;
    }
    EVP_CIPHER_CTX *ctx = begin_packet(self, 1, &nonce, &ad);
    if (ctx == NULL) {
        Py_CLEAR(result);
        goto done;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    int written = 0;
    if (data.size > 0 && EVP_EncryptUpdate(ctx, out, &written, data.data, (int)data.size) != 1) {
        Py_CLEAR(result);
        openssl_error("seal");
        goto done;
    }
    if (EVP_EncryptFinal_ex(ctx, out + written, &n) != 1
        || written + n != data.size
        || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_SIZE, out + data.size) != 1) {
        Py_CLEAR(result);
        openssl_error("finish sealing");
        goto done;
    }
done:
    release_args(&nonce, &data, &ad);
    return result;
}

static PyObject *
AesGcm_decrypt(AesGcmObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Input nonce, data, ad;
    int n;
    if (parse_args(args, nargs, &nonce, &data, &ad) < 0) {
        return NULL;
    }
    PyObject *result = NULL;
    if (data.size < TAG_SIZE) {
        PyErr_SetNone(invalid_tag);
        goto done;
    }
    Py_ssize_t size = data.size - TAG_SIZE;
    result = PyBytes_FromStringAndSize(NULL, size);
    if (result == NULL) {
        goto done;
    }
    EVP_CIPHER_CTX *ctx = begin_packet(self, 0, &nonce, &ad);
    if (ctx == NULL) {
        Py_CLEAR(result);
        goto done;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
    int written = 0;
    if (size > 0 && EVP_DecryptUpdate(ctx, out, &written, data.data, (int)size) != 1) {
        Py_CLEAR(result);
        openssl_error("open");
        goto done;
    }
    /* The tag is only read by OpenSSL; the cast drops a const its API lacks. */
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_SIZE,
                            (void *)(data.data + size)) != 1) {
        Py_CLEAR(result);
        openssl_error("set the tag");
        goto done;
    }
    if (EVP_DecryptFinal_ex(ctx, out + written, &n) != 1) {
        /* Nothing of the forged plaintext leaves: the buffer is wiped and freed. */
        OPENSSL_cleanse(out, (size_t)size);
        Py_CLEAR(result);
        ERR_clear_error();
        PyErr_SetNone(invalid_tag);
        goto done;
    }
done:
    release_args(&nonce, &data, &ad);
    return result;
}

static PyObject *
AesGcm_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"key", NULL};
    Py_buffer key;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*:AesGcm", keywords, &key)) {
        return NULL;
    }
    const EVP_CIPHER *cipher = NULL;
    switch (key.len) {
    case 16: cipher = EVP_aes_128_gcm(); break;
    case 24: cipher = EVP_aes_192_gcm(); break;
    case 32: cipher = EVP_aes_256_gcm(); break;
    default:
        PyBuffer_Release(&key);
        PyErr_SetString(PyExc_ValueError, "AESGCM key must be 128, 192, or 256 bits.");
        return NULL;
    }
    AesGcmObject *self = (AesGcmObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        PyBuffer_Release(&key);
        return NULL;
    }
    self->cipher = cipher;
    self->seal = NULL;
    self->open = NULL;
    self->key_size = (int)key.len;
    memcpy(self->key, key.buf, (size_t)key.len);
    PyBuffer_Release(&key);
    return (PyObject *)self;
}

static void
AesGcm_dealloc(AesGcmObject *self)
{
    EVP_CIPHER_CTX_free(self->seal); /* frees and wipes the key schedule; NULL is fine */
    EVP_CIPHER_CTX_free(self->open);
    OPENSSL_cleanse(self->key, sizeof(self->key));
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef AesGcm_methods[] = {
    {"encrypt", (PyCFunction)(void (*)(void))AesGcm_encrypt, METH_FASTCALL,
     "encrypt(nonce, data, associated_data) -> ciphertext + 16-byte tag"},
    {"decrypt", (PyCFunction)(void (*)(void))AesGcm_decrypt, METH_FASTCALL,
     "decrypt(nonce, data, associated_data) -> plaintext; raises InvalidTag"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject AesGcmType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "vinom.protocol._aesgcm.AesGcm",
    .tp_basicsize = sizeof(AesGcmObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "AesGcm(key): AES-GCM with the key set up once (AESGCM's encrypt and decrypt).",
    .tp_new = AesGcm_new,
    .tp_dealloc = (destructor)AesGcm_dealloc,
    .tp_methods = AesGcm_methods,
};

static PyObject *
openssl_version(PyObject *module, PyObject *unused)
{
    return PyUnicode_FromString(OpenSSL_version(OPENSSL_VERSION));
}

static PyMethodDef module_methods[] = {
    {"openssl_version", openssl_version, METH_NOARGS, "The OpenSSL this module runs on."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef aesgcm_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "vinom.protocol._aesgcm",
    .m_doc = "AES-GCM with the key schedule kept per object (vinom's optional accelerator).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__aesgcm(void)
{
    PyObject *exceptions = PyImport_ImportModule("cryptography.exceptions");
    if (exceptions == NULL) {
        return NULL;
    }
    invalid_tag = PyObject_GetAttrString(exceptions, "InvalidTag");
    Py_DECREF(exceptions);
    if (invalid_tag == NULL) {
        return NULL;
    }
    if (PyType_Ready(&AesGcmType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&aesgcm_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&AesGcmType);
    if (PyModule_AddObject(module, "AesGcm", (PyObject *)&AesGcmType) < 0) {
        Py_DECREF(&AesGcmType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
