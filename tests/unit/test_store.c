#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../store/store.h"

#define T1 "vpc-0123456789abcdef0"
#define T2 "vpc-89abcdef"
#define I1 "i-0123456789abcdef0"
#define I2 "i-0fedcba9876543210"

typedef struct fixture {
    char dir[64];
    char path[128];
    store_t *s;
} fixture_t;

static int setup(void **state) {
    fixture_t *f = calloc(1, sizeof *f);
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/skd-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof f->path, "%s/store.db", f->dir);
    char err[256];
    f->s = store_open_sqlite(f->path, err, sizeof err);
    if (f->s == NULL) {
        fprintf(stderr, "open: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;
    store_close(f->s);
    const char *suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 4; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s%s", f->path, suffixes[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static store_tenant_t demo_tenant(void) {
    store_tenant_t t = {
        .id = T1,
        .account_id = "111122223333",
        .verifier = STORE_VERIFIER_REGISTRY,
        .networks = "127.0.0.0/8",
    };
    return t;
}

/* PRAGMA user_version of the file, read outside the store. */
static int raw_user_version(const char *path, int set) {
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (set >= 0) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", set);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    }
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void open_migrate_reopen(void **state) {
    fixture_t *f = *state;
    store_tenant_t t = demo_tenant();
    uint8_t ekt[] = {1, 2, 3, 0, 5};
    t.ekt = ekt;
    t.ekt_len = sizeof ekt;
    assert_int_equal(store_tenant_add(f->s, &t), 0);
    assert_int_equal(store_instance_add(f->s, T1, I1, "127.0.0.1"), 0);
    store_close(f->s);

    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(raw_user_version(f->path, -1), 3);

    char err[256];
    f->s = store_open_sqlite(f->path, err, sizeof err);
    assert_non_null(f->s);
    store_tenant_t got;
    assert_int_equal(store_tenant_get(f->s, T1, &got), 0);
    assert_string_equal(got.account_id, "111122223333");
    assert_int_equal(got.ekt_len, sizeof ekt);
    assert_memory_equal(got.ekt, ekt, sizeof ekt);
    assert_true(got.created_at > 1700000000);
    store_tenant_clear(&got);
    char ip[STORE_IP_SIZE];
    assert_int_equal(store_instance_get(f->s, T1, I1, ip, sizeof ip), 0);
    assert_string_equal(ip, "127.0.0.1");
}

static void endpoints_round_trip(void **state) {
    fixture_t *f = *state;
    store_tenant_t t = demo_tenant();
    t.endpoints = "vpce-0123456789abcdef0,vpce-01234567";
    assert_int_equal(store_tenant_add(f->s, &t), 0);
    store_tenant_t got;
    assert_int_equal(store_tenant_get(f->s, T1, &got), 0);
    assert_string_equal(got.endpoints, "vpce-0123456789abcdef0,vpce-01234567");
    assert_true(store_endpoints_contain(got.endpoints, "vpce-01234567"));
    assert_false(store_endpoints_contain(got.endpoints, "vpce-0123456"));
    store_tenant_clear(&got);
    assert_false(store_valid_endpoints("vpce-0123"));
    assert_false(store_valid_endpoints("vpce-01234567,"));
    assert_false(store_valid_endpoints("vpc-01234567"));
    assert_true(store_valid_endpoints(NULL));
}

static void future_version_refused(void **state) {
    fixture_t *f = *state;
    store_close(f->s);
    f->s = NULL;
    raw_user_version(f->path, 99);
    char err[256] = "";
    assert_null(store_open_sqlite(f->path, err, sizeof err));
    assert_non_null(strstr(err, "schema version 99 is newer"));
    assert_string_equal(store_last_error(), err);
    assert_int_equal(raw_user_version(f->path, -1), 99); /* left alone */
}

static void missing_directory_refused(void **state) {
    fixture_t *f = *state;
    char path[200], err[256] = "";
    snprintf(path, sizeof path, "%s/no/such/dir/store.db", f->dir);
    assert_null(store_open_sqlite(path, err, sizeof err));
    assert_non_null(strstr(err, "No such file or directory"));
}

static void tenants_add_get_list(void **state) {
    fixture_t *f = *state;
    store_tenant_t t = demo_tenant();
    assert_int_equal(store_tenant_add(f->s, &t), 0);
    store_tenant_t t2 = {
        .id = T2,
        .account_id = "444455556666",
        .verifier = STORE_VERIFIER_IDENTITY_DOCUMENT,
        .networks = " 10.1.0.0/16 ,FD00:0:0::/8,192.168.0.0/24",
        .audit_dir = "/var/lib/skd/audit-t2",
    };
    assert_int_equal(store_tenant_add(f->s, &t2), 0);

    store_tenant_t got;
    assert_int_equal(store_tenant_get(f->s, T2, &got), 0);
    assert_string_equal(got.id, T2);
    assert_string_equal(got.account_id, "444455556666");
    assert_int_equal(got.verifier, STORE_VERIFIER_IDENTITY_DOCUMENT);
    assert_string_equal(got.networks, "10.1.0.0/16,fd00::/8,192.168.0.0/24"); /* canonical */
    assert_string_equal(got.audit_dir, "/var/lib/skd/audit-t2");
    assert_null(got.ekt);
    assert_int_equal(got.ekt_len, 0);
    store_tenant_clear(&got);

    store_tenant_t *list;
    size_t n;
    assert_int_equal(store_tenant_list(f->s, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, T1); /* ordered by id */
    assert_string_equal(list[0].networks, "127.0.0.0/8");
    assert_null(list[0].audit_dir);
    assert_int_equal(list[0].verifier, STORE_VERIFIER_REGISTRY);
    assert_string_equal(list[1].id, T2);
    store_tenant_list_free(list, n);
}

static void empty_list(void **state) {
    fixture_t *f = *state;
    store_tenant_t *list = (store_tenant_t *)1;
    size_t n = 7;
    assert_int_equal(store_tenant_list(f->s, &list, &n), 0);
    assert_null(list);
    assert_int_equal(n, 0);
    store_tenant_list_free(list, n);
}

static void duplicates_and_missing(void **state) {
    fixture_t *f = *state;
    store_tenant_t t = demo_tenant();
    assert_int_equal(store_tenant_add(f->s, &t), 0);
    t.account_id[0] = '9';
    assert_int_equal(store_tenant_add(f->s, &t), STORE_EXISTS);
    assert_non_null(strstr(store_last_error(), "already exists"));

    store_tenant_t got;
    assert_int_equal(store_tenant_get(f->s, T2, &got), STORE_NOT_FOUND);
    assert_non_null(strstr(store_last_error(), "not found"));
    assert_null(got.networks);
    assert_int_equal(store_tenant_get(f->s, T1, &got), 0);
    assert_string_equal(got.account_id, "111122223333"); /* first one kept */
    store_tenant_clear(&got);

    assert_int_equal(store_instance_add(f->s, T1, I1, "127.0.0.1"), 0);
    assert_int_equal(store_instance_add(f->s, T1, I1, "127.0.0.9"), STORE_EXISTS);
    char ip[STORE_IP_SIZE];
    assert_int_equal(store_instance_get(f->s, T1, I2, ip, sizeof ip), STORE_NOT_FOUND);
    assert_int_equal(store_instance_remove(f->s, T1, I2), STORE_NOT_FOUND);
    uint8_t ekt[4] = {1, 2, 3, 4};
    assert_int_equal(store_tenant_set_ekt_if_absent(f->s, T2, ekt, sizeof ekt), STORE_NOT_FOUND);
}

static void invalid_tenants_refused(void **state) {
    fixture_t *f = *state;
    static const char *const bad_ids[] = {
        "", "vpc-", "vpc-0123456", "vpc-012345678", "vpc-0123456789ABCDEF0",
        "vpc-0123456789abcdeg", "vpc-0123456789abcdefg", "VPC-01234567", "i-01234567",
    };
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        store_tenant_t t = demo_tenant();
        snprintf(t.id, sizeof t.id, "%s", bad_ids[i]);
        assert_int_equal(store_tenant_add(f->s, &t), -1);
        assert_non_null(strstr(store_last_error(), "tenant id"));
    }
    static const char *const bad_accounts[] = {"", "11112222333", "11112222333a", "-11122223333"};
    for (size_t i = 0; i < sizeof bad_accounts / sizeof bad_accounts[0]; i++) {
        store_tenant_t t = demo_tenant();
        snprintf(t.account_id, sizeof t.account_id, "%s", bad_accounts[i]);
        assert_int_equal(store_tenant_add(f->s, &t), -1);
    }
    static const char *const bad_networks[] = {
        "",           "10.0.0.0",     "10.0.0.0/33",   "10.0.0.1/8",   "10.0.0.0/8,",
        ",10.0.0.0/8", "10.0.0/8",    "10.0.0.0/08",   "foo/8",        "::/129",
        "fd00::1/8",  "10.0.0.0/8;x", "10.0.0.0/-1",   "10.0.0.0 /8",  "1.2.3.4/32\n",
    };
    for (size_t i = 0; i < sizeof bad_networks / sizeof bad_networks[0]; i++) {
        store_tenant_t t = demo_tenant();
        t.networks = (char *)bad_networks[i];
        assert_int_equal(store_tenant_add(f->s, &t), -1);
        assert_non_null(strstr(store_last_error(), "invalid networks"));
        assert_false(store_valid_networks(bad_networks[i]));
    }
    store_tenant_t t = demo_tenant();
    t.networks = NULL;
    assert_int_equal(store_tenant_add(f->s, &t), -1);
    t = demo_tenant();
    t.verifier = (store_verifier_t)7;
    assert_int_equal(store_tenant_add(f->s, &t), -1);
    t = demo_tenant();
    t.audit_dir = "";
    assert_int_equal(store_tenant_add(f->s, &t), -1);
    t = demo_tenant();
    t.audit_dir = "/a\nb";
    assert_int_equal(store_tenant_add(f->s, &t), -1);
    t = demo_tenant();
    uint8_t ekt[1] = {0};
    t.ekt = ekt; /* length 0 with a pointer */
    assert_int_equal(store_tenant_add(f->s, &t), -1);

    /* Nothing got in. */
    store_tenant_t *list;
    size_t n;
    assert_int_equal(store_tenant_list(f->s, &list, &n), 0);
    assert_int_equal(n, 0);

    /* Invalid ids are refused before the backend, for reads too. */
    store_tenant_t got;
    assert_int_equal(store_tenant_get(f->s, "vpc-XYZ", &got), -1);
    char ip[STORE_IP_SIZE];
    assert_int_equal(store_instance_get(f->s, T1, "i-123", ip, sizeof ip), -1);
    assert_int_equal(store_tenant_set_ekt_if_absent(f->s, T1, NULL, 0), -1);
    uint8_t big[STORE_EKT_MAX + 1] = {0};
    assert_int_equal(store_tenant_set_ekt_if_absent(f->s, T1, big, sizeof big), -1);
}

static void validators(void **state) {
    (void)state;
    assert_true(store_valid_tenant_id("vpc-0123456789abcdef0"));
    assert_true(store_valid_tenant_id("vpc-01234567"));
    assert_false(store_valid_tenant_id(NULL));
    assert_false(store_valid_tenant_id("vpc-0123456789abcdef01"));
    assert_true(store_valid_instance_id("i-0123456789abcdef0"));
    assert_true(store_valid_instance_id("i-deadbeef"));
    assert_false(store_valid_instance_id("i-deadbee"));
    assert_false(store_valid_instance_id("i-0123456789abcdef0 "));
    assert_true(store_valid_account_id("111122223333"));
    assert_false(store_valid_account_id(NULL));
    assert_false(store_valid_account_id("1111222233334"));

    store_verifier_t v;
    assert_int_equal(store_verifier_parse("identity-document", &v), 0);
    assert_int_equal(v, STORE_VERIFIER_IDENTITY_DOCUMENT);
    assert_int_equal(store_verifier_parse("Registry", &v), -1);
    assert_string_equal(store_verifier_name(STORE_VERIFIER_REGISTRY), "registry");

    cidr_t nets[4];
    size_t n;
    char err[128], text[256];
    assert_int_equal(cidr_parse_list("0.0.0.0/0,::/0, 2001:db8::/32", nets, 4, &n, err,
                                          sizeof err),
                     0);
    assert_int_equal(n, 3);
    assert_int_equal(cidr_format_list(nets, n, text, sizeof text), 0);
    assert_string_equal(text, "0.0.0.0/0,::/0,2001:db8::/32");
    assert_int_equal(cidr_format_list(nets, n, text, 10), -1);
    assert_int_equal(cidr_parse_list("1.0.0.0/8,2.0.0.0/8,3.0.0.0/8", nets, 2, &n, err,
                                          sizeof err),
                     -1);
    assert_non_null(strstr(err, "more than 2"));
    assert_int_equal(cidr_parse_list("10.0.0.1/8", nets, 4, &n, err, sizeof err), -1);
    assert_string_equal(err, "10.0.0.1/8: host bits set");

    /* Matching, including IPv4-mapped peers of a dual-stack socket. */
    assert_int_equal(cidr_parse_list("10.1.2.0/23,fd00:ac::/30", nets, 4, &n, err, sizeof err),
                     0);
    uint8_t a4[4], a6[16];
    inet_pton(AF_INET, "10.1.3.255", a4);
    assert_true(cidr_contains(&nets[0], AF_INET, a4));
    inet_pton(AF_INET, "10.1.4.0", a4);
    assert_false(cidr_contains(&nets[0], AF_INET, a4));
    inet_pton(AF_INET6, "::ffff:10.1.2.7", a6);
    assert_true(cidr_contains(&nets[0], AF_INET6, a6));
    assert_false(cidr_contains(&nets[1], AF_INET6, a6));
    inet_pton(AF_INET6, "fd00:af:1::1", a6);
    assert_true(cidr_contains(&nets[1], AF_INET6, a6));
    inet_pton(AF_INET6, "fd00:b0::1", a6);
    assert_false(cidr_contains(&nets[1], AF_INET6, a6));

    char ip[STORE_IP_SIZE];
    assert_int_equal(ip_normalize("2001:DB8:0:0::1", ip, sizeof ip), 0);
    assert_string_equal(ip, "2001:db8::1");
    assert_int_equal(ip_normalize("::FFFF:127.0.0.2", ip, sizeof ip), 0);
    assert_string_equal(ip, "127.0.0.2");
    assert_int_equal(ip_normalize("127.0.0.01", ip, sizeof ip), -1);
    assert_int_equal(ip_normalize("fe80::1%eth0", ip, sizeof ip), -1);
    assert_int_equal(ip_normalize("", ip, sizeof ip), -1);
    assert_int_equal(ip_normalize("127.0.0.1", ip, 5), -1);
}

static void instances(void **state) {
    fixture_t *f = *state;
    store_tenant_t t = demo_tenant();
    assert_int_equal(store_tenant_add(f->s, &t), 0);
    assert_int_equal(store_instance_add(f->s, T1, I1, "127.0.0.1"), 0);
    assert_int_equal(store_instance_add(f->s, T1, I2, "::ffff:127.0.0.2"), 0);
    assert_int_equal(store_instance_add(f->s, T1, "i-abcdef01", "2001:DB8::7"), 0);

    char ip[STORE_IP_SIZE];
    assert_int_equal(store_instance_get(f->s, T1, I2, ip, sizeof ip), 0);
    assert_string_equal(ip, "127.0.0.2");
    assert_int_equal(store_instance_get(f->s, T1, "i-abcdef01", ip, sizeof ip), 0);
    assert_string_equal(ip, "2001:db8::7");
    assert_int_equal(store_instance_get(f->s, T1, "i-abcdef01", ip, 4), -1);

    /* Instances belong to one tenant: unknown tenant refused (foreign key). */
    assert_int_equal(store_instance_add(f->s, T2, I1, "127.0.0.1"), STORE_NOT_FOUND);
    assert_non_null(strstr(store_last_error(), "tenant " T2 " not found"));
    assert_int_equal(store_instance_get(f->s, T2, I1, ip, sizeof ip), STORE_NOT_FOUND);

    assert_int_equal(store_instance_add(f->s, T1, "i-abcdef02", "127.0.0.256"), -1);
    assert_int_equal(store_instance_add(f->s, T1, "i-abcdef02", NULL), -1);
    assert_int_equal(store_instance_add(f->s, T1, "i-ABCDEF02", "127.0.0.1"), -1);

    assert_int_equal(store_instance_remove(f->s, T1, I1), 0);
    assert_int_equal(store_instance_get(f->s, T1, I1, ip, sizeof ip), STORE_NOT_FOUND);
    assert_int_equal(store_instance_remove(f->s, T1, I1), STORE_NOT_FOUND);
    assert_int_equal(store_instance_add(f->s, T1, I1, "127.0.0.3"), 0);
}

/* 50 threads race to set a fresh tenant's EKT. */
#define EKT_THREADS 50

typedef struct ekt_race {
    store_t *s;
    pthread_barrier_t start;
    int rc[EKT_THREADS];
    uint8_t ekt[EKT_THREADS][48];
} ekt_race_t;

typedef struct ekt_arg {
    ekt_race_t *race;
    int idx;
} ekt_arg_t;

static void *ekt_thread(void *p) {
    ekt_arg_t *a = p;
    ekt_race_t *r = a->race;
    pthread_barrier_wait(&r->start);
    r->rc[a->idx] = store_tenant_set_ekt_if_absent(r->s, T1, r->ekt[a->idx], sizeof r->ekt[0]);
    if (r->rc[a->idx] < 0)
        fprintf(stderr, "thread %d: %s\n", a->idx, store_last_error());
    return NULL;
}

static void ekt_set_exactly_once(void **state) {
    fixture_t *f = *state;
    store_tenant_t t = demo_tenant();
    assert_int_equal(store_tenant_add(f->s, &t), 0);

    ekt_race_t *r = calloc(1, sizeof *r);
    r->s = f->s;
    pthread_barrier_init(&r->start, NULL, EKT_THREADS);
    pthread_t th[EKT_THREADS];
    ekt_arg_t args[EKT_THREADS];
    for (int i = 0; i < EKT_THREADS; i++) {
        memset(r->ekt[i], i + 1, sizeof r->ekt[i]);
        args[i] = (ekt_arg_t){r, i};
        assert_int_equal(pthread_create(&th[i], NULL, ekt_thread, &args[i]), 0);
    }
    for (int i = 0; i < EKT_THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&r->start);

    int winner = -1, exists = 0;
    for (int i = 0; i < EKT_THREADS; i++) {
        if (r->rc[i] == 0) {
            assert_int_equal(winner, -1);
            winner = i;
        } else {
            assert_int_equal(r->rc[i], STORE_EXISTS);
            exists++;
        }
    }
    assert_int_not_equal(winner, -1);
    assert_int_equal(exists, EKT_THREADS - 1);

    store_tenant_t got;
    assert_int_equal(store_tenant_get(f->s, T1, &got), 0);
    assert_int_equal(got.ekt_len, sizeof r->ekt[0]);
    assert_memory_equal(got.ekt, r->ekt[winner], sizeof r->ekt[0]);
    store_tenant_clear(&got);
    free(r);
}

/* Several threads read and write at once: none may see SQLITE_BUSY. */
#define RW_THREADS 8
#define RW_ROUNDS 40

typedef struct rw_arg {
    store_t *s;
    int idx;
    int failures;
} rw_arg_t;

static void *rw_thread(void *p) {
    rw_arg_t *a = p;
    for (int i = 0; i < RW_ROUNDS; i++) {
        char id[STORE_INSTANCE_ID_SIZE], ip[STORE_IP_SIZE], want[STORE_IP_SIZE];
        snprintf(id, sizeof id, "i-%02x%06x", a->idx, i);
        snprintf(want, sizeof want, "10.0.%d.%d", a->idx, i);
        store_tenant_t t;
        store_tenant_t *list;
        size_t n;
        int rc = store_instance_add(a->s, T1, id, want);
        if (rc == 0)
            rc = store_instance_get(a->s, T1, id, ip, sizeof ip);
        if (rc == 0 && strcmp(ip, want) != 0)
            rc = -1;
        if (rc == 0 && (rc = store_tenant_get(a->s, T1, &t)) == 0)
            store_tenant_clear(&t);
        if (rc == 0 && (rc = store_tenant_list(a->s, &list, &n)) == 0)
            store_tenant_list_free(list, n);
        if (rc == 0 && i % 2 == 0)
            rc = store_instance_remove(a->s, T1, id);
        if (rc != 0) {
            fprintf(stderr, "thread %d round %d: %d %s\n", a->idx, i, rc, store_last_error());
            a->failures++;
        }
    }
    return NULL;
}

static void concurrent_readers_writers(void **state) {
    fixture_t *f = *state;
    store_tenant_t t = demo_tenant();
    assert_int_equal(store_tenant_add(f->s, &t), 0);

    /* A second store on the same file stands for another process (the CLI). */
    char err[256];
    store_t *other = store_open_sqlite(f->path, err, sizeof err);
    assert_non_null(other);

    pthread_t th[RW_THREADS];
    rw_arg_t args[RW_THREADS];
    for (int i = 0; i < RW_THREADS; i++) {
        args[i] = (rw_arg_t){i % 2 ? other : f->s, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, rw_thread, &args[i]), 0);
    }
    int failures = 0;
    for (int i = 0; i < RW_THREADS; i++) {
        pthread_join(th[i], NULL);
        failures += args[i].failures;
    }
    store_close(other);
    assert_int_equal(failures, 0);

    /* The odd rounds' instances remain. */
    char ip[STORE_IP_SIZE];
    assert_int_equal(store_instance_get(f->s, T1, "i-07000027", ip, sizeof ip), 0);
    assert_string_equal(ip, "10.0.7.39");
    assert_int_equal(store_instance_get(f->s, T1, "i-07000026", ip, sizeof ip), STORE_NOT_FOUND);
}

/* ---- installations ---- */

#define ID1 "0123456789abcdef0123456789abcdef"
#define ID2 "fedcba9876543210fedcba9876543210"
#define TP1 "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
#define TP2 "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U"
#define TXT1 "gfj9Xq-Ev2FdjAJ3FyXmQEmRBHGhW0DuFzg5m4dQ1gA"
#define TXT2 "LPJNul-wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ"

static store_installation_t demo_installation(const char *id, const char *label, const char *thumbprint) {
    store_installation_t in = {.jwk = "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"x\",\"y\":\"y\"}",
                               .metadata = "{\"region\":\"eu-west-1\"}"};
    snprintf(in.id, sizeof in.id, "%s", id);
    snprintf(in.label, sizeof in.label, "%s", label);
    snprintf(in.thumbprint, sizeof in.thumbprint, "%s", thumbprint);
    return in;
}

static void installations_add_get_remove(void **state) {
    fixture_t *f = *state;
    store_installation_t in = demo_installation(ID1, "host-1", TP1);
    assert_int_equal(store_installation_add(f->s, &in), 0);
    assert_true(in.created_at > 1700000000);

    store_installation_t got;
    assert_int_equal(store_installation_get(f->s, ID1, &got), 0);
    assert_string_equal(got.id, ID1);
    assert_string_equal(got.label, "host-1");
    assert_string_equal(got.thumbprint, TP1);
    assert_string_equal(got.jwk, in.jwk);
    assert_string_equal(got.metadata, in.metadata);
    assert_int_equal(got.created_at, in.created_at);
    assert_string_equal(got.ipv4, "");
    assert_int_equal(got.challenges.n, 0);
    store_installation_clear(&got);

    /* The same key again: its installation comes back. */
    store_installation_t again = demo_installation(ID2, "other", TP1);
    assert_int_equal(store_installation_add(f->s, &again), STORE_EXISTS);
    assert_string_equal(again.id, ID1);
    assert_string_equal(again.label, "host-1");
    /* Another key, a taken label. */
    store_installation_t taken = demo_installation(ID2, "host-1", TP2);
    assert_int_equal(store_installation_add(f->s, &taken), STORE_CONFLICT);
    assert_non_null(strstr(store_last_error(), "label host-1 is taken"));
    assert_string_equal(taken.id, ID2);
    /* Metadata is optional. */
    store_installation_t second = demo_installation(ID2, "h2", TP2);
    second.metadata = NULL;
    assert_int_equal(store_installation_add(f->s, &second), 0);
    assert_int_equal(store_installation_get(f->s, ID2, &got), 0);
    assert_null(got.metadata);
    store_installation_clear(&got);

    assert_int_equal(store_installation_set_address(f->s, ID1, "192.0.2.7"), 0);
    assert_int_equal(store_challenge_add(f->s, ID1, TXT1), 0);
    store_installation_t removed;
    assert_int_equal(store_installation_remove(f->s, ID1, &removed), 0);
    assert_string_equal(removed.label, "host-1");
    assert_string_equal(removed.ipv4, "192.0.2.7");
    assert_int_equal(removed.challenges.n, 1);
    assert_string_equal(removed.challenges.values[0], TXT1);
    store_installation_clear(&removed);
    assert_int_equal(store_installation_get(f->s, ID1, &got), STORE_NOT_FOUND);
    assert_null(got.jwk);
    assert_int_equal(store_installation_remove(f->s, ID1, NULL), STORE_NOT_FOUND);
    /* The label and key are free again. */
    in = demo_installation(ID1, "host-1", TP1);
    assert_int_equal(store_installation_add(f->s, &in), 0);
    assert_int_equal(store_installation_get(f->s, ID1, &got), 0);
    assert_string_equal(got.ipv4, ""); /* nothing left behind by the cascade */
    assert_int_equal(got.challenges.n, 0);
    store_installation_clear(&got);
}

static void invalid_installations_refused(void **state) {
    fixture_t *f = *state;
    static const char *const bad_labels[] = {"", "-a", "a-", "A", "a.b", "a_b", "a b",
                                             "0123456789012345678901234567890123456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof bad_labels / sizeof bad_labels[0]; i++) {
        store_installation_t in = demo_installation(ID1, "x", TP1);
        snprintf(in.label, sizeof in.label, "%s", bad_labels[i]);
        if (strlen(bad_labels[i]) >= sizeof in.label) /* 64: checked through the validator */
            assert_false(store_valid_label(bad_labels[i]));
        else
            assert_int_equal(store_installation_add(f->s, &in), -1);
    }
    assert_true(store_valid_label("012345678901234567890123456789012345678901234567890123456789012"));
    assert_true(store_valid_label("a-0"));
    store_installation_t in = demo_installation("0123456789ABCDEF0123456789abcdef", "x", TP1);
    assert_int_equal(store_installation_add(f->s, &in), -1);
    in = demo_installation(ID1, "x", "short");
    assert_int_equal(store_installation_add(f->s, &in), -1);
    in = demo_installation(ID1, "x", "NzbLsXh8uDCcd+6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    assert_int_equal(store_installation_add(f->s, &in), -1);
    in = demo_installation(ID1, "x", TP1);
    in.jwk = NULL;
    assert_int_equal(store_installation_add(f->s, &in), -1);
    in.jwk = "{\"a\":\"\n\"}";
    assert_int_equal(store_installation_add(f->s, &in), -1);
    char big[STORE_METADATA_MAX + 1];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    in = demo_installation(ID1, "x", TP1);
    in.metadata = big;
    assert_int_equal(store_installation_add(f->s, &in), -1);

    assert_false(store_valid_txt(""));
    assert_false(store_valid_txt("a b"));
    assert_false(store_valid_txt("a/b"));
    assert_false(store_valid_txt("a\x7f"));
    assert_true(store_valid_txt(TXT1));
    char txt[STORE_TXT_SIZE + 1];
    memset(txt, 'a', sizeof txt - 1);
    txt[sizeof txt - 1] = '\0';
    assert_false(store_valid_txt(txt));
    txt[sizeof txt - 2] = '\0'; /* 255 */
    assert_true(store_valid_txt(txt));

    in = demo_installation(ID1, "x", TP1);
    assert_int_equal(store_installation_add(f->s, &in), 0);
    assert_int_equal(store_challenge_add(f->s, ID1, "a b"), -1);
    assert_int_equal(store_installation_set_address(f->s, ID1, "192.0.2.300"), -1);
    assert_int_equal(store_installation_set_address(f->s, "nope", "192.0.2.3"), -1);
    store_installation_t got;
    assert_int_equal(store_installation_get(f->s, "nope", &got), -1);
}

static void addresses_and_challenges(void **state) {
    fixture_t *f = *state;
    store_installation_t in = demo_installation(ID1, "host-1", TP1);
    assert_int_equal(store_installation_add(f->s, &in), 0);

    assert_int_equal(store_installation_set_address(f->s, ID1, "192.0.2.7"), 0);
    assert_int_equal(store_installation_set_address(f->s, ID1, "2001:DB8:0::7"), 0);
    assert_int_equal(store_installation_set_address(f->s, ID1, "::ffff:192.0.2.8"), 0); /* IPv4, replaces */
    assert_int_equal(store_installation_set_address(f->s, ID2, "192.0.2.7"), STORE_NOT_FOUND);
    store_installation_t got;
    assert_int_equal(store_installation_get(f->s, ID1, &got), 0);
    assert_string_equal(got.ipv4, "192.0.2.8");
    assert_string_equal(got.ipv6, "2001:db8::7");
    store_installation_clear(&got);

    char value[16];
    for (int i = 0; i < STORE_CHALLENGES_MAX; i++) {
        snprintf(value, sizeof value, "v%d", i);
        assert_int_equal(store_challenge_add(f->s, ID1, value), 0);
    }
    assert_int_equal(store_challenge_add(f->s, ID1, "v0"), 0); /* already there: fine when full */
    assert_int_equal(store_challenge_add(f->s, ID1, "v9"), STORE_LIMIT);
    assert_non_null(strstr(store_last_error(), "8 challenge values"));
    assert_int_equal(store_challenge_add(f->s, ID2, "v0"), STORE_NOT_FOUND);
    assert_int_equal(store_installation_get(f->s, ID1, &got), 0);
    assert_int_equal(got.challenges.n, STORE_CHALLENGES_MAX);
    assert_string_equal(got.challenges.values[0], "v0");
    assert_string_equal(got.challenges.values[7], "v7");
    store_installation_clear(&got);

    store_txt_list_t removed;
    assert_int_equal(store_challenge_remove(f->s, ID1, "v3", &removed), 0);
    assert_int_equal(removed.n, 1);
    assert_string_equal(removed.values[0], "v3");
    assert_int_equal(store_challenge_remove(f->s, ID1, "v3", &removed), 0); /* gone already: not an error */
    assert_int_equal(removed.n, 0);
    assert_int_equal(store_challenge_add(f->s, ID1, "v9"), 0); /* room again */
    assert_int_equal(store_challenge_remove(f->s, ID1, NULL, &removed), 0);
    assert_int_equal(removed.n, STORE_CHALLENGES_MAX);
    assert_int_equal(store_challenge_remove(f->s, ID1, NULL, NULL), 0);
    assert_int_equal(store_challenge_remove(f->s, ID2, NULL, &removed), STORE_NOT_FOUND);
    assert_int_equal(store_installation_get(f->s, ID1, &got), 0);
    assert_int_equal(got.challenges.n, 0);
    store_installation_clear(&got);
}

static void kvp_list_sorted(void **state) {
    fixture_t *f = *state;
    store_kvp_list_t l;
    assert_int_equal(store_kvp_list(f->s, &l), 0);
    assert_int_equal(l.n, 0);
    store_kvp_list_free(&l);

    store_installation_t a = demo_installation(ID1, "zz", TP1), b = demo_installation(ID2, "aa", TP2);
    assert_int_equal(store_installation_add(f->s, &a), 0);
    assert_int_equal(store_installation_add(f->s, &b), 0);
    assert_int_equal(store_installation_set_address(f->s, ID1, "192.0.2.7"), 0);
    assert_int_equal(store_installation_set_address(f->s, ID1, "2001:db8::7"), 0);
    assert_int_equal(store_challenge_add(f->s, ID1, TXT2), 0);
    assert_int_equal(store_challenge_add(f->s, ID1, TXT1), 0);
    assert_int_equal(store_installation_set_address(f->s, ID2, "198.51.100.1"), 0);

    assert_int_equal(store_kvp_list(f->s, &l), 0);
    static const char *const want[][2] = {
        {"a/aa", "198.51.100.1"}, {"a/zz", "192.0.2.7"}, {"aaaa/zz", "2001:db8::7"}, {"n/aa", ""},
        {"n/zz", ""},           {"t/zz/" TXT2, ""},   {"t/zz/" TXT1, ""},
    };
    assert_int_equal(l.n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < l.n; i++) {
        assert_string_equal(l.keys[i], want[i][0]);
        assert_string_equal(l.vals[i], want[i][1]);
    }
    store_kvp_list_free(&l);
    assert_null(l.keys);

    char key[STORE_KVP_KEY_SIZE];
    assert_int_equal(store_kvp_key(key, sizeof key, STORE_KVP_TXT, "zz", TXT1), 0);
    assert_string_equal(key, "t/zz/" TXT1);
    assert_int_equal(store_kvp_key(key, sizeof key, STORE_KVP_AAAA, "zz", NULL), 0);
    assert_string_equal(key, "aaaa/zz");
    assert_int_equal(store_kvp_key(key, sizeof key, STORE_KVP_TXT, "zz", "a/b"), -1);
    assert_int_equal(store_kvp_key(key, sizeof key, STORE_KVP_NAME, "Zz", NULL), -1);
    assert_int_equal(store_kvp_key(key, 4, STORE_KVP_NAME, "zz", NULL), -1);
    /* Keys are at most 320 bytes (the contract): t/ + 63 + / + 254 fits,
     * a 255-byte value with a 63-byte label does not. */
    char label[64], txt[256];
    memset(label, 'l', 63), label[63] = '\0';
    memset(txt, 't', 255), txt[255] = '\0';
    assert_int_equal(store_kvp_key(key, sizeof key, STORE_KVP_TXT, label, txt), -1);
    txt[254] = '\0';
    assert_int_equal(store_kvp_key(key, sizeof key, STORE_KVP_TXT, label, txt), 0);
    assert_int_equal(strlen(key), 320);
}

/* A store at schema version 2 (made by hand) migrates to 3 and keeps its data. */
static void migrate_from_2(void **state) {
    fixture_t *f = *state;
    store_close(f->s);
    f->s = NULL;
    unlink(f->path);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE tenants (id TEXT PRIMARY KEY NOT NULL, account_id TEXT NOT NULL,"
                                  " networks TEXT NOT NULL, verifier TEXT NOT NULL, audit_dir TEXT, ekt BLOB,"
                                  " created_at INTEGER NOT NULL, endpoints TEXT) STRICT;"
                                  "CREATE TABLE instances (tenant_id TEXT NOT NULL REFERENCES tenants(id),"
                                  " instance_id TEXT NOT NULL, ip TEXT NOT NULL, created_at INTEGER NOT NULL,"
                                  " PRIMARY KEY (tenant_id, instance_id)) STRICT, WITHOUT ROWID;"
                                  "INSERT INTO tenants VALUES ('" T1 "', '111122223333', '127.0.0.0/8',"
                                  " 'registry', NULL, NULL, 1, NULL);"
                                  "PRAGMA user_version = 2;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    char err[256];
    f->s = store_open_sqlite(f->path, err, sizeof err);
    assert_non_null(f->s);
    assert_int_equal(raw_user_version(f->path, -1), 3);
    store_tenant_t t;
    assert_int_equal(store_tenant_get(f->s, T1, &t), 0);
    store_tenant_clear(&t);
    store_installation_t in = demo_installation(ID1, "host-1", TP1);
    assert_int_equal(store_installation_add(f->s, &in), 0);
}

/* Two stores on one file (two skd processes) add values to one installation
 * at once: exactly STORE_CHALLENGES_MAX get in. */
#define CHAL_THREADS 16

typedef struct chal_arg {
    store_t *s;
    int idx;
    int rc;
} chal_arg_t;

static void *chal_thread(void *p) {
    chal_arg_t *a = p;
    char value[16];
    snprintf(value, sizeof value, "value-%02d", a->idx);
    a->rc = store_challenge_add(a->s, ID1, value);
    if (a->rc < 0)
        fprintf(stderr, "thread %d: %s\n", a->idx, store_last_error());
    return NULL;
}

static void challenge_limit_across_stores(void **state) {
    fixture_t *f = *state;
    store_installation_t in = demo_installation(ID1, "host-1", TP1);
    assert_int_equal(store_installation_add(f->s, &in), 0);
    char err[256];
    store_t *other = store_open_sqlite(f->path, err, sizeof err);
    assert_non_null(other);
    pthread_t th[CHAL_THREADS];
    chal_arg_t args[CHAL_THREADS];
    for (int i = 0; i < CHAL_THREADS; i++) {
        args[i] = (chal_arg_t){i % 2 ? other : f->s, i, -9};
        assert_int_equal(pthread_create(&th[i], NULL, chal_thread, &args[i]), 0);
    }
    int added = 0, full = 0;
    for (int i = 0; i < CHAL_THREADS; i++) {
        pthread_join(th[i], NULL);
        added += args[i].rc == 0;
        full += args[i].rc == STORE_LIMIT;
    }
    store_close(other);
    assert_int_equal(added, STORE_CHALLENGES_MAX);
    assert_int_equal(full, CHAL_THREADS - STORE_CHALLENGES_MAX);
    store_installation_t got;
    assert_int_equal(store_installation_get(f->s, ID1, &got), 0);
    assert_int_equal(got.challenges.n, STORE_CHALLENGES_MAX);
    store_installation_clear(&got);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(open_migrate_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(future_version_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(endpoints_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_directory_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(tenants_add_get_list, setup, teardown),
        cmocka_unit_test_setup_teardown(empty_list, setup, teardown),
        cmocka_unit_test_setup_teardown(duplicates_and_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(invalid_tenants_refused, setup, teardown),
        cmocka_unit_test(validators),
        cmocka_unit_test_setup_teardown(instances, setup, teardown),
        cmocka_unit_test_setup_teardown(ekt_set_exactly_once, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_readers_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(installations_add_get_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(invalid_installations_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(addresses_and_challenges, setup, teardown),
        cmocka_unit_test_setup_teardown(kvp_list_sorted, setup, teardown),
        cmocka_unit_test_setup_teardown(migrate_from_2, setup, teardown),
        cmocka_unit_test_setup_teardown(challenge_limit_across_stores, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
