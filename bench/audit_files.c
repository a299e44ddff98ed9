/* audit_files: what making audit records durable costs on a filesystem,
 * without anything else around it: the floor of skd's audit writer.
 *
 * For each batch size B it writes N records of the size of a real one
 * (~900 bytes) with audit_files_write (audit/files.c, the writer's own
 * code) in batches of B, under DIR/b<B>/, and prints per record:
 *   thread_us   CPU time of the writing thread (user + system);
 *   machine_us  busy time of all CPUs (/proc/stat), which adds the kernel's
 *               writeback threads and the block layer: what the records
 *               take from the machine's capacity. Other load counts too.
 *
 * Usage: audit_files DIR [RECORDS [BATCH...]]   (defaults: 2000, 1 4 16)
 * Output, one line per batch size (bench/keys.sh reads it):
 *   audit_files: batch=4 records=2000 thread_us=80 machine_us=120 records_per_s=6600
 * DIR must be on the filesystem to measure and is left in place.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../audit/files.h"

#define RECORD_BYTES 900

static double seconds_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double thread_cpu_s(void) {
    struct rusage r;
    getrusage(RUSAGE_THREAD, &r);
    return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) + (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

/* Busy clock ticks of all CPUs so far, or -1. */
static long long machine_busy_ticks(void) {
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    long long user, nice, sys, idle, iowait, irq, softirq, steal;
    int n = fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld", &user, &nice, &sys, &idle, &iowait, &irq,
                   &softirq, &steal);
    fclose(f);
    return n == 8 ? user + nice + sys + irq + softirq : -1;
}

static int run(const char *dir, size_t records, size_t batch, const char *text) {
    char tenant[32];
    snprintf(tenant, sizeof tenant, "b%zu", batch);
    audit_file_t *files = calloc(batch, sizeof *files);
    if (!files)
        return -1;
    double t0 = seconds_now(), c0 = thread_cpu_s();
    long long m0 = machine_busy_ticks();
    for (size_t done = 0; done < records;) {
        size_t n = records - done < batch ? records - done : batch;
        for (size_t i = 0; i < n; i++)
            files[i] = (audit_file_t){.seq = done + i + 1, .text = text};
        if (audit_files_write(dir, tenant, files, n) != 0) {
            fprintf(stderr, "audit_files: cannot write under %s/%s: %s\n", dir, tenant, strerror(errno));
            free(files);
            return -1;
        }
        done += n;
    }
    double wall = seconds_now() - t0, cpu = thread_cpu_s() - c0;
    long long m1 = machine_busy_ticks();
    double machine = m0 < 0 || m1 < 0 ? 0 : (double)(m1 - m0) / (double)sysconf(_SC_CLK_TCK);
    printf("audit_files: batch=%zu records=%zu thread_us=%.0f machine_us=%.0f records_per_s=%.0f\n", batch, records,
           cpu / (double)records * 1e6, machine / (double)records * 1e6, (double)records / wall);
    free(files);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: audit_files DIR [RECORDS [BATCH...]]\n");
        return 2;
    }
    const char *dir = argv[1];
    long records = argc > 2 ? strtol(argv[2], NULL, 10) : 2000;
    if (records < 1 || records > 10000000) {
        fprintf(stderr, "audit_files: RECORDS is a whole number from 1 to 10000000\n");
        return 2;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "audit_files: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    char text[RECORD_BYTES + 1];
    memset(text, 'x', RECORD_BYTES - 1);
    text[RECORD_BYTES - 1] = '\n';
    text[RECORD_BYTES] = '\0';
    static const char *defaults[] = {"1", "4", "16"};
    int nbatches = argc > 3 ? argc - 3 : 3;
    for (int i = 0; i < nbatches; i++) {
        const char *arg = argc > 3 ? argv[3 + i] : defaults[i];
        long batch = strtol(arg, NULL, 10);
        if (batch < 1 || batch > 4096) {
            fprintf(stderr, "audit_files: a BATCH is a whole number from 1 to 4096\n");
            return 2;
        }
        if (run(dir, (size_t)records, (size_t)batch, text) != 0)
            return 1;
    }
    return 0;
}
