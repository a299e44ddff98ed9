/* hsm_ceiling: how many key-release operations the token itself sustains.
 *
 * The PKCS#11 work of one skd API call, done directly through skd's hsm
 * layer by N threads, with no HTTP, JSON, store, logging or files around it:
 *   decrypt-secret  hsm_decrypt_secret + hsm_sign of the wrapped secret
 *   generate-secret hsm_generate_secret + hsm_sign of each of the two blobs
 * plus, per call, --audit-signs more hsm_sign (default 1: skd signs one audit
 * record per call, audit/audit.c; 0 for skd with SKD_BENCH_NO_AUDIT). This is
 * what skd does on the token per call (keys/keys_api.c), so the rate printed
 * here is the ceiling for skd with worker_threads = N.
 *
 * The user PIN is read from standard input. The CMK's EKT is made once with
 * hsm_create_ekt for --tenant, and the decrypt benchmark's encrypted_secret
 * once with hsm_generate_secret (bound to tenant, instance, volume); both
 * live only in this process. Only session objects are created on the token,
 * and they are destroyed again.
 *
 * Output, one line per run (bench/keys.sh reads ops_per_s):
 *   hsm_ceiling: decrypt-secret threads=2 audit_signs=1 seconds=10.00 ops=10940 ops_per_s=1094.0
 *                cpu_us_per_op=1804 mean_us=1826 p50_us=1797 p99_us=2590
 * cpu_us_per_op is the process's CPU time (user + system, all threads) in
 * the measured window per operation: less sensitive to other load than
 * ops_per_s.
 */
#include <errno.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "../hsm/hsm.h"

enum op { OP_DECRYPT, OP_GENERATE };
enum phase { PHASE_WARMUP, PHASE_MEASURE, PHASE_STOP };

typedef struct shared {
    hsm_t *h;
    enum op op;
    int audit_signs;
    buf_t ekt;
    hsm_binding_t binding;
    buf_t rsa_spki;
    buf_t encrypted_secret; /* for decrypt: made once, released over and over */
    _Atomic int phase;
} shared_t;

typedef struct worker {
    pthread_t thread;
    shared_t *sh;
    uint64_t ops;       /* completed while measuring */
    uint32_t *lat_us;   /* latency of each of them */
    size_t nlat, caplat;
    int failed;
} worker_t;

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* CPU time (user + system) of the whole process so far. */
static uint64_t cpu_us(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static void sleep_us(uint64_t us) {
    struct timespec ts = {(time_t)(us / 1000000u), (long)(us % 1000000u) * 1000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* One API call's worth of token work. */
static hsm_status_t one_op(shared_t *sh) {
    buf_t enc, wrapped, sig;
    buf_init(&enc, 0);
    buf_init(&wrapped, 0);
    buf_init(&sig, 0);
    hsm_status_t st;
    if (sh->op == OP_DECRYPT) {
        st = hsm_decrypt_secret(sh->h, &sh->ekt, &sh->binding, sh->encrypted_secret.data, sh->encrypted_secret.len,
                                sh->rsa_spki.data, sh->rsa_spki.len, &wrapped);
        if (st == HSM_OK)
            st = hsm_sign(sh->h, wrapped.data, wrapped.len, &sig);
    } else {
        st = hsm_generate_secret(sh->h, &sh->ekt, &sh->binding, sh->rsa_spki.data, sh->rsa_spki.len, &enc, &wrapped);
        if (st == HSM_OK)
            st = hsm_sign(sh->h, enc.data, enc.len, &sig);
        if (st == HSM_OK) {
            sig.len = 0;
            st = hsm_sign(sh->h, wrapped.data, wrapped.len, &sig);
        }
    }
    if (st == HSM_OK && (wrapped.len == 0 || sig.len == 0))
        st = HSM_ERR_FAILED;
    /* The audit record: about as long as skd's canonical JSON record. */
    static const char record[768] = "{\"call\":{\"name\":\"decrypt-secret\"},\"event_version\":2}";
    for (int i = 0; st == HSM_OK && i < sh->audit_signs; i++) {
        sig.len = 0;
        st = hsm_sign(sh->h, record, sizeof record, &sig);
    }
    buf_free(&enc);
    buf_free(&wrapped);
    buf_free(&sig);
    return st;
}

static void *work(void *arg) {
    worker_t *w = arg;
    shared_t *sh = w->sh;
    for (;;) {
        int before = atomic_load(&sh->phase);
        if (before == PHASE_STOP)
            break;
        uint64_t t0 = now_us();
        hsm_status_t st = one_op(sh);
        uint64_t t1 = now_us();
        if (st != HSM_OK) {
            fprintf(stderr, "hsm_ceiling: an operation failed (status %d)\n", (int)st);
            w->failed = 1;
            break;
        }
        /* Counted only if it started and ended inside the measured window. */
        if (before != PHASE_MEASURE || atomic_load(&sh->phase) != PHASE_MEASURE)
            continue;
        w->ops++;
        if (w->nlat == w->caplat) {
            size_t cap = w->caplat ? w->caplat * 2 : 4096;
            uint32_t *grown = realloc(w->lat_us, cap * sizeof *grown);
            if (!grown) {
                w->failed = 1;
                break;
            }
            w->lat_us = grown;
            w->caplat = cap;
        }
        w->lat_us[w->nlat++] = (uint32_t)(t1 - t0 > UINT32_MAX ? UINT32_MAX : t1 - t0);
    }
    return NULL;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int read_file(const char *path, buf_t *out) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char chunk[4096];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (buf_append(out, chunk, n) != 0)
            rc = -1;
    if (ferror(f))
        rc = -1;
    fclose(f);
    return rc;
}

static void usage(FILE *to) {
    fprintf(to,
            "Usage: hsm_ceiling --module SO --token LABEL --rsa-spki DER --tenant vpc-ID [OPTIONS] < PIN\n"
            "\n"
            "Runs the PKCS#11 work of one skd key-release call (no HTTP) in THREADS threads\n"
            "for SECONDS and prints the operations per second. The user PIN is read from\n"
            "standard input.\n"
            "\n"
            "  -m, --module SO        PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so)\n"
            "  -t, --token LABEL      token label\n"
            "  -k, --rsa-spki DER     the caller's RSA public key, DER SubjectPublicKeyInfo\n"
            "  -T, --tenant ID        tenant the CMK (EKT) is made for\n"
            "  -i, --instance ID      instance of the binding (default i-0123456789abcdef0)\n"
            "  -u, --volume UUID      volume of the binding (default 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0)\n"
            "  -o, --op OP            decrypt (hsm_decrypt_secret + 1 hsm_sign, default) or\n"
            "                         generate (hsm_generate_secret + 2 hsm_sign)\n"
            "  -a, --audit-signs N    more hsm_sign per call, for audit records (default 1, as skd;\n"
            "                         0 as skd with SKD_BENCH_NO_AUDIT)\n"
            "  -n, --threads N        threads, each with its own session (default 2)\n"
            "  -s, --seconds S        measured time (default 10)\n"
            "  -w, --warmup S         unmeasured time before it (default 1)\n"
            "  -h, --help             this help\n");
}

static int positive(const char *text, double *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !(v >= 0))
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    const char *module = NULL, *token = NULL, *spki_path = NULL, *tenant = NULL;
    const char *instance = "i-0123456789abcdef0", *volume = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
    enum op op = OP_DECRYPT;
    double threads_d = 2, seconds = 10, warmup = 1, audit_d = 1;
    static const struct option longopts[] = {
        {"module", required_argument, NULL, 'm'},   {"token", required_argument, NULL, 't'},
        {"rsa-spki", required_argument, NULL, 'k'}, {"tenant", required_argument, NULL, 'T'},
        {"instance", required_argument, NULL, 'i'}, {"volume", required_argument, NULL, 'u'},
        {"op", required_argument, NULL, 'o'},       {"threads", required_argument, NULL, 'n'},
        {"seconds", required_argument, NULL, 's'},  {"warmup", required_argument, NULL, 'w'},
        {"audit-signs", required_argument, NULL, 'a'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "m:t:k:T:i:u:o:a:n:s:w:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': module = optarg; break;
        case 't': token = optarg; break;
        case 'k': spki_path = optarg; break;
        case 'T': tenant = optarg; break;
        case 'i': instance = optarg; break;
        case 'u': volume = optarg; break;
        case 'o':
            if (strcmp(optarg, "decrypt") == 0 || strcmp(optarg, "decrypt-secret") == 0)
                op = OP_DECRYPT;
            else if (strcmp(optarg, "generate") == 0 || strcmp(optarg, "generate-secret") == 0)
                op = OP_GENERATE;
            else {
                fprintf(stderr, "hsm_ceiling: --op is decrypt or generate\n");
                return 2;
            }
            break;
        case 'a':
            if (positive(optarg, &audit_d) != 0 || audit_d > 16 || audit_d != (int)audit_d) {
                fprintf(stderr, "hsm_ceiling: --audit-signs is a whole number from 0 to 16\n");
                return 2;
            }
            break;
        case 'n':
            if (positive(optarg, &threads_d) != 0 || threads_d < 1 || threads_d > 256 ||
                threads_d != (int)threads_d) {
                fprintf(stderr, "hsm_ceiling: --threads is a whole number from 1 to 256\n");
                return 2;
            }
            break;
        case 's':
            if (positive(optarg, &seconds) != 0 || seconds <= 0) {
                fprintf(stderr, "hsm_ceiling: --seconds must be positive\n");
                return 2;
            }
            break;
        case 'w':
            if (positive(optarg, &warmup) != 0) {
                fprintf(stderr, "hsm_ceiling: --warmup must not be negative\n");
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || !module || !token || !spki_path || !tenant) {
        usage(stderr);
        return 2;
    }
    int nthreads = (int)threads_d;

    shared_t sh = {.op = op, .audit_signs = (int)audit_d, .binding = {tenant, instance, volume}};
    buf_init(&sh.ekt, 0);
    buf_init(&sh.rsa_spki, 0);
    buf_init(&sh.encrypted_secret, 0);
    if (read_file(spki_path, &sh.rsa_spki) != 0 || sh.rsa_spki.len == 0) {
        fprintf(stderr, "hsm_ceiling: cannot read %s\n", spki_path);
        return 1;
    }

    char pin[256];
    if (!fgets(pin, sizeof pin, stdin)) {
        fprintf(stderr, "hsm_ceiling: no PIN on standard input\n");
        return 1;
    }
    size_t pin_len = strcspn(pin, "\r\n");
    char err[512];
    hsm_status_t st = hsm_open(&sh.h, module, token, err, sizeof err);
    if (st == HSM_OK)
        st = hsm_login(sh.h, pin, pin_len, err, sizeof err);
    OPENSSL_cleanse(pin, sizeof pin);
    if (st == HSM_OK)
        st = hsm_load_keys(sh.h, err, sizeof err);
    if (st != HSM_OK) {
        fprintf(stderr, "hsm_ceiling: %s\n", err);
        hsm_close(sh.h);
        return 1;
    }
    /* The tenant's CMK, and for decrypt one secret to release again and again. */
    buf_t wrapped;
    buf_init(&wrapped, 0);
    st = hsm_create_ekt(sh.h, tenant, &sh.ekt);
    if (st == HSM_OK && op == OP_DECRYPT)
        st = hsm_generate_secret(sh.h, &sh.ekt, &sh.binding, sh.rsa_spki.data, sh.rsa_spki.len, &sh.encrypted_secret,
                                 &wrapped);
    buf_free(&wrapped);
    if (st != HSM_OK) {
        fprintf(stderr, "hsm_ceiling: cannot prepare the EKT or the secret (status %d; is %s an RSA key of 3072 to "
                        "8192 bits?)\n", (int)st, spki_path);
        hsm_close(sh.h);
        return 1;
    }

    worker_t *workers = calloc((size_t)nthreads, sizeof *workers);
    if (!workers)
        return 1;
    atomic_init(&sh.phase, PHASE_WARMUP);
    int started = 0;
    for (; started < nthreads; started++) {
        workers[started].sh = &sh;
        if (pthread_create(&workers[started].thread, NULL, work, &workers[started]) != 0) {
            fprintf(stderr, "hsm_ceiling: cannot start thread %d\n", started);
            break;
        }
    }
    int rc = started == nthreads ? 0 : 1;
    uint64_t t0 = 0, t1 = 0, cpu0 = 0, cpu1 = 0;
    if (rc == 0) {
        sleep_us((uint64_t)(warmup * 1e6));
        t0 = now_us();
        cpu0 = cpu_us();
        atomic_store(&sh.phase, PHASE_MEASURE);
        sleep_us((uint64_t)(seconds * 1e6));
        atomic_store(&sh.phase, PHASE_STOP);
        t1 = now_us();
        cpu1 = cpu_us();
    } else {
        atomic_store(&sh.phase, PHASE_STOP);
    }
    uint64_t ops = 0;
    size_t nlat = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(workers[i].thread, NULL);
        if (workers[i].failed)
            rc = 1;
        ops += workers[i].ops;
        nlat += workers[i].nlat;
    }
    uint32_t *all = nlat ? malloc(nlat * sizeof *all) : NULL;
    size_t k = 0;
    double sum = 0;
    for (int i = 0; i < started; i++) {
        for (size_t j = 0; all && j < workers[i].nlat; j++) {
            all[k++] = workers[i].lat_us[j];
            sum += workers[i].lat_us[j];
        }
        free(workers[i].lat_us);
    }
    free(workers);
    if (rc == 0 && (!all || k == 0)) {
        fprintf(stderr, "hsm_ceiling: no operation completed in the measured time\n");
        rc = 1;
    }
    if (rc == 0) {
        qsort(all, k, sizeof *all, cmp_u32);
        double secs = (double)(t1 - t0) / 1e6;
        printf("hsm_ceiling: %s threads=%d audit_signs=%d seconds=%.2f ops=%llu ops_per_s=%.1f "
               "cpu_us_per_op=%.0f mean_us=%.0f p50_us=%u p99_us=%u\n",
               op == OP_DECRYPT ? "decrypt-secret" : "generate-secret", nthreads, sh.audit_signs, secs,
               (unsigned long long)ops, (double)ops / secs, (double)(cpu1 - cpu0) / (double)ops, sum / (double)k,
               all[(k - 1) / 2], all[(size_t)((double)(k - 1) * 0.99)]);
    }
    free(all);
    /* No session objects may be left behind. */
    unsigned long left = 0;
    if (hsm_count_objects(sh.h, 0, &left) == HSM_OK && left != 0) {
        fprintf(stderr, "hsm_ceiling: %lu session objects left on the token\n", left);
        rc = 1;
    }
    hsm_close(sh.h);
    buf_free(&sh.ekt);
    buf_free(&sh.rsa_spki);
    buf_free(&sh.encrypted_secret);
    return rc;
}
