/* Variadic entry points of the test host's parameter and message suites.
 *
 * OFX declares paramGetValue/paramSetValue(...AtTime) and message() as C varargs functions
 * (ofxParam.h, ofxMessage.h); a ctypes callback cannot be variadic, so these few lines unpack
 * the arguments and call fixed-signature callbacks that the Python host installs. */
#include <stdarg.h>
#include <stdio.h>

/* kind(param) -> kind * 16 + count; kind 0 int, 1 double, 2 string, 3 no value. */
typedef int (*kind_fn)(void *param);
typedef int (*get_fn)(void *param, double time, void **outs, int count);
typedef int (*set_int_fn)(void *param, const int *values, int count);
typedef int (*set_double_fn)(void *param, const double *values, int count);
typedef int (*set_string_fn)(void *param, const char *value);
typedef int (*message_fn)(void *handle, const char *type, const char *id, const char *text);

static kind_fn g_kind;
static get_fn g_get;
static set_int_fn g_set_int;
static set_double_fn g_set_double;
static set_string_fn g_set_string;
static message_fn g_message;

void shim_install(kind_fn kind, get_fn get, set_int_fn set_int, set_double_fn set_double,
                  set_string_fn set_string, message_fn message) {
    g_kind = kind;
    g_get = get;
    g_set_int = set_int;
    g_set_double = set_double;
    g_set_string = set_string;
    g_message = message;
}

static int get_common(void *param, double time, va_list ap) {
    int code = g_kind(param);
    if (code < 0) return 9; /* kOfxStatErrBadHandle */
    int count = code & 15;
    void *outs[4] = {0, 0, 0, 0};
    for (int i = 0; i < count && i < 4; ++i) outs[i] = va_arg(ap, void *);
    return g_get(param, time, outs, count);
}

static int set_common(void *param, va_list ap) {
    int code = g_kind(param);
    if (code < 0) return 9;
    int kind = code >> 4, count = code & 15;
    if (kind == 0) {
        int v[4] = {0, 0, 0, 0};
        for (int i = 0; i < count && i < 4; ++i) v[i] = va_arg(ap, int);
        return g_set_int(param, v, count);
    }
    if (kind == 1) {
        double v[4] = {0, 0, 0, 0};
        for (int i = 0; i < count && i < 4; ++i) v[i] = va_arg(ap, double);
        return g_set_double(param, v, count);
    }
    if (kind == 2) return g_set_string(param, va_arg(ap, const char *));
    return 5; /* kOfxStatErrUnsupported */
}

int shim_paramGetValue(void *param, ...) {
    va_list ap;
    va_start(ap, param);
    int status = get_common(param, -1e300, ap);
    va_end(ap);
    return status;
}

int shim_paramGetValueAtTime(void *param, double time, ...) {
    va_list ap;
    va_start(ap, time);
    int status = get_common(param, time, ap);
    va_end(ap);
    return status;
}

int shim_paramSetValue(void *param, ...) {
    va_list ap;
    va_start(ap, param);
    int status = set_common(param, ap);
    va_end(ap);
    return status;
}

int shim_paramSetValueAtTime(void *param, double time, ...) {
    (void)time;
    va_list ap;
    va_start(ap, time);
    int status = set_common(param, ap);
    va_end(ap);
    return status;
}

int shim_message(void *handle, const char *type, const char *id, const char *format, ...) {
    char text[8192];
    va_list ap;
    va_start(ap, format);
    vsnprintf(text, sizeof(text), format, ap);
    va_end(ap);
    return g_message(handle, type, id, text);
}
