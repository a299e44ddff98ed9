#include "worker.h"

#include <stdlib.h>

typedef struct worker_job {
    uv_work_t work;
    worker_pool_t *pool;
    worker_fn fn;
    worker_done_fn done;
    worker_request_done_fn request_done;
    http_request_t *req;
    void *arg;
} worker_job_t;

void worker_pool_init(worker_pool_t *pool, uv_loop_t *loop, size_t max_queued, metrics_t *metrics) {
    pool->loop = loop;
    pool->max_queued = max_queued;
    pool->metrics = metrics;
}

static void run_job(uv_work_t *w) {
    worker_job_t *job = w->data;
    job->fn(job->arg);
}

void worker_hold_request(http_request_t *req) {
    req->pending_work = true;
}

http_request_t *worker_release_request(http_request_t *req) {
    req->pending_work = false;
    if (!req->conn) {
        /* The connection let go of it when it closed: ours to free. */
        http_request_free(req);
        return NULL;
    }
    return req->response ? NULL : req; /* answered meanwhile (timed out) */
}

static void finish_job(uv_work_t *w, int status) {
    worker_job_t *job = w->data;
    job->pool->metrics->worker_queue_depth--;
    job->pool->metrics->worker_jobs_total++;
    if (job->req) {
        http_request_t *req = worker_release_request(job->req);
        job->request_done(req && status == 0 ? 0 : UV_ECANCELED, req, job->arg);
    } else {
        job->done(status, job->arg);
    }
    free(job);
}

static int submit(worker_pool_t *pool, worker_job_t *job) {
    if (pool->metrics->worker_queue_depth >= pool->max_queued) {
        pool->metrics->worker_jobs_rejected++;
        free(job);
        return UV_EBUSY;
    }
    job->pool = pool;
    job->work.data = job;
    int rc = uv_queue_work(pool->loop, &job->work, run_job, finish_job);
    if (rc != 0) {
        free(job);
        return rc;
    }
    pool->metrics->worker_queue_depth++;
    return 0;
}

int worker_submit(worker_pool_t *pool, worker_fn work, worker_done_fn done, void *arg) {
    worker_job_t *job = calloc(1, sizeof *job);
    if (!job)
        return UV_ENOMEM;
    *job = (worker_job_t){.fn = work, .done = done, .arg = arg};
    return submit(pool, job);
}

int worker_submit_for_request(worker_pool_t *pool, http_request_t *req, worker_fn work, worker_request_done_fn done,
                              void *arg) {
    worker_job_t *job = calloc(1, sizeof *job);
    if (!job)
        return UV_ENOMEM;
    *job = (worker_job_t){.fn = work, .request_done = done, .req = req, .arg = arg};
    int rc = submit(pool, job);
    if (rc == 0)
        req->pending_work = true;
    return rc;
}
