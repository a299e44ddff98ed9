/* store_sqlite: the embedded store backend on SQLite 3.
 *
 * Threads: a SQLite connection must not be used by two threads at once, so
 * the store keeps a mutex-guarded pool of connections. A call takes an idle
 * one (opening a new one if there is none) and gives it back when done: each
 * calling thread has a connection of its own for the duration of a call, and
 * the pool grows to the number of threads that call at the same time (the
 * worker pool's size), not to the number of threads ever seen.
 *
 * Each connection: WAL (readers never wait for the writer), synchronous=FULL
 * (a committed write survives power loss), foreign keys on, busy_timeout so
 * that writers queue for the lock instead of failing with SQLITE_BUSY, and its
 * own prepared statements. Writes are single statements in autocommit mode:
 * SQLite then takes the write lock with a fresh snapshot and retries on
 * busy, which a read-then-write transaction could not.
 *
 * SQLite allows one writer at a time, and its busy handler polls with sleeps
 * of up to 100 ms: with many threads writing, an unlucky one can wait past
 * busy_timeout and fail. So this process's writers queue on a mutex instead;
 * busy_timeout is left to cover other processes (the CLI, or a second skd
 * sharing the file: WAL works across processes on one host, and every write
 * statement or write transaction waits up to busy_timeout for the lock).
 * The few calls that must read and write together (removing an installation
 * and reporting what it held) use BEGIN IMMEDIATE, which takes the write
 * lock first, under the same mutex. */
#include "store_backend.h"

#include "../common/buf.h"
#include "../common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUSY_TIMEOUT_MS 5000

/* Schema migrations, applied in order; the database's PRAGMA user_version
 * counts those already applied. Append only: never edit a released step. */
static const char *const migrations[] = {
    /* 1: tenants and their registered instances */
    "CREATE TABLE tenants ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  account_id TEXT NOT NULL,"
    "  networks TEXT NOT NULL,"
    "  verifier TEXT NOT NULL CHECK (verifier IN ('registry', 'identity-document')),"
    "  audit_dir TEXT,"
    "  ekt BLOB,"
    "  created_at INTEGER NOT NULL"
    ") STRICT;"
    "CREATE TABLE instances ("
    "  tenant_id TEXT NOT NULL REFERENCES tenants(id),"
    "  instance_id TEXT NOT NULL,"
    "  ip TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (tenant_id, instance_id)"
    ") STRICT, WITHOUT ROWID;",
    /* 2: the VPC endpoints (PrivateLink) a tenant's callers come through */
    "ALTER TABLE tenants ADD COLUMN endpoints TEXT;",
    /* 3: installations of the certificate pipeline: their key, DNS label,
     * addresses and ACME challenge values */
    "CREATE TABLE installations ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  label TEXT NOT NULL UNIQUE,"
    "  thumbprint TEXT NOT NULL UNIQUE,"
    "  jwk TEXT NOT NULL,"
    "  metadata TEXT,"
    "  created_at INTEGER NOT NULL"
    ") STRICT;"
    "CREATE TABLE installation_addresses ("
    "  installation TEXT NOT NULL REFERENCES installations(id) ON DELETE CASCADE,"
    "  family INTEGER NOT NULL CHECK (family IN (4, 6)),"
    "  address TEXT NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY (installation, family)"
    ") STRICT, WITHOUT ROWID;"
    "CREATE TABLE installation_challenges ("
    "  installation TEXT NOT NULL REFERENCES installations(id) ON DELETE CASCADE,"
    "  value TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  PRIMARY KEY (installation, value)"
    ") STRICT, WITHOUT ROWID;",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

enum {
    ST_TENANT_ADD,
    ST_TENANT_GET,
    ST_TENANT_LIST,
    ST_TENANT_EXISTS,
    ST_EKT_SET,
    ST_INSTANCE_ADD,
    ST_INSTANCE_GET,
    ST_INSTANCE_REMOVE,
    ST_INST_ADD,
    ST_INST_BY_THUMBPRINT,
    ST_INST_GET,
    ST_INST_EXISTS,
    ST_INST_DELETE,
    ST_ADDR_GET,
    ST_ADDR_SET,
    ST_CHAL_GET,
    ST_CHAL_ADD,
    ST_CHAL_EXISTS,
    ST_CHAL_DELETE,
    ST_KVP_LIST,
    ST_COUNT
};

#define TENANT_COLUMNS "id, account_id, networks, verifier, audit_dir, ekt, created_at, endpoints"

static const char *const stmt_sql[ST_COUNT] = {
    [ST_TENANT_ADD] =
        "INSERT INTO tenants (" TENANT_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_TENANT_GET] = "SELECT " TENANT_COLUMNS " FROM tenants WHERE id = ?1",
    [ST_TENANT_LIST] = "SELECT " TENANT_COLUMNS " FROM tenants ORDER BY id",
    [ST_TENANT_EXISTS] = "SELECT 1 FROM tenants WHERE id = ?1",
    /* The WHERE clause makes create-if-absent one atomic statement. */
    [ST_EKT_SET] = "UPDATE tenants SET ekt = ?2 WHERE id = ?1 AND ekt IS NULL",
    [ST_INSTANCE_ADD] =
        "INSERT INTO instances (tenant_id, instance_id, ip, created_at) VALUES (?1, ?2, ?3, ?4)",
    [ST_INSTANCE_GET] = "SELECT ip FROM instances WHERE tenant_id = ?1 AND instance_id = ?2",
    [ST_INSTANCE_REMOVE] = "DELETE FROM instances WHERE tenant_id = ?1 AND instance_id = ?2",
    [ST_INST_ADD] = "INSERT INTO installations (id, label, thumbprint, jwk, metadata, created_at)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_INST_BY_THUMBPRINT] = "SELECT id, label, created_at FROM installations WHERE thumbprint = ?1",
    [ST_INST_GET] = "SELECT label, thumbprint, jwk, metadata, created_at FROM installations WHERE id = ?1",
    [ST_INST_EXISTS] = "SELECT 1 FROM installations WHERE id = ?1",
    [ST_INST_DELETE] = "DELETE FROM installations WHERE id = ?1",
    [ST_ADDR_GET] = "SELECT family, address FROM installation_addresses WHERE installation = ?1",
    [ST_ADDR_SET] = "INSERT INTO installation_addresses (installation, family, address, updated_at)"
                    " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (installation, family)"
                    " DO UPDATE SET address = excluded.address, updated_at = excluded.updated_at",
    [ST_CHAL_GET] = "SELECT value FROM installation_challenges WHERE installation = ?1 ORDER BY value",
    /* Bounded insert in one statement: atomic against every other writer. */
    [ST_CHAL_ADD] = "INSERT INTO installation_challenges (installation, value, created_at) SELECT ?1, ?2, ?3"
                    " WHERE NOT EXISTS (SELECT 1 FROM installation_challenges WHERE installation = ?1 AND value = ?2)"
                    " AND (SELECT count(*) FROM installation_challenges WHERE installation = ?1) < ?4",
    [ST_CHAL_EXISTS] = "SELECT 1 FROM installation_challenges WHERE installation = ?1 AND value = ?2",
    [ST_CHAL_DELETE] = "DELETE FROM installation_challenges WHERE installation = ?1 AND (?2 IS NULL OR value = ?2)"
                       " RETURNING value",
    /* One statement, so one snapshot: kind (store_kvp_kind_t), label, value. */
    [ST_KVP_LIST] = "SELECT 0, label, NULL FROM installations"
                    " UNION ALL SELECT CASE a.family WHEN 4 THEN 1 ELSE 2 END, i.label, a.address"
                    " FROM installation_addresses a JOIN installations i ON i.id = a.installation"
                    " UNION ALL SELECT 3, i.label, c.value"
                    " FROM installation_challenges c JOIN installations i ON i.id = c.installation",
};

typedef struct conn {
    sqlite3 *db;
    sqlite3_stmt *stmt[ST_COUNT]; /* prepared on first use */
    struct conn *next;            /* in the idle list */
} conn_t;

typedef struct sqlite_store {
    store_t base;
    char *path;
    pthread_mutex_t lock; /* guards idle and in_use */
    pthread_mutex_t write_lock; /* held around every write statement */
    conn_t *idle;
    size_t in_use;
} sqlite_store_t;

static void conn_close(conn_t *c) {
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(c->stmt[i]);
    sqlite3_close(c->db);
    free(c);
}

/* Runs sql (no result rows wanted); -1 with the message in err. */
static int exec(sqlite3 *db, const char *sql, char *err, size_t err_len) {
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK)
        return 0;
    snprintf(err, err_len, "%s", sqlite3_errmsg(db));
    return -1;
}

/* The single-row, single-column answer of a pragma, as text. */
static int pragma_text(sqlite3 *db, const char *sql, char *out, size_t out_len, char *err,
                       size_t err_len) {
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        snprintf(err, err_len, "%s", sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return -1;
    }
    const unsigned char *v = sqlite3_column_text(st, 0);
    snprintf(out, out_len, "%s", v ? (const char *)v : "");
    sqlite3_finalize(st);
    return 0;
}

static conn_t *conn_open(const char *path, char *err, size_t err_len) {
    conn_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    /* NOMUTEX: the pool never shares a connection between threads at once. */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &c->db, flags, NULL) != SQLITE_OK) {
        snprintf(err, err_len, "%s", c->db ? sqlite3_errmsg(c->db) : "out of memory");
        conn_close(c);
        return NULL;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
    char mode[16];
    if (pragma_text(c->db, "PRAGMA journal_mode=WAL", mode, sizeof mode, err, err_len) != 0 ||
        exec(c->db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON", err, err_len) != 0) {
        conn_close(c);
        return NULL;
    }
    if (strcmp(mode, "wal") != 0) {
        snprintf(err, err_len, "cannot use WAL mode (journal mode is %s)", mode);
        conn_close(c);
        return NULL;
    }
    return c;
}

/* Brings the schema up to SCHEMA_VERSION in one write transaction, so that
 * two processes opening a fresh store at once migrate it once. */
static int migrate(sqlite3 *db, const char *path, char *err, size_t err_len) {
    if (exec(db, "BEGIN IMMEDIATE", err, err_len) != 0)
        return -1;
    char text[32];
    if (pragma_text(db, "PRAGMA user_version", text, sizeof text, err, err_len) != 0)
        goto rollback;
    int version = atoi(text);
    if (version > SCHEMA_VERSION) {
        snprintf(err, err_len,
                 "schema version %d is newer than this skd supports (%d): use a newer skd",
                 version, SCHEMA_VERSION);
        goto rollback;
    }
    for (int v = version; v < SCHEMA_VERSION; v++) {
        if (exec(db, migrations[v], err, err_len) != 0)
            goto rollback;
    }
    char set[48];
    snprintf(set, sizeof set, "PRAGMA user_version = %d", SCHEMA_VERSION);
    if (exec(db, set, err, err_len) != 0 || exec(db, "COMMIT", err, err_len) != 0)
        goto rollback;
    if (version != SCHEMA_VERSION)
        log_info("store %s: schema migrated from version %d to %d", path, version, SCHEMA_VERSION);
    return 0;
rollback:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

static conn_t *conn_acquire(sqlite_store_t *s) {
    pthread_mutex_lock(&s->lock);
    conn_t *c = s->idle;
    if (c)
        s->idle = c->next;
    s->in_use++;
    pthread_mutex_unlock(&s->lock);
    if (c)
        return c;
    char err[200];
    c = conn_open(s->path, err, sizeof err);
    if (c == NULL) {
        pthread_mutex_lock(&s->lock);
        s->in_use--;
        pthread_mutex_unlock(&s->lock);
        store_fail(-1, "store: cannot open a connection: %s", err);
    }
    return c;
}

static void conn_release(sqlite_store_t *s, conn_t *c) {
    pthread_mutex_lock(&s->lock);
    c->next = s->idle;
    s->idle = c;
    s->in_use--;
    pthread_mutex_unlock(&s->lock);
}

/* The connection's prepared statement, ready for binding; NULL on error. */
static sqlite3_stmt *stmt(conn_t *c, int which) {
    if (c->stmt[which] == NULL &&
        sqlite3_prepare_v3(c->db, stmt_sql[which], -1, SQLITE_PREPARE_PERSISTENT, &c->stmt[which],
                           NULL) != SQLITE_OK) {
        store_fail(-1, "store: %s", sqlite3_errmsg(c->db));
        return NULL;
    }
    return c->stmt[which];
}

/* Resets a statement after use: ends its read transaction, drops bindings. */
static void done(sqlite3_stmt *st) {
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* sqlite3_step of a write statement, one writer of this process at a time. */
static int step_write(sqlite_store_t *s, sqlite3_stmt *st) {
    pthread_mutex_lock(&s->write_lock);
    int rc = sqlite3_step(st);
    pthread_mutex_unlock(&s->write_lock);
    return rc;
}

/* Records the connection's last error for store_last_error(); returns -1. */
static int db_fail(conn_t *c, const char *what) {
    return store_fail(-1, "store: %s: %s", what, sqlite3_errmsg(c->db));
}

/* Ends a call: resets st, gives the connection back, returns rc. */
static int finish(sqlite_store_t *s, conn_t *c, sqlite3_stmt *st, int rc) {
    if (st)
        done(st);
    conn_release(s, c);
    return rc;
}

static int copy_text(char *dst, size_t dst_len, sqlite3_stmt *st, int col) {
    const unsigned char *v = sqlite3_column_text(st, col);
    if (v == NULL || (size_t)sqlite3_column_bytes(st, col) >= dst_len)
        return -1;
    memcpy(dst, v, (size_t)sqlite3_column_bytes(st, col) + 1);
    return 0;
}

/* A malloc'd copy of a text column; NULL column gives NULL and 0. */
static int dup_text(char **dst, sqlite3_stmt *st, int col) {
    *dst = NULL;
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return 0;
    const unsigned char *v = sqlite3_column_text(st, col);
    if (v == NULL)
        return -1;
    *dst = strdup((const char *)v);
    return *dst ? 0 : -1;
}

/* Fills t from a row of TENANT_COLUMNS; on failure t owns nothing. */
static int read_tenant(sqlite3_stmt *st, store_tenant_t *t) {
    memset(t, 0, sizeof *t);
    const unsigned char *verifier = sqlite3_column_text(st, 3);
    if (copy_text(t->id, sizeof t->id, st, 0) != 0 ||
        copy_text(t->account_id, sizeof t->account_id, st, 1) != 0 ||
        store_verifier_parse((const char *)verifier, &t->verifier) != 0 ||
        dup_text(&t->networks, st, 2) != 0 || t->networks == NULL ||
        dup_text(&t->audit_dir, st, 4) != 0 || dup_text(&t->endpoints, st, 7) != 0)
        goto fail;
    if (sqlite3_column_type(st, 5) != SQLITE_NULL) {
        int len = sqlite3_column_bytes(st, 5);
        const void *blob = sqlite3_column_blob(st, 5);
        if (len <= 0 || blob == NULL || (t->ekt = malloc((size_t)len)) == NULL)
            goto fail;
        memcpy(t->ekt, blob, (size_t)len);
        t->ekt_len = (size_t)len;
    }
    t->created_at = sqlite3_column_int64(st, 6);
    return 0;
fail:
    store_tenant_clear(t);
    return store_fail(-1, "store: unreadable tenant row (or out of memory)");
}

static int sq_tenant_add(store_t *base, const store_tenant_t *t) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    conn_t *c = conn_acquire(s);
    if (c == NULL)
        return -1;
    sqlite3_stmt *st = stmt(c, ST_TENANT_ADD);
    if (st == NULL)
        return finish(s, c, NULL, -1);
    sqlite3_bind_text(st, 1, t->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, t->account_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, t->networks, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, store_verifier_name(t->verifier), -1, SQLITE_STATIC);
    if (t->audit_dir)
        sqlite3_bind_text(st, 5, t->audit_dir, -1, SQLITE_STATIC);
    if (t->ekt)
        sqlite3_bind_blob(st, 6, t->ekt, (int)t->ekt_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, t->created_at);
    if (t->endpoints)
        sqlite3_bind_text(st, 8, t->endpoints, -1, SQLITE_STATIC);
    int rc = step_write(s, st);
    if (rc == SQLITE_DONE)
        return finish(s, c, st, 0);
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        rc = store_fail(STORE_EXISTS, "tenant %s already exists", t->id);
    else
        rc = db_fail(c, "tenant add");
    return finish(s, c, st, rc);
}

static int sq_tenant_get(store_t *base, const char *id, store_tenant_t *out) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    conn_t *c = conn_acquire(s);
    if (c == NULL)
        return -1;
    sqlite3_stmt *st = stmt(c, ST_TENANT_GET);
    if (st == NULL)
        return finish(s, c, NULL, -1);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        rc = read_tenant(st, out);
    else if (rc == SQLITE_DONE)
        rc = store_fail(STORE_NOT_FOUND, "tenant %s not found", id);
    else
        rc = db_fail(c, "tenant get");
    return finish(s, c, st, rc);
}

static int sq_tenant_list(store_t *base, store_tenant_t **out, size_t *n) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    conn_t *c = conn_acquire(s);
    if (c == NULL)
        return -1;
    sqlite3_stmt *st = stmt(c, ST_TENANT_LIST);
    if (st == NULL)
        return finish(s, c, NULL, -1);
    store_tenant_t *list = NULL;
    size_t len = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            store_tenant_t *grown = realloc(list, ncap * sizeof *list);
            if (grown == NULL) {
                rc = store_fail(-1, "store: out of memory");
                goto fail;
            }
            list = grown;
            cap = ncap;
        }
        if (read_tenant(st, &list[len]) != 0) {
            rc = -1;
            goto fail;
        }
        len++;
    }
    if (rc != SQLITE_DONE) {
        rc = db_fail(c, "tenant list");
        goto fail;
    }
    *out = list;
    *n = len;
    return finish(s, c, st, 0);
fail:
    store_tenant_list_free(list, len);
    return finish(s, c, st, rc);
}

static int sq_tenant_set_ekt_if_absent(store_t *base, const char *tenant_id, const uint8_t *ekt,
                                       size_t len) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    conn_t *c = conn_acquire(s);
    if (c == NULL)
        return -1;
    sqlite3_stmt *st = stmt(c, ST_EKT_SET);
    if (st == NULL)
        return finish(s, c, NULL, -1);
    sqlite3_bind_text(st, 1, tenant_id, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, ekt, (int)len, SQLITE_STATIC);
    if (step_write(s, st) != SQLITE_DONE)
        return finish(s, c, st, db_fail(c, "set EKT"));
    bool set = sqlite3_changes(c->db) == 1;
    done(st);
    if (set)
        return finish(s, c, NULL, 0);
    /* Nothing changed: either the EKT was there or the tenant is not. */
    st = stmt(c, ST_TENANT_EXISTS);
    if (st == NULL)
        return finish(s, c, NULL, -1);
    sqlite3_bind_text(st, 1, tenant_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        rc = store_fail(STORE_EXISTS, "tenant %s already has an EKT", tenant_id);
    else if (rc == SQLITE_DONE)
        rc = store_fail(STORE_NOT_FOUND, "tenant %s not found", tenant_id);
    else
        rc = db_fail(c, "set EKT");
    return finish(s, c, st, rc);
}

static int sq_instance_add(store_t *base, const char *tenant_id, const char *instance_id,
                           const char *ip, int64_t created_at) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    conn_t *c = conn_acquire(s);
    if (c == NULL)
        return -1;
    sqlite3_stmt *st = stmt(c, ST_INSTANCE_ADD);
    if (st == NULL)
        return finish(s, c, NULL, -1);
    sqlite3_bind_text(st, 1, tenant_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, instance_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, ip, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, created_at);
    int rc = step_write(s, st);
    if (rc == SQLITE_DONE)
        rc = 0;
    else if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        rc = store_fail(STORE_EXISTS, "instance %s already registered for tenant %s", instance_id,
                        tenant_id);
    else if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        rc = store_fail(STORE_NOT_FOUND, "tenant %s not found", tenant_id);
    else
        rc = db_fail(c, "instance add");
    return finish(s, c, st, rc);
}

static int sq_instance_get(store_t *base, const char *tenant_id, const char *instance_id,
                           char *ip_out, size_t ip_len) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    conn_t *c = conn_acquire(s);
    if (c == NULL)
        return -1;
    sqlite3_stmt *st = stmt(c, ST_INSTANCE_GET);
    if (st == NULL)
        return finish(s, c, NULL, -1);
    sqlite3_bind_text(st, 1, tenant_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, instance_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        rc = copy_text(ip_out, ip_len, st, 0) == 0 ? 0
                                                   : store_fail(-1, "store: IP buffer too small");
    else if (rc == SQLITE_DONE)
        rc = store_fail(STORE_NOT_FOUND, "instance %s not registered for tenant %s", instance_id,
                        tenant_id);
    else
        rc = db_fail(c, "instance get");
    return finish(s, c, st, rc);
}

static int sq_instance_remove(store_t *base, const char *tenant_id, const char *instance_id) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    conn_t *c = conn_acquire(s);
    if (c == NULL)
        return -1;
    sqlite3_stmt *st = stmt(c, ST_INSTANCE_REMOVE);
    if (st == NULL)
        return finish(s, c, NULL, -1);
    sqlite3_bind_text(st, 1, tenant_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, instance_id, -1, SQLITE_STATIC);
    int rc;
    if (step_write(s, st) != SQLITE_DONE)
        rc = db_fail(c, "instance remove");
    else if (sqlite3_changes(c->db) == 0)
        rc = store_fail(STORE_NOT_FOUND, "instance %s not registered for tenant %s", instance_id,
                        tenant_id);
    else
        rc = 0;
    return finish(s, c, st, rc);
}

/* ---- installations ---- */

/* Copies a text column into a fixed buffer; -1 if NULL or too long. */
static int column_text(sqlite3_stmt *st, int col, char *dst, size_t dst_len) {
    return copy_text(dst, dst_len, st, col);
}

/* Reads one installation with its addresses and values on c (inside a
 * transaction, so that the three reads see one state). */
static int read_installation(conn_t *c, const char *id, store_installation_t *out) {
    sqlite3_stmt *st = stmt(c, ST_INST_GET);
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        done(st);
        return store_fail(STORE_NOT_FOUND, "installation %s not found", id);
    }
    if (rc != SQLITE_ROW) {
        rc = db_fail(c, "installation get");
        done(st);
        return rc;
    }
    snprintf(out->id, sizeof out->id, "%s", id);
    rc = column_text(st, 0, out->label, sizeof out->label) != 0 ||
                 column_text(st, 1, out->thumbprint, sizeof out->thumbprint) != 0 ||
                 dup_text(&out->jwk, st, 2) != 0 || out->jwk == NULL || dup_text(&out->metadata, st, 3) != 0
             ? -1
             : 0;
    out->created_at = sqlite3_column_int64(st, 4);
    done(st);
    if (rc != 0)
        goto unreadable;
    if ((st = stmt(c, ST_ADDR_GET)) == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int family = sqlite3_column_int(st, 0);
        char *slot = family == 4 ? out->ipv4 : out->ipv6;
        if (column_text(st, 1, slot, STORE_IP_SIZE) != 0) {
            done(st);
            goto unreadable;
        }
    }
    done(st);
    if (rc != SQLITE_DONE)
        goto db_error;
    if ((st = stmt(c, ST_CHAL_GET)) == NULL)
        goto fail;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    store_txt_list_t *list = &out->challenges;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (list->n == STORE_CHALLENGES_MAX || column_text(st, 0, list->values[list->n], STORE_TXT_SIZE) != 0) {
            done(st);
            goto unreadable;
        }
        list->n++;
    }
    done(st);
    if (rc != SQLITE_DONE)
        goto db_error;
    return 0;
db_error:
    db_fail(c, "installation get");
    goto fail;
unreadable:
    store_fail(-1, "store: unreadable installation %s (or out of memory)", id);
fail:
    store_installation_clear(out);
    return -1;
}

/* Runs BEGIN/COMMIT/ROLLBACK text on c; -1 with the error recorded. */
static int tx(conn_t *c, const char *sql) {
    if (sqlite3_exec(c->db, sql, NULL, NULL, NULL) == SQLITE_OK)
        return 0;
    return db_fail(c, sql);
}

static int sq_installation_add(store_t *base, store_installation_t *inst) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    conn_t *c = conn_acquire(s);
    if (c == NULL)
        return -1;
    sqlite3_stmt *st = stmt(c, ST_INST_ADD);
    if (st == NULL)
        return finish(s, c, NULL, -1);
    sqlite3_bind_text(st, 1, inst->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, inst->label, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, inst->thumbprint, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, inst->jwk, -1, SQLITE_STATIC);
    if (inst->metadata)
        sqlite3_bind_text(st, 5, inst->metadata, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, inst->created_at);
    int rc = step_write(s, st);
    if (rc == SQLITE_DONE)
        return finish(s, c, st, 0);
    if (rc != SQLITE_CONSTRAINT_UNIQUE && rc != SQLITE_CONSTRAINT_PRIMARYKEY)
        return finish(s, c, st, db_fail(c, "installation add"));
    done(st);
    /* Which one: the key (answer with its installation) or the label. */
    if ((st = stmt(c, ST_INST_BY_THUMBPRINT)) == NULL)
        return finish(s, c, NULL, -1);
    sqlite3_bind_text(st, 1, inst->thumbprint, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (column_text(st, 0, inst->id, sizeof inst->id) != 0 ||
            column_text(st, 1, inst->label, sizeof inst->label) != 0)
            rc = store_fail(-1, "store: unreadable installation row");
        else
            rc = store_fail(STORE_EXISTS, "key already registered as installation %s", inst->id);
        inst->created_at = sqlite3_column_int64(st, 2);
    } else if (rc == SQLITE_DONE) {
        rc = store_fail(STORE_CONFLICT, "label %s is taken", inst->label);
    } else {
        rc = db_fail(c, "installation add");
    }
    return finish(s, c, st, rc);
}

static int sq_installation_get(store_t *base, const char *id, store_installation_t *out) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    conn_t *c = conn_acquire(s);
    if (c == NULL)
        return -1;
    if (tx(c, "BEGIN") != 0)
        return finish(s, c, NULL, -1);
    int rc = read_installation(c, id, out);
    sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL); /* a read: nothing to lose */
    return finish(s, c, NULL, rc);
}

static int sq_installation_remove(store_t *base, const char *id, store_installation_t *removed) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    conn_t *c = conn_acquire(s);
    if (c == NULL)
        return -1;
    store_installation_t scratch = {0};
    store_installation_t *out = removed ? removed : &scratch;
    pthread_mutex_lock(&s->write_lock);
    int rc = tx(c, "BEGIN IMMEDIATE");
    if (rc == 0 && (rc = read_installation(c, id, out)) == 0) {
        sqlite3_stmt *st = stmt(c, ST_INST_DELETE);
        if (st == NULL)
            rc = -1;
        else {
            sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
            rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_fail(c, "installation remove");
            done(st);
        }
        if (rc == 0)
            rc = tx(c, "COMMIT");
    }
    if (rc != 0) {
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        store_installation_clear(out);
    }
    pthread_mutex_unlock(&s->write_lock);
    store_installation_clear(&scratch);
    return finish(s, c, NULL, rc);
}

/* After a write that changed nothing: STORE_NOT_FOUND if the installation
 * does not exist, otherwise ok. */
static int installation_exists(conn_t *c, const char *id, int ok) {
    sqlite3_stmt *st = stmt(c, ST_INST_EXISTS);
    if (st == NULL)
        return -1;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        rc = ok;
    else if (rc == SQLITE_DONE)
        rc = store_fail(STORE_NOT_FOUND, "installation %s not found", id);
    else
        rc = db_fail(c, "installation get");
    done(st);
    return rc;
}

static int sq_installation_set_address(store_t *base, const char *id, int family, const char *ip, int64_t now) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    conn_t *c = conn_acquire(s);
    if (c == NULL)
        return -1;
    sqlite3_stmt *st = stmt(c, ST_ADDR_SET);
    if (st == NULL)
        return finish(s, c, NULL, -1);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, family);
    sqlite3_bind_text(st, 3, ip, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now);
    int rc = step_write(s, st);
    if (rc == SQLITE_DONE)
        rc = 0;
    else if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        rc = store_fail(STORE_NOT_FOUND, "installation %s not found", id);
    else
        rc = db_fail(c, "set address");
    return finish(s, c, st, rc);
}

static int sq_challenge_add(store_t *base, const char *id, const char *value, int64_t now) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    conn_t *c = conn_acquire(s);
    if (c == NULL)
        return -1;
    sqlite3_stmt *st = stmt(c, ST_CHAL_ADD);
    if (st == NULL)
        return finish(s, c, NULL, -1);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now);
    sqlite3_bind_int(st, 4, STORE_CHALLENGES_MAX);
    int rc = step_write(s, st);
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return finish(s, c, st, store_fail(STORE_NOT_FOUND, "installation %s not found", id));
    if (rc != SQLITE_DONE)
        return finish(s, c, st, db_fail(c, "challenge add"));
    if (sqlite3_changes(c->db) == 1)
        return finish(s, c, st, 0);
    done(st);
    /* Nothing inserted: the value was there already, or the list is full. */
    if ((st = stmt(c, ST_CHAL_EXISTS)) == NULL)
        return finish(s, c, NULL, -1);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        rc = 0;
    else if (rc == SQLITE_DONE)
        rc = store_fail(STORE_LIMIT, "installation %s holds %d challenge values already", id, STORE_CHALLENGES_MAX);
    else
        rc = db_fail(c, "challenge add");
    return finish(s, c, st, rc);
}

static int sq_challenge_remove(store_t *base, const char *id, const char *value, store_txt_list_t *removed) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    conn_t *c = conn_acquire(s);
    if (c == NULL)
        return -1;
    sqlite3_stmt *st = stmt(c, ST_CHAL_DELETE);
    if (st == NULL)
        return finish(s, c, NULL, -1);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (value)
        sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    size_t n = 0;
    int rc;
    pthread_mutex_lock(&s->write_lock);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (removed && n < STORE_CHALLENGES_MAX && column_text(st, 0, removed->values[n], STORE_TXT_SIZE) == 0)
            removed->n = ++n;
    }
    pthread_mutex_unlock(&s->write_lock);
    if (rc != SQLITE_DONE)
        return finish(s, c, st, db_fail(c, "challenge remove"));
    done(st);
    return finish(s, c, NULL, n ? 0 : installation_exists(c, id, 0));
}

typedef struct kvp_ref {
    const char *key, *val;
} kvp_ref_t;

static int kvp_cmp(const void *a, const void *b) {
    return strcmp(((const kvp_ref_t *)a)->key, ((const kvp_ref_t *)b)->key);
}

/* Builds the key of a row of ST_KVP_LIST and appends "key\0value\0" to arena. */
static int append_kvp(sqlite3_stmt *st, buf_t *arena) {
    int kind = sqlite3_column_int(st, 0);
    const char *label = (const char *)sqlite3_column_text(st, 1);
    const char *value = (const char *)sqlite3_column_text(st, 2);
    char key[STORE_KVP_KEY_SIZE];
    if (!label || store_kvp_key(key, sizeof key, (store_kvp_kind_t)kind, label, value) != 0)
        return 1; /* a row no key can be made of: skipped */
    const char *val = kind == STORE_KVP_A || kind == STORE_KVP_AAAA ? value : "";
    if (!val)
        return 1;
    return buf_append(arena, key, strlen(key) + 1) == 0 && buf_append(arena, val, strlen(val) + 1) == 0 ? 0 : -1;
}

static int sq_kvp_list(store_t *base, store_kvp_list_t *out) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    conn_t *c = conn_acquire(s);
    if (c == NULL)
        return -1;
    sqlite3_stmt *st = stmt(c, ST_KVP_LIST);
    if (st == NULL)
        return finish(s, c, NULL, -1);
    buf_t arena;
    buf_init(&arena, 0);
    size_t n = 0, skipped = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int r = append_kvp(st, &arena);
        if (r < 0)
            break;
        n += r == 0;
        skipped += r == 1;
    }
    if (rc != SQLITE_DONE) {
        rc = rc == SQLITE_ROW ? store_fail(-1, "store: out of memory") : db_fail(c, "kvp list");
        buf_free(&arena);
        return finish(s, c, st, rc);
    }
    finish(s, c, st, 0);
    if (skipped)
        log_warn("store %s: %zu installation record(s) with an invalid label or value skipped", s->path, skipped);
    kvp_ref_t *refs = n ? malloc(n * sizeof *refs) : NULL;
    out->keys = n ? malloc(n * sizeof *out->keys) : NULL;
    out->vals = n ? malloc(n * sizeof *out->vals) : NULL;
    if (n && (!refs || !out->keys || !out->vals)) {
        free(refs);
        buf_free(&arena);
        store_kvp_list_free(out);
        return store_fail(-1, "store: out of memory");
    }
    const char *p = arena.data;
    for (size_t i = 0; i < n; i++) {
        refs[i].key = p;
        p += strlen(p) + 1;
        refs[i].val = p;
        p += strlen(p) + 1;
    }
    if (n)
        qsort(refs, n, sizeof *refs, kvp_cmp);
    for (size_t i = 0; i < n; i++) {
        out->keys[i] = refs[i].key;
        out->vals[i] = refs[i].val;
    }
    free(refs);
    out->n = n;
    out->arena = arena.data; /* now owned by out */
    return 0;
}

static void sq_close(store_t *base) {
    sqlite_store_t *s = (sqlite_store_t *)base;
    if (s->in_use)
        log_error("store %s: closed with %zu calls in progress", s->path, s->in_use);
    while (s->idle) {
        conn_t *c = s->idle;
        s->idle = c->next;
        conn_close(c);
    }
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->write_lock);
    free(s->path);
    free(s);
}

static const store_ops_t sqlite_ops = {
    .close = sq_close,
    .tenant_add = sq_tenant_add,
    .tenant_get = sq_tenant_get,
    .tenant_list = sq_tenant_list,
    .tenant_set_ekt_if_absent = sq_tenant_set_ekt_if_absent,
    .instance_add = sq_instance_add,
    .instance_get = sq_instance_get,
    .instance_remove = sq_instance_remove,
    .installation_add = sq_installation_add,
    .installation_get = sq_installation_get,
    .installation_remove = sq_installation_remove,
    .installation_set_address = sq_installation_set_address,
    .challenge_add = sq_challenge_add,
    .challenge_remove = sq_challenge_remove,
    .kvp_list = sq_kvp_list,
};

/* Creates the file with mode 0600 if missing (SQLite would use 0644); the
 * -wal and -shm files SQLite makes next to it copy its mode. */
static int create_file(const char *path, char *err, size_t err_len) {
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, err_len, "%s", strerror(errno));
        return -1;
    }
    close(fd);
    return 0;
}

store_t *store_open_sqlite(const char *path, char *err, size_t err_len) {
    char why[200];
    sqlite_store_t *s = NULL;
    conn_t *c = NULL;
    if (create_file(path, why, sizeof why) != 0 || (c = conn_open(path, why, sizeof why)) == NULL ||
        migrate(c->db, path, why, sizeof why) != 0)
        goto fail;
    s = calloc(1, sizeof *s);
    if (s == NULL || (s->path = strdup(path)) == NULL) {
        snprintf(why, sizeof why, "out of memory");
        goto fail;
    }
    s->base.ops = &sqlite_ops;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->write_lock, NULL);
    s->idle = c; /* the first connection starts the pool */
    return &s->base;
fail:
    if (c)
        conn_close(c);
    if (s)
        free(s->path);
    free(s);
    store_fail(-1, "store %s: %s", path, why);
    snprintf(err, err_len, "%s", store_last_error());
    return NULL;
}
