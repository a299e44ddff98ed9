/* worker: runs blocking jobs (PKCS#11, fsync, store calls) on libuv's thread
 * pool and completes them on the loop thread.
 *
 * A job bound to a request survives the request: if the client disconnects
 * (or the request times out) meanwhile, the completion gets status
 * UV_ECANCELED and req == NULL, and must only free what the job made (zeroing
 * secrets). On status 0 the request is still waiting for its answer. Either
 * way the completion owns arg. The queue is bounded: a full queue refuses
 * with UV_EBUSY, which a handler turns into 503. */
#ifndef SKD_WORKER_H
#define SKD_WORKER_H

#include <uv.h>

#include "http.h"
#include "metrics.h"

typedef struct worker_pool {
    uv_loop_t *loop;
    size_t max_queued;
    metrics_t *metrics; /* queue depth and totals */
} worker_pool_t;

typedef void (*worker_fn)(void *arg); /* runs on a worker thread */
typedef void (*worker_done_fn)(int status, void *arg);
typedef void (*worker_request_done_fn)(int status, http_request_t *req, void *arg);

void worker_pool_init(worker_pool_t *pool, uv_loop_t *loop, size_t max_queued, metrics_t *metrics);
/* Returns 0, or UV_EBUSY when the queue is full (done is then not called). */
int worker_submit(worker_pool_t *pool, worker_fn work, worker_done_fn done, void *arg);
/* For an answer that comes after the job's done (e.g. once its audit record
 * is durable): hold keeps req alive (its connection detaches it instead of
 * freeing it); release ends the hold and returns req if it can still be
 * answered, else NULL (freed if its connection is gone). Loop thread only. */
void worker_hold_request(http_request_t *req);
http_request_t *worker_release_request(http_request_t *req);

int worker_submit_for_request(worker_pool_t *pool, http_request_t *req, worker_fn work, worker_request_done_fn done,
                              void *arg);

#endif
